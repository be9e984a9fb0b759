"""HTML validation with HTML Tidy (Debian's `tidy`), for every page people see.

Without tidy the tests skip locally and fail in CI (CI=true: .ci/run installs it).
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

__all__ = ["problems", "tidy_binary"]


def tidy_binary() -> str:
    found = shutil.which("tidy")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("tidy (Debian package tidy) is missing: .ci/run installs it")
        pytest.skip("tidy not installed")
    return found


def problems(tidy: str, page: bytes) -> str:
    """Tidy's warnings and errors for a UTF-8 page ("" when it has none)."""
    r = subprocess.run([tidy, "-q", "-e", "-utf8"], input=page, capture_output=True,
                       check=False)
    if r.returncode == 0:
        return ""
    return r.stderr.decode("utf-8", "replace") or f"tidy exited {r.returncode}"
