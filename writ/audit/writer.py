"""AuditLog: the record sink that writes the hash-chained decision log.

Invariants:
- `enqueue()` only appends a Record to a deque (no I/O, no lock on the common
  path). One writer thread owns everything else: the structlog pipeline, the
  chain head, the files, checkpoints. Records are chained in dequeue order.
- The queue is soft-bounded: past `queue_size` the producer waits up to
  `wait_timeout` for room (each wait counted) and then enqueues anyway; only
  past twice that is a record dropped. Every drop, and every batch the disk
  refused, is counted and written into the chain as a `writ.audit.dropped`
  record as soon as writing works again. Nothing is lost silently.
- A batch that fails to write is cut off the file again (ftruncate) and the
  chain head restored, so the file never holds half a batch nobody chained.
- A checkpoint is only signed over records already fsynced.
- Each process start opens a new file whose first record links to the old
  head: `restart` after a seal, `recovered` (naming the last good seq and the
  debris after it) after a crash. The gap is written down, never papered over.
- Nothing raised inside the writer thread ends it. Every failure (a write, a
  checkpoint, a push off the box, a bug) is counted, logged on the node's
  `writ.audit` logger (at most once per troubles.LOG_EVERY seconds per kind, with the
  count in between) and written into the chain as a `writ.audit.error` record
  once writing works again. While decisions cannot be written,
  `stats()["writer_ok"]` is 0 (/readyz fails) and `audit.on_failure: fail`
  stops the node (SIGTERM to its own process) — docs/operator.md.
- Control records from the node (`control()`: a signed set went into force)
  are queued beside the decisions and written by the writer thread before the
  next batch's decisions; they chain like every record.
- A signing key that is not the one that signed the last checkpoint (deleted
  and recreated, or replaced) is written into the chain as a
  `writ.audit.key_changed` record naming both key ids and the new public key.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import Any

import structlog

from writ.audit.checkpoint import Checkpointer, public_pem
from writ.audit.files import file_for, find_chain_end
from writ.audit.lines import DecisionLines
from writ.audit.privacy import ClientMasker
from writ.audit.processors import ChainHash
from writ.audit.record import CONTINUE, DROPPED, GENESIS, SEAL, format_ts
from writ.audit.recorder import Action, Outcome, Record
from writ.audit.troubles import Troubles, describe
from writ.policies import AuditPolicy, Policy

__all__ = ["AuditLog"]

_MAX_BATCH = 4096
_IDLE_POLL = 0.2  # seconds the writer sleeps when nobody wakes it
ERROR = "writ.audit.error"  # failures of the writer itself, counted
KEY_CHANGED = "writ.audit.key_changed"  # the checkpoint signing key is not the last one



class _Lines:
    """The structlog 'logger': collects rendered lines for the current batch."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.decisions = 0  # how many of the lines are decisions (the rest: control)
        self.carried_drops = 0  # the count in a `dropped` record among the lines
        self.carried_errors: dict[str, tuple[int, str]] = {}  # in `error` records

    def msg(self, line: str) -> None:
        self.lines.append(line)

    info = msg


