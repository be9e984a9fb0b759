"""Prometheus text exposition (format 0.0.4) of writ's counters and blocklist.

Pure: the counters, the index and the instant in, text out. Labels are
bounded (components, decisions, actions, order ids), never clients or targets.
"""

from __future__ import annotations

from collections.abc import Mapping

from writ.blocklist import Index
from writ.metrics import STATS, Family, Metrics

__all__ = ["CONTENT_TYPE", "render"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\"", "\\\"").replace("\n", "\\n")


def _labels(**kw: str) -> str:
    return "{" + ",".join(f'{k}="{_esc(v)}"' for k, v in kw.items()) + "}"


def render(metrics: Metrics, index: Index | None, now: float,
           extra: Mapping[str, float] | None = None) -> str:
    """`now` is a POSIX timestamp; `extra` adds the components' own numbers (the
    audit writer's, the resolver's, the store's), named and typed by writ.metrics.STATS."""
    out: list[str] = []

    def family(name: str, kind: str, help_: str) -> None:
        out.append(f"# HELP {name} {help_}")
        out.append(f"# TYPE {name} {kind}")

    family("writ_decisions_total", "counter",
           "Enforcement decisions by component, decision and action (allows included, "
           "whether or not the audit log keeps them).")
    for (component, decision, action), n in sorted(metrics.decisions.items()):
        out.append("writ_decisions_total"
                   f"{_labels(component=component, decision=decision, action=action)} {n}")
    family("writ_order_decisions_total", "counter",
           "Decisions naming each court order, by component.")
    for (component, order), n in sorted(metrics.by_order.items()):
        out.append(f"writ_order_decisions_total{_labels(component=component, order=order)} {n}")
    family("writ_blocklist_loaded", "gauge", "1 once a blocklist is loaded, else 0.")
    out.append(f"writ_blocklist_loaded {1 if index is not None else 0}")
    if index is not None:
        family("writ_blocklist_info", "gauge",
               "The blocklist version in force (its label), always 1.")
        out.append(f"writ_blocklist_info{_labels(version=index.version)} 1")
        family("writ_blocklist_rules", "gauge", "Rules in force now, by kind.")
        out.append(f'writ_blocklist_rules{{kind="domain"}} {index.domain_count}')
        out.append(f'writ_blocklist_rules{{kind="url"}} {index.url_count}')
        out.append(f'writ_blocklist_rules{{kind="ip"}} {index.ip_count}')  # ip + ip_prefix
        family("writ_blocklist_age_seconds", "gauge",
               "Seconds since the index in force was built (reload or time switch).")
        out.append(f"writ_blocklist_age_seconds {max(0.0, now - index.at.timestamp()):.3f}")
    for key, value in sorted((extra or {}).items()):
        f = STATS.get(key) or Family(f"writ_{key}", "gauge", f"{key}, as its component reports it.")
        family(f.name, f.kind, f.help)
        out.append(f"{f.name} {value}")
    return "\n".join(out) + "\n"
