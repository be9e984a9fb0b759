"""The one wiring point: store → blocklist holder → shells → audit writer.

Start order, and why:
1. The audit log opens first: every decision from the first query on must be
   recorded, and a log that cannot open (disk, permissions) must stop the node
   before it enforces anything unrecorded.
2. The store fills the holder before any listener opens, so the first answers
   come from the blocklist (or, with none at all, from the policy's fail mode
   — closed by default: SERVFAIL / 503, never "allow everything" silently).
3. The shells (web, DNS, proxy) start last and only read `holder.index`.
Stop is the reverse: listeners close (in-flight answers drain and are
recorded), the store stops, and the audit log flushes, seals and signs a
final checkpoint.

Only this module knows how the parts fit; every part receives what it needs
through its constructor. Every way of running a node comes here (docs/design.md
§4): `writ serve`, `writ dns`, `writ proxy`, `writ web` (`run_node`),
`writ dns --workers N` (`run_dns_workers`: N processes, each a DNS-only Node
whose decisions go to the parent's one audit log), `writ proxy --workers N`
(`run_proxy_workers`: the same with proxy-only Nodes), and `mitmdump -s`
(writ.mitmdump_node: a Node with no listeners of its own, whose holder and
audit log the mitmproxy addon uses).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from writ.audit import RecordSink
from writ.audit.record import DISK_COPY_REFUSED, SIGNED_SET
from writ.blocklist import BlocklistHolder
from writ.endpoints import format_endpoint
from writ.metrics import Metrics
from writ.policies import Policy

__all__ = [
    "Node",
    "NodeOptions",
    "StartError",
    "run_node",
]


class StartError(Exception):
    """The node cannot start; the message says why."""


@dataclass(frozen=True, slots=True)
class NodeOptions:
    orders: Path | None = None
    redis_url: str | None = None
    prefix: str = "writ"
    state_dir: Path = Path("state")
    components: frozenset[str] = frozenset({"dns", "proxy", "web"})
    dns_listen: tuple[tuple[str, int], ...] = ()
    proxy_listen: str | None = None
    proxy_mode: str | None = None
    icap_listen: str | None = None  # "icap" in components: the policy's icap.listen if None
    web_listen: str | None = None
    confdir: str | None = None
    audit: bool = True
    audit_path: str | None = None  # None: the policy's audit.path
    dns_reuse_port: bool = False  # several processes share the DNS port (workers)
    proxy_reuse_port: bool = False  # several processes share the proxy's ports (workers)
    # `--metrics HOST:PORT` or the policy's dns|proxy|icap.metrics: /metrics, /healthz
    # and /readyz of a node without `web` (writ.web.observe); with workers, the parent's.
    metrics_listen: str | None = None


@dataclass
class Node:
    """One edge node: build with options and a policy, `await start()`, `await stop()`."""

    policy: Policy
    options: NodeOptions
    holder: BlocklistHolder = field(default_factory=BlocklistHolder)
    metrics: Metrics = field(default_factory=Metrics)
    # Where decisions go instead of this node's own audit log (a `writ dns
    # --workers` or `writ proxy --workers` worker: the queue to its parent's
    # log). None: the node opens one.
    sink: RecordSink | None = None
    store: Any = None
    audit: Any = None
    dns: Any = None
    proxy: Any = None
    icap: Any = None
    web: Any = None
    metrics_web: Any = None
    addresses: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    # Called by stop() once the listeners drained, before the store stops (a
    # worker sends its last counters to its parent then: writ.workers).
    drained: Callable[[], None] | None = None

    async def start(self) -> None:
        from writ.blocklist.stores import open_store

        opts, policy = self.options, self.policy
        # 1. audit log first (see the module docstring)
        if opts.audit and self.sink is None:
            self.open_audit()
        # A million rules are a million long-lived objects: keep the cyclic GC from
        # re-scanning them after every swap (they are freed by refcount when replaced).
        self.holder.on_swap(lambda _index: gc.freeze())
        try:
            # 2. the blocklist, before any listener opens
            keyring = self._keyring()
            self.store = open_store(opts.orders, opts.redis_url, state_dir=opts.state_dir,
                                    tz=ZoneInfo(policy.timezone), prefix=opts.prefix,
                                    keyring=keyring, on_switch=self._switched,
                                    on_disk_refused=self._disk_refused,
                                    limits=policy.ip.limits())
            await self.store.start(self.holder)
            self._require_blocklist()
            # 3. the shells
            if "web" in opts.components:
                await self._start_web()
            if "dns" in opts.components:
                await self._start_dns()
            if "proxy" in opts.components:
                await self._start_proxy()
            if "icap" in opts.components:
                await self._start_icap()
            if opts.metrics_listen:
                await self._start_metrics(opts.metrics_listen)
        except BaseException:
            await self.stop()
            raise

    def open_audit(self) -> None:
        """Open and start this node's audit log now (start() does it first thing;
        `mitmdump -s` calls it from its synchronous configure, before mitmproxy
        may pass it a request)."""
        from writ.audit import AuditLog

        opts = self.options
        self.audit = AuditLog.from_policy(self.policy, path=opts.audit_path,
                                          redis_url=opts.redis_url, prefix=opts.prefix).start()
        self.sink = self.audit

    def _keyring(self) -> Path | None:
        """The policy's trust.keyring, checked now: a node told to demand signatures
        must not start without a keyring it can read (docs/operator.md)."""
        if not self.policy.trust.keyring:
            return None
        from writ.blocklist.stores.setguard import KeyringError, KeyringFile

        path = Path(self.policy.trust.keyring)
        try:
            KeyringFile(path).current()
        except KeyringError as e:
            raise StartError(f"trust.keyring: {e}") from None
        return path

    def _switched(self, fields: dict[str, Any]) -> None:
        """A signed set went into force: tie it into the audit chain (docs/auditor.md);
        a worker's goes to its parent's chain through its sink (writ.workers.QueueSink)."""
        control = getattr(self.audit if self.audit is not None else self.sink, "control", None)
        if control is not None:
            control(SIGNED_SET, **fields)

    def _disk_refused(self, fields: dict[str, Any]) -> None:
        """The disk copy failed its signed manifest at start: the chain says why
        nothing (or the fail mode) is enforced (docs/auditor.md)."""
        control = getattr(self.audit if self.audit is not None else self.sink, "control", None)
        if control is not None:
            control(DISK_COPY_REFUSED, **fields)

    def _require_blocklist(self) -> None:
        """With --orders, no valid folder and no last good copy: refuse to start
        rather than answer nothing but SERVFAIL/503 (the store logged every error).
        With --redis a node may start empty: Redis may come back (fail mode applies)."""
        if not self.holder.ready and self.options.orders is not None:
            raise StartError(f"--orders {self.options.orders}: no valid blocklist to enforce: "
                             f"{self.store.status().last_error}")

    async def _start_web(self) -> None:
        from writ.web import WebStartError, read_token, run_web

        token = None
        if self.policy.web.token_file:
            try:
                token = read_token(self.policy.web.token_file)
            except (OSError, ValueError) as e:
                raise WebStartError(f"web.token_file: {e}") from None
        self.web = await run_web(self.holder, self.policy, metrics=self.metrics, token=token,
                                 listen=self.options.web_listen, sink_stats=self._stats,
                                 store_status=self.store.status if self.store else None)
        self.addresses["web"] = self.web.addresses

    def _stats(self) -> dict[str, float]:
        """Gauges for /metrics from the parts that count things themselves."""
        out: dict[str, float] = {}
        if self.audit is not None:
            out.update(self.audit.stats())
        # Each shell's recorder (writ.audit.Recorder) counts the allows it did not log.
        recorders = [part.recorder for part in (self.dns and self.dns.server,
                                                self.proxy and self.proxy.addon, self.icap)
                     if part]
        out["allows_not_logged"] = float(sum(r.allows_not_logged for r in recorders))
        if self.dns is not None:
            out.update(self.dns.stats())  # writ.dns.transport.Listeners.stats
        return out

    async def _start_metrics(self, where: str) -> None:
        from writ.web import make_metrics_app, run_metrics

        app = make_metrics_app(self.holder, self.metrics, sink_stats=self._stats,
                               store_status=self.store.status if self.store else None)
        self.metrics_web = await run_metrics(app, where, "--metrics")
        self.addresses["metrics"] = self.metrics_web.addresses

    def snapshot(self) -> dict[str, Any]:
        """This node's counters as plain data, for its parent's /metrics when it is
        a worker (writ.metrics.WorkerBoard sums them; docs/operator.md §6)."""
        from writ.metrics import store_gauges

        stats = self._stats()
        if self.store is not None:
            stats.update(store_gauges(self.store.status()))
        index = self.holder.index
        blocklist = None if index is None else (
            index.version, index.domain_count, index.url_count, index.ip_count,
            index.at.timestamp())
        return {"decisions": dict(self.metrics.decisions),
                "by_order": dict(self.metrics.by_order),
                "stats": stats, "blocklist": blocklist, "ready": index is not None}

    async def _start_dns(self) -> None:
        from writ.dns.server import DnsServer
        from writ.dns.transport import Listeners
        from writ.endpoints import split_hostport

        listen = list(self.options.dns_listen) or [
            split_hostport(a, 53) for a in self.policy.dns.listen  # validated by the policy loader
        ]
        # Every shell gets the audit log and the metrics; its writ.audit.Recorder
        # counts every decision (allows too) and queues what the log keeps.
        server = DnsServer(self.holder, self.policy, self.sink, metrics=self.metrics)
        self.dns = Listeners(server)
        await self.dns.start(listen, reuse_port=self.options.dns_reuse_port)
        self.addresses["dns"] = list(self.dns.addresses)

    async def _start_proxy(self) -> None:
        from writ.proxy import run_proxy

        mode = self.options.proxy_mode or self.policy.proxy.mode
        # In reverse mode mitmproxy would rewrite the Host header before the addon
        # judges it: keep it.
        extra = {"keep_host_header": True} if mode.startswith("reverse:") else None
        self.proxy = await run_proxy(self.holder, self.policy, self.sink,
                                     listen=self.options.proxy_listen, mode=mode,
                                     metrics=self.metrics, confdir=self.options.confdir,
                                     extra=extra, reuse_port=self.options.proxy_reuse_port)
        self.addresses["proxy"] = self.proxy.addresses
        from writ.proxy import SteerKind

        for kind in SteerKind:
            steered = self.proxy.steer_addresses(kind)
            if steered:
                self.addresses[f"steer-{kind.value}"] = steered

    async def _start_icap(self) -> None:
        from writ.icap import run_icap

        # Like the addon, the ICAP server counts every decision itself (allows too).
        self.icap = await run_icap(self.holder, self.policy, self.sink, metrics=self.metrics,
                                   listen=self.options.icap_listen)
        self.addresses["icap"] = self.icap.addresses

    async def stop(self) -> None:
        # Reverse order: listeners drain, then the store, then the log is sealed.
        # The shells stay referenced until all drained: `drained` and a last
        # scrape still read their counters.
        names = [n for n in ("icap", "proxy", "dns", "web") if getattr(self, n) is not None]
        for name in names:
            with contextlib.suppress(Exception):
                part = getattr(self, name)
                await (part.stop() if name == "dns" else part.shutdown())
        if self.drained is not None:
            with contextlib.suppress(Exception):
                self.drained()
        for name in names:
            setattr(self, name, None)
        if self.metrics_web is not None:
            metrics_web, self.metrics_web = self.metrics_web, None
            with contextlib.suppress(Exception):
                await metrics_web.shutdown()
        if self.store is not None:
            store, self.store = self.store, None
            await store.stop()
        if self.audit is not None:
            audit, self.audit = self.audit, None
            await asyncio.to_thread(audit.close)

    def describe(self) -> str:
        status = self.store.status() if self.store is not None else None
        index = self.holder.index
        parts = [f"{k} listening on {', '.join(format_endpoint(*a[:2]) for a in v)}"
                 for k, v in self.addresses.items()]
        state = (f"blocklist {index.version} ({len(index)} rules)" if index is not None
                 else "NO BLOCKLIST (fail-" + self.policy.fail.value + ")")
        if status is not None and status.stale:
            state += f" — STALE: {status.last_error or 'serving the last good copy'}"
        return "; ".join(parts) + f"; {state}"


async def wait_for_signal() -> None:
    """Return on SIGINT or SIGTERM."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()


