"""Fast paths for a million addresses: canonical text ⇄ integers without
`ipaddress` (whose parser costs microseconds a line) and without a network
library (the core imports none).

`canonical_key(text)` answers (family, network, length) only for text that is
already canonical and valid — the common case of a generated register — and
None for anything else, which then takes the exact, error-reporting path
(writ/blocklist/ipaddr.py). So a fast answer never differs from the exact one
(tests/blocklist/test_ip_targets.py holds the two paths together).
"""

from __future__ import annotations

import re
import sys
from array import array
from collections.abc import Sequence

__all__ = ["bulk_keys", "canonical_key", "guard_clear", "v6_text"]

# First octets with no special-purpose address at all (see ipaddr.SPECIAL_RANGES).
_SAFE_V4 = bytes(0 if o in (0, 10, 100, 127, 169, 172, 192) or o >= 224 else 1
                 for o in range(256))


def v6_text(value: int) -> str:
    """RFC 5952 text of an IPv6 address: lowercase, no leading zeros, the
    longest run (first of equals) of two or more zero words as `::`."""
    words = [f"{value >> s & 0xFFFF:x}" for s in range(112, -1, -16)]
    best_i, best_n = -1, 1
    i = 0
    while i < 8:
        if words[i] == "0":
            j = i + 1
            while j < 8 and words[j] == "0":
                j += 1
            if j - i > best_n:
                best_i, best_n = i, j - i
            i = j
        else:
            i += 1
    if best_i < 0:
        return ":".join(words)
    return ":".join(words[:best_i]) + "::" + ":".join(words[best_i + best_n:])


_W = r"(?:[1-9a-f][0-9a-f]{0,3}|0)"  # one word: lowercase hex, no leading zero
_V6_SHAPE = re.compile(rf"(?:{_W}(?::{_W})*)?(?:::(?:{_W}(?::{_W})*)?)?")


def _v6(addr: str) -> int | None:
    """The value of canonical (RFC 5952) IPv6 text; None for any other text.
    Checks the text's shape with string operations instead of printing the
    value back: no leading zeros, `::` only for the first longest run of two
    or more zero words, no such run left uncompressed."""
    if not _V6_SHAPE.fullmatch(addr):
        return None
    head, gap, tail = addr.partition("::")
    hw = head.split(":") if head else []
    tw = tail.split(":") if tail else []
    n = len(hw) + len(tw)
    if gap:
        m = 8 - n  # the zero words `::` stands for
        if m < 2 or (hw and hw[-1] == "0") or (tw and tw[0] == "0"):
            return None
        if ":0" * m + ":" in f":{head}:" or ":0" * (m + 1) + ":" in f":{tail}:":
            return None  # an earlier run as long, or a later one longer
        return int("".join([w.zfill(4) for w in hw]) + "0000" * m
                   + "".join([w.zfill(4) for w in tw]), 16)
    if n != 8 or ":0:0:" in f":{addr}:":
        return None
    return int("".join([w.zfill(4) for w in hw]), 16)


def canonical_key(text: str) -> tuple[int, int, int] | None:  # noqa: PLR0911 -- one early exit a check
    """(family, network int, prefix length) when `text` is a canonical address
    or prefix with no host bits (and not a full-length prefix); else None."""
    addr, slash, length = text.partition("/")
    if ":" in addr:
        family, bits = 6, 128
        v = _v6(addr)
        if v is None or v >> 32 == 0xFFFF:  # IPv4-mapped: the exact path maps it
            return None
    else:
        family, bits = 4, 32
        parts = addr.split(".")
        if len(parts) != 4:
            return None
        try:
            nums = bytes(map(int, parts))
        except ValueError:
            return None
        if ".".join(map(str, nums)) != addr:  # leading zeros, signs, blanks, "_"
            return None
        v = int.from_bytes(nums, "big")
    if not slash:
        return family, v, bits
    if not length.isdigit() or length != str(int(length)):
        return None
    plen = int(length)
    if plen >= bits or v & ((1 << (bits - plen)) - 1):
        return None  # /32 or /128 is written as the address; host bits: exact path
    return family, v, plen


