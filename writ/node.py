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
through its constructor.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from writ.audit import DecisionSink
from writ.blocklist import Blocklist, BlocklistHolder, OrderError, load_orders
from writ.blocklist.ipaddr import DEFAULT_LIMITS, IpLimits
from writ.commands._common import UsageError
from writ.endpoints import format_endpoint
from writ.metrics import Metrics
from writ.policies import Policy

__all__ = [
    "InvalidOrdersError",
    "MeteredSink",
    "Node",
    "NodeOptions",
    "StartError",
    "load_blocklist",
    "open_audit_log",
    "open_holder",
    "run_node",
    "with_audit_path",
]


class InvalidOrdersError(Exception):
    def __init__(self, errors: tuple[OrderError, ...]) -> None:
        super().__init__(f"{len(errors)} error(s) in the orders")
        self.errors = errors


def load_blocklist(
    orders: Path | None, redis_url: str | None, prefix: str = "writ", tz: str = "UTC",
    limits: IpLimits = DEFAULT_LIMITS,
) -> Blocklist:
    """A one-shot read of the act set (for explain, export, diff)."""
    if redis_url is not None:
        from writ.blocklist.stores import PublishedError, read_published

        try:
            return read_published(redis_url, prefix)
        except PublishedError as e:
            raise UsageError(str(e)) from None
    if orders is None or not orders.is_dir():
        raise UsageError(f"--orders: no such folder: {orders}")
    result = load_orders(orders, ZoneInfo(tz), limits=limits)
    if not result.ok:
        raise InvalidOrdersError(result.errors)
    return Blocklist(result.acts)


def open_holder(orders: Path | None, redis_url: str | None, policy: Policy) -> BlocklistHolder:
    """A holder filled once, synchronously (for `writ dns` before it forks workers)."""
    holder = BlocklistHolder()
    try:
        blocklist = load_blocklist(orders, redis_url, tz=policy.timezone,
                                   limits=policy.ip.limits())
    except InvalidOrdersError as e:
        raise UsageError("invalid orders:\n" + "\n".join(str(x) for x in e.errors)) from None
    holder.set(blocklist, datetime.now(UTC))
    return holder


class StartError(Exception):
    """The node cannot start; the message says why."""


def open_audit_log(policy: Policy, redis_url: str | None, prefix: str) -> Any:
    """The node's one audit writer (started), with the policy's off-box checkpoint copies."""
    from writ.audit import AuditLog

    push_redis = redis_url if policy.audit.checkpoint_push_redis else None
    push_file = policy.audit.checkpoint_push_file
    return AuditLog(policy.audit, policy.node,
                    checkpoint_push=Path(push_file) if push_file else None,
                    redis_url=push_redis, redis_prefix=f"{prefix}:").start()


class MeteredSink:
    """Counts every decision for /metrics, then hands it to the audit log."""

    def __init__(self, metrics: Metrics, inner: DecisionSink | None) -> None:
        self.metrics = metrics
        self.inner = inner

    def record(self, *, component: str, client: str, target: str, decision: str, action: str,
               orders: Sequence[str], rule: str | None, blocklist_version: str | None) -> None:
        self.metrics.count(component, decision, action, orders)
        if self.inner is not None:
            self.inner.record(component=component, client=client, target=target,
                              decision=decision, action=action, orders=orders, rule=rule,
                              blocklist_version=blocklist_version)


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
    web_listen: str | None = None
    confdir: str | None = None
    audit: bool = True


@dataclass
class Node:
    """One edge node: build with options and a policy, `await start()`, `await stop()`."""

    policy: Policy
    options: NodeOptions
    holder: BlocklistHolder = field(default_factory=BlocklistHolder)
    metrics: Metrics = field(default_factory=Metrics)
    store: Any = None
    audit: Any = None
    sink: MeteredSink | None = None
    dns: Any = None
    proxy: Any = None
    web: Any = None
    addresses: dict[str, list[tuple[str, int]]] = field(default_factory=dict)

    async def start(self) -> None:
        from writ.blocklist.stores import open_store

        opts, policy = self.options, self.policy
        # 1. audit log first (see the module docstring)
        if opts.audit:
            self.audit = open_audit_log(policy, opts.redis_url, opts.prefix)
        self.sink = MeteredSink(self.metrics, self.audit)
        # A million rules are a million long-lived objects: keep the cyclic GC from
        # re-scanning them after every swap (they are freed by refcount when replaced).
        self.holder.on_swap(lambda _index: gc.freeze())
        try:
            # 2. the blocklist, before any listener opens
            self.store = open_store(opts.orders, opts.redis_url, state_dir=opts.state_dir,
                                    tz=ZoneInfo(policy.timezone), prefix=opts.prefix,
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
        except BaseException:
            await self.stop()
            raise

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
        if self.dns is not None:
            out["dns_refused_clients"] = float(self.dns.server.refused_clients)
            out["dns_no_blocklist"] = float(self.dns.server.no_blocklist)
        return out

    async def _start_dns(self) -> None:
        from writ.dns.server import DnsServer
        from writ.dns.transport import Listeners

        assert self.sink is not None
        from writ.endpoints import split_hostport

        listen = list(self.options.dns_listen) or [
            split_hostport(a, 53) for a in self.policy.dns.listen  # validated by the policy loader
        ]
        server = DnsServer(self.holder, self.policy, self.sink)
        self.dns = Listeners(server)
        await self.dns.start(listen)
        self.addresses["dns"] = list(self.dns.addresses)

    async def _start_proxy(self) -> None:
        from writ.proxy import run_proxy

        mode = self.options.proxy_mode or self.policy.proxy.mode
        # The addon counts every HTTP decision itself (allows included), so it gets
        # the plain audit log, not the metered sink. In reverse mode mitmproxy would
        # rewrite the Host header before the addon judges it: keep it.
        extra = {"keep_host_header": True} if mode.startswith("reverse:") else None
        self.proxy = await run_proxy(self.holder, self.policy, self.audit,
                                     listen=self.options.proxy_listen, mode=mode,
                                     metrics=self.metrics, confdir=self.options.confdir,
                                     extra=extra)
        self.addresses["proxy"] = self.proxy.addresses
        from writ.proxy import SteerKind

        for kind in SteerKind:
            steered = self.proxy.steer_addresses(kind)
            if steered:
                self.addresses[f"steer-{kind.value}"] = steered

    async def stop(self) -> None:
        # Reverse order: listeners drain, then the store, then the log is sealed.
        for name in ("proxy", "dns", "web"):
            part = getattr(self, name)
            if part is None:
                continue
            setattr(self, name, None)
            with contextlib.suppress(Exception):
                await (part.stop() if name == "dns" else part.shutdown())
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


def with_audit_path(policy: Policy, path: str | None) -> Policy:
    return policy if path is None else replace(policy, audit=replace(policy.audit, path=path))