async def run_node(policy: Policy, options: NodeOptions) -> int:
    """Start a node, print where it listens, run until SIGTERM/SIGINT, stop cleanly."""
    node = Node(policy, options)
    await node.start()
    print(f"writ: node {policy.node}: {node.describe()}", file=sys.stderr, flush=True)
    try:
        await wait_for_signal()
    finally:
        print("writ: stopping (draining, sealing the audit log)", file=sys.stderr, flush=True)
        await node.stop()
    return 0


def run_dns_workers(policy: Policy, options: NodeOptions, workers: int) -> int:
    """`writ dns --workers N`: N processes sharing the DNS port, each a DNS-only
    Node (its own store and holder, its decisions through its recorder to a
    QueueSink); this process opens the one audit log after forking and writes
    every worker's records into it. Returns when SIGTERM/SIGINT stopped them (0)
    or a worker could not start or died (1)."""
    from writ.workers import pin_ports

    listen = pin_ports(options.dns_listen)  # port 0: one concrete port for all
    options = _claim_metrics(options)
    worker_options = replace(options, components=frozenset({"dns"}), dns_listen=tuple(listen),
                             dns_reuse_port=True, audit=False)
    return _run_workers(policy, worker_options, workers, listen=listen, label="writ dns",
                        transports="udp, tcp")


