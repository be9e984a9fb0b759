"""The report's sections, each a function of the Document returning HTML."""

from __future__ import annotations

from collections import Counter
from html import escape

from writ.audit.htmlreport import charts, signedsets
from writ.audit.htmlreport._html import MAX_ROWS, Rows, duration
from writ.audit.htmlreport._html import figure as _figure
from writ.audit.htmlreport._html import more as _more
from writ.audit.htmlreport._html import table as _table
from writ.audit.htmlreport.charts import Axis
from writ.audit.htmlreport.document import Document
from writ.audit.htmlreport.findings import parse_ts
from writ.audit.htmlreport.scan import NO_ORDER

__all__ = ["activity", "findings", "inputs", "kinds", "method", "orders", "verification",
           "versions"]

MAX_ORDER_CHARTS = 40  # beyond these (fewest decisions), orders get a table row only
MAX_OTHER_ORDERS = 2000  # rows for orders past the charted ones (~300 bytes each)


def inputs(doc: Document) -> str:
    rows = [(f"<code>{escape(f.path)}</code>", escape(f.node), f"{f.size:,}",
             f"<code>{f.sha256}</code>") for f in doc.inputs]
    src = (f"Order set: {escape(doc.source)}." if doc.source
           else "No order set given (<code>--orders</code> or <code>--redis</code>): "
                "windows in force are not checked.")
    return ("<section id=\"inputs\"><h2>Inputs</h2>"
            + _table(["file", "node", "bytes", "SHA-256"], rows, numeric=(2,))
            + f"<p>{src}</p></section>")


def verification(doc: Document) -> str:
    out = ['<section id="verification"><h2>1. Verification</h2>',
           "<p>Each node's files checked as one hash chain by <code>writ audit verify</code>"
           + (" against the signed checkpoints given" if doc.checkpoints_given else "")
           + ".</p>"]
    for node, r in sorted(doc.verdicts.items()):
        if r.ok:
            state = "INTACT"
            detail = (f"{r.records:,} records in {r.files} file(s), seq {r.first_seq}..{r.last_seq}"
                      f", head <code>{escape(str(r.last_hash))}</code>")
            if doc.checkpoints_given:
                detail += f"; {r.checkpoints_matched} signed checkpoint(s) match"
        else:
            state = "FAILED"
            f = r.findings[0]
            detail = (f"first finding: <code>{escape(f.file)}:{f.line}</code>"
                      + (f" seq {f.seq}" if f.seq is not None else "")
                      + f": <b>{escape(f.kind)}</b>: {escape(f.message)}")
            if len(r.findings) > 1:
                detail += f" ({len(r.findings) - 1} more finding(s))"
        out.append(f'<div class="verdict {"ok" if r.ok else "fail"}" data-node="{escape(node)}">'
                   f'<span class="state">{escape(node)}: {state}</span><br>{detail}')
        lines = [f'<li class="notice">NOTICE {escape(n)}</li>' for n in r.notices]
        lines += [f'<li class="unproven">NOT PROVEN {escape(u)}</li>' for u in r.unproven]
        if lines:
            out.append('<ul class="lines">' + "".join(lines) + "</ul>")
        out.append("</div>")
    out.append("</section>")
    return "".join(out)


