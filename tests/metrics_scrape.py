"""Scraping a writ child's metrics listener in a test: where it listens, its samples."""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable

__all__ = ["get", "ports_of", "ready", "samples", "scrape", "total", "wait_for"]


def ports_of(proc: subprocess.Popen[str], *patterns: str, lines: int = 60) -> list[int]:
    """The port after each regex in `patterns` (each ending in `127.0.0.1:`), read
    from the child's stderr line by line until all are found."""
    assert proc.stderr is not None
    found: dict[str, int] = {}
    said = []
    for _ in range(lines):
        line = proc.stderr.readline()
        said.append(line)
        for pattern in patterns:
            m = re.search(pattern + r"(\d+)", line)
            if m and pattern not in found:
                found[pattern] = int(m.group(1))
        if len(found) == len(patterns) or not line:
            break
    if len(found) < len(patterns):
        proc.kill()
        raise AssertionError(f"the child never said where it listens:\n{''.join(said)}")
    return [found[p] for p in patterns]


def get(port: int, path: str, timeout: float = 5.0) -> tuple[int, str, str]:
    """(status, content type, body) of GET http://127.0.0.1:PORT/PATH."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read().decode()


def samples(text: str) -> dict[str, float]:
    """`name{labels}` -> value of every sample line of a Prometheus text page."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            out[key] = float(value)
    return out


def scrape(port: int) -> dict[str, float]:
    status, ctype, body = get(port, "/metrics")
    assert status == 200, body
    assert ctype.startswith("text/plain; version=0.0.4")
    return samples(body)


def total(s: dict[str, float], prefix: str) -> float:
    return sum(v for k, v in s.items() if k.startswith(prefix))


def wait_for(check: Callable[[], bool], proc: subprocess.Popen[str], what: str,
             seconds: float = 20.0) -> None:
    """Until `check()` holds; fails naming `what` if the child exits or time runs out."""
    deadline = time.monotonic() + seconds
    while not check():
        assert proc.poll() is None, f"the child exited ({proc.returncode}) waiting for {what}"
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.1)


def ready(port: int) -> dict[str, object]:
    status, _, body = get(port, "/readyz")
    return {"status": status, **json.loads(body)}
