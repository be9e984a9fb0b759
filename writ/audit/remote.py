"""One chain per node when the resolver runs several worker processes.

The parent owns the AuditLog and listens on a Unix socket (`AuditLog.serve`);
each worker holds a SocketSink, the DecisionSink it hands to its shells.

Invariants:
- SocketSink.record() only appends to a deque; a sender thread ships batches
  as JSON lines. The hot path never touches the socket.
- A worker never blocks long: its buffer is bounded, and sends time out. What
  cannot be delivered (parent gone, buffer full) is counted, and the count is
  sent as soon as the parent is reachable again, so the chain records it as a
  `writ.audit.dropped` record instead of losing it silently.
- Records keep the worker's own decision time (`ts`), not the time of arrival.
- The socket is created 0600: only the node's own user may write decisions.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from writ.audit.writer import AuditLog

__all__ = ["SinkServer", "SocketSink"]

_SEND_INTERVAL = 0.005
_BATCH = 1024


class SinkServer:
    """Accepts workers' records and queues them in the parent's AuditLog."""

    def __init__(self, log: AuditLog, path: Path) -> None:
        self.log = log
        self.path = Path(path)
        self.received = 0
        self.bad_messages = 0
        self._sock: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._closing = False

    def start(self) -> SinkServer:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # a socket left by a previous run
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            sock.bind(str(self.path))
        finally:
            os.umask(old)
        sock.listen(64)
        self._sock = sock
        t = threading.Thread(target=self._accept, name="writ-audit-listener", daemon=True)
        t.start()
        self._threads.append(t)
        return self

    def _accept(self) -> None:
        assert self._sock is not None
        while not self._closing:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return  # closed
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True,
                                 name="writ-audit-conn")
            t.start()
            self._threads.append(t)

    def _serve(self, conn: socket.socket) -> None:
        with conn, conn.makefile("rb") as f:
            for raw in f:
                try:
                    msg = json.loads(raw)
                    if "d" in msg:
                        self.log.note_dropped(int(msg["d"]))
                        continue
                    ts, comp, client, target, decision, action, orders, rule, ver = msg["r"]
                    item = (float(ts), str(comp), str(client), str(target), str(decision),
                            str(action), tuple(str(o) for o in orders), rule, ver)
                except (ValueError, KeyError, TypeError):
                    self.bad_messages += 1
                    continue
                self.received += 1
                self.log.enqueue(item)

    def close(self) -> None:
        """Stop accepting; records already received stay queued in the log."""
        self._closing = True
        if self._sock is not None:
            # shutdown wakes the accept() blocked in the listener thread
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)
            self._sock.close()
            self._sock = None
        for t in self._threads[1:]:
            t.join(timeout=2)  # connection threads end when their workers hang up
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


class SocketSink:
    """DecisionSink for a worker process: batches records to the parent's SinkServer."""

    def __init__(self, path: Path, *, buffer_size: int = 100_000, timeout: float = 0.5) -> None:
        self.path = Path(path)
        self.buffer_size = buffer_size
        self.timeout = timeout
        self.sent = 0
        self.drops = 0  # total records this worker could not deliver
        self._unreported = 0  # drops the parent has not been told about yet
        self._buf: deque[list[Any]] = deque()
        self._sock: socket.socket | None = None
        self._wake = threading.Event()
        self._stopping = False
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="writ-audit-sender", daemon=True)
        self._thread.start()

    def record(self, *, component: str, client: str, target: str, decision: str, action: str,
               orders: Sequence[str], rule: str | None, blocklist_version: str | None) -> None:
        if len(self._buf) >= self.buffer_size:
            with self._lock:
                self.drops += 1
                self._unreported += 1
            return
        self._buf.append([time.time(), component, client, target, decision, action,
                          list(orders), rule, blocklist_version])

    def _connect(self) -> bool:
        if self._sock is not None:
            return True
        try:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(self.timeout)
            sock.connect(str(self.path))
        except OSError:
            return False
        self._sock = sock
        return True

    def _send(self, batch: list[list[Any]]) -> None:
        lines = []
        with self._lock:
            unreported, self._unreported = self._unreported, 0
        if unreported:
            lines.append(json.dumps({"d": unreported}))
        lines.extend(json.dumps({"r": r}) for r in batch)
        if not self._connect():
            self._lost(len(batch), unreported)
            return
        assert self._sock is not None
        try:
            self._sock.sendall(("\n".join(lines) + "\n").encode("utf-8"))
        except OSError:
            # Part of the batch may have arrived: counting all of it errs on the side of
            # reporting a drop that did not happen, never of hiding one that did.
            self._sock.close()
            self._sock = None
            self._lost(len(batch), unreported)
            return
        self.sent += len(batch)

    def _lost(self, n: int, unreported: int) -> None:
        with self._lock:
            self.drops += n
            self._unreported += n + unreported

    def _run(self) -> None:
        buf = self._buf
        while True:
            self._wake.wait(_SEND_INTERVAL)
            while buf or self._unreported:
                batch = [buf.popleft() for _ in range(min(len(buf), _BATCH))]
                before = self._unreported
                self._send(batch)
                if not batch and self._unreported >= before:
                    break  # parent unreachable: try again on the next tick
                if self._sock is None:
                    break
            if self._stopping:
                return

    def close(self, timeout: float = 5.0) -> None:
        """Send what is buffered (up to `timeout`), then hang up."""
        deadline = time.monotonic() + timeout
        while self._buf and time.monotonic() < deadline and self._thread.is_alive():
            time.sleep(0.002)
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout=max(0.1, deadline - time.monotonic()))
        if self._sock is not None:
            self._sock.close()
            self._sock = None