def findings(doc: Document) -> str:
    out = ['<section id="findings"><h2>2. Findings</h2>']
    out.append("<h3>Decisions outside an order's window in force</h3>")
    if doc.windows is None:
        out.append('<p class="muted">Not computed: give the order set '
                   "(<code>--orders DIR</code> or <code>--redis URL</code>).</p>")
    elif not doc.outside:
        out.append('<p class="none" id="outside-none">None: every decision naming an order '
                   "falls inside that order's window in force.</p>")
    else:
        total = sum(f.count for f in doc.outside)
        out.append(f'<p class="finding" id="outside-count">{total:,} decision(s) named an order '
                   "that was not in force.</p>")
        rows: Rows = [(f"<code>{escape(f.order)}</code>", escape(f.node), escape(f.why),
                 f"{f.count:,}", escape(f.first), escape(f.last),
                 f"<code>{escape(f.example)}</code>") for f in doc.outside[:MAX_ROWS]]
        out.append('<div id="outside">' + _table(
            ["order", "node", "why", "decisions", "first", "last", "e.g. target"], rows,
            numeric=(3,)) + "</div>" + _more(len(doc.outside), MAX_ROWS))
    out.append(f"<h3>Silent nodes (no record for more than {duration(doc.silent_after)})</h3>")
    if not doc.silences:
        out.append('<p class="none" id="silent-none">None.</p>')
    else:
        silent: Rows = [(escape(s.node), escape(s.start),
                 escape(s.end) + (" (others' last record)" if s.at_end else ""),
                 duration(s.seconds)) for s in doc.silences[:MAX_ROWS]]
        out.append('<div id="silences">' + _table(["node", "silent from", "until", "for"], silent,
                                                  numeric=(3,)) + "</div>"
                   + _more(len(doc.silences), MAX_ROWS))
    out.append("<h3>Time from a publish to each node's switch</h3>")
    if not doc.publishes:
        out.append('<p class="muted">Not computed: the publish history comes from Redis '
                   "(<code>--redis URL</code>). The versions each node used are in section 6."
                   "</p>")
    else:
        lagged: Rows = []
        for lag in doc.lags:
            if lag.seconds is None:
                seen, took = '<span class="finding">never seen in this log</span>', "-"
            elif lag.seconds < 0:
                seen, took = escape(str(lag.first_seen)), "in use before this publish"
            else:
                seen, took = escape(str(lag.first_seen)), duration(lag.seconds)
            lagged.append((f"<code>{escape(lag.version[:16])}</code>", escape(lag.published),
                         escape(lag.node), seen, took))
        out.append('<div id="lags">' + _table(
            ["version", "published", "node", "first decision with it", "after"], lagged,
            numeric=(4,)) + "</div>")
    out.append("<h3>Gaps the nodes wrote down</h3>")
    gaps: Rows = []
    for s in doc.scans:
        kinds = Counter(m.kind for m in s.marks)
        gaps.append((escape(s.node), f"{kinds['crash recovery']:,}", f"{kinds['restart']:,}",
                     f"{s.dropped:,}", f"{s.controls.errors_count:,}",
                     f"{s.controls.keys_total:,}", f"{s.skipped:,}"))
    out.append('<div id="gaps">' + _table(
        ["node", "crash recoveries", "restarts", "decisions dropped (not logged)",
         "writer errors", "key changes", "lines that are not records"], gaps,
        numeric=(1, 2, 3, 4, 5, 6)) + "</div>")
    out.append(signedsets.findings(doc))
    out.append("</section>")
    return "".join(out)


def _axis(doc: Document) -> Axis | None:
    if doc.first is None or doc.last is None:
        return None
    return Axis.around(doc.first, doc.last)


def _marks(doc: Document) -> list[tuple[str, str, int]]:
    return [(m.ts, m.kind, i) for i, s in enumerate(doc.scans) for m in s.marks]


def activity(doc: Document) -> str:
    axis = _axis(doc)
    out = ['<section id="activity"><h2>3. Activity of each node</h2>']
    if axis is None:
        return out[0] + '<p class="muted">No records.</p></section>'
    svg = charts.activity_chart(axis, [(s.node, s.total_hourly) for s in doc.scans],
                                _marks(doc), [(x.start, x.end) for x in doc.silences])
    out.append(_figure(svg, f"Decisions per {axis.unit} (UTC) per node. Marks on the axis: "
                            "crash recoveries (✕), restarts (▲), dropped decisions (▼), the "
                            "start of a log (●), checkpoint key changes (◆), the writer's "
                            "errors (■); silences shaded red."))
    rows = [(escape(m.ts), escape(s.node), escape(m.kind), escape(m.detail))
            for s in doc.scans for m in s.marks if m.kind != "log started"]
    rows.sort()
    if rows:
        out.append('<div id="marks">'
                   + _table(["time", "node", "mark", "what the log says"], rows[:MAX_ROWS])
                   + "</div>")
        out.append(_more(len(rows), MAX_ROWS))
    out.append("</section>")
    return "".join(out)


def _order_ids(doc: Document) -> list[str]:
    totals: Counter[str] = Counter()
    for s in doc.scans:
        for (o, _), n in s.order_kinds.items():
            if o != NO_ORDER:
                totals[o] += n
    flagged = {f.order for f in doc.outside}
    return sorted(totals, key=lambda o: (o not in flagged, -totals[o], o))


def _active_spans(doc: Document, order: str) -> list[tuple[str | None, str | None]]:
    w = doc.windows
    if w is None:
        return []
    spans: list[tuple[str | None, str | None]] = []
    for i, st in enumerate(w.states):
        if order not in st.active:
            continue
        a = w.bounds[i - 1] if i > 0 else None
        b = w.bounds[i] if i < len(w.bounds) else None
        if spans and spans[-1][1] == a:
            spans[-1] = (spans[-1][0], b)
        else:
            spans.append((a, b))
    return spans


