"""From question labels to a decision: the name as the index knows it.

Invariants:
- A name whose labels are plain (letters, digits, `-`, `_`) is decided as
  canonical_name() spells it, so the resolver and `writ explain` agree.
- A name that cannot be canonicalised (odd bytes, a `.` inside a label) is
  still blocked when it lies under a blocked domain: we decide the longest
  canonical suffix as if asked for a child of it (`_.suffix`), which matches
  only rules that cover subdomains — never the suffix's own exact rules.
"""

from __future__ import annotations

from collections.abc import Sequence

from writ.blocklist import ALLOW, CanonError, Decision, Index, Verdict, canonical_name

__all__ = ["decide_labels", "display_name"]


def display_name(labels: Sequence[bytes]) -> str:
    """The name for logs: lowercase, dotted, odd bytes escaped as \\DDD (RFC 1035 §5.1)."""
    parts = []
    for label in labels:
        out = []
        for b in label.lower():
            c = chr(b)
            out.append(c if 0x21 <= b < 0x7F and c not in ".\\;()\"" else f"\\{b:03d}")
        parts.append("".join(out))
    return ".".join(parts) + "."


def _canonical(labels: Sequence[bytes]) -> str | None:
    if any(not label or b"." in label for label in labels):
        return None
    try:
        return canonical_name(b".".join(labels).decode("ascii"))
    except (CanonError, UnicodeDecodeError):
        return None


def decide_labels(index: Index, labels: Sequence[bytes]) -> Decision:
    name = _canonical(labels)
    if name is not None:
        return index.decide_canonical_name(name)
    for i in range(1, len(labels)):
        suffix = _canonical(labels[i:])
        if suffix is not None:
            d = index.decide_canonical_name("_." + suffix)
            return d if d.decision is Verdict.BLOCK else ALLOW
    return ALLOW
