"""The process side of `writ dns --workers N` and `writ proxy --workers N`:
N processes on one SO_REUSEPORT port.

What runs in each worker is a one-component node (DNS or proxy) that
writ.node builds (the one wiring point, docs/design.md §4); this module only
forks, supervises and carries records: it knows no store, no holder, no
policy, no protocol.

Invariants:
- Worker processes are forked before the parent starts any thread (the
  audit writer is one), so no child inherits a lock held by a thread that
  does not exist in it.
- With workers, decisions reach ONE audit writer: each worker's recorder
  (writ.audit.Recorder: counted, filtered there) gives the records it keeps
  to a QueueSink, which puts batches on a multiprocessing queue the parent
  drains into its AuditLog, so a node writes one chain per audit path. A
  batch leaves a worker within `QueueSink.interval` (50 ms) of its first
  record, and on shutdown; records keep the worker's decision time.
- SIGTERM/SIGINT: stop listening, answer what is in flight, return; the
  parent then waits for its workers and flushes the log. A signal while the
  workers still start stops them too (blocked around the fork, see
  run_workers); a worker still running 10 s after SIGTERM is killed. A
  worker whose parent is gone (SIGKILL, OOM) stops within `_PARENT_POLL`:
  no worker enforces with no audit log behind it.
- Port 0 with several workers is resolved to one concrete port first, or
  every worker would listen somewhere else.
- A worker that dies (or cannot start) stops the whole node, exit 1: the
  node never runs on fewer workers than it announced.
- Counters travel beside the records: when the node serves metrics, a
  worker (writ.node) sends a snapshot of its
  cumulative counts (`QueueSink.stats`, a `WorkerStats`: never a record, never
  in the chain) about once a second and once more after its listeners
  drained; the parent hands each to `on_stats` (writ.metrics.WorkerBoard),
  which serves their sum on the node's metrics listener (docs/operator.md §6).
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
from typing import Any, NamedTuple

from writ.audit import Record, RecordSink
from writ.endpoints import format_endpoint

__all__ = ["QueueSink", "WorkerStats", "claim_tcp_ports", "pin_ports", "run_workers"]

Address = tuple[str, int]
# serve(sink, ready): run one worker's node until SIGTERM, calling ready() once it listens
ServeOne = Callable[["QueueSink", Callable[[], None]], None]
_STOP = {signal.SIGTERM, signal.SIGINT}
_PARENT_POLL = 1.0  # seconds between a worker's checks that its parent lives
_as_record = tuple.__new__  # a received plain tuple typed as the Record it was
OnStats = Callable[[int, int, dict[str, Any]], None]  # (worker, seq, snapshot)


class WorkerStats(NamedTuple):
    """A worker's counters (writ.node.Node.snapshot) on the record queue; `seq`
    grows with each one a worker sends, so a late one is recognised."""

    worker: int
    seq: int
    snapshot: dict[str, Any]


class QueueSink:
    """A worker's sink: collects records and forwards them to the parent's writer in batches.

    `enqueue()` is one tuple append on the event loop's thread; a batch goes
    out (one pickle, one pipe write, by the queue's feeder thread) when it
    reaches `max_batch` records or `interval` seconds after its first record.
    Each record keeps the worker's own decision time. Records travel as plain
    tuples: those pickle in C, a NamedTuple through Python (~5 µs a record).
    """

    def __init__(self, queue: Any, max_batch: int = 1024, interval: float = 0.05,
                 worker: int = 0) -> None:
        self.queue = queue
        self.worker = worker  # this worker's number, 0..N-1 (the `worker` label)
        self._seq = 0
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

    def control(self, event: str, **fields: Any) -> None:
        """A control record (e.g. a switch to a signed set) for the parent's chain,
        after the decisions queued before it; `worker` names this process."""
        self.flush()
        self.queue.put((event, {**fields, "worker": os.getpid()}))  # a tuple, not a batch


    def stats(self, snapshot: dict[str, Any]) -> None:
        """This worker's cumulative counters for the parent's /metrics."""
        self._seq += 1
        self.queue.put(WorkerStats(self.worker, self._seq, snapshot))


def _drain(queue: Any, sink: RecordSink, on_stats: OnStats | None = None) -> None:
    """The parent's end: every record the workers kept, in their decision time,
    their control records (a tuple `(event, fields)` where a batch is a list)
    and their counters (a WorkerStats, to `on_stats`)."""
    enqueue = sink.enqueue
    control = getattr(sink, "control", None)  # AuditLog's; a test sink may have none
    enqueue_many = getattr(sink, "enqueue_many", None)  # AuditLog's: a batch in one go
    bad_stats = 0
    while (batch := queue.get()) is not None:
        if isinstance(batch, WorkerStats):  # before tuple: a NamedTuple is one
            if on_stats is not None:
                try:
                    on_stats(*batch)
                except Exception as e:  # noqa: BLE001 - metrics must never stop the records
                    bad_stats += 1
                    if bad_stats == 1:
                        print(f"writ: a worker's counters could not be read ({e}); "
                              "its /metrics may lag", file=sys.stderr, flush=True)
            continue
        if isinstance(batch, tuple):
            if control is not None:
                control(batch[0], **batch[1])
            continue
        if enqueue_many is not None:
            enqueue_many(batch)
            continue
        for item in batch:
            enqueue(_as_record(Record, item))


def pin_ports(listen: Sequence[Address]) -> list[Address]:
    """Port 0 made one concrete port for every worker: one free for UDP and TCP
    both (the resolver listens on both; a port free for UDP alone made a worker
    fail to start now and then, 'address already in use' on its TCP twin)."""
    return [(host, _free_udp_tcp_port(host) if want == 0 else want) for host, want in listen]


def _free_udp_tcp_port(host: str, tries: int = 50) -> int:
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(tries):
        with socket.socket(fam, socket.SOCK_DGRAM) as u:
            u.bind((host, 0))
            port = int(u.getsockname()[1])
            with socket.socket(fam, socket.SOCK_STREAM) as t:
                try:
                    t.bind((host, port))
                except OSError:
                    continue  # its TCP twin is taken: another
                return port
    raise OSError(f"{host}: no port free for both UDP and TCP after {tries} tries")


def claim_tcp_ports(listen: Sequence[Address]) -> list[Address]:
    """TCP listen addresses checked before forking: port 0 becomes one concrete
    port, and an address something already listens on raises OSError here
    (a bind without SO_REUSEPORT fails against any listener, another node's
    workers included: two nodes must never silently split one port)."""
    out = []
    for host, want in listen:
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(fam, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is no owner
            try:
                s.bind((host, want))
            except OSError as e:
                raise OSError(f"{format_endpoint(host, want)}: {e.strerror}") from None
            out.append((host, s.getsockname()[1]))
    return out


def _watch_parent(parent: int, queue: Any) -> None:
    """Stop this worker once its parent is gone (killed outright: nothing writes
    the audit log any more): SIGTERM to itself, so its node stops as usual;
    what it still queues can no longer be delivered, so exit without waiting."""
    while os.getppid() == parent:
        time.sleep(_PARENT_POLL)
    queue.cancel_join_thread()
    os.kill(os.getpid(), signal.SIGTERM)


def _worker(serve: ServeOne, queue: Any, ready: Any, label: str, parent: int, *,
            index: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP)  # blocked by the parent around the fork
    threading.Thread(target=_watch_parent, args=(parent, queue), name="watch-parent",
                     daemon=True).start()
    sink = QueueSink(queue, worker=index)
    try:
        serve(sink, ready.release)
    except OSError as e:  # e.g. the TCP twin of the port is taken: say so, no traceback
        print(f"{label}: cannot listen: {e}", file=sys.stderr, flush=True)
        sys.exit(1)
    except Exception as e:  # noqa: BLE001 - a worker that cannot start says why, then exits
        print(f"{label}: cannot start: {e}", file=sys.stderr, flush=True)
        sys.exit(1)
    finally:
        sink.flush()  # the queue's feeder thread delivers it before the process exits


def _await_ready(ready: Any, procs: Sequence[Any], stopping: threading.Event,
                 timeout: float = 60.0) -> int:
    """How many workers said they serve; stops waiting as soon as one has died
    or SIGTERM/SIGINT came."""
    started = 0
    deadline = time.monotonic() + timeout
    while started < len(procs) and time.monotonic() < deadline and not stopping.is_set():
        if ready.acquire(timeout=0.2):
            started += 1
        elif any(not p.is_alive() for p in procs):
            break
    return started


def _stop(procs: Sequence[Any]) -> None:
    for p in procs:
        if p.pid is not None and p.is_alive():
            os.kill(p.pid, signal.SIGTERM)
    for p in procs:
        p.join(timeout=10)
        if p.is_alive():  # stuck: it must not outlive the node
            p.kill()
            p.join()


def run_workers(workers: int, listen: Sequence[Address], serve: ServeOne,
                open_sink: Callable[[], tuple[RecordSink, Callable[[], None]]],
                *, label: str = "writ dns", transports: str = "udp, tcp",
                on_stats: OnStats | None = None) -> int:
    """Fork `workers` processes that each run `serve(sink, ready)` (writ.node builds
    it: a one-component node whose recorder's sink is the worker's QueueSink), then
    open the one real sink (`open_sink()` -> (sink, close)) in this process and
    drain every worker's records into it until SIGTERM/SIGINT or a worker dies.
    `listen` must be concrete ports (see pin_ports, claim_tcp_ports); `label`
    ("writ dns", "writ proxy") starts every line this prints. `on_stats` gets
    every worker's counters (see WorkerStats); `close` runs after the last of them.
    An `open_sink()` that raises (its message printed) stops the workers: exit 1."""
    # Whatever is loaded now is shared with the workers: move it out of the
    # collector's sight, so full collections skip it and pages stay shared longer.
    gc.collect()
    gc.freeze()
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    ready = ctx.Semaphore(0)
    name = label.replace(" ", "-")
    procs = [ctx.Process(target=_worker, args=(serve, queue, ready, label, os.getpid()),
                         kwargs={"index": i}, name=f"{name}-{i}", daemon=True)
             for i in range(workers)]
    stopping = threading.Event()
    # SIGTERM/SIGINT are blocked from before the fork until this process's
    # handlers are in place (the workers unblock them first thing): one that
    # comes while workers start stops them all, never kills this process alone
    # and leaves them serving with no audit log behind them.
    signal.pthread_sigmask(signal.SIG_BLOCK, _STOP)
    try:
        for p in procs:
            p.start()
        for sig in _STOP:
            signal.signal(sig, lambda *_: stopping.set())
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP)
    try:
        sink, close = open_sink()  # threads only after the fork
    except Exception as e:  # noqa: BLE001 - e.g. the metrics port taken since the check
        print(f"{label}: cannot start: {e}", file=sys.stderr, flush=True)
        _stop(procs)
        return 1
    drainer = threading.Thread(target=_drain, args=(queue, sink, on_stats),
                               name=f"{name}-audit")
    drainer.start()
    started = _await_ready(ready, procs, stopping)  # announce only when serving
    if started == len(procs):
        for addr in listen:
            how = f"{transports}; {workers} workers" if transports else f"{workers} workers"
            print(f"{label}: listening on {format_endpoint(*addr)} ({how})",
                  file=sys.stderr, flush=True)
    elif not stopping.is_set():
        print(f"{label}: a worker could not start; stopping", file=sys.stderr, flush=True)
    while started == len(procs) and not stopping.wait(0.5):
        dead = [p for p in procs if not p.is_alive()]
        if dead:
            print(f"{label}: a worker died (pid {dead[0].pid}, exit code {dead[0].exitcode}); "
                  "stopping", file=sys.stderr, flush=True)
            break
    _stop(procs)
    queue.put(None)
    drainer.join()
    close()
    return 0 if stopping.is_set() else 1
