"""Decision log: hash-chained, sealed, checkpointed; verify and report.

Writers: `AuditLog` (the DecisionSink a node wires into its shells;
`AuditLog.from_policy` opens it as a policy says). Auditors:
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
from writ.audit.report import AuditSummary, summarise
from writ.audit.sink import DecisionSink, MemorySink
from writ.audit.verify import Finding, VerifyReport, verify
from writ.audit.writer import AuditLog

__all__ = [
    "AuditLog",
    "AuditSummary",
    "Checkpoint",
    "Checkpointer",
    "ClientMasker",
    "DecisionSink",
    "Finding",
    "MemorySink",
    "VerifyReport",
    "load_or_create_signing_key",
    "load_public_key",
    "public_pem",
    "read_checkpoints",
    "summarise",
    "verify",
]
