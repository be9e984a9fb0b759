"""Where the recorder puts the decisions it keeps (writ.audit.recorder).

A sink's `enqueue(record)` must return at once: the node's AuditLog appends
to its queue and writes off the hot path; a `writ dns --workers` worker's
QueueSink batches records to the parent's AuditLog. MemorySink keeps them in
a list, for tests.
"""

from __future__ import annotations

from typing import Any

from writ.audit.recorder import Record, RecordSink

__all__ = ["MemorySink", "RecordSink"]


class MemorySink:
    """Keeps the records it is given, as dicts of the record's fields (no `ts`)."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def enqueue(self, record: Record) -> None:
        fields = record._asdict()
        del fields["ts"]
        fields["orders"] = list(record.orders)
        self.records.append(fields)
