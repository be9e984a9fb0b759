"""One target spelled by a regulator → one canonical Target, or why not.

Shared by inline `targets:` in YAML and by bulk `file:` lists, so that a name
or URL means the same thing wherever it is written.

Invariants:
- Canonicalisation is writ.blocklist.canon's, the same as at lookup time.
- url and url_prefix targets are http or https URLs; a url_prefix carries
  no query (prefix rules match paths only).
- A TLD or public suffix as a domain target, or as a URL's host, is refused
  unless the order allows it.
"""

from __future__ import annotations

from writ.blocklist._psl import is_public
from writ.blocklist.canon import CanonError, canonical_name, canonical_url
from writ.blocklist.ipaddr import DEFAULT_LIMITS, IpError, IpLimits, guard_problem, parse_prefix
from writ.blocklist.model import Position, Target, TargetKind

__all__ = ["TargetError", "domain_target", "ip_target", "public_suffix_message", "url_target"]


class TargetError(ValueError):
    """The message says what is wrong with the target, for the regulator."""


def public_suffix_message(name: str) -> str:
    what = "a whole top-level domain" if "." not in name else "a public suffix"
    return (
        f"{name} is {what}: blocking it blocks every site under it "
        "(add `allow_public_suffix: true` if the court orders exactly that)"
    )


def domain_target(text: str, allow_public_suffix: bool) -> str:
    """The canonical name for a domain target. Raises TargetError."""
    if "://" in text or "/" in text:
        raise TargetError(f"{text!r} is not a host name (for a URL use url: or url_prefix:)")
    last = text.strip().rstrip(".").rpartition(".")[2]
    if ":" in text or (last.isascii() and last.isdigit()):
        # A host ending in a number is an IPv4 address to a browser (WHATWG).
        raise TargetError(f"{text!r} is an address, not a host name (use ip: or ip_prefix:)")
    try:
        name = canonical_name(text)
    except CanonError as e:
        raise TargetError(str(e)) from None
    if not allow_public_suffix and is_public(name):
        raise TargetError(public_suffix_message(name))
    return name


def url_target(
    text: str, kind: TargetKind, allow_public_suffix: bool, pos: Position | None
) -> Target:
    """A url or url_prefix Target. Raises TargetError."""
    scheme, sep, _ = text.strip().partition("://")
    if not sep:
        raise TargetError(f"{text!r} is not a URL (write http://host/path or https://host/path)")
    if scheme.lower() not in ("http", "https"):
        raise TargetError(f"{text!r}: only http and https URLs can be enforced, not {scheme}:")
    if kind is TargetKind.URL_PREFIX and text.rstrip().endswith("*"):
        raise TargetError(
            f"{text!r}: drop the trailing '*' — a url_prefix already covers everything below it"
        )
    try:
        u = canonical_url(text)
    except CanonError as e:
        raise TargetError(str(e)) from None
    if kind is TargetKind.URL_PREFIX and u.query:
        raise TargetError(f"{text!r}: a url_prefix matches paths only and cannot carry a query")
    if not u.host.startswith("[") and not allow_public_suffix and is_public(u.host):
        raise TargetError(public_suffix_message(u.host))
    return Target(kind, u.host, u.path, u.query, True, pos)


def ip_target(text: str, kind: TargetKind, limits: IpLimits = DEFAULT_LIMITS,
              acknowledged: bool = False) -> str:
    """The canonical text of an ip or ip_prefix target, checked by the
    collateral guard. Raises TargetError."""
    try:
        p = parse_prefix(text, kind is TargetKind.IP_PREFIX)
    except IpError as e:
        raise TargetError(str(e)) from None
    problem = guard_problem(p, limits, acknowledged)
    if problem is not None:
        raise TargetError(problem)
    return str(p)
