"""The public pages in Debian's headless Chromium against a real `writ web` on loopback.

Each page in each bundled language at 360 px and 1280 px: no request leaves
the page's origin, no console errors, no horizontal overflow, the order ids
and court names are on the page. Screenshots go to the folder named by
WRIT_SCREENSHOTS (default: the test's temporary folder; the path is printed).

Chromium (tests/chromium.py) resolves only the names the test maps to
127.0.0.1 (everything else is NOTFOUND) and its background services are off:
nothing leaves loopback. Selenium drives the system chromedriver (SE_OFFLINE:
Selenium Manager never downloads anything). With CI=true a missing chromium
fails instead of skipping.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests import chromium
from tests.children import wait_http
from tests.ports import free_port

HERE = Path(__file__).parent
LANGS = ("kk", "ru", "en")
WIDTHS = (360, 1280)
BLOCKED_HOST = "streams.example"
LONG_ID = "KZ-" + "L" * 125  # the longest id an order may have (browser_orders.yaml)
# page name -> (path, host or None for the register's own address, text that must be there)
PAGES: dict[str, tuple[str, str | None, tuple[str, ...]]] = {
    "block": ("/", BLOCKED_HOST, ("KZ-2015-001", "Northgate District Court", "2-1017/2015")),
    "orders": ("/orders", None, ("KZ-2015-001", "KZ-2015-002", "Northgate District Court",
                                 "Southgate Specialised Court")),
    "order": ("/orders/KZ-2015-001", None, ("KZ-2015-001", "KZ-2015-003",
                                             "Northgate District Court")),
    "confidential": ("/orders/KZ-2015-002", None, ("KZ-2015-002",
                                                    "Southgate Specialised Court")),
    "lookup": (f"/lookup?q={BLOCKED_HOST}", None, ("KZ-2015-001", "Northgate District Court")),
    # attack pages: markup in every field stays text; unbroken long text never overflows
    "evil": ("/orders/EVIL-1", None, ("EVIL-1", "<script>alert(1)</script>")),
    "long": (f"/orders/{LONG_ID}", None, (LONG_ID,)),
}

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`writ web` as a process, serving the sample orders and the register."""
    work = tmp_path_factory.mktemp("writ-web")
    (work / "orders").mkdir()
    shutil.copy(HERE / "browser_orders.yaml", work / "orders" / "orders.yaml")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    (work / "policy.yaml").write_text(
        f"operator: Example ISP\ntimezone: Asia/Almaty\n"
        f"web:\n  listen: 127.0.0.1:{port}\n"
        f"pages:\n  register_url: {base}\n  default_language: kk\n"
        f"  contest: 'Questions: call 0000 (free), or write to legal@isp.example.'\n",
        encoding="utf-8")
    proc = subprocess.Popen(
        [sys.executable, "-m", "writ.cli", "web", "--orders", "orders", "--policy", "policy.yaml",
         "--state-dir", "state"],
        cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_http(f"{base}/orders", proc, time.monotonic() + 30, "writ web")
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def browser(web: str) -> Iterator[Any]:
    rules = f"MAP {BLOCKED_HOST} 127.0.0.1, MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"
    with chromium.browser(width=1280, height=900, resolver=rules, extra=()) as driver:
        yield driver


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return chromium.screenshot_folder(tmp_path_factory)


def _origin(url: str) -> tuple[str, str | None, int | None]:
    u = urlsplit(url)
    return u.scheme, u.hostname, u.port


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("page", sorted(PAGES))
def test_page(browser: Any, web: str, shots: Path, page: str, lang: str, width: int) -> None:
    path, host, must = PAGES[page]
    port = urlsplit(web).port
    base = f"http://{host}:{port}" if host else web
    url = f"{base}{path}{'&' if '?' in path else '?'}lang={lang}"
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": width, "height": 800, "deviceScaleFactor": 1, "mobile": width < 600})
    browser.get_log("performance")
    browser.get_log("browser")  # start both logs empty
    browser.get(url)

    assert browser.execute_script("return document.documentElement.lang") == lang
    assert browser.execute_script("return document.scripts.length") == 0  # works without JS
    low = chromium.low_contrast(browser)
    assert not low, f"{page} [{lang}] below WCAG AA contrast: {low}"
    text = browser.find_element("tag name", "body").text
    for needle in must:
        assert needle in text, f"{page} [{lang}] lacks {needle!r}"
    if page == "confidential":
        assert "secret-one" not in browser.page_source
    scroll = browser.execute_script("return document.documentElement.scrollWidth")
    inner = browser.execute_script("return window.innerWidth")
    assert scroll <= inner, f"{page} [{lang}] overflows {width}px: {scroll}px wide"

    requests = chromium.requests_made(browser)
    assert requests, "the performance log saw no request"
    foreign = [u for u in requests
               if not u.startswith("data:") and _origin(u) != _origin(url)]
    assert not foreign, f"{page} [{lang}] asked elsewhere: {foreign}"
    # Chromium logs the block page's own 451 as a failed load: that status is the point.
    expected = f"{url} - Failed to load resource: the server responded with a status of 451"
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"
              and not (page == "block" and e["message"].startswith(expected))]
    assert not errors, f"{page} [{lang}] console: {errors}"

    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": width, "height": min(int(height), 4000), "deviceScaleFactor": 1,
        "mobile": width < 600})
    assert browser.save_screenshot(str(shots / f"{page}-{lang}-{width}.png"))
