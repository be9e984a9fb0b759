"""An order's `summary` (plain text or one text per language) and `confidential` flag.

Kept apart from _validate.py so the public-pages fields stay in one place
(docs/operator.md, "Public pages"):
- `summary: text` or `summary: {kk: …, ru: …, en: …}`; a language key is a
  BCP 47-ish tag of 2-8 letters, optionally `-` and 2-8 letters/digits
  (`kk`, `ru`, `en`, `uz-Latn`); every value is non-empty text.
- With a mapping, the plain summary (what programs and the English page
  show when a language is missing) is the `en` text, else the first one.
- `confidential: true|false`: the register publishes counts, not targets.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from writ.blocklist._yamlsrc import Map, Node, Scalar

__all__ = ["LANG_RE", "read_confidential", "read_summary"]

LANG_RE = re.compile(r"[a-z]{2,8}(-[A-Za-z0-9]{2,8})?")
Err = Callable[[int, str, str], None]
Text = Callable[[Node, str, bool], str | None]


Pairs = tuple[tuple[str, str], ...]


def read_summary(node: Node, err: Err, text: Text) -> tuple[str | None, Pairs]:
    """(plain summary, sorted (language, text) pairs) from the `summary` node."""
    if not isinstance(node, Map):
        return text(node, "summary", False), ()
    pairs: list[tuple[str, str]] = []
    for lang, (kline, vnode) in node.items.items():
        if not LANG_RE.fullmatch(lang):
            err(kline, f"summary.{lang[:40]}",
                "not a language tag: use e.g. kk, ru, en (lower-case letters, optional -Region)")
            continue
        value = text(vnode, f"summary.{lang}", True)
        if value is not None:
            pairs.append((lang, value))
    if not node.items:
        err(node.line, "summary", "empty mapping: give text or {kk: …, ru: …, en: …}")
    by_lang = dict(pairs)
    plain = by_lang.get("en") or (pairs[0][1] if pairs else None)
    return plain, tuple(sorted(pairs))


def read_confidential(node: Node, err: Err) -> bool:
    if isinstance(node, Scalar) and isinstance(node.value, bool):
        return node.value
    err(node.line, "confidential", "must be true or false")
    return False
