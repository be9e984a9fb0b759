"""Canonical forms of host names and URLs (docs/design.md §3).

The same functions canonicalise order targets at load time and requests at
lookup time, so that two spellings of one resource can never get two
decisions. Rules:

- names: lowercase, trailing dot dropped, IDNA (UTS-46) to punycode;
- IP hosts as browsers read them (the WHATWG URL host parser): an IPv4
  address in any number form (`2130706434`, `0x7f.0.0.2`, `0177.0.0.2`,
  `127.2`) becomes dotted decimal, an IPv6 literal its compressed form in
  brackets, and an IPv4-mapped IPv6 address (`[::ffff:127.0.0.2]`) the IPv4
  address it reaches (a deliberate step past WHATWG: the connection goes to
  the same host);
- URLs: scheme ignored (http ≡ https), host as above, userinfo, port and
  fragment dropped, a backslash read as `/` (as browsers do for http and https, so
  `http://good.example\\@evil.example/` is host `good.example`),
  percent-encoding normalised (unreserved characters decoded, hex
  uppercased), dot-segments resolved, repeated slashes collapsed, empty
  path = `/`;
- the query is kept as (key, value) pairs, normalised like the path, with
  `+` read as a space (form encoding), so `?q=a+b` ≡ `?q=a%20b`.

Ports are not significant at all, not only default ones: a court orders a
resource, and the same resource on another port is the same evasion.
"""

from __future__ import annotations

import ipaddress
import re
from typing import NamedTuple

import idna

__all__ = [
    "CanonError",
    "CanonicalURL",
    "canonical_host",
    "canonical_name",
    "canonical_path",
    "canonical_url",
    "is_url",
    "separator_reading",
]

MAX_NAME = 253
MAX_LABEL = 63
MAX_URL = 16384

# One label: 1-63 of [a-z0-9_-], not starting or ending with "-".
_ASCII_NAME = re.compile(r"(?!-)[a-z0-9_-]{1,63}(?<!-)(?:\.(?!-)[a-z0-9_-]{1,63}(?<!-))*")
_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_HEX = frozenset(b"0123456789abcdefABCDEF")
# Characters that may stand unescaped in a canonical path or query component.
_PATH_SAFE = _UNRESERVED | frozenset(b"!$&'()*+,;=:@/")
_QUERY_SAFE = _UNRESERVED | frozenset(b"!$'()*,;:@/?")
# Fast paths: components made only of characters that canonicalisation keeps as they are.
_PATH_PLAIN = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:@/]*")
_QUERY_PLAIN = re.compile(r"[A-Za-z0-9\-._~!$'()*,;:@/?]*")
_QUERY_PLAIN_ALL = re.compile(r"[A-Za-z0-9\-._~!$'()*,;:@/?&=]*")  # a whole plain query
# scheme :// authority path ?query #fragment, split in one pass
# (`\\` ends the authority as `/` does: browsers read it so for http and https)
_URL = re.compile(r"([^:/?#]+)://([^/?#\\]*)([^?#]*)(?:\?([^#]*))?(?:#.*)?", re.DOTALL)
# A lenient request host: ASCII labels a strict IDNA check may refuse (`foo-`, `-x`).
_LENIENT_NAME = re.compile(r"[a-z0-9_-]{1,63}(?:\.[a-z0-9_-]{1,63})*")
_HEXDIGITS = frozenset("0123456789abcdefABCDEF")


class CanonError(ValueError):
    """A name or URL that cannot be canonicalised; the message says why."""


class CanonicalURL(NamedTuple):
    """A URL in canonical form. A named tuple, not a frozen dataclass: one is
    built per request, and the tuple is built in half the time."""

    host: str
    path: str  # starts with "/", no trailing "/" except for the root
    query: tuple[tuple[str, str], ...]

    def __str__(self) -> str:
        q = "&".join(f"{k}={v}" for k, v in self.query)
        return f"{self.host}{self.path}" + (f"?{q}" if q else "")


