"""Bulk `file:` lists: one target a line (DESIGN §2).

A name is a domain target (with subdomains), a URL a url target, a URL
ending in `/*` a url_prefix target; blank lines and `#` comments are skipped;
errors name the list file and its line.

Invariants:
- A list holds up to millions of names, so names stay plain strings (a
  BulkList), never Target objects, and the common case — a file of plain
  ASCII names — is checked by whole-file C-speed passes (one regex search,
  one lower(), one split()) instead of a Python call per line. Anything the
  fast path is unsure of goes through the exact per-line path, which gives
  the same names for the lines both accept and says where a line is wrong.
- At most MAX_ERRORS errors are reported per list; the rest are counted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from writ.blocklist._psl import candidates
from writ.blocklist._targets import TargetError, domain_target, url_target
from writ.blocklist.canon import MAX_NAME
from writ.blocklist.model import Position, Target, TargetKind

__all__ = ["MAX_ERRORS", "ListReader", "ListResult", "read_list"]

MAX_ERRORS = 100

# A canonical ASCII name of two labels or more (a single label is a TLD,
# refused anyway); the same label rule as canon._ASCII_NAME.
_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_NAME = rf"(?:{_LABEL}\.)+{_LABEL}"
# The first line that is neither blank nor a plain lowercase name.
_FIRST_ODD_LINE = re.compile(rf"^(?!(?:{_NAME})?\r?$)", re.MULTILINE)
_INLINE_COMMENT = re.compile(r"\s#")


@dataclass(frozen=True, slots=True)
class ListResult:
    domains: tuple[str, ...]
    urls: tuple[Target, ...]
    errors: tuple[tuple[int, str, str], ...]  # (line, field, message)


def read_list(path: Path, display: str, allow_public_suffix: bool) -> ListResult:
    """Read one bulk list. `display` is the list's name in positions and errors."""
    try:
        data = path.read_bytes()
    except OSError as e:
        return ListResult((), (), ((1, "file", f"cannot read: {e.strerror or e}"),))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        return ListResult((), (), ((line, "file", "not UTF-8 text"),))
    text = text.removeprefix("\ufeff")
    names = _fast_names(text)
    if names is None:
        return _read_lines(text, display, allow_public_suffix)
    if not allow_public_suffix:
        public = candidates(names)
        if public:  # rare: let the exact path find the lines
            return _read_lines(text, display, allow_public_suffix)
    return ListResult(tuple(names), (), ())


def _fast_names(text: str) -> list[str] | None:
    """The names of a list of plain ASCII names and blank lines, or None."""
    if not text.isascii() or "xn--" in text or "#" in text or "://" in text:
        return None
    low = text.lower()
    if _FIRST_ODD_LINE.search(low) is not None:
        return None
    names = low.split()
    if names and max(map(len, names)) > MAX_NAME:
        return None
    return names


def _read_lines(text: str, display: str, allow_public_suffix: bool) -> ListResult:
    domains: list[str] = []
    urls: list[Target] = []
    errors: list[tuple[int, str, str]] = []
    dropped = 0
    last_line = 0
    for lineno, raw in enumerate(text.split("\n"), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if "#" in line:
            line = _INLINE_COMMENT.split(line, maxsplit=1)[0].rstrip()
        field = "domain"
        problem: str | None = None
        try:
            if "://" in line:
                kind = TargetKind.URL
                if line.endswith("/*"):
                    kind, line = TargetKind.URL_PREFIX, line[:-1]
                field = kind.value
                urls.append(url_target(line, kind, allow_public_suffix, Position(display, lineno)))
            elif not any(c.isspace() for c in line):
                domains.append(domain_target(line, allow_public_suffix))
            else:
                problem = f"{line!r}: one target a line (found spaces)"
        except TargetError as e:
            problem = str(e)
        if problem is None:
            continue
        if len(errors) < MAX_ERRORS:
            errors.append((lineno, field, problem))
        else:
            dropped += 1
            last_line = lineno
    if dropped:
        errors.append((last_line, "file", f"{dropped} more errors in this list not shown"))
    return ListResult(tuple(domains), tuple(urls), tuple(errors))



class ListReader:
    """Resolves `file:` paths inside the orders folder and reads each list once.

    Confinement: the path is relative to the order file; after resolving
    symlinks and `..` it must still lie inside the orders folder, so an order
    can never make writ read /etc/passwd or another tenant's files.
    """

    def __init__(self, root: Path, root_display: str) -> None:
        self.root = root.resolve()
        self.root_display = root_display
        self._cache: dict[tuple[Path, bool], ListResult] = {}

    def display(self, inner: Path) -> str:
        return str(Path(self.root_display) / inner)

    def locate(self, order_file: Path, rel: str) -> Path:
        """The list's path relative to the root. Raises TargetError."""
        if not rel.strip():
            raise TargetError("empty path")
        path = Path(rel)
        if not path.is_absolute():
            path = order_file.parent / path
        try:
            real = path.resolve()
        except (OSError, RuntimeError) as e:  # RuntimeError: a symlink loop
            raise TargetError(f"cannot resolve {rel!r}: {e}") from None
        try:
            inner = real.relative_to(self.root)
        except ValueError:
            raise TargetError(
                f"{rel!r} is outside the orders folder {self.root_display}"
            ) from None
        if not real.exists():
            raise TargetError(f"no such file: {rel!r} (paths are relative to the order file)")
        if not real.is_file():
            raise TargetError(f"{rel!r} is not a regular file")
        if real.suffix in (".yaml", ".yml"):
            raise TargetError(
                f"{rel!r}: a list must not end in .yaml/.yml (it would be read as an order)"
            )
        return inner

    def read(self, inner: Path, allow_public_suffix: bool) -> ListResult:
        key = (inner, allow_public_suffix)
        got = self._cache.get(key)
        if got is None:
            got = read_list(self.root / inner, self.display(inner), allow_public_suffix)
            self._cache[key] = got
        return got
