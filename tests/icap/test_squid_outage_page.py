"""writ's outage page (deploy/squid/errors/ERR_WRIT_UNAVAILABLE) as Squid serves it.

A real Squid on deploy/squid/squid.conf (tests/icap/squid.py), with nothing
listening where writ's ICAP service should be, answers every request `503`
with that page, its `%` codes filled in. The requests are sent raw, with
hostile targets: markup, quotes, non-ASCII, a 300-letter path segment. Squid's
answers are kept byte for byte (status line, headers, body) and then:

- each body is valid HTML for `tidy` (tests/tidy.py), and Squid's cache.log
  has nothing to say about the template (a lone `%` in it is an "Unsupported
  error page %code" error, fatal in later Squids: CSS writes `%%`);
- a loopback server replays each answer, whole, to Debian's headless Chromium
  (tests/chromium.py) at 360 and 1280 px: the page asks for nothing more, the
  console is clean but for the 503 itself, nothing overflows, text meets WCAG
  AA contrast, the message is there in Kazakh, Russian and English, each in
  an element marked with its `lang`, and the requested URL is shown as the
  text Squid escaped, no script in the page, none run.

Screenshots go to the folder named by WRIT_SCREENSHOTS (default: the test's
temporary folder; the path is printed). Without squid, chromium or tidy the
tests skip locally and fail in CI (CI=true).
"""

from __future__ import annotations

import html
import re
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests import chromium
from tests.icap.squid import CONF, Squid
from tests.icap.test_squid import assert_writ_unavailable
from tests.ports import closed_port
from tests.tidy import problems, tidy_binary

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

LANGS = ("kk", "ru", "en")
WIDTHS = (360, 1280)
TEMPLATE = CONF.parent / "errors" / "ERR_WRIT_UNAVAILABLE"
PROXY_NAME = "proxy1.isp.example"  # Squid's visible_hostname: the page's %h
LONG = "x" * 300
SCRIPT = "<script>document.title='ran'</script>"
# case -> the raw request target, sent as UTF-8 bytes
TARGETS = {
    "plain": "http://news.example/2026/12/01/evening-edition.html",
    "markup": f"http://fine.example/a{SCRIPT}\"q\"'q'/{LONG}?s=<b>\"",
    "non-ascii": f"http://fine.example/жаңалықтар/новости/é{SCRIPT}\"'?q=ü",
}
# For each language: phrases its part of the page says (the page is not a block,
# the filtering service is down, try again) — nearest `lang` ancestor = that language.
PHRASES = {
    "kk": ("Сүзгілеу қызметі", "бұғатталуы емес", "қайталап көріңіз"),
    "ru": ("Служба фильтрации", "не блокировка", "Попробуйте ещё раз"),
    "en": ("filtering service is unavailable", "not a block", "try again"),
}
# Text per language: every text node under <body> that is rendered (not in a
# display:none element), by its nearest `lang`.
TEXT_BY_LANG_JS = """
const out = {};
const walk = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
for (let n = walk.nextNode(); n; n = walk.nextNode()) {
  if (!n.parentElement.getClientRects().length) continue;
  const lang = n.parentElement.closest('[lang]').lang;
  out[lang] = (out[lang] || '') + n.textContent;
}
return out;
"""
RFC1123 = re.compile(r"\w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d GMT")


@dataclass(frozen=True, slots=True)
class Answer:
    raw: bytes  # all Squid sent, head and body

    @property
    def head(self) -> str:
        return self.raw.partition(b"\r\n\r\n")[0].decode("latin-1")

    @property
    def status(self) -> int:
        return int(self.head.split(" ", 2)[1])

    @property
    def headers(self) -> dict[str, str]:
        lines = self.head.split("\r\n")[1:]
        return dict(line.split(": ", 1) for line in lines)

    @property
    def body(self) -> bytes:
        return self.raw.partition(b"\r\n\r\n")[2]


