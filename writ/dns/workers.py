"""Running the resolver: one event loop, or N processes on one SO_REUSEPORT port.

Invariants:
- Worker processes are forked before the parent starts any thread (the
  audit writer is one), so no child inherits a lock held by a thread that
  does not exist in it.
- With workers, decisions reach ONE audit writer: each worker's recorder
  (writ.audit.Recorder: counted, filtered there) gives the records it keeps
  to a QueueSink, which puts batches on a multiprocessing queue the parent
  drains into its AuditLog, so a node writes one chain per audit path. A batch leaves a
  worker within `QueueSink.interval` (50 ms) of its first record, and on
  shutdown; records keep the worker's decision time.
- SIGTERM/SIGINT: stop listening, answer what is in flight, return; the
  parent then waits for its workers and flushes the log.
- Port 0 with several workers is resolved to one concrete port first, or
  every worker would listen somewhere else.
"""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from writ.audit import Record, RecordSink
from writ.dns.server import DnsServer
from writ.dns.transport import Listeners
from writ.endpoints import format_endpoint
from writ.loop import run as run_event_loop
from writ.policies import Policy

__all__ = ["QueueSink", "run_node", "serve"]

Address = tuple[str, int]
_as_record = tuple.__new__  # a received plain tuple typed as the Record it was


class QueueSink:
    """A worker's sink: collects records and forwards them to the parent's writer in batches.

    `enqueue()` is one tuple append on the event loop's thread; a batch goes
    out (one pickle, one pipe write, by the queue's feeder thread) when it
    reaches `max_batch` records or `interval` seconds after its first record.
    Each record keeps the worker's own decision time. Records travel as plain
    tuples: those pickle in C, a NamedTuple through Python (~5 µs a record).
    """

    def __init__(self, queue: Any, max_batch: int = 1024, interval: float = 0.05) -> None:
        self.queue = queue
        self.max_batch = max_batch
        self.interval = interval
        self._buf: list[Record] = []
        self._timer: asyncio.TimerHandle | None = None

    def enqueue(self, record: Record) -> None:
        buf = self._buf
        buf.append(record)
        if len(buf) >= self.max_batch:
            self.flush()
        elif self._timer is None:
            self._arm()

    def _arm(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not on a loop (tests, shutdown): nothing to wait for
            self.flush()
            return
        self._timer = loop.call_later(self.interval, self._tick)

    def _tick(self) -> None:
        self._timer = None
        self.flush()

    def flush(self) -> None:
        if self._buf:
            batch, self._buf = self._buf, []
            self.queue.put(list(map(tuple, batch)))  # plain tuples (see above)


def _drain(queue: Any, sink: RecordSink) -> None:
    """The parent's end: every record the workers kept, in their decision time."""
    enqueue = sink.enqueue
    while (batch := queue.get()) is not None:
        for item in batch:
            enqueue(_as_record(Record, item))


async def serve(holder: Any, policy: Policy, sink: RecordSink, listen: Sequence[Address],  # noqa: PLR0917 (the worker passes them in order)
                reuse_port: bool = False, announce: bool = True,
                ready: Callable[[], None] | None = None,
                open_store: Callable[[], Any] | None = None) -> None:
    """Serve until SIGTERM/SIGINT.

    `open_store()` (if given) returns the store that keeps `holder` current in
    this process: each worker follows the folder or the Redis replica itself,
    and the store's ticker switches at every effective/expires instant. Without
    a store, `holder.tick()` runs here every second instead."""
    store = open_store() if open_store is not None else None
    if store is not None:
        await store.start(holder)
    try:
        await _serve(holder, policy, sink, listen, reuse_port, announce, ready,
                     tick=store is None)
    finally:
        if store is not None:
            await store.stop()


async def _serve(holder: Any, policy: Policy, sink: RecordSink, listen: Sequence[Address],  # noqa: PLR0917
                 reuse_port: bool, announce: bool, ready: Callable[[], None] | None,
                 *, tick: bool) -> None:
    server = DnsServer(holder, policy, sink)
    listeners = Listeners(server)
    await listeners.start(listen, reuse_port=reuse_port)
    if ready is not None:
        ready()
    if announce:
        for host, port in listeners.addresses:
            print(f"writ dns: listening on {format_endpoint(host, port)} (udp, tcp)",
                  file=sys.stderr, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), 1.0)
        except TimeoutError:
            if tick:
                holder.tick(datetime.now(UTC))
    await listeners.stop()