class AuditLog:
    def __init__(self, policy: AuditPolicy, node: str, *, queue_size: int = 100_000,
                 wait_timeout: float = 0.05, fsync_interval: float = 1.0,
                 checkpoint_push: Path | None = None, redis_url: str | None = None,
                 redis_prefix: str = "writ", clock: Callable[[], float] = time.time) -> None:
        self.policy = policy
        self.node = node
        self.base = Path(policy.path)
        self.queue_size = queue_size
        self.wait_timeout = wait_timeout
        self.fsync_interval = fsync_interval
        self.clock = clock
        self._checkpoint_args = (Path(policy.signing_key_file), Path(policy.checkpoint_file),
                                 checkpoint_push, redis_url, redis_prefix)
        self._masker = ClientMasker(policy.client_privacy, Path(policy.key_file),
                                    policy.key_rotation)
        self._chain = ChainHash()
        self._durable = self._chain.snapshot()  # the head as last written to disk
        self._out = _Lines()
        # Decisions take DecisionLines' fast path; control records its structlog
        # processors, the same ones (one chain head, one masker).
        self._decisions = DecisionLines(node, self._masker, self._chain)
        self._log = structlog.wrap_logger(
            self._out, wrapper_class=structlog.BoundLogger, cache_logger_on_first_use=True,
            processors=list(self._decisions.processors))
        self._queue: deque[Record] = deque()
        self._wake = threading.Event()
        self._idle = False
        self._busy = False
        self._stopping = False
        self._lock = threading.Lock()  # guards the slow-path counters below
        self._thread: threading.Thread | None = None
        self._cp: Checkpointer | None = None
        self._fd = -1
        self.path: Path | None = None  # the file being written
        self._index = 0
        self._file_records = 0
        self._file_bytes = 0
        self._file_opened = 0.0
        self._last_fsync = 0.0
        self._since_cp = 0
        self._last_cp = 0.0
        self._cp_failing = False  # the last checkpoint failed: retry by time only
        self._unsynced = False
        self._pending_drops = 0  # dropped but not yet written down in the chain
        self._controls: deque[tuple[str, float, dict[str, Any]]] = deque()  # control()
        self._troubles = Troubles(policy.on_failure)  # the writer's own failures
        self._failed = self._troubles.failed
        self._push_failures_seen = 0
        self._continue_from: tuple[str | None, str] | None = None  # sealed, next not open
        # Counters, read by /metrics: plain ints, written by one thread each.
        self.records_written = 0
        self.waits = 0
        self.drops = 0
        self.batches = 0
        self.rotations = 0

    @classmethod
    def from_policy(cls, policy: Policy, *, path: str | None = None,
                    redis_url: str | None = None, prefix: str = "writ") -> AuditLog:
        """A node's audit log as its policy says (unstarted): at `path` (None: the
        policy's `audit.path`), with the policy's off-box checkpoint copies (a file,
        and Redis at `redis_url` under `prefix` when `checkpoint_push_redis`)."""
        audit = policy.audit if path is None else replace(policy.audit, path=path)
        push_file = audit.checkpoint_push_file
        return cls(audit, policy.node, checkpoint_push=Path(push_file) if push_file else None,
                   redis_url=redis_url if audit.checkpoint_push_redis else None,
                   redis_prefix=f"{prefix}:")

    # -- the hot path ------------------------------------------------------------------

    def record(self, *, component: str, client: str, target: str, decision: str, action: str,
               orders: Sequence[str], rule: str | None, blocklist_version: str | None) -> None:
        """Write one decision now-stamped, unfiltered (tests, tools; the shells go
        through a writ.audit.Recorder, which decides what is kept)."""
        self.enqueue(Record(self.clock(), component, client, target, Outcome(decision),
                            Action(action), tuple(orders), rule, blocklist_version))

    def enqueue(self, record: Record) -> None:
        """Queue one decision (the recorder's sink; workers' records keep their time)."""
        q = self._queue
        if len(q) >= self.queue_size and not self._make_room():
            return
        q.append(record)
        if self._idle:
            self._wake.set()

    def enqueue_many(self, records: Sequence[tuple[Any, ...]]) -> None:
        """Queue a worker's batch: Records, or plain tuples in Record's field order
        (the writer unpacks them by position; no Record is rebuilt per record)."""
        q = self._queue
        if len(q) + len(records) > self.queue_size:  # near full: one by one, as enqueue
            for record in records:
                self.enqueue(Record._make(record))
            return
        q.extend(records)  # type: ignore[arg-type]  # Record's shape, see above
        if self._idle:
            self._wake.set()

    def control(self, event: str, **fields: Any) -> None:
        """Queue a control record (e.g. writ.blocklist.signed_set), now-stamped.
        Never blocks and never raises: any thread may call it."""
        self._controls.append((event, self.clock(), fields))
        self._wake.set()

    def _make_room(self) -> bool:
        """Wait briefly for the writer; False when the record had to be dropped."""
        with self._lock:
            self.waits += 1
        self._wake.set()
        deadline = time.monotonic() + self.wait_timeout
        while len(self._queue) >= self.queue_size and time.monotonic() < deadline:
            time.sleep(0.0005)
        if len(self._queue) < 2 * self.queue_size and self._thread is not None:
            return True
        with self._lock:
            self.drops += 1
            self._pending_drops += 1
        return False

    def note_dropped(self, count: int) -> None:
        """Records lost before they reached us (a worker's parent link was down)."""
        with self._lock:
            self.drops += count
            self._pending_drops += count
        if self._idle:
            self._wake.set()

    def stats(self) -> dict[str, int]:
        return {"records_written": self.records_written, "waits": self.waits,
                "drops": self.drops, "queue_depth": len(self._queue),
                "write_errors": self.write_errors,
                "batches": self.batches, "rotations": self.rotations,
                "checkpoints": self._cp.written if self._cp else 0,
                "checkpoint_push_failures": self._cp.push_failures if self._cp else 0,
                "writer_ok": int(self.writer_ok)}

    @property
    def write_errors(self) -> int:
        """Failures of the writer counted so far (/metrics)."""
        return self._troubles.count

    @property
    def error(self) -> str | None:
        """The writer's last failure, for the operator."""
        return self._troubles.last

    @property
    def writer_ok(self) -> bool:
        """The writer runs and its last write succeeded (read by /readyz)."""
        thread = self._thread
        return self._troubles.ok and (thread is None or thread.is_alive())

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> AuditLog:
        if self._thread is not None:
            return self
        self._cp = Checkpointer(*self._checkpoint_args)
        self._open_chain()
        self._thread = threading.Thread(target=self._run, name="writ-audit-writer", daemon=True)
        self._thread.start()
        return self

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything queued so far is written (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while (self._queue or self._busy) and time.monotonic() < deadline:
            self._wake.set()
            time.sleep(0.001)
        return not self._queue

    def close(self) -> None:
        """Write everything queued, seal the file, sign a last checkpoint."""
        if self._thread is None:
            return
        self._stopping = True
        self._wake.set()
        self._thread.join()
        self._thread = None
        if self._cp is not None:
            self._cp.close()

    def __enter__(self) -> AuditLog:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # -- the writer thread -------------------------------------------------------------

    def _run(self) -> None:
        q = self._queue
        while True:
            self._idle = True
            if not q and not self._stopping:
                self._wake.wait(self._sleep_time())
            self._idle = False
            self._wake.clear()
            self._busy = True
            try:
                while q:
                    batch = [q.popleft() for _ in range(min(len(q), _MAX_BATCH))]
                    self._write_whole(batch)
                self._housekeeping()
            except Exception as e:  # noqa: BLE001 - nothing raised here ends the writer
                self._failed("write", f"{self.path}: {describe(e)}", cannot_write=True)
            self._busy = False
            if self._stopping and not q:
                break
        try:
            self._seal(self.clock())
        except Exception as e:  # noqa: BLE001 - counted and logged; the thread ends anyway
            self._failed("seal", f"{self.path}: cannot seal: {describe(e)}", cannot_write=True)

    def _write_whole(self, batch: list[Record]) -> None:
        """_write_batch; whatever of the batch an unexpected error left unwritten
        is counted as dropped (and so written into the chain later)."""
        before = self.records_written
        try:
            self._write_batch(batch)
        except Exception:
            self._lose(len(batch) - (self.records_written - before) - self._out.decisions)
            raise

    def _lose(self, n: int) -> None:
        if n > 0:
            with self._lock:
                self.drops += n
                self._pending_drops += n

    def _sleep_time(self) -> float:
        t = _IDLE_POLL
        if self._unsynced and self.policy.fsync == "interval":
            t = min(t, self.fsync_interval)
        return t

    def _emit(self, event: str, epoch: float, **fields: Any) -> None:
        self._log.info(event, ts=epoch, **fields)

    def _write_batch(self, batch: list[Record]) -> None:
        out = self._out
        if self._continue_from is not None and not self._resume():
            self._lose(len(batch))  # no file to write to: counted, written down later
            return
        if self._pending_drops:
            with self._lock:
                dropped, self._pending_drops = self._pending_drops, 0
            self._emit(DROPPED, self.clock(), count=dropped,
                       reason="queue overflow or write error: these decisions are not in the log")
            out.carried_drops += dropped
        if self._troubles.pending:
            errors = self._troubles.take()
            for what, (count, message) in sorted(errors.items()):
                self._emit(ERROR, self.clock(), what=what, count=count, error=message)
            out.carried_errors.update(errors)
        while self._controls:
            name, when, fields = self._controls.popleft()
            self._emit(name, when, **fields)
        line_of = self._decisions.line  # the processors' lines, faster (lines.py)
        lines = out.lines
        rotate_bytes = self.policy.rotate_bytes
        pending = 0
        for n, record in enumerate(batch):
            if self._file_bytes + pending >= rotate_bytes and self._file_records + len(lines) > 1:
                self._flush_lines()
                if not self._rotate(record[0]):
                    self._lose(len(batch) - n)
                    return
                pending = 0
            try:
                line = line_of(*record)
            except Exception as e:  # noqa: BLE001 - one bad record must not stop the log
                self._unrenderable(e)
                continue
            lines.append(line)
            out.decisions += 1
            pending += len(line) + 1
        self._flush_lines()
        self.batches += 1

    def _unrenderable(self, e: Exception) -> None:
        """A decision that could not be rendered (a bug, not the disk): counted as
        dropped and written down in the chain with the next batch."""
        self._failed("render", f"{self.path}: a decision could not be rendered: {describe(e)}")
        with self._lock:
            self.drops += 1
            self._pending_drops += 1

    def _flush_lines(self) -> bool:
        """Write the rendered lines; on failure cut them off and count them dropped."""
        out = self._out
        if not out.lines:
            return True
        data = ("\n".join(out.lines) + "\n").encode("utf-8")
        decisions, carried, errors = out.decisions, out.carried_drops, out.carried_errors
        out.lines.clear()
        out.decisions = out.carried_drops = 0
        out.carried_errors = {}
        try:
            view = memoryview(data)
            while view:
                n = os.write(self._fd, view)
                view = view[n:]
        except OSError as e:
            # If even this fails the verifier will show the debris; the head stays the old one.
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self._file_bytes)
            self._chain.restore(self._durable)
            with self._lock:
                self.drops += decisions
                self._pending_drops += decisions + carried
            self._troubles.keep(errors)  # still to be written down
            self._failed("write", f"{self.path}: {e.strerror or e}", cannot_write=True)
            return False
        self._troubles.ok = True
        self._file_records += data.count(b"\n")
        self._file_bytes += len(data)
        self._durable = self._chain.snapshot()
        self.records_written += decisions
        self._unsynced = True
        if self.policy.fsync == "batch":
            self._fsync()
        return True

    def _fsync(self) -> None:
        if self._unsynced and self.policy.fsync != "never" and self._fd >= 0:
            try:
                os.fsync(self._fd)
            except OSError as e:  # the records may not be durable: say so, go on
                self._failed("fsync", f"{self.path}: {e.strerror or e}", cannot_write=True)
        self._unsynced = False
        self._last_fsync = time.monotonic()

    def _housekeeping(self) -> None:
        self._note_push_failures()
        if self._pending_drops or self._troubles.pending or self._controls:  # even if no decision
            self._write_batch([])
        now_mono = time.monotonic()
        if self._unsynced and (self.policy.fsync != "interval"
                               or now_mono - self._last_fsync >= self.fsync_interval):
            self._fsync()
        wrote = self._chain.seq - 1 - (self._cp.last_seq if self._cp else 0)
        # After a failed checkpoint only time brings the next try: by count it
        # would be every batch (each writing one more `error` record) until the
        # checkpoint file works again.
        if wrote > 0 and ((wrote >= self.policy.checkpoint_every and not self._cp_failing)
                          or now_mono - self._last_cp >= self.policy.checkpoint_seconds):
            self._checkpoint()
        if (self.policy.rotate_seconds is not None and self._continue_from is None
                and now_mono - self._file_opened >= self.policy.rotate_seconds
                and self._file_records > 1):
            self._rotate(self.clock())

    def _checkpoint(self) -> None:
        cp = self._cp
        if cp is None:
            return
        self._fsync()
        self._last_cp = time.monotonic()
        seq, head = self._chain.seq - 1, self._chain.prev
        try:
            cp.checkpoint(self.node, seq, head, format_ts(self.clock()))
        except Exception as e:  # noqa: BLE001 - the log goes on; the gap shows in verify
            self._cp_failing = True
            self._failed("checkpoint", f"checkpoint: {describe(e)}")
        else:
            self._cp_failing = False

    def _note_push_failures(self) -> None:
        """Push failures happen on the pusher's thread; the writer notes them here."""
        cp = self._cp
        if cp is not None and cp.push_failures > self._push_failures_seen:
            self._push_failures_seen = cp.push_failures
            self._failed("checkpoint push", f"checkpoint push: {cp.last_push_error}",
                         count=False)  # counted by the checkpointer itself

    # -- files -------------------------------------------------------------------------

    def _open_file(self, index: int) -> None:
        """Open file `index` for appending; nothing changes when that fails."""
        path = file_for(self.base, index)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        self._index, self.path = index, path
        self._file_records = 0
        self._file_bytes = os.fstat(self._fd).st_size
        self._file_opened = time.monotonic()

    def _open_chain(self) -> None:
        end, index = find_chain_end(self.base)
        self._open_file(index)
        now = self.clock()
        privacy = str(self.policy.client_privacy)
        if end is None:
            self._emit(GENESIS, now, client_privacy=privacy)
        else:
            self._chain.restore((end.seq + 1, end.hash))
            self._durable = self._chain.snapshot()
            if end.sealed:
                self._emit(CONTINUE, now, reason="restart", previous_file=end.path.name,
                           previous_seal=end.hash, client_privacy=privacy)
            else:
                self._emit(CONTINUE, now, reason="recovered", previous_file=end.path.name,
                           last_good_seq=end.seq, last_good_hash=end.hash,
                           discarded_lines=end.bad_lines_after, client_privacy=privacy,
                           note="previous file was not sealed: the writer stopped without "
                                "closing it; decisions after last_good_seq may be lost")
        cp = self._cp
        if cp is not None and cp.key_changed:
            self._emit(KEY_CHANGED, now, previous_key=cp.previous_key, key=cp.key_id,
                       public_key=public_pem(cp.key), key_created=cp.key_created,
                       note="checkpoints from here on are signed by a different key than "
                            "the last one in the checkpoint file")
        self._flush_lines()
        self._fsync()
        self._last_cp = time.monotonic()

    def _seal(self, epoch: float) -> None:
        if self._continue_from is not None and not self._resume():
            return  # the last file is sealed and no next one could be opened
        if self._pending_drops or self._troubles.pending:
            self._write_batch([])
        head = self._chain.prev
        self._emit(SEAL, epoch, count=self._file_records, last=head)
        self._flush_lines()
        self._checkpoint()
        if self._fd >= 0:
            os.close(self._fd)
        self._fd = -1

    def _rotate(self, epoch: float) -> bool:
        """Seal this file and open the next; the new head names the seal. False
        when the next file cannot be opened: then every later write tries again."""
        old = self.path
        self._seal(epoch)
        self._continue_from = (old.name if old else None, self._chain.prev)
        return self._resume()

    def _resume(self) -> bool:
        """Open the file after a sealed one and write its `continue` head."""
        assert self._continue_from is not None
        previous_file, seal = self._continue_from
        try:
            self._open_file(self._index + 1)
        except OSError as e:
            self._failed("write", f"{file_for(self.base, self._index + 1)}: cannot open: "
                                  f"{e.strerror or e}", cannot_write=True)
            return False
        self._emit(CONTINUE, self.clock(), reason="rotation", previous_file=previous_file,
                   previous_seal=seal, client_privacy=str(self.policy.client_privacy))
        if not self._flush_lines():  # the head did not make it: close and try later
            os.close(self._fd)
            self._fd = -1
            self._index -= 1
            return False
        self._continue_from = None
        self.rotations += 1
        return True