def run_proxy_workers(policy: Policy, options: NodeOptions, workers: int) -> int:
    """`writ proxy --workers N`: N processes sharing the proxy's port (and the
    policy's steer ports) through SO_REUSEPORT, each a proxy-only Node, their
    decisions written by this process into the one audit log, as for DNS.
    Raises OSError (an address taken) or ProxyStartError (a bad mode) before forking."""
    from writ.endpoints import split_hostport
    from writ.proxy import check_mode, ensure_ca
    from writ.workers import claim_tcp_ports

    check_mode(options.proxy_mode or policy.proxy.mode)
    options = _claim_metrics(options)

    where = options.proxy_listen or policy.proxy.listen
    (listen,) = claim_tcp_ports([split_hostport(where)])  # port 0: one concrete port for all
    claim_tcp_ports([split_hostport(a) for a in (*policy.proxy.steer_http,
                                                 *policy.proxy.steer_tls)])
    # One CA for every worker, made now: N workers creating it at once would each
    # sign with their own key, and a client trusts only one of them.
    ensure_ca(options.confdir)
    worker_options = replace(options, components=frozenset({"proxy"}),
                             proxy_listen=format_endpoint(*listen), proxy_reuse_port=True,
                             audit=False)
    return _run_workers(policy, worker_options, workers, listen=[listen], label="writ proxy",
                        transports="")


