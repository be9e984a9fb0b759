"""Prometheus text exposition (format 0.0.4) of writ's counters and blocklist.

Pure: the counters, the index and the instant in, text out. Labels are
bounded (components, decisions, actions, order ids), never clients or targets.
"""

from __future__ import annotations

from collections.abc import Mapping

from writ.blocklist import Index
from writ.metrics import STATS, BlocklistGauge, Family, Metrics

__all__ = ["CONTENT_TYPE", "render", "render_workers"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\"", "\\\"").replace("\n", "\\n")


def _labels(**kw: str) -> str:
    return "{" + ",".join(f'{k}="{_esc(v)}"' for k, v in kw.items()) + "}"


def render(metrics: Metrics, index: Index | None, now: float,
           extra: Mapping[str, float] | None = None) -> str:
    """`now` is a POSIX timestamp; `extra` adds the components' own numbers (the
    audit writer's, the resolver's, the store's), named and typed by writ.metrics.STATS."""
    gauge = None if index is None else BlocklistGauge(
        index.version, index.domain_count, index.url_count, index.ip_count,
        index.at.timestamp())
    out: list[str] = []
    _counts(out, metrics)
    _blocklists(out, {None: gauge}, now)
    _extra(out, extra)
    return "\n".join(out) + "\n"


def render_workers(metrics: Metrics, blocklists: Mapping[int, BlocklistGauge | None],
                   now: float, extra: Mapping[str, float], ages: Mapping[int, float]) -> str:
    """The parent of `--workers N` (writ.metrics.WorkerBoard's totals): counts summed;
    the blocklist each worker enforces labelled `worker`, loaded and age the worst
    worker's; how long ago each worker last reported (docs/operator.md §6)."""
    out: list[str] = []
    _counts(out, metrics)
    _blocklists(out, {str(w): g for w, g in sorted(blocklists.items())}, now)
    _family(out, "writ_worker_report_age_seconds", "gauge",
            "Seconds since this node's parent last received each worker's counters "
            "(sent about once a second; /readyz fails past 5 s).")
    for w, age in sorted(ages.items()):
        out.append(f"writ_worker_report_age_seconds{_labels(worker=str(w))} {age:.3f}")
    _extra(out, extra)
    return "\n".join(out) + "\n"


def _family(out: list[str], name: str, kind: str, help_: str) -> None:
    out.append(f"# HELP {name} {help_}")
    out.append(f"# TYPE {name} {kind}")


def _counts(out: list[str], metrics: Metrics) -> None:
    _family(out, "writ_decisions_total", "counter",
            "Enforcement decisions by component, decision and action (allows included, "
            "whether or not the audit log keeps them).")
    for (component, decision, action), n in sorted(metrics.decisions.items()):
        out.append("writ_decisions_total"
                   f"{_labels(component=component, decision=decision, action=action)} {n}")
    _family(out, "writ_order_decisions_total", "counter",
            "Decisions naming each court order, by component.")
    for (component, order), n in sorted(metrics.by_order.items()):
        out.append(f"writ_order_decisions_total{_labels(component=component, order=order)} {n}")


def _blocklists(out: list[str], gauges: Mapping[str | None, BlocklistGauge | None],
                now: float) -> None:
    """One blocklist (key None: no `worker` label) or one per worker."""
    loaded = [g for g in gauges.values() if g is not None]
    _family(out, "writ_blocklist_loaded", "gauge", "1 once a blocklist is loaded, else 0.")
    out.append(f"writ_blocklist_loaded {1 if gauges and len(loaded) == len(gauges) else 0}")
    if not loaded:
        return

    def labels(worker: str | None, **kw: str) -> str:
        return _labels(**kw, **({"worker": worker} if worker is not None else {}))

    _family(out, "writ_blocklist_info", "gauge",
            "The blocklist version in force (its label), always 1.")
    for w, g in gauges.items():
        if g is not None:
            out.append(f"writ_blocklist_info{labels(w, version=g.version)} 1")
    _family(out, "writ_blocklist_rules", "gauge", "Rules in force now, by kind.")
    for w, g in gauges.items():
        if g is not None:
            for kind, n in (("domain", g.domain), ("url", g.url), ("ip", g.ip)):  # ip: + prefix
                out.append(f"writ_blocklist_rules{labels(w, kind=kind)} {n}")
    _family(out, "writ_blocklist_age_seconds", "gauge",
            "Seconds since the index in force was built (reload or time switch).")
    oldest = min(g.built for g in loaded)
    out.append(f"writ_blocklist_age_seconds {max(0.0, now - oldest):.3f}")


def _extra(out: list[str], extra: Mapping[str, float] | None) -> None:
    for key, value in sorted((extra or {}).items()):
        f = STATS.get(key) or Family(f"writ_{key}", "gauge", f"{key}, as its component reports it.")
        _family(out, f.name, f.kind, f.help)
        out.append(f"{f.name} {value}")