def _ask(squid: Squid, request_line: str, host: str) -> Answer:
    with socket.create_connection(("127.0.0.1", squid.port), timeout=30) as s:
        s.sendall(f"{request_line}\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        raw = b""
        while chunk := s.recv(65536):
            raw += chunk
    return Answer(raw)


@pytest.fixture(scope="module")
def served(squid_bin: str) -> tuple[dict[str, Answer], str]:
    """Squid's answers (the TARGETS' GETs, and a CONNECT) with writ's ICAP
    service down, and Squid's whole cache.log."""
    with closed_port() as down:  # nothing listens there, for the whole run
        squid = Squid(squid_bin, icap_url=f"127.0.0.1:{down}/writ",
                      names=("fine.example", "news.example"),
                      extra=f"visible_hostname {PROXY_NAME}\n").start()
        try:
            answers = {case: _ask(squid, f"GET {target} HTTP/1.1", target.split("/")[2])
                       for case, target in TARGETS.items()}
            answers["connect"] = _ask(squid, "CONNECT fine.example:443 HTTP/1.1",
                                      "fine.example:443")
            log = (squid.dir / "cache.log").read_text(errors="replace")
        finally:
            squid.stop()
    return answers, log


def _as_served(template: str) -> re.Pattern[str]:
    """What Squid makes of the template: its codes filled in, `%%` a percent
    sign, every other byte as it is."""
    fills = {"%%": "%", "%U": "(?P<url>[^<]*)", "%h": re.escape(PROXY_NAME),
             "%T": RFC1123.pattern}
    parts = re.split(r"(%.)", template)
    return re.compile("".join(fills.get(p, re.escape(p)) if i % 2 else re.escape(p)
                              for i, p in enumerate(parts)))


def test_the_template_uses_only_the_codes_it_means() -> None:
    """A lone `%` is a Squid code, or an "Unsupported error page %code" error
    (fatal in later Squids), or a `%` kept by luck: CSS writes `%%`."""
    codes = re.findall(r"%.", TEMPLATE.read_text())
    assert set(codes) == {"%%", "%U", "%h", "%T"}, codes


def test_squid_fills_in_the_template_cleanly(served: tuple[dict[str, Answer], str]) -> None:
    answers, log = served
    page = _as_served(TEMPLATE.read_text())
    for case, a in answers.items():
        assert page.fullmatch(a.body.decode("utf-8")), case  # Squid's 5.7 reading of it
        assert_writ_unavailable(a.status, a.headers, a.body)
        assert int(a.headers["Content-Length"]) == len(a.body), case
        assert a.headers["Content-Type"].lower().startswith("text/html;charset=utf-8"), case
        text = a.body.decode("utf-8")  # Squid's substitutions keep it UTF-8
        assert "[unknown]" not in text, case  # Squid's stand-in for a code it lacks
        assert PROXY_NAME in text, case
        assert RFC1123.search(text), case  # %T
    # a CONNECT's %U is Squid's "https://HOST/*"
    assert "https://fine.example/*" in answers["connect"].body.decode()
    noted = [line for line in log.splitlines()
             if "ERR_WRIT_UNAVAILABLE" in line or "error page" in line.lower()]
    assert not noted, noted


def test_the_page_is_valid_html(served: tuple[dict[str, Answer], str]) -> None:
    tidy = tidy_binary()
    for case, a in served[0].items():
        found = problems(tidy, a.body)
        assert not found, f"{case}: {found}"


@pytest.fixture(scope="module")
def replay(served: tuple[dict[str, Answer], str]) -> Iterator[tuple[int, list[str]]]:
    """A loopback server that answers GET /CASE with Squid's answer for CASE,
    byte for byte, then closes; its port and the request lines it got."""
    answers = served[0]
    seen: list[str] = []
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                head = b""
                while b"\r\n\r\n" not in head and (chunk := conn.recv(65536)):
                    head += chunk
                line = head.split(b"\r\n")[0].decode("latin-1")
                seen.append(line)
                case = line.split(" ")[1].lstrip("/") if line.count(" ") == 2 else ""
                conn.sendall(answers[case].raw if case in answers
                             else b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")

    threading.Thread(target=serve, daemon=True).start()
    yield listener.getsockname()[1], seen
    listener.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium.browser(width=1280, height=900,
                          resolver="MAP * ~NOTFOUND, EXCLUDE 127.0.0.1") as driver:
        yield driver


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return chromium.screenshot_folder(tmp_path_factory)


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("case", sorted(TARGETS))
def test_the_page_in_chromium(served: tuple[dict[str, Answer], str],
                              replay: tuple[int, list[str]], browser: Any, shots: Path,
                              case: str, width: int) -> None:
    port, seen = replay
    url = f"http://127.0.0.1:{port}/{case}"
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": width, "height": 800, "deviceScaleFactor": 1, "mobile": width < 600})
    browser.get_log("performance")
    browser.get_log("browser")  # start both logs empty
    seen.clear()
    browser.get(url)

    assert browser.execute_script("return document.documentElement.lang") in LANGS
    texts = browser.execute_script(TEXT_BY_LANG_JS)
    for lang, phrases in PHRASES.items():
        for phrase in phrases:
            assert phrase in texts.get(lang, ""), f"[{lang}] lacks {phrase!r}: {texts}"

    # The URL is the text Squid put in for %U, shown as it is; no script is
    # in the page and none ran.
    body = served[0][case].body.decode("utf-8")
    shown = [c.text for c in browser.find_elements("css selector", "code")]
    assert shown, "the page shows no URL"
    url_in_page = re.search(r"<code[^>]*>(.*?)</code>", body, re.S)
    assert url_in_page is not None
    assert html.unescape(url_in_page.group(1)) in shown
    host = TARGETS[case].split("/")[2]
    assert any(s.startswith(f"http://{host}/") for s in shown), shown
    if case == "markup":  # Squid HTML-escapes it, and drops the query (strip_query_terms)
        assert TARGETS[case].split("?")[0] + "?" in shown
    assert browser.execute_script("return document.scripts.length") == 0
    assert "ran" not in browser.title

    low = chromium.low_contrast(browser)
    assert not low, f"{case} below WCAG AA contrast: {low}"
    scroll = browser.execute_script("return document.documentElement.scrollWidth")
    inner = browser.execute_script("return window.innerWidth")
    assert scroll <= inner, f"{case} overflows {width}px: {scroll}px wide"

    requests = [u for u in chromium.requests_made(browser) if not u.startswith("data:")]
    assert requests == [url], f"{case} asked for more than the page: {requests}"
    assert seen == [f"GET /{case} HTTP/1.1"], seen
    # Chromium logs the page's own 503 as a failed load: that status is the point.
    expected = f"{url} - Failed to load resource: the server responded with a status of 503"
    errors = [e for e in browser.get_log("browser")
              if e["level"] == "SEVERE" and not e["message"].startswith(expected)]
    assert not errors, f"{case} console: {errors}"

    chromium.screenshot(browser, shots / f"outage-{case}-{width}.png")
