"""HTML of the public pages: Jinja2 templates in writ/pages/templates, autoescaped.

Invariants:
- Autoescape is on for every template: order fields are text, never markup
  (tests put `<script>` in every field of an order).
- A link from order text is made only from an http(s) URL (`safe_href`).
- No page asks for anything from elsewhere: CSS is inline, no fonts, no
  scripts, no images (the browser tests watch the network).
- Pure: values in, bytes out; dates are formatted for the page's language
  with Babel's CLDR data (ISO 8601 when CLDR does not know the language).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date, datetime
from typing import Any
from urllib.parse import quote, urlencode

import jinja2
from babel.core import UnknownLocaleError
from babel.dates import format_date, format_datetime

from writ.blocklist import Act
from writ.pages.i18n import Catalogs

__all__ = ["act_view", "fmt_date", "render", "safe_href"]

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("writ.pages", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


_URI_CHARS = ":/?#[]@!$&'()*+,;=%-._~"


def safe_href(url: str | None) -> str | None:
    """An http(s) URL fit for href: characters URIs may not hold are %-escaped
    (RFC 3986 §2), so `<`, `"` and the like can never leave the attribute."""
    if url and url.lower().startswith(("https://", "http://")) and not any(
            c.isspace() or ord(c) < 0x20 for c in url):
        return quote(url, safe=_URI_CHARS)
    return None


def fmt_date(value: date | datetime | None, language: str) -> str | None:
    if value is None:
        return None
    try:
        if isinstance(value, datetime) and (value.hour, value.minute, value.second) != (0, 0, 0):
            return format_datetime(value, format="medium", locale=language.replace("-", "_"))
        return format_date(value, format="long", locale=language.replace("-", "_"))
    except (UnknownLocaleError, ValueError):
        return value.isoformat()


def act_view(act: Act, language: str, *, targets: int | None = None) -> dict[str, Any]:
    """What an order card shows, formatted for `language` (still unescaped text)."""
    return {
        "id": act.id, "kind": str(act.kind), "court": act.court, "case": act.case,
        "issued": fmt_date(act.issued, language), "issued_iso": act.issued.isoformat(),
        "effective": fmt_date(act.effective, language),
        "effective_iso": act.effective.isoformat(),
        "expires": fmt_date(act.expires, language),
        "expires_iso": act.expires.isoformat() if act.expires else None,
        "authority": act.authority, "legal_basis": act.legal_basis,
        "summary": act.summary_in(language),
        "reference_href": safe_href(act.reference),
        "reference": act.reference,
        "reference_text": None if safe_href(act.reference) else act.reference,
        "targets": targets,
    }


def render(template: str, cats: Catalogs, language: str, *, path: str = "/",
           query: Mapping[str, str] | None = None, **context: Any) -> bytes:
    """One page. `path` and `query` build the language links (`?lang=`)."""
    q = {k: v for k, v in (query or {}).items() if k != "lang"}

    def switch(code: str) -> str:
        return path + "?" + urlencode({**q, "lang": code})

    gettext: Callable[[str], str] = cats.gettext(language)
    languages = [(code, cats.names[code]) for code in cats.languages]
    html = _ENV.get_template(template).render(
        lang=language, languages=languages, switch=switch, _=gettext, **context)
    return html.encode("utf-8")