def orders(doc: Document) -> str:
    axis = _axis(doc)
    ids = _order_ids(doc)
    out = ['<section id="orders"><h2>4. Enforcement of each order over time</h2>',
           "<p>Decisions naming the order, per node, on the same time axis as the order's "
           "history: issued, effective, restored, revoked, expires (dashed lines), and its "
           "window in force (shaded green, when the order set is given). Decisions outside "
           "the window are drawn in red.</p>"]
    if axis is None or not ids:
        return "".join(out) + '<p class="muted">No decision names an order.</p></section>'
    out.append(_key(doc))
    marks = _marks(doc)
    hours = [_by_order(s.hourly) for s in doc.scans]
    outside_hours = [_by_order(s.outside_hourly) for s in doc.scans]
    kinds = [_by_order(s.order_kinds) for s in doc.scans]
    for oid in ids[:MAX_ORDER_CHARTS]:
        act = doc.acts.get(oid) if doc.acts is not None else None
        out.append(f'<section class="order" id="order-{escape(oid)}"><h3>{escape(oid)}</h3>')
        if act is not None:
            out.append(f'<p class="sub">{escape(act.court)}, case {escape(act.case)}, issued '
                       f"{act.issued.isoformat()}"
                       + (f". {escape(act.summary)}" if act.summary else "") + "</p>")
        elif doc.acts is not None:
            out.append('<p class="finding">Not in the given order set.</p>')
        per_node = [(s.node, hours[i].get(oid, Counter())) for i, s in enumerate(doc.scans)]
        outside: Counter[str] = Counter()
        for by_order in outside_hours:
            outside.update(by_order.get(oid, Counter()))
        events = ([(e.ts, e.kind, e.act) for e in doc.windows.events(oid)]
                  if doc.windows is not None else [])
        svg = charts.order_chart(oid, axis, per_node, outside=outside,
                                 active=_active_spans(doc, oid), events=events, marks=marks)
        out.append(_figure(svg, f"Decisions naming {escape(oid)} per {axis.unit} (UTC)."))
        if events:
            out.append(_table(["time (UTC)", "event", "act"],
                              [(escape(t), escape(k), f"<code>{escape(a)}</code>")
                               for t, k, a in events]))
        mine = [k.get(oid, Counter()) for k in kinds]
        names = sorted({d for c in mine for d in c})
        rows = [(escape(s.node), *(f"{mine[i][d]:,}" for d in names))
                for i, s in enumerate(doc.scans)]
        out.append(_table(["node", *names], rows, numeric=range(1, len(names) + 1)))
        out.append("</section>")
    if len(ids) > MAX_ORDER_CHARTS:
        out.append(_other_orders(doc, ids[MAX_ORDER_CHARTS:], hours))
    out.append("</section>")
    return "".join(out)


def _other_orders(doc: Document, ids: list[str], hours: list[dict[str, Counter[str]]]) -> str:
    """Orders past the charted ones: one row each, a bounded number of rows."""
    rows: Rows = []
    for oid in ids[:MAX_OTHER_ORDERS]:
        per_node = [h.get(oid, Counter()) for h in hours]
        seen = [hour for c in per_node for hour in c]
        rows.append((f"<code>{escape(oid)}</code>",
                     *(f"{sum(c.values()):,}" for c in per_node),
                     escape(min(seen)) + "h", escape(max(seen)) + "h"))
    n = len(doc.scans)
    return (f'<h3 id="other-orders">{len(ids):,} more orders</h3><p class="muted">The orders '
            f"past the first {MAX_ORDER_CHARTS} (those with the fewest decisions and no "
            "finding): decisions per node and the first and last hour (UTC) with one. "
            "<code>writ audit report --csv</code> gives every order per day.</p>"
            + '<div id="other-orders-table">'
            + _table(["order", *(s.node for s in doc.scans), "first hour", "last hour"],
                     rows, numeric=range(1, n + 1))
            + "</div>" + _more(len(ids), MAX_OTHER_ORDERS))


