"""Regenerate docs/audit-report.png: the scenario's report, as headless Chromium shows it.

    .venv/bin/python -m tests.audit.htmlreport.screenshot docs/audit-report.png
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from tests.audit.htmlreport.chromium import browser, requests_made, screenshot
from tests.audit.htmlreport.scenario import build
from writ.cli import main


def run(out: Path, height: int = 2500) -> None:
    with tempfile.TemporaryDirectory(prefix="writ-shot-") as d:
        files, orders = build(Path(d))
        html = Path(d) / "report.html"
        main(["audit", "report", "--html", str(html), "--orders", str(orders),
              "--silent-after", "12h", *map(str, files)])
        with browser(width=1000) as driver:
            driver.get(html.resolve().as_uri())
            screenshot(driver, out, height)
            assert requests_made(driver) == [html.resolve().as_uri()]


if __name__ == "__main__":
    run(Path(sys.argv[1]))
