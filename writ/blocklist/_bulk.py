"""Bulk `file:` lists: one target a line (docs/design.md §2).

A name is a domain target (with subdomains), a URL a url target, a URL
ending in `/*` a url_prefix target; an address an ip target and
`ADDRESS/LEN` an ip_prefix target (a line is an address or prefix when it
has a `:` but no `://`, a `/` but no `://`, or ends in a number:
writ/blocklist/ipaddr.py `looks_like_ip`); blank lines and `#` comments are
skipped; errors name the list file and its line.

Invariants:
- A list holds up to millions of names, so names stay plain strings (a
  BulkList), never Target objects, and the common case — a file of plain
  ASCII names — is checked by whole-file C-speed passes over bytes (lower,
  translate, a few substring searches, one split) instead of a Python call
  per line. Anything the
  fast path is unsure of goes through the exact per-line path, which gives
  the same names for the lines both accept and says where a line is wrong.
- At most MAX_ERRORS errors are reported per list; the rest are counted.
"""

from __future__ import annotations

import re
from array import array
from dataclasses import dataclass
from pathlib import Path

from writ.blocklist._ipfast import bulk_keys, canonical_key, guard_clear
from writ.blocklist._psl import any_public, candidates
from writ.blocklist._targets import TargetError, domain_target, ip_target, url_target
from writ.blocklist.canon import MAX_LABEL, MAX_NAME
from writ.blocklist.ipaddr import DEFAULT_LIMITS, IpLimits, looks_like_ip
from writ.blocklist.model import Position, Target, TargetKind

__all__ = ["MAX_ERRORS", "MAX_LIST_BYTES", "ListReader", "ListResult", "read_list"]

MAX_ERRORS = 100
MAX_LIST_BYTES = 256 << 20  # ~8M names; past that the node's memory is the limit

