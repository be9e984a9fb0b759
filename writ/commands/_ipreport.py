"""The cost report `writ orders check` prints for ip/ip_prefix targets (the
policy's limits come from writ.commands._common.ip_limits)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from writ.blocklist import Act

__all__ = ["ip_report"]

BULK_SHOWN = 20  # prefixes listed per bulk list without --prefixes


def _line(text: str, where: str) -> str:
    from writ.blocklist.ipaddr import canonical_ip

    n = canonical_ip(text).size
    return f"  ip_prefix {text}: {n:,} address{'es' if n != 1 else ''}  [{where}]"


def _width(text: str) -> int:
    """log2 of the addresses a canonical prefix covers (sorts without parsing it)."""
    return (128 if ":" in text else 32) - int(text.rpartition("/")[2])


def ip_report(acts: tuple[Act, ...], every: bool) -> list[str]:
    """One line per prefix (how many addresses it covers), per act, then the
    union of everything. Bulk lists show their widest BULK_SHOWN prefixes
    unless `every`."""
    from writ.blocklist.ipcount import coverage

    out: list[str] = []
    texts: list[str] = []
    for a in acts:
        for t in a.targets:
            if t.is_ip:
                texts.append(t.host)
                if "/" in t.host:
                    out.append(_line(t.host, a.id))
        for b in a.bulk:
            if not b.ips:
                continue
            texts.extend(b.ips)
            prefixes = [p for p in b.ips if "/" in p]
            shown = prefixes if every else sorted(prefixes, key=_width, reverse=True)[:BULK_SHOWN]
            out.extend(_line(p, f"{a.id} {b.file}") for p in shown)
            if len(shown) < len(prefixes):
                out.append(f"  … {len(prefixes) - len(shown):,} more prefixes in {b.file} "
                           "(--prefixes lists every one)")
    if not texts:
        return []
    return [f"ip targets: {len(texts):,}, covering {coverage(texts)} "
            "(overlaps counted once):", *out]
