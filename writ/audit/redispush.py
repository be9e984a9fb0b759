"""Copying checkpoints to a Redis list, off the audit writer's thread.

Invariants:
- The writer only hands a line over (`offer`): it never waits on the network.
  A dead Sentinel costs redis-py seconds per attempt (retries with backoff);
  on the writer's thread that stalled every decision behind it.
- The client comes from the one Redis connection factory
  (writ.blocklist.stores.connection), so every URL form the store accepts
  works here (docs/design.md).
- Nothing raised here escapes: every failure is counted in `failures`, the
  last one kept in `last_error` (the writer writes both into the chain).
- At most MAX_PENDING lines wait; past that a line is counted as a failure
  (its checkpoint is still in the local file).
"""

from __future__ import annotations

import contextlib
import queue
import threading
from typing import Any

__all__ = ["RedisPusher"]

MAX_PENDING = 1000
_STOP = None


class RedisPusher:
    def __init__(self, url: str, key_prefix: str, timeout: float = 0.5) -> None:
        self.url = url
        self.key_prefix = key_prefix
        self.timeout = timeout
        self.failures = 0
        self.pushed = 0
        self.last_error: str | None = None
        self._queue: queue.Queue[tuple[str, str] | None] = queue.Queue(MAX_PENDING)
        self._client: Any = None
        self._thread = threading.Thread(target=self._run, name="writ-audit-push", daemon=True)
        self._thread.start()

    def offer(self, node: str, line: str) -> None:
        try:
            self._queue.put_nowait((node, line.rstrip("\n")))
        except queue.Full:
            self.failures += 1
            self.last_error = f"{MAX_PENDING} checkpoints waiting for Redis: this one not pushed"

    def close(self, timeout: float = 5.0) -> None:
        """Push what is queued (for up to `timeout` seconds), then stop."""
        with contextlib.suppress(queue.Full):
            self._queue.put(_STOP, timeout=timeout)
        self._thread.join(timeout)

    def _run(self) -> None:
        while (item := self._queue.get()) is not _STOP:
            self._push(*item)
        self._drop_client()

    def _push(self, node: str, line: str) -> None:
        from writ.blocklist.stores.connection import connect_sync, redact

        try:
            if self._client is None:
                self._client = connect_sync(self.url, connect_timeout=self.timeout,
                                            read_timeout=self.timeout)
            self._client.rpush(self.key_prefix + node, line)
            self.pushed += 1
        except Exception as e:  # noqa: BLE001 - a push never stops anything (see top)
            self.failures += 1
            self.last_error = f"{redact(self.url)}: {type(e).__name__}: {e}"
            self._drop_client()

    def _drop_client(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()
