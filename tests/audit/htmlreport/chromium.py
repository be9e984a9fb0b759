"""Debian's headless Chromium, driven by Selenium through the system chromedriver.

Never Selenium Manager (it would download a browser and a driver): the
driver's path is given explicitly and SE_OFFLINE is set. Every host name
resolves to nothing (`--host-resolver-rules`), so even a page that tried could
not reach past this machine; the DevTools network log says what it tried.
Without Chromium the tests skip locally and fail in CI (CI=true), like Redis.
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


def _first(paths: tuple[str, ...], name: str) -> str | None:
    for p in paths:
        if os.access(p, os.X_OK):
            return p
    return shutil.which(name)


def binaries() -> tuple[str, str]:
    browser, driver = _first(CHROMIUM, "chromium"), _first(DRIVER, "chromedriver")
    if browser is None or driver is None:
        why = "Chromium and chromium-driver are needed (apt-get install chromium chromium-driver)"
        if os.environ.get("CI") == "true":
            pytest.fail(why)
        pytest.skip(why)
    return browser, driver


@contextmanager
def browser(width: int = 1100, height: int = 900) -> Iterator[Any]:
    browser_bin, driver_bin = binaries()
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must not fetch anything
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = browser_bin
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--no-first-run", "--disable-extensions", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--metrics-recording-only",
                "--host-resolver-rules=MAP * ~NOTFOUND", f"--window-size={width},{height}",
                "--hide-scrollbars", "--force-device-scale-factor=1"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"performance": "ALL"})
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
