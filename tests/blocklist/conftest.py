"""Fixtures for the core's tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def orders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty orders folder, addressed as `orders` from the current directory."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "orders").mkdir()
    return Path("orders")