def guard_clear(family: int, net: int, plen: int, widest: int) -> bool:
    """True when the collateral guard certainly passes: no special-purpose
    range is near and the prefix is no wider than `widest`. False means
    "ask the exact guard", not "refused"."""
    if plen < widest:
        return False
    if family == 4:
        return plen >= 8 and bool(_SAFE_V4[net >> 24])
    top = net >> 112
    return plen >= 16 and 0 < top < 0xFC00


# -- whole lists at once ------------------------------------------------------

_OCT = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_V4_LINE = rf"{_OCT}\.{_OCT}\.{_OCT}\.{_OCT}"
_V4_ADDRS = re.compile(rf"{_V4_LINE}(?:\n{_V4_LINE})*")
_V4_PREFIXES = re.compile(rf"{_V4_LINE}/(?:3[01]|[12]?[0-9])(?:\n{_V4_LINE}/(?:3[01]|[12]?[0-9]))*")
_SAFE_FIRST = bytes(o for o in range(256) if _SAFE_V4[o])
_LITTLE = sys.byteorder == "little"


def _nets(octets: bytes) -> array[int]:
    nets = array("I")
    if nets.itemsize != 4:  # pragma: no cover - every platform CPython runs on has it
        nets = array("L")
    nets.frombytes(octets)
    if _LITTLE:
        nets.byteswap()
    return nets


def bulk_keys(texts: Sequence[str], widest4: int = 0, widest6: int = 0, *,
              guard: bool = True) -> tuple[list[int], list[int]] | None:
    """Sort keys (network << 8 | length) per family for texts that are all
    canonical, host-bit free and clear of the guard (no prefix wider than
    `widest4`/`widest6`, no special-purpose range near; guard=False skips
    that check, for rules that passed it when loaded); None as soon as one
    is not — the caller then takes the exact path. IPv4 is converted a whole
    list at a time (one regex check, one int() map, one byte swap)."""
    v4 = [t for t in texts if ":" not in t]
    v6 = [t for t in texts if ":" in t] if len(v4) < len(texts) else []
    keys4: list[int] = []
    for start in range(0, len(v4), _CHUNK):  # chunks: the split texts stay small
        got = _v4_keys(v4[start:start + _CHUNK], widest4, guard)
        if got is None:
            return None
        keys4 += got
    keys6: list[int] = []
    for t in v6:
        key = canonical_key(t)
        if key is None or (guard and not guard_clear(*key, widest6)):
            return None
        keys6.append(key[1] << 8 | key[2])
    return keys4, keys6


_CHUNK = 1 << 16


def _v4_keys(v4: Sequence[str], widest4: int, guard: bool) -> list[int] | None:
    keys4: list[int] = []
    addrs = [t for t in v4 if "/" not in t]
    prefixes = [t for t in v4 if "/" in t] if len(addrs) < len(v4) else []
    if addrs:
        block = "\n".join(addrs)
        if not _V4_ADDRS.fullmatch(block):
            return None
        octets = bytes(map(int, block.replace("\n", ".").split(".")))
        if guard and (widest4 > 32 or octets[0::4].translate(None, _SAFE_FIRST)):
            return None
        keys4 = [n << 8 | 32 for n in _nets(octets)]
    if prefixes:
        block = "\n".join(prefixes)
        if not _V4_PREFIXES.fullmatch(block):
            return None
        nums = bytes(map(int, block.replace("\n", ".").replace("/", ".").split(".")))
        packed = bytearray(len(nums) // 5 * 4)
        for i in range(4):
            packed[i::4] = nums[i::5]
        plens = nums[4::5]
        if guard and (min(plens) < max(widest4, 8)
                      or bytes(packed[0::4]).translate(None, _SAFE_FIRST)):
            return None
        nets = _nets(bytes(packed))
        if any(n & ((1 << (32 - p)) - 1) for n, p in zip(nets, plens, strict=True)):
            return None  # host bits: the exact path names the canonical form
        keys4 += [n << 8 | p for n, p in zip(nets, plens, strict=True)]
    return keys4