def _key(doc: Document) -> str:
    """The legend of every order chart, once (drawn per chart it cost more than the
    chart itself)."""
    def swatch(colour: str, text: str, style: str = "solid") -> str:
        return (f'<span class="key"><span class="sw" style="border-top: 3px {style} {colour}">'
                f"</span>{escape(text)}</span>")
    items = [swatch(charts.NODE_COLOURS[i % len(charts.NODE_COLOURS)], s.node)
             for i, s in enumerate(doc.scans)]
    items.append(swatch(charts.OUTSIDE, "outside its window"))
    items.append('<span class="key"><span class="sw" style="background: #e3f1e3; height: 0.7em">'
                 "</span>in force</span>")
    items += [swatch(c, k, "dashed") for k, c in charts.EVENT_COLOUR.items()]
    items += [f'<span class="key">{sym} {escape(k)}</span>'
              for k, sym in (("crash recovery", "✕"), ("restart", "▲"), ("dropped", "▼"),
                             ("log started", "●"), ("key changed", "◆"),
                             ("writer error", "■"))]
    return '<p class="keys">' + " ".join(items) + "</p>"


def _by_order(pairs: Counter[tuple[str, str]]) -> dict[str, Counter[str]]:
    """{(order, x): n} as {order: {x: n}}."""
    out: dict[str, Counter[str]] = {}
    for (o, x), n in pairs.items():
        out.setdefault(o, Counter())[x] = n
    return out


def kinds(doc: Document) -> str:
    total: Counter[tuple[str, str, str]] = Counter()
    for s in doc.scans:
        total.update(s.kinds)
    out = ['<section id="kinds"><h2>5. Decisions by component and action</h2>']
    if not total:
        return out[0] + '<p class="muted">No decisions.</p></section>'
    keys = sorted(total, key=lambda k: (-total[k], k))
    out.append(_figure(charts.kinds_chart([(f"{c} {d} → {a}", total[c, d, a]) for c, d, a in
                                           keys]),
                       "All nodes together: component, decision → action."))
    rows = [(escape(c), escape(d), escape(a),
             *(f"{s.kinds[c, d, a]:,}" for s in doc.scans), f"{total[c, d, a]:,}")
            for c, d, a in keys]
    n = len(doc.scans)
    out.append(_table(["component", "decision", "action", *(s.node for s in doc.scans),
                       "total"], rows, numeric=range(3, 4 + n)))
    out.append("</section>")
    return "".join(out)


def versions(doc: Document) -> str:
    axis = _axis(doc)
    out = ['<section id="versions"><h2>6. Blocklist versions in force</h2>',
           "<p>The <code>blocklist_version</code> each node's decisions carried, from the first "
           "to the last decision with it. A node shows a switch only by deciding: the first "
           "decision with a version is an upper bound of when it switched.</p>"]
    if axis is None:
        return "".join(out) + "</section>"
    rows = [(s.node, [(v.version, v.first, v.last) for v in s.versions]) for s in doc.scans]
    lo, hi = axis.start.timestamp(), axis.end.timestamp()
    svg = charts.versions_chart(axis, rows, [(p.at, p.version) for p in doc.publishes
                                             if lo <= parse_ts(p.at).timestamp() <= hi])
    out.append(_figure(svg, "Versions per node; published versions (from Redis) dotted."))
    table = [(escape(s.node), f"<code>{escape(v.version)}</code>", escape(v.first),
              escape(v.last), f"{v.decisions:,}") for s in doc.scans for v in s.versions]
    out.append(_table(["node", "version", "first decision", "last decision", "decisions"],
                      table, numeric=(4,)))
    out.append("</section>")
    return "".join(out)


def method(doc: Document) -> str:
    return (
        '<section id="method"><h2>8. How this report was made</h2><ul>'
        "<li>Made by <code>writ audit report --html</code> from the files listed under "
        "<em>Inputs</em> (their SHA-256 lets anyone check they read the same logs). The same "
        "inputs give the same bytes: the report can be hashed and cited.</li>"
        "<li>Verification is <code>writ audit verify</code>'s, per node; the counts and charts "
        "read every line that parses as a record, even after a failed check, so read them "
        "together with section 1.</li>"
        "<li>A decision naming several orders counts once for each. Times are UTC.</li>"
        "<li>A decision is tied to a signed set through its <code>blocklist_version</code>: "
        "the last <code>writ.blocklist.signed_set</code> record of its node before it that "
        "names that version. Decisions carry no manifest of their own.</li>"
        "<li>An order's window in force comes from the order set: the block from "
        "<code>effective</code> until <code>expires</code>, less revocations and the hosts "
        "restorations lifted.</li>"
        f"<li>A node is called silent after {duration(doc.silent_after)} without any record "
        "(<code>--silent-after</code>).</li>"
        "<li>What the log cannot prove is listed under each node's verdict "
        "(NOT PROVEN).</li></ul></section>"
    )
