"""Decision log: hash-chained, sealed, checkpointed; verify and report.

Shells: `Recorder` (counts, filters and queues every decision as one
`Record`; `Outcome`, `Action`, `Component` are its enums). Writer: `AuditLog`
(the sink a node gives the recorders; `AuditLog.from_policy` opens it as a
policy says). Auditors:
`verify`, `summarise`, `read_checkpoints`, `load_public_key`.
"""

from writ.audit.checkpoint import (
    Checkpoint,
    Checkpointer,
    load_or_create_signing_key,
    load_public_key,
    public_pem,
    read_checkpoints,
)
from writ.audit.privacy import ClientMasker
from writ.audit.recorder import (
    Action,
    Component,
    Counts,
    Line,
    Outcome,
    Record,
    Recorder,
    RecordSink,
)
from writ.audit.report import AuditSummary, summarise
from writ.audit.sink import MemorySink
from writ.audit.verify import Finding, VerifyReport, verify
from writ.audit.writer import AuditLog

__all__ = [
    "Action",
    "AuditLog",
    "AuditSummary",
    "Checkpoint",
    "Checkpointer",
    "ClientMasker",
    "Component",
    "Counts",
    "Finding",
    "Line",
    "MemorySink",
    "Outcome",
    "Record",
    "RecordSink",
    "Recorder",
    "VerifyReport",
    "load_or_create_signing_key",
    "load_public_key",
    "public_pem",
    "read_checkpoints",
    "summarise",
    "verify",
]
