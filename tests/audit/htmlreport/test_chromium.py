"""The report in Debian's headless Chromium: it renders, asks the network for
nothing, and prints to PDF."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from tests.audit.htmlreport import signed
from tests.audit.htmlreport.scenario import build
from tests.audit.htmlreport.test_sets import hostile_log
from tests.chromium import browser, requests_made
from writ.cli import main

pytestmark = pytest.mark.e2e


def test_the_report_renders_in_chromium_with_no_external_request(tmp_path: Path) -> None:
    files, orders = build(tmp_path)
    out = tmp_path / "report.html"
    assert main(["audit", "report", "--html", str(out), "--orders", str(orders),
                 *map(str, files)]) == 0
    with browser() as driver:
        driver.get(out.resolve().as_uri())
        assert driver.title == "writ audit report"
        verdicts = driver.execute_script(
            "return [...document.querySelectorAll('.verdict .state')].map(e => e.innerText)")
        assert verdicts == ["edge-1: INTACT", "edge-2: INTACT"]
        sizes = driver.execute_script(
            "return [...document.querySelectorAll('figure svg')].map(s => {"
            " const r = s.getBoundingClientRect(); return [r.width, r.height]; })")
        assert len(sizes) >= 4
        assert all(w > 300 and h > 80 for w, h in sizes), sizes
        finding = driver.execute_script(
            "return document.querySelector('#outside-count').innerText")
        assert finding.startswith("2 decision(s) named an order that was not in force")
        pdf = driver.execute_cdp_cmd("Page.printToPDF", {"printBackground": True})
        assert base64.b64decode(pdf["data"]).startswith(b"%PDF")
        assert requests_made(driver) == [out.resolve().as_uri()]


@pytest.mark.parametrize("width", [1100, 800])
def test_the_signed_set_sections_fit_and_the_console_is_quiet(tmp_path: Path, width: int) -> None:
    """Signed sets, key changes and writer errors (with markup and a 300-character
    signer in the fields) render as text, inside the page's width, with no console error."""
    files = signed.build(tmp_path) + hostile_log(tmp_path / "hostile")
    out = tmp_path / "report.html"
    assert main(["audit", "report", "--html", str(out), *map(str, files)]) == 0
    with browser(width=width) as driver:
        driver.get_log("browser")
        driver.get(out.resolve().as_uri())
        assert driver.execute_script("return document.scripts.length") == 0
        ids = driver.execute_script(
            "return ['sets-edge-s', 'sets-edge-w', 'sets-edge-h', 'unsigned', 'expired', "
            "'splits', 'key-changes', 'writer-errors', 'errors-edge-h']"
            ".filter(i => document.getElementById(i)?.querySelector('tbody tr'))")
        assert len(ids) == 9, ids
        text = driver.find_element("id", "sets-edge-h").text
        assert "<script>alert(1)</script>" in text  # shown as text, not run
        scroll = driver.execute_script("return document.documentElement.scrollWidth")
        inner = driver.execute_script("return window.innerWidth")
        assert scroll <= inner, f"overflows {width}px: {scroll}px wide"
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert not errors, errors
        assert requests_made(driver) == [out.resolve().as_uri()]


def test_a_page_that_asks_for_more_is_seen_asking(tmp_path: Path) -> None:
    """The request check can fail: a page with an external image is caught."""
    page = tmp_path / "leaky.html"
    page.write_text('<!DOCTYPE html><title>x</title><img src="http://tracker.example/x.png">')
    with browser() as driver:
        driver.get(page.resolve().as_uri())
        assert "http://tracker.example/x.png" in requests_made(driver)
