"""The report's parts about signed sets, key changes and the writer's errors: their
findings (inside section 2) and the per-node section 7. Every log value is escaped."""

from __future__ import annotations

from html import escape

from writ.audit.htmlreport._html import MAX_ROWS, Rows, duration, more, table
from writ.audit.htmlreport.controls import SPLIT_AFTER, SignedSet, seq_key
from writ.audit.htmlreport.document import Document

__all__ = ["findings", "section"]

_NOT_SIGNED = ('<p class="muted" id="{id}">Not computed: no node\'s log holds a '
               "<code>writ.blocklist.signed_set</code> record (a node following Redis with "
               "<code>trust.keyring</code> writes one at every switch).</p>")


def _code(text: str) -> str:
    return f"<code>{escape(text)}</code>"


def _key_file(created: bool | None) -> str:
    if created is None:
        return "-"
    return "missing: a new key was made" if created else "replaced"


def findings(doc: Document) -> str:
    signed = [s for s in doc.scans if s.controls.signed_records]
    if not signed:  # one line for the three findings about signed sets
        return "".join(["<h3>Signed sets: versions put in force, expiry, workers</h3>",
                        _NOT_SIGNED.format(id="sets-skipped"), _keys(doc), _errors(doc)])
    return "".join([_unsigned(doc), _expired(doc), _splits(doc),
                    _keys(doc), _errors(doc)])


def _unsigned(doc: Document) -> str:
    out = ["<h3>Decisions no signed set had put in force</h3>"]
    if not doc.unsigned:
        out.append('<p class="none" id="unsigned-none">None: every decision of a node with '
                   "signed sets named a <code>blocklist_version</code> an earlier "
                   "<code>signed_set</code> record of that node had put in force.</p>")
    else:
        total = sum(u.decisions for _, u in doc.unsigned)
        out.append(f'<p class="finding" id="unsigned-count">{total:,} decision(s) named a '
                   "blocklist version no signed set had put in force.</p>")
        rows: Rows = [(escape(node), _code(u.version),
                       "before the node's first signed set" if u.before_first else
                       "no earlier signed_set record of this node names this version",
                       f"{u.decisions:,}", escape(u.first), escape(u.last), _code(u.example))
                      for node, u in doc.unsigned[:MAX_ROWS]]
        out.append('<div id="unsigned">' + table(
            ["node", "blocklist version", "why", "decisions", "first", "last", "e.g. target"],
            rows, numeric=(3,)) + "</div>" + more(len(doc.unsigned), MAX_ROWS))
    others = [s.node for s in doc.scans if not s.controls.signed_records]
    if others:
        out.append(f'<p class="muted">Not judged, no signed_set record in the log: '
                   f"{escape(', '.join(others))}.</p>")
    return "".join(out)


def _expired(doc: Document) -> str:
    out = ["<h3>Signed sets in force past their expiry</h3>"]
    if not doc.expired:
        return out[0] + ('<p class="none" id="expired-none">None: no decision was made under '
                         "a set whose manifest had expired.</p>")
    total = sum(ss.late for _, ss in doc.expired)
    out.append(f'<p class="finding" id="expired-count">{total:,} decision(s) were made under a '
               "signed set after its manifest expired.</p><p>A node keeps enforcing its last "
               "good set when no newer manifest comes (a publisher cut off must not blank every "
               "node): ask the publisher why no new manifest was signed in time.</p>")
    rows: Rows = [(escape(node), _code(ss.sequence), _code(ss.version), _expires(ss),
                   f"{ss.late:,}", escape(ss.late_first), escape(ss.late_last))
                  for node, ss in doc.expired[:MAX_ROWS]]
    out.append('<div id="expired">' + table(
        ["node", "manifest sequence", "blocklist version", "expires", "decisions after expiry",
         "first", "last"], rows, numeric=(4,)) + "</div>" + more(len(doc.expired), MAX_ROWS))
    return "".join(out)


def _splits(doc: Document) -> str:
    out = [f"<h3>Workers of one node on different signed sets for more than "
           f"{duration(SPLIT_AFTER)}</h3>"]
    if not doc.splits:
        out.append('<p class="none" id="splits-none">None.</p>')
    else:
        out.append(f'<p class="finding" id="splits-count">{len(doc.splits):,} time(s) the '
                   "workers of a node enforced different signed sets for long.</p>")
        rows: Rows = [(escape(node), escape(x.start),
                       escape(x.end) + (" (end of the log)" if x.at_end else ""),
                       duration(x.seconds), escape(", ".join(x.sequences)))
                      for node, x in doc.splits[:MAX_ROWS]]
        out.append('<div id="splits">' + table(
            ["node", "from", "until", "for", "manifest sequences"], rows, numeric=(3,))
            + "</div>" + more(len(doc.splits), MAX_ROWS))
    short = sum(s.controls.short_splits for s in doc.scans)
    if short:
        out.append(f'<p class="muted">{short:,} shorter disagreement(s) (each worker switches '
                   "on its own, within seconds) not listed.</p>")
    return "".join(out)