def _pin_ports(listen: Sequence[Address]) -> list[Address]:
    out = []
    for host, want in listen:
        port = want
        if want == 0:
            fam = socket.AF_INET6 if ":" in host else socket.AF_INET
            with socket.socket(fam, socket.SOCK_DGRAM) as s:
                s.bind((host, 0))
                port = s.getsockname()[1]
        out.append((host, port))
    return out


def _worker(holder: Any, policy: Policy, queue: Any, listen: list[Address], ready: Any,  # noqa: PLR0917
            open_store: Callable[[], Any] | None) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    sink = QueueSink(queue)
    try:
        run_event_loop(serve(holder, policy, sink, listen, True, False, ready.release,
                             open_store))
    except OSError as e:  # e.g. the TCP twin of the port is taken: say so, no traceback
        print(f"writ dns: cannot listen: {e}", file=sys.stderr, flush=True)
        sys.exit(1)
    finally:
        sink.flush()  # the queue's feeder thread delivers it before the process exits


def _await_ready(ready: Any, procs: Sequence[Any], timeout: float = 60.0) -> int:
    """How many workers said they serve; stops waiting as soon as one has died."""
    started = 0
    deadline = time.monotonic() + timeout
    while started < len(procs) and time.monotonic() < deadline:
        if ready.acquire(timeout=0.2):
            started += 1
        elif any(not p.is_alive() for p in procs):
            break
    return started


def run_node(holder: Any, policy: Policy, listen: Sequence[Address], workers: int,  # noqa: PLR0917
             open_sink: Callable[[], tuple[RecordSink, Callable[[], None]]],
             open_store: Callable[[], Any] | None = None) -> int:
    """Run the resolver; `open_sink()` → (sink, close) is called after forking, and
    `open_store()` (if given) in each worker, on its own event loop."""
    # The blocklist is loaded: move it out of the collector's sight. Full collections
    # then skip its millions of objects, and forked workers share its pages longer.
    gc.collect()
    gc.freeze()
    if workers <= 1:
        sink, close = open_sink()
        try:
            run_event_loop(serve(holder, policy, sink, listen, open_store=open_store))
        finally:
            close()
        return 0
    listen = _pin_ports(listen)
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    ready = ctx.Semaphore(0)
    procs = [ctx.Process(target=_worker, args=(holder, policy, queue, listen, ready, open_store),
                         name=f"writ-dns-{i}", daemon=True) for i in range(workers)]
    for p in procs:
        p.start()
    sink, close = open_sink()  # threads only after the fork
    drainer = threading.Thread(target=_drain, args=(queue, sink), name="writ-dns-audit")
    drainer.start()
    started = _await_ready(ready, procs)  # announce only when serving
    if started == len(procs):
        for addr in listen:
            print(f"writ dns: listening on {format_endpoint(*addr)} (udp, tcp; {workers} workers)",
                  file=sys.stderr, flush=True)
    else:
        print("writ dns: a worker could not start; stopping", file=sys.stderr, flush=True)
    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.set())
    while started == len(procs) and not stopping.wait(0.5):
        if any(not p.is_alive() for p in procs):
            print("writ dns: a worker died; stopping", file=sys.stderr, flush=True)
            break
    for p in procs:
        if p.pid is not None and p.is_alive():
            os.kill(p.pid, signal.SIGTERM)
    for p in procs:
        p.join(timeout=10)
    queue.put(None)
    drainer.join()
    close()
    return 0 if stopping.is_set() else 1