def canonical_name(name: str) -> str:
    """Lowercase, no trailing dot, punycode. Raises CanonError."""
    if name.isascii():
        # Fast path for the common spellings: letters, digits, dots and inner
        # hyphens, short enough that no label can pass 63 and no punycode to
        # check. Same result as the full check below (a property test holds it).
        n = name.lower()
        if n[-1:] == ".":
            n = n[:-1]
        if len(n) <= MAX_LABEL and ".." not in n and n[:1] != "." and n[-1:] != ".":
            plain = n.replace(".", "")
            if plain.isalnum():
                return n
            if (plain.replace("-", "").isalnum() and "xn--" not in n and "-." not in n
                    and ".-" not in n and n[0] != "-" and n[-1] != "-"):
                return n
    n = name.strip()
    if n.endswith("."):
        n = n[:-1]
    if not n:
        raise CanonError("empty host name")
    if n.isascii():
        n = n.lower()
        if _ASCII_NAME.fullmatch(n) and len(n) <= MAX_NAME:
            if "xn--" in n:
                _check_punycode(n)
            return n
    try:
        out = idna.encode(n, uts46=True, transitional=False).decode("ascii")
    except (idna.IDNAError, UnicodeError, ValueError) as e:
        raise CanonError(f"invalid host name {name!r}: {e}") from None
    out = out.lower()
    if not _ASCII_NAME.fullmatch(out) or len(out) > MAX_NAME:
        raise CanonError(f"invalid host name {name!r}")
    return out


def _check_punycode(n: str) -> None:
    for label in n.split("."):
        if label.startswith("xn--"):
            try:
                idna.decode(label)
            except (idna.IDNAError, UnicodeError, ValueError) as e:
                raise CanonError(f"invalid punycode label {label!r}: {e}") from None


def _ends_in_number(host: str) -> bool:
    """WHATWG's "ends in a number": the last label (a trailing dot aside) is
    digits, or `0x` and hex digits. Such a host is an IPv4 address or invalid."""
    last = (host[:-1] if host.endswith(".") else host).rpartition(".")[2]
    if not last:
        return False
    if last.isascii() and last.isdigit():
        return True
    return last[:2] in ("0x", "0X") and all(c in _HEXDIGITS for c in last[2:])


def _ipv4_number(part: str) -> int:
    if not part:
        raise ValueError("empty part")
    base = 10
    if part[:2] in ("0x", "0X"):
        part, base = part[2:], 16
    elif len(part) > 1 and part[0] == "0":
        part, base = part[1:], 8
    if not part:
        return 0
    try:
        return int(part, base) if part.isascii() and part.isalnum() else int("-")
    except ValueError:
        raise ValueError(f"{part[:20]!r} is not a number") from None


def _ipv4(host: str) -> str:
    """The WHATWG IPv4 parser: 1-4 parts, each decimal, 0x-hex or 0-octal; the
    last part fills the remaining bytes. Dotted decimal out; CanonError."""
    parts = host.split(".")
    if parts[-1] == "" and len(parts) > 1:
        parts.pop()
    if len(parts) > 4:
        raise CanonError(f"invalid IPv4 address {host[:80]!r}: more than four parts")
    try:
        numbers = [_ipv4_number(p) for p in parts]
    except ValueError as e:
        raise CanonError(f"invalid IPv4 address {host[:80]!r}: {e}") from None
    *head, last = numbers
    if any(n > 255 for n in head) or last >= 256 ** (5 - len(numbers)):
        raise CanonError(f"invalid IPv4 address {host[:80]!r}: a part is out of range")
    value = last
    for i, n in enumerate(head):
        value += n << (8 * (3 - i))
    return str(ipaddress.IPv4Address(value))


def _ipv6(literal: str) -> str:
    """`[v6]` → `[compressed]`; an IPv4-mapped address → its IPv4 address."""
    inner = literal[1:-1]
    if "%" in inner:
        raise CanonError(f"invalid IPv6 literal {literal[:80]!r}: zone identifiers are not URLs")
    try:
        a = ipaddress.IPv6Address(inner)
    except ValueError as e:
        raise CanonError(f"invalid IPv6 literal {literal[:80]!r}: {e}") from None
    if a.ipv4_mapped is not None:
        return str(a.ipv4_mapped)
    return f"[{a.compressed}]"


def canonical_host(host: str, *, lenient: bool = False) -> str:
    """A URL's host: an IP address as browsers read it (see the module
    docstring), otherwise a name (canonical_name). Raises CanonError.

    `lenient` (requests only, never order targets): an ASCII name that strict
    IDNA refuses (`foo-.other.example`) is kept lowercased rather than refused,
    so that the host is still judged by its suffixes and nobody's request is
    refused for a spelling no order names."""
    if host[:1] == "[":
        if host[-1:] != "]":
            raise CanonError(f"unterminated IPv6 literal {host[:80]!r}")
        return _ipv6(host)
    if (host[-1:].isdigit() or "0x" in host or "0X" in host) and _ends_in_number(host):
        return _ipv4(host)
    try:
        return canonical_name(host)
    except CanonError:
        if not lenient or not host.isascii():
            raise
        n = host.lower()
        n = n[:-1] if n.endswith(".") else n
        if len(n) <= MAX_NAME and _LENIENT_NAME.fullmatch(n):
            return n
        raise


