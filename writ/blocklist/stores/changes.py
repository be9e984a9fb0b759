"""What changes between two act sets: acts added/removed/changed, and the
names and URLs newly blocked or released at an instant. Pure: no I/O.

Invariants:
- Acts are compared by id and by content (positions do not count), so
  moving an order to another file is not a change.
- Rules are compared as people read them (`Target.describe()`), after
  folding at the same instant, so a restoration shows as a release.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from writ.blocklist.fold import fold
from writ.blocklist.model import Act

__all__ = ["ActChanges", "RuleChanges", "act_changes", "rule_changes", "rules_in_force"]


@dataclass(frozen=True, slots=True)
class ActChanges:
    added: tuple[str, ...]
    removed: tuple[str, ...]
    changed: tuple[str, ...]

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed)


@dataclass(frozen=True, slots=True)
class RuleChanges:
    blocked: tuple[str, ...]  # in force at the instant after, not before
    released: tuple[str, ...]  # in force before, not after


def act_changes(old: Sequence[Act], new: Sequence[Act]) -> ActChanges:
    before = {a.id: a for a in old}
    after = {a.id: a for a in new}
    return ActChanges(
        added=tuple(sorted(after.keys() - before.keys())),
        removed=tuple(sorted(before.keys() - after.keys())),
        changed=tuple(sorted(i for i in after.keys() & before.keys() if after[i] != before[i])),
    )


def rules_in_force(acts: Sequence[Act], at: datetime) -> set[str]:
    """Every rule in force at `at`, as `domain x.example`, `url x.example/p`, …"""
    f = fold(acts, at)
    rules: set[str] = set()
    for inf in f.in_force:
        for host, sub in inf.act.domain_targets():
            if host not in inf.lifted:
                rules.add(f"domain {host}" if sub else f"domain {host} (exact)")
        rules.update(t.describe() for t in inf.act.url_targets())
        rules.update(f"{'ip_prefix' if '/' in t else 'ip'} {t}" for t in inf.act.ip_targets()
                     if t not in inf.lifted)
    rules.update(k.target.describe() for k in f.kept)
    return rules


def rule_changes(old: Sequence[Act], new: Sequence[Act], at: datetime) -> RuleChanges:
    before, after = rules_in_force(old, at), rules_in_force(new, at)
    return RuleChanges(tuple(sorted(after - before)), tuple(sorted(before - after)))
