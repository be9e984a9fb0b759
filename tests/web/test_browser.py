"""The public pages in Debian's headless Chromium against a real `writ web` on loopback.

Each page in each bundled language at 360 px and 1280 px: no request leaves
the page's origin, no console errors, no horizontal overflow, the order ids
and court names are on the page. Screenshots go to the folder named by
WRIT_SCREENSHOTS (default: the test's temporary folder; the path is printed).

Chromium resolves only the names the test maps to 127.0.0.1 (everything else
is NOTFOUND) and its background services are off: nothing leaves loopback.
Selenium drives the system chromedriver (SE_OFFLINE=1: Selenium Manager never
downloads anything). With CI=true a missing chromium fails instead of skipping.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.ports import free_port

HERE = Path(__file__).parent
CHROMIUM = os.environ.get("WRIT_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("WRIT_CHROMEDRIVER", "/usr/bin/chromedriver")
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

# WCAG 2.1 contrast (SC 1.4.3, AA): 4.5:1 for text, 3:1 for large text (24 px, or
# 18.66 px bold). For each element with its own text: its computed colour against
# the first opaque background up its ancestors (the page is white at the top).
CONTRAST_JS = """
function rgb(s) { const m = s.match(/[\\d.]+/g).map(Number); return m.length > 3 ? m : [...m, 1]; }
function lum(c) { const f = v => { v /= 255; return v <= 0.03928 ? v / 12.92
                                   : Math.pow((v + 0.055) / 1.055, 2.4); };
                  return 0.2126 * f(c[0]) + 0.7152 * f(c[1]) + 0.0722 * f(c[2]); }
function bg(el) { for (; el; el = el.parentElement) { const c = rgb(getComputedStyle(el)
                  .backgroundColor); if (c[3] > 0) return c; } return [255, 255, 255, 1]; }
const low = [];
for (const el of document.body.querySelectorAll('*')) {
  if (![...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim())) continue;
  const st = getComputedStyle(el), size = parseFloat(st.fontSize);
  const large = size >= 24 || (size >= 18.66 && parseInt(st.fontWeight) >= 700);
  const a = lum(rgb(st.color)), b = lum(bg(el));
  const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
  if (ratio < (large ? 3 : 4.5)) low.push(el.tagName + ' ' + ratio.toFixed(2));
}
return low;
"""


def _need(path: str, package: str) -> None:
    if Path(path).exists():
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{path} is missing: install Debian's {package} (.ci/run does)")
    pytest.skip(f"{path} not installed (Debian package {package})")


def _wait(url: str, proc: subprocess.Popen[str], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"writ web exited {proc.returncode}: {proc.stderr.read()}")  # type: ignore[union-attr]
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not come up")


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
        _wait(f"{base}/orders", proc)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def browser(web: str) -> Iterator[Any]:
    _need(CHROMIUM, "chromium")
    _need(CHROMEDRIVER, "chromium-driver")
    os.environ["SE_OFFLINE"] = "1"  # never let Selenium Manager fetch a driver
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--no-first-run", "--no-default-browser-check", "--disable-extensions",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--disable-default-apps", "--metrics-recording-only",
                "--disable-features=Translate,OptimizationHints,MediaRouter",
                f"--host-resolver-rules=MAP {BLOCKED_HOST} 127.0.0.1, MAP * ~NOTFOUND,"
                " EXCLUDE 127.0.0.1",
                "--window-size=1280,900"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = Path(os.environ.get("WRIT_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"screenshots: {folder}")
    return folder


def _requests(driver: Any) -> list[str]:
    urls = []
    for entry in driver.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg["method"] == "Network.requestWillBeSent":
            urls.append(msg["params"]["request"]["url"])
    return urls


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
    low = browser.execute_script(CONTRAST_JS)
    assert not low, f"{page} [{lang}] below WCAG AA contrast: {low}"
    text = browser.find_element("tag name", "body").text
    for needle in must:
        assert needle in text, f"{page} [{lang}] lacks {needle!r}"
    if page == "confidential":
        assert "secret-one" not in browser.page_source
    scroll = browser.execute_script("return document.documentElement.scrollWidth")
    inner = browser.execute_script("return window.innerWidth")
    assert scroll <= inner, f"{page} [{lang}] overflows {width}px: {scroll}px wide"

    requests = _requests(browser)
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
