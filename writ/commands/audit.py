"""`writ audit verify|report|keygen`: the auditor's tools.

Exit codes: 0 intact (verify) / done (report, keygen); 1 a finding; 2 a bad
invocation. Results go to stdout; progress and warnings go to stderr, and
progress only when stderr is a terminal.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime
from pathlib import Path

from writ.commands._audit_html import add_arguments as add_html_arguments
from writ.commands._audit_html import refuse_without_html, run_html
from writ.commands._common import UsageError, parse_instant

__all__ = ["configure", "run"]


def configure(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="verb", metavar="VERB", required=True)
    v = sub.add_parser("verify", help="check that decision logs form one intact chain",
                       description="Check every hash, link, sequence and seal across the "
                                   "files, in the order given.")
    v.add_argument("files", nargs="+", type=Path, metavar="FILE")
    v.add_argument("--live", action="store_true",
                   help="accept an unsealed last file that is still being written")
    v.add_argument("--checkpoints", type=Path, metavar="FILE",
                   help="signed checkpoints (collected off the box) to check the chain against")
    v.add_argument("--public-key", type=Path, metavar="KEY",
                   help="the node's checkpoint public key (PEM, from `writ audit keygen`)")
    r = sub.add_parser("report", help="per-order summary of decision logs; --html: the "
                                      "auditor's document",
                       description="Per order: decisions by kind, first and last enforcement, "
                                   "counts per day (UTC). With --html OUT: one self-contained "
                                   "HTML document (verification per node, findings, charts).")
    r.add_argument("files", nargs="+", type=Path, metavar="FILE")
    r.add_argument("--order", metavar="ID", help="only this order")
    r.add_argument("--since", metavar="T", help="from this instant (RFC 3339 or a date)")
    r.add_argument("--until", metavar="T", help="before this instant (exclusive)")
    r.add_argument("--component", choices=["dns", "http"])
    fmt = r.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="JSON instead of a table")
    fmt.add_argument("--csv", action="store_true", help="CSV: order,day,decision,count,first,last")
    add_html_arguments(r)
    k = sub.add_parser("keygen", help="create the checkpoint signing key; print its public key",
                       description="Create the Ed25519 signing key (0600) if missing and print "
                                   "the public key (PEM) that auditors verify checkpoints with.")
    k.add_argument("key_file", type=Path, metavar="SIGNING_KEY",
                   help="e.g. state/audit/signing.key (the policy's audit.signing_key_file)")
    k.add_argument("--out", type=Path, metavar="FILE", help="also write the public key here")


def run(args: argparse.Namespace) -> int:
    if args.verb == "verify":
        return _verify(args)
    if args.verb == "report":
        return _report(args)
    return _keygen(args)


def _verify(args: argparse.Namespace) -> int:
    from writ.audit.checkpoint import CheckpointReadError, load_public_key, read_checkpoints
    from writ.audit.verify import Finding, verify

    if (args.checkpoints is None) != (args.public_key is None):
        raise UsageError("--checkpoints and --public-key go together")
    checkpoints = None
    key = None
    torn: list[int] = []
    if args.checkpoints is not None:
        try:
            key = load_public_key(args.public_key)
        except (OSError, ValueError, TypeError) as e:
            raise UsageError(f"--public-key: {args.public_key}: {e}") from None
        try:
            checkpoints = list(read_checkpoints(args.checkpoints, torn))
        except OSError as e:
            raise UsageError(f"--checkpoints: {args.checkpoints}: {e.strerror or e}") from None
        except CheckpointReadError as e:
            print(Finding("corrupt checkpoint", str(e.path), e.line, None, str(e)))
            return 1
    started = time.monotonic()
    progress = _progress_bar if sys.stderr.isatty() else None
    report = verify(args.files, live=args.live, checkpoints=checkpoints, public_key=key,
                    checkpoint_file=str(args.checkpoints), progress=progress)
    elapsed = time.monotonic() - started
    if progress is not None:
        print(file=sys.stderr)
    for finding in report.findings:
        print(f"FAIL {finding}")
    if report.ok:
        anchored = (f"; {report.checkpoints_matched} signed checkpoint(s) match"
                    if checkpoints is not None else "")
        print(f"OK {report.records} records in {report.files} file(s), seq "
              f"{report.first_seq}..{report.last_seq}, head {report.last_hash}{anchored}")
    for line in torn:
        print(f"NOTICE {args.checkpoints}:{line}: a torn line (a crash while a checkpoint "
              f"was written) was skipped: one checkpoint less, nothing else")
    for notice in report.notices:
        print(f"NOTICE {notice}")
    for what in report.unproven:
        print(f"NOT PROVEN {what}")
    if sys.stderr.isatty():
        print(f"verified in {elapsed:.2f} s", file=sys.stderr)
    return 0 if report.ok else 1


def _report(args: argparse.Namespace) -> int:
    from writ.audit.report import render_csv, render_json, render_table, summarise

    for f in args.files:
        if not f.is_file():
            raise UsageError(f"{f}: a folder, not a log file (give the files, e.g. "
                             f"{f}/decisions.*.log)" if f.is_dir() else f"no such file: {f}")
    if args.html is not None:
        return run_html(args)
    refuse_without_html(args)
    since = _instant("--since", args.since)
    until = _instant("--until", args.until)
    progress = _progress_bar if sys.stderr.isatty() else None
    summary = summarise(args.files, order=args.order, since=since, until=until,
                        component=args.component, progress=progress)
    if progress is not None:
        print(file=sys.stderr)
    if args.json:
        out = render_json(summary) + "\n"
    elif args.csv:
        out = render_csv(summary)
    else:
        out = render_table(summary)
    sys.stdout.write(out)
    if summary.skipped_lines:
        print(f"writ: warning: {summary.skipped_lines} line(s) skipped: not decision-log "
              f"records (run `writ audit verify` to find them)", file=sys.stderr)
    return 0


def _instant(flag: str, text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        return parse_instant(text)
    except UsageError:
        raise UsageError(f"{flag}: not a date or time: {text!r} (e.g. 2015-09-07 or "
                         f"2015-09-07T12:00:00Z)") from None


def _progress_bar(done: int, total: int) -> None:
    frac = done / total if total else 1.0
    bar = "#" * int(frac * 30)
    print(f"\r[{bar:<30}] {frac:4.0%} of {total / 1e6:.1f} MB", end="", file=sys.stderr,
          flush=True)


def _keygen(args: argparse.Namespace) -> int:
    from writ.audit.checkpoint import key_id, load_or_create_signing_key, public_pem

    try:
        key = load_or_create_signing_key(args.key_file)
    except (OSError, ValueError, TypeError) as e:
        raise UsageError(f"{args.key_file}: {e}") from None
    pem = public_pem(key)
    if args.out is not None:
        args.out.write_text(pem, encoding="ascii")
    sys.stdout.write(pem)
    print(f"key id {key_id(key)}", file=sys.stderr)
    return 0