def _claim_metrics(options: NodeOptions) -> NodeOptions:
    """The parent's metrics address checked before forking (OSError naming it if
    taken; port 0 made concrete), so a taken port fails the start, not the node."""
    if not options.metrics_listen:
        return options
    from writ.endpoints import split_hostport
    from writ.workers import claim_tcp_ports

    (where,) = claim_tcp_ports([split_hostport(options.metrics_listen)])
    return replace(options, metrics_listen=format_endpoint(*where))


_REPORT_EVERY = 1.0  # seconds between a worker's counter snapshots to its parent


def _run_workers(policy: Policy, worker_options: NodeOptions, workers: int, *,
                 listen: list[tuple[str, int]], label: str, transports: str) -> int:
    """Fork `workers` Nodes built from `worker_options` (writ.workers supervises),
    each sending its records to this process's one audit log, and its counters
    to this process's metrics listener (`worker_options.metrics_listen`, if any)."""
    from writ.audit import AuditLog
    from writ.loop import run as run_event_loop
    from writ.metrics import WorkerBoard
    from writ.workers import QueueSink, run_workers

    metrics_listen = worker_options.metrics_listen
    worker_options = replace(worker_options, metrics_listen=None)  # the parent serves it

    async def serve(sink: QueueSink, ready: Callable[[], None]) -> None:
        node = Node(policy, worker_options, sink=sink)
        await node.start()
        report = None
        if metrics_listen:  # counters only where the parent serves them
            changes = _Changes()

            def send() -> None:
                sink.stats(changes(node.snapshot()))

            node.drained = send  # the last counts, all in
            send()  # before ready: the parent's /readyz waits for it
            report = asyncio.create_task(_report(send))
        ready()
        try:
            await wait_for_signal()
        finally:
            if report is not None:
                report.cancel()
            await node.stop()

    board: WorkerBoard | None = None

    def open_sink() -> tuple[RecordSink, Callable[[], None]]:  # in this process, after the fork
        nonlocal board
        log = AuditLog.from_policy(policy, path=worker_options.audit_path,
                                   redis_url=worker_options.redis_url,
                                   prefix=worker_options.prefix).start()
        if not metrics_listen:
            return log, log.close
        from writ.web import MetricsThread, make_workers_app

        board = WorkerBoard(workers, log.stats)
        try:
            server = MetricsThread(make_workers_app(board), metrics_listen, "--metrics").start()
        except BaseException:
            log.close()
            raise
        print(f"{label}: metrics on {metrics_listen}", file=sys.stderr, flush=True)

        def close() -> None:
            server.stop()
            log.close()

        return log, close

    def on_stats(worker: int, seq: int, snapshot: dict[str, Any]) -> None:
        if board is not None:
            board.update(worker, seq, snapshot)

    return run_workers(workers, listen,
                       lambda sink, ready: run_event_loop(serve(sink, ready)), open_sink,
                       label=label, transports=transports, on_stats=on_stats)


async def _report(send: Callable[[], None]) -> None:
    while True:
        await asyncio.sleep(_REPORT_EVERY)
        send()


class _Changes:
    """A worker's snapshots with only the decision counts that changed since the
    last one sent (the parent keeps the maximum of each: writ.metrics.WorkerBoard):
    with thousands of orders named, a second's report stays small."""

    def __init__(self) -> None:
        self.sent: dict[str, dict[Any, int]] = {"decisions": {}, "by_order": {}}

    def __call__(self, snapshot: dict[str, Any]) -> dict[str, Any]:
        for key, sent in self.sent.items():
            changed = {k: n for k, n in snapshot[key].items() if sent.get(k) != n}
            sent.update(changed)
            snapshot[key] = changed
        return snapshot
