"""Loading and validating court orders (DESIGN §2). PLACEHOLDER — being written."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import tzinfo
from pathlib import Path

from writ.blocklist.model import Act, OrderError

__all__ = ["LoadResult", "load_orders"]


@dataclass(frozen=True, slots=True)
class LoadResult:
    acts: tuple[Act, ...]
    errors: tuple[OrderError, ...]

    @property
    def ok(self) -> bool:
        return not self.errors


def load_orders(directory: Path, tz: tzinfo | None = None) -> LoadResult:
    """Load every *.yaml / *.yml file under `directory` (recursively).

    Bare dates mean 00:00 in `tz` (default UTC). Never raises for bad input:
    every problem becomes an OrderError; `acts` is empty when there are errors.
    """
    raise NotImplementedError
