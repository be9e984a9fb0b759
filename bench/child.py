"""Load measured in a fresh process: its peak RSS is the load's alone.

A benchmark script reruns itself as `SCRIPT --child FOLDER`; the child prints
one JSON object (its last line), which `measure_in_child` returns.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["answer_as_child", "measure_in_child"]


def measure_in_child(script: str, folder: Path) -> dict[str, Any]:
    """Run `script --child folder`; its last stdout line, parsed. A failed child
    stops the benchmark with the child's stderr."""
    proc = subprocess.run([sys.executable, script, "--child", str(folder)],
                          capture_output=True, text=True, check=False)
    if proc.returncode:
        raise SystemExit(proc.stderr)
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


def answer_as_child(measure: Callable[[Path], dict[str, Any]], folder: Path) -> dict[str, Any]:
    """The child's side: measure, print the result as the one JSON line."""
    out = measure(folder)
    print(json.dumps(out))
    return out
