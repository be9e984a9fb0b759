"""Loading and validating a folder of court orders (docs/design.md §2).

Invariants:
- Orders are the *.yaml / *.yml files under the folder, recursively, in
  sorted order (names starting with "." are skipped: editor and VCS files);
  bulk lists they name are read as lists, never as orders.
- Symbolic links, to a file or to a subfolder, are treated alike: one that
  resolves inside the folder is followed (a Kubernetes ConfigMap mount is
  made of them) and each real file is read once; one that resolves outside
  is an error naming the link — as for bulk `file:` paths.
- At most MAX_ERRORS_PER_FILE errors are listed per file, then one line with
  how many more: a file of 200k unknown keys is one screen, not 200k lines.
- Validation is total: every document is checked even after errors, and the
  cross-document rules (unique ids, what `amends` names) run over every
  document that got far enough to have an id.
- An invalid set is never published: any error and `acts` is empty.
- Never raises for bad input; errors name the file as the user would type
  it (relative to the current directory when the folder lies under it).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, tzinfo
from pathlib import Path

from writ.blocklist._bulk import MAX_ERRORS, ListReader
from writ.blocklist._validate import Draft, validate_document
from writ.blocklist._yamlsrc import Map, Seq, read_documents
from writ.blocklist.ipaddr import DEFAULT_LIMITS, IpLimits
from writ.blocklist.model import Act, ActKind, OrderError, TargetKind
from writ.blocklist.signed.sigcheck import OrderTrust, SignedFile, check_signatures

__all__ = ["LoadResult", "load_orders"]

ORDER_SUFFIXES = (".yaml", ".yml")
MAX_ERRORS_PER_FILE = MAX_ERRORS  # as for bulk lists (which count their own rest)


@dataclass(frozen=True, slots=True)
class LoadResult:
    acts: tuple[Act, ...]
    errors: tuple[OrderError, ...]

    @property
    def ok(self) -> bool:
        return not self.errors


def load_orders(
    directory: Path, tz: tzinfo | None = None, trust: OrderTrust | None = None,
    limits: IpLimits = DEFAULT_LIMITS,
) -> LoadResult:
    """Load every *.yaml / *.yml file under `directory` (recursively).

    Bare dates mean 00:00 in `tz` (default UTC). Never raises for bad input:
    every problem becomes an OrderError; `acts` is empty when there are errors.
    With `trust`, every order file and bulk list must carry a valid signature
    by an issuer key in scope (writ/blocklist/signed/sigcheck.py).
    `limits` is the policy's collateral guard for ip/ip_prefix targets
    (writ/blocklist/ipaddr.py).
    """
    directory = Path(directory)
    root_display = _display_root(directory)
    if not directory.is_dir():
        return LoadResult((), (OrderError(root_display, 0, "folder", "no such folder"),))
    lists = ListReader(directory, root_display, limits)
    drafts: list[Draft] = []
    files, outside = _walk(directory)
    errors: list[OrderError] = [
        OrderError(str(Path(root_display) / rel), 1, "file",
                   f"a symbolic link to {target}, outside the orders folder: copy the "
                   f"{'folder' if target.is_dir() else 'file'} in, or link inside the folder")
        for rel, target in outside]
    signed: list[SignedFile] = []
    for path, rel in files:
        display = str(Path(root_display) / rel)
        signed.append(SignedFile(path, display))
        docs, problems = read_documents(path)
        errors.extend(OrderError(display, p.line, p.field, p.message) for p in problems)
        for doc in docs:
            if not isinstance(doc, Map):
                errors.append(OrderError(
                    display, doc.line, "document",
                    "an order must be a mapping of fields (id: …, court: …), "
                    f"not a {'list' if isinstance(doc, Seq) else 'single value'}",
                ))
                continue
            draft, errs = validate_document(doc, path, display, tz or UTC, lists)
            drafts.append(draft)
            signed[-1].drafts.append(draft)
            errors.extend(errs)
    errors.extend(_cross_checks(drafts, root_display))
    signers: dict[str, tuple[str, ...]] = {}
    if trust is not None:
        sig_errors, signers = check_signatures(trust, signed, _lists_of(drafts, lists))
        errors.extend(sig_errors)
    if errors:
        return LoadResult((), _capped(sorted(errors, key=lambda e: (e.file, e.line))))
    return LoadResult(tuple(replace(_act(d), signers=signers.get(d.id or "", ()))
                            for d in drafts), ())


def _lists_of(drafts: list[Draft], lists: ListReader) -> list[SignedFile]:
    """Every bulk list named by an order, with the drafts that name it."""
    found: dict[str, SignedFile] = {}
    for d in drafts:
        for b in d.bulk:
            inner = Path(b.file)
            entry = found.get(b.file)
            if entry is None:
                entry = found[b.file] = SignedFile(lists.root / inner, lists.display(inner))
            entry.drafts.append(d)
    return sorted(found.values(), key=lambda f: f.display)


def _capped(errors: list[OrderError]) -> tuple[OrderError, ...]:
    out: list[OrderError] = []
    per_file: dict[str, int] = {}
    for e in errors:
        per_file[e.file] = per_file.get(e.file, 0) + 1
    shown: dict[str, int] = {}
    for e in errors:
        n = shown[e.file] = shown.get(e.file, 0) + 1
        if n <= MAX_ERRORS_PER_FILE or per_file[e.file] == MAX_ERRORS_PER_FILE + 1:
            out.append(e)  # (a bulk list's own "N more" line is its 101st)
    for file, n in per_file.items():
        if n > MAX_ERRORS_PER_FILE + 1:
            last = max(e.line for e in errors if e.file == file)
            out.append(OrderError(file, last, "errors",
                                  f"{n - MAX_ERRORS_PER_FILE} more errors in this file not "
                                  f"shown (the first {MAX_ERRORS_PER_FILE} are above)"))
    return tuple(sorted(out, key=lambda e: (e.file, e.line)))


def order_files(directory: Path) -> list[tuple[Path, Path]]:
    """(path, path relative to `directory`) of every order file, sorted."""
    return _walk(directory)[0]


def _walk(directory: Path) -> tuple[list[tuple[Path, Path]], list[tuple[Path, Path]]]:
    """Order files (path, path relative to `directory`), sorted, each real file
    once; and the links (relative path, target) that lead outside the folder."""
    root = directory.resolve()
    found: list[tuple[Path, Path]] = []
    outside: list[tuple[Path, Path]] = []
    seen_files: set[Path] = set()
    seen_dirs: set[Path] = {root}
    pending = [directory]
    while pending:
        folder = pending.pop()
        try:
            entries = sorted(folder.iterdir())
        except OSError:
            continue  # an unreadable subfolder: nothing to list (the root was checked)
        for p in entries:
            rel = p.relative_to(directory)
            if p.name.startswith("."):
                continue
            real = p.resolve() if p.is_symlink() else None
            if real is not None and p.exists() and not real.is_relative_to(root):
                if p.is_dir() or p.suffix.lower() in ORDER_SUFFIXES:
                    outside.append((rel, real))
                continue
            if p.is_dir():
                key = real or p.resolve()
                if key not in seen_dirs:
                    seen_dirs.add(key)
                    pending.append(p)
                continue
            # Not only regular files: a broken link or a FIFO named *.yaml is an
            # order that cannot be read, and must be reported, not skipped.
            if p.suffix.lower() in ORDER_SUFFIXES:
                key = real or p.resolve()
                if key not in seen_files:
                    seen_files.add(key)
                    found.append((p, rel))
    found.sort(key=lambda pr: pr[1].as_posix())
    outside.sort(key=lambda pr: pr[0].as_posix())
    return found, outside


def _display_root(directory: Path) -> str:
    if directory.is_absolute():
        try:
            return str(directory.relative_to(Path.cwd()))
        except ValueError:
            return str(directory)
    return str(directory)


def _cross_checks(drafts: list[Draft], root_display: str) -> list[OrderError]:
    """Unique ids; `amends` names a known act of the right kind; `restores` ⊆ its domains."""
    errors: list[OrderError] = []
    by_id: dict[str, Draft] = {}
    by_folded: dict[str, Draft] = {}  # ids differing only by case are one id to a reader
    for dr in drafts:
        if dr.id is None:
            continue
        first = by_id.get(dr.id)
        same = by_folded.get(dr.id.casefold())
        if first is not None:
            errors.append(OrderError(dr.pos.file, dr.id_line, "id",
                                     f"duplicate id: already used at {first.pos}", dr.id))
        elif same is not None:
            errors.append(OrderError(
                dr.pos.file, dr.id_line, "id",
                f"differs only by case from {same.id} at {same.pos}: ids must be unique "
                "regardless of case", dr.id))
        else:
            by_id[dr.id] = dr
            by_folded[dr.id.casefold()] = dr
    hosts_of: dict[str, frozenset[str]] = {}
    for dr in drafts:
        if dr.amends is None or dr.kind not in (ActKind.RESTORE, ActKind.REVOKE):
            continue
        target = by_id.get(dr.amends)
        problem = _amends_problem(dr, target, root_display)
        if problem is not None:
            errors.append(OrderError(dr.pos.file, dr.amends_line, "amends", problem, dr.id))
        elif (target is not None and dr.issued is not None and target.issued is not None
              and dr.issued < target.issued):
            # A typo in a year must not silently cancel a court order.
            errors.append(OrderError(
                dr.pos.file, dr.issued_line or dr.pos.line, "issued",
                f"{dr.issued.isoformat()} is before {target.issued.isoformat()}, when "
                f"{dr.amends} (which this act amends, {target.pos}) was issued", dr.id))
        elif target is not None and dr.restores:
            hosts = hosts_of.get(dr.amends)
            if hosts is None:
                hosts = hosts_of[dr.amends] = frozenset(
                    [t.host for t in target.targets if t.kind is not TargetKind.URL
                     and t.kind is not TargetKind.URL_PREFIX]
                    + [n for b in target.bulk for n in (*b.domains, *b.ips)]
                )
            errors.extend(
                OrderError(
                    dr.pos.file, t.pos.line if t.pos else dr.amends_line, "restores",
                    f"{t.host} is not {'an' if t.is_ip else 'a'} {t.kind.value} target of "
                    f"{dr.amends}: a restore lifts only "
                    "what the order it amends blocks", dr.id,
                )
                for t in dr.restores
                if t.host not in hosts
            )
    return errors


def _amends_problem(dr: Draft, target: Draft | None, root_display: str) -> str | None:
    if target is None:
        return f"no act with id {dr.amends!r} in {root_display}"
    if target is dr:
        return "an act cannot amend itself"
    if dr.kind is ActKind.RESTORE and target.kind not in (ActKind.BLOCK, None):
        return f"a restore amends a block, but {dr.amends} is a {target.kind}"
    if dr.kind is ActKind.REVOKE and target.kind is ActKind.REVOKE:
        return f"a revoke amends a block or a restore, but {dr.amends} is a revoke"
    return None


def _act(d: Draft) -> Act:
    # Every field checked here got an error when missing, and there are none.
    court, case = d.text.get("court"), d.text.get("case")
    assert d.id is not None
    assert d.kind is not None
    assert d.issued is not None
    assert d.effective is not None
    assert court is not None
    assert case is not None
    return Act(
        id=d.id, kind=d.kind, court=court, case=case, issued=d.issued,
        effective=d.effective, expires=d.expires,
        authority=d.text.get("authority"), legal_basis=d.text.get("legal_basis"),
        reference=d.reference, summary=d.summary, summaries=d.summaries,
        confidential=d.confidential,
        targets=tuple(d.targets), bulk=tuple(d.bulk), amends=d.amends,
        restores=None if d.restores is None else tuple(d.restores),
        keep_blocked=tuple(d.keep_blocked), condition=d.text.get("condition"),
        allow_public_suffix=d.allow_public_suffix,
        collateral_acknowledged=d.collateral_acknowledged, pos=d.pos,
    )
