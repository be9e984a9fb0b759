"""The audit writer's own failures: counted, logged rate-limited, kept for the chain.

Invariants (writer.py: nothing raised inside the writer thread ends it):
- Every failure is remembered as the operator's `last` message, counted
  (unless its caller counts it itself) and kept, by kind, until the writer
  writes it into the chain as a `writ.audit.error` record (`take()`; `keep()`
  puts back what a refused write lost).
- The node's `writ.audit` logger hears of each kind at most once per
  LOG_EVERY seconds, with how many more came in between.
- A failure to write decisions clears `ok` (/readyz, `writ_writer_ok`) until
  a write succeeds; with `audit.on_failure: fail` the first one stops the
  node (SIGTERM to its own process), once — docs/operator.md.
Only the writer thread calls `failed`, `take` and `keep`.
"""

from __future__ import annotations

import logging
import os
import signal
import time

__all__ = ["LOG_EVERY", "Troubles", "describe"]

LOG_EVERY = 10.0  # seconds between two log lines about the same kind of failure

_logger = logging.getLogger("writ.audit")

Pending = dict[str, tuple[int, str]]  # kind -> (count, last message)


class Troubles:
    def __init__(self, on_failure: str) -> None:
        self.on_failure = on_failure
        self.count = 0  # failures counted (write_errors for /metrics)
        self.last: str | None = None  # the last failure's message, for the operator
        self.ok = True  # the last attempt to write decisions succeeded
        self._pending: Pending = {}
        self._logged: dict[str, tuple[float, int]] = {}  # kind -> (last logged, suppressed)
        self._stopped_node = False

    @property
    def pending(self) -> bool:
        """Failures not yet written into the chain."""
        return bool(self._pending)

    def failed(self, kind: str, message: str, *, cannot_write: bool = False,
               count: bool = True) -> None:
        """Count a failure, log it (rate-limited) and keep it for the chain."""
        if count:
            self.count += 1
        self.last = message
        n, _ = self._pending.get(kind, (0, ""))
        self._pending[kind] = (n + 1, message)
        now = time.monotonic()
        last, suppressed = self._logged.get(kind, (-LOG_EVERY, 0))
        if now - last >= LOG_EVERY:
            more = f" ({suppressed} more since the last report)" if suppressed else ""
            verb = "cannot write" if cannot_write else "failure"
            _logger.error("audit log %s (%s): %s%s", verb, kind, message, more)
            self._logged[kind] = (now, 0)
        else:
            self._logged[kind] = (last, suppressed + 1)
        if cannot_write:
            self.ok = False
            if self.on_failure == "fail" and not self._stopped_node:
                self._stopped_node = True
                _logger.critical("audit.on_failure is 'fail': stopping the node, which "
                                 "cannot record its decisions (%s)", message)
                os.kill(os.getpid(), signal.SIGTERM)

    def take(self) -> Pending:
        """The failures to write into the chain now, forgotten here."""
        taken, self._pending = self._pending, {}
        return taken

    def keep(self, errors: Pending) -> None:
        """Failures taken for a write that did not make it: to be written later."""
        for kind, (count, message) in errors.items():
            n, _ = self._pending.get(kind, (0, message))
            self._pending[kind] = (n + count, message)


def describe(e: BaseException) -> str:
    """An exception as one line for the log and the chain."""
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    return f"{type(e).__name__}: {e}"
