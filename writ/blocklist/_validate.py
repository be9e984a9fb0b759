"""One YAML document → a Draft act, with every problem found in it.

Invariants (docs/design.md §2):
- Unknown keys are errors; required fields are id, court, case, issued;
  targets (non-empty) for a block; amends for a restore or revoke.
- Text fields take the scalar exactly as written (`case: 5678` is "5678").
- A bare date means 00:00 in the load's time zone; a naive date-time is in
  that zone; an aware one is kept. `expires` is after `effective`.
- Checks go on after an error, so one run reports everything.
- Cross-document rules (unique ids, what `amends` names) are the loader's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, tzinfo
from pathlib import Path
from urllib.parse import urlsplit

from writ.blocklist._bulk import ListReader
from writ.blocklist._summary import read_confidential, read_summary
from writ.blocklist._targets import TargetError, domain_target, ip_target, url_target
from writ.blocklist._yamlsrc import Map, Node, Scalar, Seq
from writ.blocklist.model import ActKind, BulkList, OrderError, Position, Target, TargetKind

__all__ = ["Draft", "validate_document"]

ID_RE = re.compile(r"[A-Za-z0-9._-]{1,128}")
TEXT_FIELDS = ("court", "case", "authority", "legal_basis", "condition")
KNOWN = frozenset(
    ("id", "kind", "issued", "effective", "expires", "reference", "targets", "amends",
     "restores", "keep_blocked", "allow_public_suffix", "summary", "confidential",
     "collateral_acknowledged", *TEXT_FIELDS)
)
RESTORE_ONLY = ("restores", "keep_blocked", "condition")
_TARGET_KEYS = ("domain", "url", "url_prefix", "ip", "ip_prefix", "file")
_HOST_LEVEL_KEYS = ("domain", "ip", "ip_prefix")  # what a restore can lift

Items = dict[str, tuple[int, Node]]


@dataclass(slots=True)
class Draft:
    """What one document says, as far as it could be read."""

    pos: Position
    id: str | None = None
    id_line: int = 0
    kind: ActKind | None = None
    text: dict[str, str | None] = field(default_factory=dict)
    issued: date | None = None
    issued_line: int = 0
    effective: datetime | None = None
    expires: datetime | None = None
    reference: str | None = None
    targets: list[Target] = field(default_factory=list)
    bulk: list[BulkList] = field(default_factory=list)
    amends: str | None = None
    amends_line: int = 0
    restores: list[Target] | None = None
    keep_blocked: list[Target] = field(default_factory=list)
    allow_public_suffix: bool = False
    collateral_acknowledged: bool = False
    summary: str | None = None
    summaries: tuple[tuple[str, str], ...] = ()
    confidential: bool = False


class _Doc:
    """Error collection for one document."""

    def __init__(self, path: Path, display: str, lists: ListReader) -> None:
        self.path, self.display, self.lists = path, display, lists
        self.errors: list[tuple[str, int, str, str]] = []  # (file, line, field, message)

    def err(self, line: int, name: str, message: str, file: str | None = None) -> None:
        self.errors.append((file or self.display, line, name, message))

    def text(self, node: Node, name: str, required: bool) -> str | None:
        if isinstance(node, Scalar) and node.value is None:
            if required:
                self.err(node.line, name, "required, but empty")
            return None
        if not isinstance(node, Scalar):
            self.err(node.line, name, f"must be text, not a {_what(node)}")
            return None
        value = node.value if isinstance(node.value, str) else node.text
        value = value.strip()
        if not value and required:
            self.err(node.line, name, "required, but empty")
            return None
        return value or None


def _what(node: Node) -> str:
    return "list" if isinstance(node, Seq) else "mapping" if isinstance(node, Map) else "value"


def validate_document(
    doc: Map, path: Path, display: str, tz: tzinfo, lists: ListReader
) -> tuple[Draft, list[OrderError]]:
    d = _Doc(path, display, lists)
    draft = Draft(Position(display, doc.line))
    items = doc.items
    for key, (kline, _) in items.items():
        if key not in KNOWN:
            d.err(kline, key, f"unknown field (known: {', '.join(sorted(KNOWN))})")
    _identity(d, draft, items, doc.line)
    for name in TEXT_FIELDS:
        if name in items:
            draft.text[name] = d.text(items[name][1], name, required=name in ("court", "case"))
        elif name in ("court", "case"):
            d.err(doc.line, name, "required")
    if "summary" in items:  # text or {language: text} (writ/blocklist/_summary.py)
        draft.summary, draft.summaries = read_summary(items["summary"][1], d.err, d.text)
    if "confidential" in items:
        draft.confidential = read_confidential(items["confidential"][1], d.err)
    _dates(d, draft, items, tz, doc.line)
    if "reference" in items:
        node = items["reference"][1]
        draft.reference = d.text(node, "reference", required=False)
        if draft.reference is not None and not _is_web_url(draft.reference):
            d.err(node.line, "reference", f"{draft.reference!r} is not an http(s) URL")
            draft.reference = None
    if draft.kind is ActKind.BLOCK or draft.kind is None:
        _block_fields(d, draft, items, doc.line)
    else:
        _amending_fields(d, draft, items, doc.line)
    errors = [OrderError(f, ln, n, m, draft.id) for f, ln, n, m in d.errors]
    return draft, errors


def _identity(d: _Doc, draft: Draft, items: Items, doc_line: int) -> None:
    """id, kind and allow_public_suffix: what the other checks depend on."""
    if "id" not in items:
        d.err(doc_line, "id", "required")
    else:
        node = items["id"][1]
        draft.id_line = node.line
        draft.id = d.text(node, "id", required=True)
        if draft.id is not None and not ID_RE.fullmatch(draft.id):
            d.err(node.line, "id",
                  f"{draft.id[:140]!r} is not an id: use 1-128 of A-Z a-z 0-9 . _ -")
            draft.id = None
    kind_text: str | None = "block"
    kind_line = doc_line
    if "kind" in items:
        kind_line, node = items["kind"]
        kind_text = d.text(node, "kind", required=True)
    if kind_text is not None:
        try:
            draft.kind = ActKind(kind_text)
        except ValueError:
            d.err(kind_line, "kind", f"{kind_text!r} is not a kind: use block, restore or revoke")
    if "allow_public_suffix" in items:
        node = items["allow_public_suffix"][1]
        flag = _boolean(node)
        if flag is None:
            d.err(node.line, "allow_public_suffix", _NOT_BOOLEAN)
        else:
            draft.allow_public_suffix = flag
    if "collateral_acknowledged" in items:
        node = items["collateral_acknowledged"][1]
        ack = _boolean(node)
        if ack is None:
            d.err(node.line, "collateral_acknowledged", _NOT_BOOLEAN)
        else:
            draft.collateral_acknowledged = ack


def _is_web_url(text: str) -> bool:
    try:
        u = urlsplit(text)
    except ValueError:
        return False
    return u.scheme in ("http", "https") and bool(u.hostname) and not any(c.isspace() for c in text)


def _dates(d: _Doc, draft: Draft, items: Items, tz: tzinfo, doc_line: int) -> None:
    if "issued" not in items:
        d.err(doc_line, "issued", "required")
    else:
        draft.issued_line = items["issued"][1].line
        draft.issued = _date(d, items["issued"][1], "issued")
    if "effective" in items:
        draft.effective = _instant(d, items["effective"][1], "effective", tz)
    elif draft.issued is not None:
        draft.effective = datetime.combine(draft.issued, time(0), tz)
    node = items["expires"][1] if "expires" in items else None
    if node is not None and not (isinstance(node, Scalar) and node.value is None):
        draft.expires = _instant(d, node, "expires", tz)
        if (draft.expires is not None and draft.effective is not None
                and draft.expires <= draft.effective):
            d.err(node.line, "expires", f"{draft.expires.isoformat()} is not after "
                  f"effective {draft.effective.isoformat()}")


def _date(d: _Doc, node: Node, name: str) -> date | None:
    if isinstance(node, Scalar):
        v = node.value
        if isinstance(v, datetime):
            d.err(node.line, name, f"{node.text!r}: must be a date (YYYY-MM-DD), without a time")
            return None
        if isinstance(v, date):
            return v
        if isinstance(v, str):
            try:
                return date.fromisoformat(v.strip())
            except ValueError as e:
                d.err(node.line, name, f"{v!r} is not a date (YYYY-MM-DD): {e}")
                return None
        if v is None:
            d.err(node.line, name, "required, but empty")
            return None
    d.err(node.line, name, f"must be a date (YYYY-MM-DD), not {_what_value(node)}")
    return None


def _instant(d: _Doc, node: Node, name: str, tz: tzinfo) -> datetime | None:
    if isinstance(node, Scalar):
        v = node.value
        if isinstance(v, str):
            try:
                v = datetime.fromisoformat(v.strip().replace("Z", "+00:00"))
            except ValueError as e:
                d.err(node.line, name, f"{node.text!r} is not a date or date-time: {e}")
                return None
        if isinstance(v, datetime):
            return v if v.tzinfo is not None else v.replace(tzinfo=tz)
        if isinstance(v, date):
            return datetime.combine(v, time(0), tz)
    d.err(node.line, name, f"must be a date or date-time (e.g. 2015-09-07T00:00:00+06:00), "
          f"not {_what_value(node)}")
    return None


def _what_value(node: Node) -> str:
    if isinstance(node, Scalar):
        return "empty" if node.value is None else repr(node.text)
    return f"a {_what(node)}"



def _block_fields(d: _Doc, draft: Draft, items: Items, doc_line: int) -> None:
    """targets of a block (also read when the kind is unreadable: report everything)."""
    if "targets" in items:
        draft.targets = _target_list(
            d, items["targets"][1], "targets", _TARGET_KEYS,
            allow_ps=draft.allow_public_suffix, bulk=draft.bulk,
            ack=draft.collateral_acknowledged,
        )
    elif draft.kind is ActKind.BLOCK:
        d.err(doc_line, "targets", "required for a block: what the court orders blocked")
    if draft.kind is None:
        return
    if "amends" in items:
        d.err(items["amends"][0], "amends", "a block amends nothing; use kind: restore or revoke")
    for name in RESTORE_ONLY:
        if name in items:
            d.err(items[name][0], name, f"a block has no {name} (only a restore has it)")


def _amending_fields(d: _Doc, draft: Draft, items: Items, doc_line: int) -> None:
    """amends, and for a restore: restores, keep_blocked."""
    kind = draft.kind
    if "targets" in items:
        hint = " (use restores: and keep_blocked:)" if kind is ActKind.RESTORE else ""
        d.err(items["targets"][0], "targets", f"a {kind} has no targets of its own{hint}")
    if "amends" not in items:
        d.err(doc_line, "amends", f"required for a {kind}: the id of the act it amends")
    else:
        node = items["amends"][1]
        draft.amends = d.text(node, "amends", required=True)
        draft.amends_line = node.line
    if kind is ActKind.REVOKE:
        for name in RESTORE_ONLY:
            if name in items:
                d.err(items[name][0], name, f"a revoke has no {name} (only a restore has it)")
        return
    if "restores" in items:
        draft.restores = _target_list(
            d, items["restores"][1], "restores", _HOST_LEVEL_KEYS, allow_ps=True, bulk=None,
            ack=True,  # lifting a block never needs the guard
        )
    if "keep_blocked" in items:
        draft.keep_blocked = _target_list(
            d, items["keep_blocked"][1], "keep_blocked", ("url", "url_prefix"),
            allow_ps=draft.allow_public_suffix, bulk=None, empty_ok=True,
        )


def _target_list(
    d: _Doc,
    node: Node,
    name: str,
    allowed: tuple[str, ...],
    *,
    allow_ps: bool,
    bulk: list[BulkList] | None,
    empty_ok: bool = False,
    ack: bool = False,
) -> list[Target]:
    out: list[Target] = []
    if not isinstance(node, Seq):
        d.err(node.line, name, f"must be a list of targets (- {allowed[0]}: …), "
              f"not {_what_value(node)}")
        return out
    if not node.items and not empty_ok:
        d.err(node.line, name, "empty" + (
            ": omit restores to restore every domain target of the amended order"
            if name == "restores" else ""))
    for i, item in enumerate(node.items, 1):
        fname = f"{name}[{i}]"
        if not isinstance(item, Map):
            d.err(item.line, fname, f"each entry is a mapping such as `- {allowed[0]}: …`")
            continue
        _target_entry(d, item, fname, allowed=allowed, allow_ps=allow_ps, bulk=bulk, out=out,
                      ack=ack)
    return out


def _target_entry(
    d: _Doc, item: Map, fname: str, *, allowed: tuple[str, ...], allow_ps: bool,
    bulk: list[BulkList] | None, out: list[Target], ack: bool = False,
) -> None:
    keys = [k for k in item.items if k in _TARGET_KEYS]
    for k, (kl, _) in item.items.items():
        if k not in _TARGET_KEYS and k != "subdomains":
            d.err(kl, f"{fname}.{k}", f"unknown key (use one of {', '.join(allowed)})")
    if len(keys) != 1:
        found = f" (found {', '.join(keys)})" if keys else ""
        d.err(item.line, fname, f"needs exactly one of {', '.join(allowed)}{found}")
        return
    key = keys[0]
    kline, vnode = item.items[key]
    if key not in allowed:
        d.err(kline, f"{fname}.{key}", f"takes only {' or '.join(allowed)} entries here")
        return
    subdomains = _subdomains(d, item, fname, key)
    text = d.text(vnode, f"{fname}.{key}", required=True)
    if text is None:
        return
    pos = Position(d.display, vnode.line)
    try:
        if key == "domain":
            host = domain_target(text, allow_ps)
            out.append(Target(TargetKind.DOMAIN, host, "", (), subdomains, pos))
        elif key in ("ip", "ip_prefix"):
            host = ip_target(text, TargetKind(key), d.lists.limits, ack)
            kind = TargetKind.IP if "/" not in host else TargetKind.IP_PREFIX  # /32 is an ip
            out.append(Target(kind, host, "", (), True, pos))
        elif key == "file":
            assert bulk is not None  # only `targets` allows file entries
            bulk.append(_bulk_list(d, text, allow_ps, pos, ack))
        else:
            out.append(url_target(text, TargetKind(key), allow_ps, pos))
    except TargetError as e:
        d.err(vnode.line, f"{fname}.{key}", str(e))


def _subdomains(d: _Doc, item: Map, fname: str, key: str) -> bool:
    if "subdomains" not in item.items:
        return True
    sline, snode = item.items["subdomains"]
    if key != "domain":
        d.err(sline, f"{fname}.subdomains", "only a domain target has subdomains")
    else:
        flag = _boolean(snode)
        if flag is not None:
            return flag
        d.err(sline, f"{fname}.subdomains", _NOT_BOOLEAN)
    return True


_NOT_BOOLEAN = ("must be true or false (YAML 1.1 words such as yes, no, on, off are read "
                "differently by different tools: write true or false)")


def _boolean(node: Node) -> bool | None:
    """`true` / `false` only (any case); None for anything else, YAML 1.1's
    yes/no/on/off included: one reader's false is another's text."""
    if (isinstance(node, Scalar) and isinstance(node.value, bool)
            and node.text.lower() in ("true", "false")):
        return node.value
    return None


def _bulk_list(d: _Doc, rel: str, allow_ps: bool, pos: Position, ack: bool) -> BulkList:
    inner = d.lists.locate(d.path, rel)
    got = d.lists.read(inner, allow_ps, ack)
    shown = d.lists.display(inner)
    for line, name, message in got.errors:
        d.err(line, name, message, file=shown)
    return BulkList(inner.as_posix(), got.domains, got.urls, pos, got.ips, got.ip_keys)
