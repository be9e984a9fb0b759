"""Languages of the public pages: message catalogs (gettext .po, read with Babel).

Bundled: Kazakh, Russian and English (English is the message ids themselves).
The operator adds a language by putting LANG/LC_MESSAGES/writ.po under
`pages.languages_dir` (docs/operator.md, "Adding a language"); a catalog
there also overrides a bundled one.

Invariants:
- A message missing from a catalog (or marked fuzzy) shows in English, never blank.
- The language comes from `?lang=` when it names one we have, else the best
  `Accept-Language` match (RFC 9110 §12.5.4: q-values, `q=0` means "not
  acceptable", a primary tag matches its regional variants), else the policy's
  `default_language`.
- Catalogs are read once per (folder, default); a catalog that cannot be
  read is a CatalogError naming the file, raised when `writ web` starts.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from babel.core import Locale, UnknownLocaleError
from babel.messages.pofile import PoFileError, read_po

__all__ = ["BUNDLED", "N_", "CatalogError", "Catalogs", "catalogs", "parse_accept_language"]

BUNDLED = ("kk", "ru", "en")
DOMAIN = "writ"
LOCALE_DIR = Path(__file__).parent / "locale"
_TAG = re.compile(r"[A-Za-z]{1,8}(-[A-Za-z0-9]{1,8})*|\*")


def N_(message: str) -> str:  # noqa: N802 (gettext's name for "mark for extraction")
    """Marks a message for `pybabel extract`; translated where it is shown."""
    return message


class CatalogError(ValueError):
    """A message catalog that cannot be used; the message names the file."""


@dataclass(frozen=True, slots=True)
class Catalogs:
    default: str
    messages: Mapping[str, Mapping[str, str]]  # language -> msgid -> msgstr
    names: Mapping[str, str]  # language -> its own name for itself

    @property
    def languages(self) -> tuple[str, ...]:
        return tuple(self.messages)

    def gettext(self, language: str) -> Callable[[str], str]:
        table = self.messages.get(language, {})
        return lambda s: table.get(s) or s

    def choose(self, accept_language: str | None, override: str | None = None) -> str:
        if override in self.messages:
            return str(override)
        have = {lang.lower(): lang for lang in self.messages}
        for tag in parse_accept_language(accept_language or ""):
            if tag == "*":
                return self.default
            if tag in have:
                return have[tag]
            primary = tag.split("-", 1)[0]
            if primary in have:
                return have[primary]
        return self.default


def parse_accept_language(header: str) -> list[str]:
    """Language tags, lower-cased, best first; `q=0` and malformed items dropped."""
    ranked: list[tuple[float, int, str]] = []
    for i, item in enumerate(header.split(",")[:32]):  # a hostile header stays cheap
        tag, _, params = item.strip().partition(";")
        tag = tag.strip()
        if not _TAG.fullmatch(tag):
            continue
        q = 1.0
        for p in params.split(";"):
            k, _, v = p.strip().partition("=")
            if k.strip().lower() == "q":
                try:
                    q = float(v)
                except ValueError:
                    q = 0.0
        if 0.0 < q <= 1.0:
            ranked.append((-q, i, tag.lower()))
    return [t for _, _, t in sorted(ranked)]


def _read(path: Path, language: str) -> dict[str, str]:
    try:
        with path.open("rb") as f:
            cat = read_po(f, locale=None, domain=DOMAIN, abort_invalid=True)
    except (OSError, PoFileError, ValueError) as e:
        raise CatalogError(
            f"{path}: cannot read the message catalog for {language!r}: {e}") from None
    return {str(m.id): str(m.string) for m in cat
            if m.id and isinstance(m.id, str) and isinstance(m.string, str)
            and m.string and not m.fuzzy}


def _own_name(language: str) -> str:
    try:
        loc = Locale.parse(language, sep="-")
    except (UnknownLocaleError, ValueError):
        return language
    name = loc.get_display_name(loc) or language
    return name[:1].upper() + name[1:]


def _found(folder: Path) -> dict[str, Path]:
    return {p.parent.parent.name: p for p in sorted(folder.glob(f"*/LC_MESSAGES/{DOMAIN}.po"))}


@functools.lru_cache(maxsize=8)
def catalogs(languages_dir: str | None = None, default: str = "en") -> Catalogs:
    """The bundled catalogs plus the operator's. Raises CatalogError."""
    files = _found(LOCALE_DIR)
    if languages_dir is not None:
        extra = Path(languages_dir)
        if not extra.is_dir():
            raise CatalogError(f"pages.languages_dir: {extra} is not a folder")
        files.update(_found(extra))
    messages: dict[str, dict[str, str]] = {lang: {} for lang in BUNDLED}
    for lang, path in files.items():
        messages[lang] = _read(path, lang)
    if default not in messages:
        raise CatalogError(f"pages.default_language: no catalog for {default!r} "
                           f"(have {', '.join(messages)})")
    return Catalogs(default, messages, {lang: _own_name(lang) for lang in messages})