def is_url(target: str) -> bool:
    return "://" in target


def _normalise_component(raw: str, safe: frozenset[int], plus_is_space: bool) -> str:
    """Percent-normalise one path or query component."""
    plain = _QUERY_PLAIN if plus_is_space else _PATH_PLAIN
    if plain.fullmatch(raw):
        return raw
    data = raw.encode("utf-8", "surrogatepass")
    out = bytearray()
    i, n = 0, len(data)
    while i < n:
        c = data[i]
        if c == 0x25:  # '%'
            if i + 2 < n and data[i + 1] in _HEX and data[i + 2] in _HEX:
                v = int(data[i + 1 : i + 3], 16)
                if v in _UNRESERVED:
                    out.append(v)
                else:
                    out += b"%%%02X" % v
                i += 3
                continue
            raise CanonError(f"invalid percent-encoding in {raw[:80]!r}")
        if plus_is_space and c == 0x2B:  # '+'
            out += b"%20"
        elif c in safe:
            out.append(c)
        else:
            out += b"%%%02X" % c
        i += 1
    return out.decode("ascii")


def canonical_path(raw: str) -> str:
    """Normalise a path: `\\` as `/`, percent-encoding, dot-segments, `//`, no
    trailing `/`."""
    if "\\" in raw:
        raw = raw.replace("\\", "/")
    p = _normalise_component(raw, _PATH_SAFE, plus_is_space=False)
    if p.startswith("/") and "//" not in p and "/." not in p and (len(p) == 1 or p[-1] != "/"):
        return p  # already canonical: the common case
    segments: list[str] = []
    for seg in p.split("/"):
        if seg in ("", "."):
            continue
        if seg == "..":
            if segments:
                segments.pop()
            continue
        segments.append(seg)
    return "/" + "/".join(segments)


_PARAMS = re.compile(r";[^/]*")


def separator_reading(path: str) -> str | None:
    """The other reading of a canonical path, as many origins decode it:
    `%2F` and `%5C` as `/` and each segment's `;params` dropped (servlet
    containers, IIS, frameworks that decode before routing). None when it
    reads the same. A URL rule matches a request if it matches either reading
    (docs/regulator.md, "Matching")."""
    if "%2F" not in path and "%5C" not in path and ";" not in path:
        return None
    alt = path.replace("%2F", "/").replace("%5C", "/")
    if ";" in alt:
        alt = _PARAMS.sub("", alt)
    alt = canonical_path(alt)
    return None if alt == path else alt


def _canonical_query(raw: str) -> tuple[tuple[str, str], ...]:
    if not raw:
        return ()
    if _QUERY_PLAIN_ALL.fullmatch(raw):  # nothing to normalise: split only
        plain: list[tuple[str, str]] = []
        for part in raw.split("&"):
            if part:
                k, _, v = part.partition("=")
                plain.append((k, v))
        return tuple(plain)
    pairs: list[tuple[str, str]] = []
    for part in raw.split("&"):
        if not part:
            continue
        k, _, v = part.partition("=")
        pairs.append(
            (
                _normalise_component(k, _QUERY_SAFE, plus_is_space=True),
                _normalise_component(v, _QUERY_SAFE, plus_is_space=True),
            )
        )
    return tuple(pairs)


def _split_authority(authority: str) -> str:
    """Return the host of an authority, dropping userinfo and port."""
    host = authority.rpartition("@")[2]
    if host.startswith("["):  # IPv6 literal
        end = host.find("]")
        if end < 0:
            raise CanonError(f"unterminated IPv6 literal in {authority!r}")
        if host[end + 1 :] and not host[end + 1 :].startswith(":"):
            raise CanonError(f"invalid authority {authority[:80]!r}")
        return host[: end + 1]
    host, _, port = host.partition(":")
    if port and not port.isdigit():
        raise CanonError(f"invalid port {port!r}")
    return host


def canonical_url(url: str) -> CanonicalURL:
    """Canonicalise an absolute URL (any scheme, which is ignored)."""
    if len(url) > MAX_URL:
        raise CanonError(f"URL longer than {MAX_URL} characters")
    m = _URL.fullmatch(url)
    if m is None:
        raise CanonError(f"not an absolute URL: {url[:80]!r}")
    authority, path_raw, query_raw = m.group(2, 3, 4)
    if "@" in authority or ":" in authority or "[" in authority:
        authority = _split_authority(authority)
    if not authority:
        raise CanonError(f"URL has no host: {url[:80]!r}")
    return CanonicalURL(canonical_host(authority), canonical_path(path_raw),
                        _canonical_query(query_raw or ""))
