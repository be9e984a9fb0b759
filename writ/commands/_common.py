"""Small pieces shared by the command modules."""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["UsageError", "parse_instant"]


class UsageError(Exception):
    """A bad invocation (no such folder, bad flag value): exit 2."""


def parse_instant(text: str) -> datetime:
    """`--at` values: RFC 3339 / ISO 8601, a bare date (00:00 UTC), or `now`."""
    if text == "now":
        return datetime.now(UTC)
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"--at: not a date or time: {text!r} (e.g. 2015-09-28T12:00:00+06:00)"
        ) from None
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)
