"""Running mitmproxy (a DumpMaster) with the addon inside writ's own event loop.

`run_proxy()` is what `writ proxy` and `writ serve` call: it receives the
node's holder, policy, sink and metrics, starts the listeners and returns a
handle once they accept connections (or raises ProxyStartError saying why).

Invariants:
- mitmproxy's ErrorCheck addon is removed: it calls sys.exit() from inside
  the loop, which would take down every other shell sharing it. Startup
  errors are raised here instead.
- connection_strategy is "lazy": in transparent mode mitmproxy would
  otherwise dial the original destination before any hook could refuse it,
  and a blocked upstream must never be contacted.
- Our addon is added after mitmproxy's defaults, so its hooks see what
  tlsconfig and nextlayer decided and may override it.
- The policy's steer listeners (proxy.steer_http/steer_tls) are extra modes
  on the same master (writ.proxy.steer); with any of them keep_host_header is
  on, or mitmproxy would replace the Host header (the steered destination)
  with the reverse placeholder before the addon reads it.
- With `reuse_port` (a `writ proxy --workers` worker) every TCP listener the
  master opens sets SO_REUSEPORT, so N processes share the proxy's and the
  steer ports and the kernel spreads connections over them. mitmproxy (11 and
  12) binds through `asyncio.start_server(handler, host, port)`, which passes
  through the running loop's `create_server`: for as long as the master is
  starting, and only then, that loop's `create_server` is given
  `reuse_port=True` (uvloop and asyncio both accept it).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from mitmproxy import certs, exceptions, options
from mitmproxy.proxy.mode_specs import ProxyMode
from mitmproxy.tools.dump import DumpMaster

from writ.audit import RecordSink
from writ.blocklist import BlocklistHolder
from writ.endpoints import split_hostport
from writ.metrics import Metrics
from writ.policies import Policy
from writ.proxy.addon import WritAddon
from writ.proxy.steer import SteerKind, steer_modes

__all__ = ["ProxyHandle", "ProxyStartError", "check_mode", "ensure_ca", "run_proxy"]

_START_TIMEOUT = 15.0


class ProxyStartError(Exception):
    """The proxy could not start: the message names the option or address."""


@dataclass
class ProxyHandle:
    master: DumpMaster
    addon: WritAddon
    task: asyncio.Task[None]

    def _listeners(self, steer: bool) -> list[tuple[str, int]]:
        addons: Any = self.master.addons
        ps: Any = addons.get("proxyserver")
        return [(str(a[0]), int(a[1])) for server in ps.servers
                if (server.mode.full_spec in self.addon.steer) is steer
                for a in server.listen_addrs]

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """The proxy's own listeners (not the steer ones)."""
        return self._listeners(steer=False)

    def steer_addresses(self, kind: SteerKind) -> list[tuple[str, int]]:
        """Bound addresses of the steer listeners of one kind (http or tls)."""
        addons: Any = self.master.addons
        ps: Any = addons.get("proxyserver")
        return [(str(a[0]), int(a[1])) for server in ps.servers
                if self.addon.steer.get(server.mode.full_spec) is kind
                for a in server.listen_addrs]

    @property
    def port(self) -> int:
        return self.addresses[0][1]

    async def shutdown(self) -> None:
        if not self.task.done():
            master: Any = self.master
            master.shutdown()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


async def run_proxy(
    holder: BlocklistHolder,
    policy: Policy,
    sink: RecordSink | None,
    *,
    listen: str | None = None,
    mode: str | None = None,
    metrics: Metrics | None = None,
    confdir: str | None = None,
    termlog: bool = False,
    extra: Mapping[str, Any] | None = None,
    reuse_port: bool = False,
) -> ProxyHandle:
    """Start mitmproxy with the writ addon on the running loop; return once listening.

    `listen` defaults to policy.proxy.listen, `mode` to policy.proxy.mode
    ("regular", "transparent", or any mitmproxy mode spec such as
    "reverse:http://127.0.0.1:8000"). `extra` sets further mitmproxy options;
    `reuse_port` shares the listening ports with other processes (see above).
    """
    try:
        host, port = split_hostport(listen or policy.proxy.listen)
    except ValueError as e:  # say where the address came from: the flag or the policy
        raise ProxyStartError(f"{'--listen' if listen else 'proxy.listen'}: {e}") from None
    spec = mode or policy.proxy.mode
    check_mode(spec)
    opts = options.Options(listen_host=host, listen_port=port)
    master = DumpMaster(opts, loop=asyncio.get_running_loop(), with_termlog=termlog,
                        with_dumper=False)
    addons: Any = master.addons  # mitmproxy's AddonManager is untyped
    errorcheck = addons.get("errorcheck")
    if errorcheck is not None:
        addons.remove(errorcheck)
        errorcheck.finish()
    steer = steer_modes(policy.proxy.steer_http, policy.proxy.steer_tls)
    addon = WritAddon(holder, policy, sink, metrics, steer=steer)
    addons.add(addon)
    settings: dict[str, Any] = {"mode": [spec, *steer], "connection_strategy": "lazy"}
    if steer:
        settings["keep_host_header"] = True
    if confdir is not None:
        settings["confdir"] = confdir
    settings.update(extra or {})
    try:
        opts_any: Any = master.options
        opts_any.update(**settings)
    except (exceptions.OptionsError, KeyError, TypeError) as e:
        raise ProxyStartError(f"proxy options: {e}") from None
    with _ports_shared(asyncio.get_running_loop()) if reuse_port else contextlib.nullcontext():
        task = asyncio.create_task(master.run(), name="writ-proxy")
        handle = ProxyHandle(master, addon, task)
        await _until_listening(handle, f"{host}:{port}")
    return handle


@contextlib.contextmanager
def _ports_shared(loop: asyncio.AbstractEventLoop) -> Iterator[None]:
    """Every TCP server `loop` creates meanwhile sets SO_REUSEPORT (see above)."""
    loop_any: Any = loop
    loop_any.create_server = functools.partial(loop.create_server, reuse_port=True)
    try:
        yield
    finally:
        del loop_any.create_server  # the class's own method again


def check_mode(spec: str) -> None:
    """ProxyStartError unless `spec` is a mitmproxy mode spec."""
    try:
        ProxyMode.parse(spec)
    except ValueError as e:
        raise ProxyStartError(f"--mode: {spec!r}: {e}") from None


def ensure_ca(confdir: str | None) -> None:
    """Create mitmproxy's CA in `confdir` (default ~/.mitmproxy) now if it is
    missing, as mitmproxy would on start: `writ proxy --workers` calls it
    before forking, so that every worker loads the same CA."""
    defaults = options.Options()
    path = os.path.expanduser(confdir or defaults.confdir)
    certs.CertStore.from_store(path=path, basename=options.CONF_BASENAME,
                              key_size=defaults.key_size)


async def _until_listening(handle: ProxyHandle, where: str) -> None:
    addons: Any = handle.master.addons
    ps: Any = addons.get("proxyserver")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + _START_TIMEOUT
    while not ps.is_running and not handle.task.done():
        if loop.time() > deadline:
            await handle.shutdown()
            raise ProxyStartError(f"proxy on {where}: did not start within {_START_TIMEOUT:.0f}s")
        await asyncio.sleep(0.01)
    failed = [str(s.last_exception) for s in ps.servers if s.last_exception is not None]
    if handle.task.done() or failed or not ps.listen_addrs():
        await handle.shutdown()
        detail = "; ".join(failed) or "no listener came up"
        raise ProxyStartError(f"proxy on {where}: {detail}")
