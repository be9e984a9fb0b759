"""Debian's headless Chromium, driven by Selenium through the system chromedriver.

Shared by the audit report's tests (tests/audit/htmlreport), the public
pages' tests (tests/web/test_browser.py) and the outage page's behind Squid
(tests/icap/test_squid_outage_page.py). Never Selenium Manager (it would
download a browser and a driver): the driver's path is given explicitly and
SE_OFFLINE is set. Every host name resolves to nothing (`--host-resolver-rules`)
unless the caller maps one to loopback, so even a page that tried could not
reach past this machine; the DevTools network log says what it tried, the
browser log what the console said. WRIT_CHROMIUM / WRIT_CHROMEDRIVER name other
binaries. Without Chromium the tests skip locally and fail in CI (CI=true),
like Redis.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
DRIVER = ("/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver")


def screenshot_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder named by WRIT_SCREENSHOTS (made if missing), else a temporary
    one; printed, so a run says where its screenshots went."""
    folder = Path(os.environ.get("WRIT_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"screenshots: {folder}")
    return folder


def _first(paths: tuple[str, ...], name: str, env: str) -> str | None:
    if os.environ.get(env):
        return os.environ[env] if os.access(os.environ[env], os.X_OK) else None
    for p in paths:
        if os.access(p, os.X_OK):
            return p
    return shutil.which(name)


def binaries() -> tuple[str, str]:
    browser, driver = (_first(CHROMIUM, "chromium", "WRIT_CHROMIUM"),
                       _first(DRIVER, "chromedriver", "WRIT_CHROMEDRIVER"))
    if browser is None or driver is None:
        why = "Chromium and chromium-driver are needed (apt-get install chromium chromium-driver)"
        if os.environ.get("CI") == "true":
            pytest.fail(why)
        pytest.skip(why)
    return browser, driver


@contextmanager
def browser(width: int = 1100, height: int = 900, resolver: str = "MAP * ~NOTFOUND",
            extra: tuple[str, ...] = ("--hide-scrollbars", "--force-device-scale-factor=1"),
            ) -> Iterator[Any]:
    """A headless Chromium whose names resolve only as `resolver` says.

    `extra` are further switches; the default ones keep screenshots the same
    from run to run."""
    browser_bin, driver_bin = binaries()
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must not fetch anything
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = browser_bin
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--no-first-run", "--no-default-browser-check", "--disable-extensions",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--disable-default-apps", "--metrics-recording-only",
                "--disable-features=Translate,OptimizationHints,MediaRouter",
                f"--host-resolver-rules={resolver}", f"--window-size={width},{height}", *extra):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(options=opts, service=Service(executable_path=driver_bin))
    try:
        yield driver
    finally:
        driver.quit()


def requests_made(driver: Any) -> list[str]:
    """URLs the page asked the network for (DevTools Network.requestWillBeSent)."""
    urls = []
    for entry in driver.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg.get("method") == "Network.requestWillBeSent":
            urls.append(msg["params"]["request"]["url"])
    return urls


def screenshot(driver: Any, out: Path, height: int | None = None) -> None:
    """A PNG of the page from its top, `height` CSS pixels tall (None: all of it)."""
    full = driver.execute_script("return document.documentElement.scrollHeight")
    width = driver.execute_script("return document.documentElement.scrollWidth")
    clip = {"x": 0, "y": 0, "width": width, "height": min(height or full, full), "scale": 1}
    shot = driver.execute_cdp_cmd("Page.captureScreenshot",
                                  {"format": "png", "clip": clip, "captureBeyondViewport": True})
    out.write_bytes(base64.b64decode(shot["data"]))


# WCAG 2.1 contrast (SC 1.4.3, AA): 4.5:1 for text, 3:1 for large text (24 px, or
# 18.66 px bold). For each element with its own text: its computed colour against
# the first opaque background up its ancestors (the page is white at the top).
_CONTRAST_JS = """
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


def low_contrast(driver: Any) -> list[str]:
    """The loaded page's text elements below WCAG AA contrast, as "TAG ratio"."""
    return list(driver.execute_script(_CONTRAST_JS))