# What a list of plain canonical names is made of (canon._ASCII_NAME's
# characters, lowercase, and newlines).
_NAME_BYTES = b"abcdefghijklmnopqrstuvwxyz0123456789_.-\n"
_DASH_AS_DOT = bytes.maketrans(b"-", b".")
_INLINE_COMMENT = re.compile(r"\s#")
# A line whose last label is a number is an address, not a name: the exact path reads it.
_NUMERIC_END = re.compile(rb"(?:^|\.)[0-9]+$", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class ListResult:
    domains: tuple[str, ...]
    urls: tuple[Target, ...]
    errors: tuple[tuple[int, str, str], ...]  # (line, field, message)
    ips: tuple[str, ...] = ()
    ip_keys: object = None  # bulk_keys(ips), when the fast path read the list


@dataclass(frozen=True, slots=True)
class _IpRules:
    """What the collateral guard needs while reading a list."""

    limits: IpLimits = DEFAULT_LIMITS
    acknowledged: bool = False


def read_list(path: Path, display: str, allow_public_suffix: bool,
              limits: IpLimits = DEFAULT_LIMITS, acknowledged: bool = False) -> ListResult:
    """Read one bulk list. `display` is the list's name in positions and errors."""
    try:
        if path.stat().st_size > MAX_LIST_BYTES:
            return ListResult((), (), ((1, "file", f"larger than {MAX_LIST_BYTES >> 20} MiB: "
                                           "split it into several lists"),))
        data = path.read_bytes()
    except OSError as e:
        return ListResult((), (), ((1, "file", f"cannot read: {e.strerror or e}"),))
    names = _fast_names(data)
    if names is not None and (
        allow_public_suffix or not any_public(names) or not candidates(names)
    ):
        return ListResult(tuple(names), (), ())
    del names  # a public suffix or an odd line: the exact path says where
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        return ListResult((), (), ((line, "file", "not UTF-8 text"),))
    del data
    fast = _fast_ips(text, limits, acknowledged)
    if fast is not None:
        return ListResult((), (), (), *fast)
    return _read_lines(text.removeprefix("\ufeff"), display, allow_public_suffix,
                       _IpRules(limits, acknowledged))


def _fast_names(data: bytes) -> list[str] | None:  # noqa: PLR0911 -- one exit a check
    """The names of a list of plain ASCII names, blank lines and whole-line
    comments, exactly as canonical_name would spell them; or None."""
    data = data.removeprefix(b"\xef\xbb\xbf")
    if not data.isascii():
        return None
    low = data.lower()
    del data
    if b"\r" in low:
        low = low.replace(b"\r\n", b"\n")
    if b"#" in low:
        without = _drop_comment_lines(low)
        if without is None:
            return None
        low = without
    if low.translate(None, _NAME_BYTES):
        return None  # a character no plain name has (":" of a URL, a space, "\r", …)
    if _NUMERIC_END.search(low):
        return None  # an IPv4 address line
    # With "-" read as ".", an empty label or a label that starts or ends with
    # "-" shows as ".." or a dot at a line's edge. (This also sends `xn--`
    # and `a--b` names to the exact path, which checks punycode.)
    edges = low.translate(_DASH_AS_DOT)
    if (b".." in edges or b".\n" in edges or b"\n." in edges
            or edges.startswith(b".") or edges.endswith(b".")):
        return None
    del edges
    names = low.decode("ascii").split()
    if names and max(map(len, names)) > MAX_LABEL:
        for n in (n for n in names if len(n) > MAX_LABEL):
            if len(n) > MAX_NAME or max(map(len, n.split("."))) > MAX_LABEL:
                return None
    return names


def _fast_ips(text: str, limits: IpLimits, acknowledged: bool
              ) -> tuple[tuple[str, ...], object] | None:
    """The lines of a list of canonical addresses and prefixes (blank lines and
    whole-line comments allowed) that all pass the guard; or None, and the
    exact path reads the list."""
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    body = [line for line in text.removeprefix("\ufeff").split("\n") if line and line[0] != "#"]
    if not body or not body[0][:1].isalnum():
        return None
    w4, w6 = (0, 0) if acknowledged else (limits.max_prefix_ipv4, limits.max_prefix_ipv6)
    keys = bulk_keys(body, w4, w6)
    if keys is None:
        return None
    return tuple(body), (array("Q", keys[0]), keys[1])


def _drop_comment_lines(low: bytes) -> bytes | None:
    """`low` without `#` comments (whole lines, or after a blank on a line);
    None if a `#` sticks to a target (a URL fragment: the exact path decides)."""
    pieces: list[bytes] = []
    pos = 0
    i = low.find(b"#")
    while i >= 0:
        start = low.rfind(b"\n", 0, i) + 1
        cut = i
        while cut > start and low[cut - 1] in b" \t":
            cut -= 1
        if cut == i and cut > start:
            return None
        end = low.find(b"\n", i)
        end = len(low) if end < 0 else end
        pieces.append(low[pos:cut])
        pos = end
        i = low.find(b"#", end)
    pieces.append(low[pos:])
    return b"".join(pieces)


def _read_lines(text: str, display: str, allow_public_suffix: bool,  # noqa: PLR0912 -- a branch a kind of line
                ip_rules: _IpRules | None = None) -> ListResult:
    ip_rules = ip_rules or _IpRules()
    limits = ip_rules.limits
    widest = (0, 0) if ip_rules.acknowledged else (limits.max_prefix_ipv4,
                                                    limits.max_prefix_ipv6)
    domains: list[str] = []
    urls: list[Target] = []
    ips: list[str] = []
    errors: list[tuple[int, str, str]] = []
    dropped = 0
    last_line = 0
    for lineno, raw in enumerate(text.split("\n"), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if "#" in line:
            line = _INLINE_COMMENT.split(line, maxsplit=1)[0].rstrip()
        key = canonical_key(line)  # a register of canonical addresses: no detour
        if key is not None and guard_clear(*key, widest[key[0] == 6]):
            ips.append(line)
            continue
        field = "domain"
        problem: str | None = None
        try:
            if looks_like_ip(line) and " " not in line and "\t" not in line:
                ip_kind = TargetKind.IP_PREFIX if "/" in line else TargetKind.IP
                field = ip_kind.value
                ips.append(ip_target(line, ip_kind, ip_rules.limits, ip_rules.acknowledged))
            elif "://" in line:
                kind = TargetKind.URL
                if line.endswith("/*"):
                    kind, line = TargetKind.URL_PREFIX, line[:-1]
                field = kind.value
                urls.append(url_target(line, kind, allow_public_suffix, Position(display, lineno)))
            elif " " not in line and "\t" not in line:
                domains.append(domain_target(line, allow_public_suffix))
            else:
                problem = f"{line!r}: one target a line (found spaces)"
        except TargetError as e:
            problem = str(e)
        if problem is None:
            continue
        if len(errors) < MAX_ERRORS:
            errors.append((lineno, field, problem))
        else:
            dropped += 1
            last_line = lineno
    if dropped:
        errors.append((last_line, "file", f"{dropped} more errors in this list not shown"))
    return ListResult(tuple(domains), tuple(urls), tuple(errors), tuple(ips))



class ListReader:
    """Resolves `file:` paths inside the orders folder and reads each list once.

    Confinement: the path is relative to the order file; after resolving
    symlinks and `..` it must still lie inside the orders folder, so an order
    can never make writ read /etc/passwd or another tenant's files.
    """

    def __init__(self, root: Path, root_display: str, limits: IpLimits = DEFAULT_LIMITS
                 ) -> None:
        self.root = root.resolve()
        self.root_display = root_display
        self.limits = limits  # the collateral guard's (writ/blocklist/ipaddr.py)
        self._cache: dict[tuple[Path, bool, bool], ListResult] = {}

    def display(self, inner: Path) -> str:
        return str(Path(self.root_display) / inner)

    def locate(self, order_file: Path, rel: str) -> Path:
        """The list's path relative to the root. Raises TargetError."""
        if not rel.strip():
            raise TargetError("empty path")
        path = Path(rel)
        if not path.is_absolute():
            path = order_file.parent / path
        try:
            real = path.resolve()
        except (OSError, RuntimeError) as e:  # RuntimeError: a symlink loop
            raise TargetError(f"cannot resolve {rel!r}: {e}") from None
        try:
            inner = real.relative_to(self.root)
        except ValueError:
            raise TargetError(
                f"{rel!r} is outside the orders folder {self.root_display}"
            ) from None
        if not real.exists():
            raise TargetError(f"no such file: {rel!r} (paths are relative to the order file)")
        if not real.is_file():
            raise TargetError(f"{rel!r} is not a regular file")
        if real.suffix in (".yaml", ".yml"):
            raise TargetError(
                f"{rel!r}: a list must not end in .yaml/.yml (it would be read as an order)"
            )
        return inner

    def read(self, inner: Path, allow_public_suffix: bool, acknowledged: bool = False
             ) -> ListResult:
        key = (inner, allow_public_suffix, acknowledged)
        got = self._cache.get(key)
        if got is None:
            got = read_list(self.root / inner, self.display(inner), allow_public_suffix,
                            self.limits, acknowledged)
            self._cache[key] = got
        return got
