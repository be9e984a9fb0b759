"""writ as a child process in a test: where it listens, when it serves.

A child that exits before it is ready fails the test with its stderr.
"""

from __future__ import annotations

import re
import subprocess
import time
import urllib.request
from pathlib import Path

__all__ = ["ChildExited", "child_pids", "listening_port", "wait_http"]


class ChildExited(AssertionError):
    """The child exited before it served; `stderr` is what it said."""

    def __init__(self, message: str, stderr: str) -> None:
        super().__init__(message)
        self.stderr = stderr


def listening_port(proc: subprocess.Popen[str], what: str = "writ dns", lines: int = 20) -> int:
    """The port of the child's "listening on 127.0.0.1:PORT" line on stderr
    (read line by line: store log lines may come first)."""
    assert proc.stderr is not None
    said = []
    for _ in range(lines):
        line = proc.stderr.readline()
        said.append(line)
        m = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
        if m:
            return int(m.group(1))
    raise AssertionError(f"{what} never said where it listens; it said:\n{''.join(said)}")


def child_pids(pid: int) -> list[int]:
    """The processes whose parent is `pid` (from /proc), e.g. a node's workers."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def wait_http(url: str, proc: subprocess.Popen[str], deadline: float, what: str) -> None:
    """Until `url` answers 200 (by time.monotonic() `deadline`)."""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read() if proc.stderr else ""
            raise ChildExited(f"{what} exited {proc.returncode}:\n{err}", err)
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not come up")
