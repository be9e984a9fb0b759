"""When each order was in force: the act set folded at every instant it changes.

Invariants (docs/design.md §2, §3):
- The blocklist is a function of the act set and an instant, so the time
  axis splits into intervals at every `effective` and `expires`; inside one
  interval the orders in force (and the hosts restorations lifted) do not
  change. `Windows` holds one state per interval, found by bisecting the
  record's `ts`.
- Times are compared as strings in the writer's own `ts` format, which sort
  like the instants they name (writ/audit/report.py says why).
- An order counts as in force for a decision when the fold lists it: a block
  in force, a restoration in force, or both ids of a `keep_blocked` rule. A
  `domain H` decision for a host H that a restoration lifted is outside too.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from writ.audit.record import format_ts
from writ.blocklist import Act, ActKind, fold

__all__ = ["ActEvent", "State", "Windows", "act_events"]


@dataclass(frozen=True, slots=True)
class State:
    active: frozenset[str]
    lifted: dict[str, frozenset[str]]  # block id -> hosts lifted by restorations in force


@dataclass(frozen=True, slots=True)
class ActEvent:
    """One mark of an order's history on the time axis."""

    ts: str
    kind: str  # issued | effective | expires | restored | revoked | ...
    act: str  # the act that causes it (the order itself, or a restore/revoke)


def _ts(dt: datetime) -> str:
    return format_ts(dt.timestamp())


class Windows:
    """Which orders were in force at any instant, for an act set."""

    def __init__(self, acts: Sequence[Act]) -> None:
        self.acts = {a.id: a for a in acts}
        instants = sorted({t for a in acts for t in (a.effective, a.expires) if t is not None})
        self.bounds = [_ts(t) for t in instants]
        before = datetime(1, 1, 2, tzinfo=UTC)
        self.states = [self._state(acts, t) for t in [before, *instants]]

    @staticmethod
    def _state(acts: Sequence[Act], at: datetime) -> State:
        f = fold(acts, at)
        active: set[str] = set()
        lifted: dict[str, frozenset[str]] = {}
        for inf in f.in_force:
            active.add(inf.act.id)
            active.update(inf.restored_by)
            if inf.lifted:
                lifted[inf.act.id] = inf.lifted
        for kept in f.kept:
            active.update(kept.orders)
        return State(frozenset(active), lifted)

    def index(self, ts: str) -> int:
        return bisect_right(self.bounds, ts)

    def outside(self, i: int, order: str, rule: str | None) -> bool:
        st = self.states[i]
        if order not in st.active:
            return True
        hosts = st.lifted.get(order)
        if hosts and rule is not None and rule.startswith("domain "):
            return rule[7:].split(" ", 1)[0] in hosts
        return False

    def why(self, i: int, order: str, rule: str | None) -> str:
        """Why a decision at state `i` naming `order` is outside its window."""
        act = self.acts.get(order)
        if act is None:
            return "the order is not in the given order set"
        start = self.bounds[i - 1] if i > 0 else None
        if start is None or start < _ts(act.effective):
            return f"before the order was effective ({_ts(act.effective)})"
        if act.expires is not None and start >= _ts(act.expires):
            return f"after the order expired ({_ts(act.expires)})"
        for other in self.acts.values():
            if (other.kind is ActKind.REVOKE and other.amends == order
                    and start >= _ts(other.effective)
                    and (other.expires is None or start < _ts(other.expires))):
                return f"after revocation by {other.id} ({_ts(other.effective)})"
        hosts = self.states[i].lifted.get(order)
        if hosts and rule is not None and rule.startswith("domain "):
            by = ", ".join(self.states[i].active & {
                a.id for a in self.acts.values()
                if a.kind is ActKind.RESTORE and a.amends == order})
            return f"{rule[7:]} was restored by {by or 'a restoration'}"
        return "the order was not in force"

    def events(self, order: str) -> list[ActEvent]:
        return act_events(self.acts, order)


def act_events(acts: dict[str, Act], order: str) -> list[ActEvent]:
    """Issued, effective, expires of the order; effective/expires of acts amending it."""
    act = acts.get(order)
    out: list[ActEvent] = []
    if act is None:
        return out
    issued = datetime(act.issued.year, act.issued.month, act.issued.day, tzinfo=UTC)
    out.append(ActEvent(_ts(issued), "issued", order))
    out.append(ActEvent(_ts(act.effective), "effective", order))
    if act.expires is not None:
        out.append(ActEvent(_ts(act.expires), "expires", order))
    for other in acts.values():
        if other.amends != order:
            continue
        verb = {ActKind.RESTORE: "restored", ActKind.REVOKE: "revoked"}.get(other.kind)
        if verb is None:
            continue
        out.append(ActEvent(_ts(other.effective), verb, other.id))
        if other.expires is not None:
            out.append(ActEvent(_ts(other.expires), f"{verb} until", other.id))
    return sorted(out, key=lambda e: (e.ts, e.kind, e.act))
