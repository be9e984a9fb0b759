"""Decision log: hash-chained, sealed, checkpointed; verify and report."""

from writ.audit.sink import DecisionSink, MemorySink

__all__ = ["DecisionSink", "MemorySink"]
