"""Act folding: (acts, instant) → what is in force, and when that changes.

Invariants (docs/design.md §2, §3):
- A block is in force from `effective` until `expires` (exclusive), unless an
  active revoke amends it.
- A restore lifts only host-level targets (domain, ip, ip_prefix) of the
  order it amends — those listed in `restores`, or all of them when
  `restores` is omitted — and
  puts its `keep_blocked` URL rules in force, for as long as both the restore
  and the amended block are in force. Its URL/url_prefix targets stay.
- A revoke lifts everything the amended act put in force; revoking a block also
  ends its restorations' `keep_blocked` rules; revoking a restore brings the
  lifted hosts back.
- No act ever lifts what another order blocks: lifting is per amended act, and
  matching unions the rules of every act in force.
- Pure: the instant is an argument, nothing reads a clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from writ.blocklist.model import Act, ActKind, Target

__all__ = ["Fold", "InForce", "KeptRule", "fold", "next_change"]


@dataclass(frozen=True, slots=True)
class InForce:
    """A block act in force at the instant, minus what restorations lifted."""

    act: Act
    lifted: frozenset[str]  # its domain (and ip/ip_prefix) targets lifted by restorations
    restored_by: tuple[str, ...]  # ids of the restorations in force


@dataclass(frozen=True, slots=True)
class KeptRule:
    """A `keep_blocked` URL rule of a restoration in force."""

    target: Target
    orders: tuple[str, ...]  # (amended block id, restore id)


@dataclass(frozen=True, slots=True)
class Fold:
    at: datetime
    in_force: tuple[InForce, ...]
    kept: tuple[KeptRule, ...]
    next_change: datetime | None  # the next instant at which this fold changes


def next_change(acts: Iterable[Act], at: datetime) -> datetime | None:
    instants = [
        t for a in acts for t in (a.effective, a.expires) if t is not None and t > at
    ]
    return min(instants, default=None)


def fold(acts: Sequence[Act], at: datetime) -> Fold:
    """The acts in force at `at` (an aware datetime)."""
    if at.tzinfo is None:
        raise ValueError("fold() needs a timezone-aware instant")
    revoked = {
        a.amends for a in acts if a.kind is ActKind.REVOKE and a.amends and a.active_at(at)
    }
    restorations: dict[str, list[Act]] = {}
    for a in acts:
        if (
            a.kind is ActKind.RESTORE
            and a.amends
            and a.active_at(at)
            and a.id not in revoked
        ):
            restorations.setdefault(a.amends, []).append(a)

    in_force: list[InForce] = []
    kept: list[KeptRule] = []
    for a in acts:
        if a.kind is not ActKind.BLOCK or a.id in revoked or not a.active_at(at):
            continue
        lifted: set[str] = set()
        restored_by: list[str] = []
        for r in restorations.get(a.id, ()):
            restored_by.append(r.id)
            if r.restores is None:
                lifted.update(host for host, _ in a.domain_targets())
                lifted.update(a.ip_targets())
            else:
                lifted.update(t.host for t in r.restores)
            kept.extend(KeptRule(t, (a.id, r.id)) for t in r.keep_blocked)
        in_force.append(InForce(a, frozenset(lifted), tuple(restored_by)))
    return Fold(at, tuple(in_force), tuple(kept), next_change(acts, at))