def _keys(doc: Document) -> str:
    out = ["<h3>Checkpoint signing key changes</h3>"]
    if not doc.key_changes:
        return out[0] + '<p class="none" id="keys-none">None.</p>'
    out.append(f'<p class="finding" id="keys-count">{len(doc.key_changes):,} key change(s): '
               "ask the operator why (a lost disk, or someone covering tracks) and for the new "
               "public key out of band; checkpoints after a change verify only with it.</p>")
    rows: Rows = [(escape(node), escape(k.ts), _code(k.previous), _code(k.key),
                   _key_file(k.created)) for node, k in doc.key_changes[:MAX_ROWS]]
    out.append('<div id="key-changes">' + table(
        ["node", "time", "previous key", "new key", "key file"], rows) + "</div>"
        + more(len(doc.key_changes), MAX_ROWS))
    return "".join(out)


def _errors(doc: Document) -> str:
    out = ["<h3>Failures of the audit writer</h3>"]
    if not doc.writer_errors:
        return out[0] + '<p class="none" id="errors-none">None.</p>'
    count = sum(s.controls.errors_count for s in doc.scans)
    records = sum(s.controls.errors_records for s in doc.scans)
    out.append(f'<p class="finding" id="errors-count">{count:,} failure(s) of the audit writer, '
               f"in {records:,} <code>writ.audit.error</code> record(s). A "
               "<code>checkpoint push</code> failure means the off-box copy lacks checkpoints "
               "the node's file has; a <code>write</code> failure comes with dropped "
               "decisions.</p>")
    rows: Rows = [(escape(node), _code(t.what), f"{t.records:,}", f"{t.count:,}",
                   escape(t.first), escape(t.last), _code(t.error))
                  for node, t in doc.writer_errors[:MAX_ROWS]]
    out.append('<div id="writer-errors">' + table(
        ["node", "what", "records", "count", "first", "last", "last error"], rows,
        numeric=(2, 3)) + "</div>" + more(len(doc.writer_errors), MAX_ROWS))
    return "".join(out)


def _expires(ss: SignedSet) -> str:
    return escape(ss.expires_ts) if ss.expires_ts else escape(ss.expires) + " (not a time)"


def _digest(ss: SignedSet) -> str:
    """The digest's start (all of it on hover), and when the manifest was created."""
    d = ss.digest
    short = d if len(d) <= 16 else d[:16] + "…"
    return (f'<code title="{escape(d)}">{escape(short)}</code>'
            f'<br><span class="muted">created {escape(ss.created)}</span>')


def section(doc: Document) -> str:
    out = ['<section id="sets"><h2>7. Signed sets in force, key changes and writer errors</h2>',
           "<p>Per node, each signed set as it went into force (a "
           "<code>writ.blocklist.signed_set</code> record; with workers, one row for all the "
           "workers of one run that switched to it), and the decisions tied to it: a decision "
           "belongs to the last set before it that put its <code>blocklist_version</code> in "
           "force (a renewal takes the later decisions over). Then the node's key changes and "
           "its writer's errors, record by record.</p>"]
    for s in doc.scans:
        c = s.controls
        node = escape(s.node)
        out.append(f"<h3>{node}</h3>")
        if c.sets:
            rows: Rows = [(escape(ss.ts), _code(ss.sequence), _code(ss.version),
                           _digest(ss), _code(ss.signers), _expires(ss),
                           escape(", ".join(sorted(ss.workers, key=seq_key)) or "-"),
                           f"{ss.decisions:,}", f"{ss.late:,}") for ss in c.sets[:MAX_ROWS]]
            out.append(f'<div id="sets-{node}">' + table(
                ["in force from", "manifest sequence", "blocklist version",
                 "manifest digest / created", "signers", "expires", "workers", "decisions",
                 "after expiry"],
                rows, numeric=(7, 8)) + "</div>" + more(c.sets_total, min(len(c.sets), MAX_ROWS)))
            untied = sum(u.decisions for (v, _), u in c.unsigned.items() if v != "(none)")
            if untied:
                out.append(f'<p class="finding">{untied:,} decision(s) of this node are tied to '
                           "no signed set (see the findings).</p>")
        else:
            out.append('<p class="muted">No <code>writ.blocklist.signed_set</code> record: the '
                       "node did not follow Redis with <code>trust.keyring</code> (or its log "
                       "predates signed sets).</p>")
        if c.keys:
            keys: Rows = [(escape(k.ts), _code(k.previous), _code(k.key), _key_file(k.created))
                          for k in c.keys[:MAX_ROWS]]
            out.append("<h4>Checkpoint signing key changes</h4>")
            out.append(f'<div id="keys-{node}">' + table(
                ["time", "previous key", "new key", "key file"], keys) + "</div>"
                + more(c.keys_total, min(len(c.keys), MAX_ROWS)))
        if c.errors:
            errs: Rows = [(escape(e.ts), _code(e.what), escape(e.count), _code(e.error))
                          for e in c.errors[:MAX_ROWS]]
            out.append("<h4>Errors of the audit writer</h4>")
            out.append(f'<div id="errors-{node}">' + table(
                ["time", "what", "count", "error"], errs, numeric=(2,)) + "</div>"
                + more(c.errors_records, min(len(c.errors), MAX_ROWS)))
        if not c.keys and not c.errors:
            out.append('<p class="muted">No key change and no writer error.</p>')
    out.append("</section>")
    return "".join(out)
