"""The hooks around mitmproxy's server connections: judge the destination's
addresses, connect to exactly the address judged (docs/design.md §4 HTTP;
docs/operator.md §5, "Addresses").

Invariants:
- While ip/ip_prefix orders are in force, a server connection goes to
  exactly the address `server_connect` judged, never to a second resolution
  of the name (writ.proxy.destination); a destination writ cannot resolve is
  refused, not left to mitmproxy to resolve again.
- Once open (or failed), a pinned connection gets its name back, so TLS
  (default SNI, the name verified) and connection reuse work by name.
- Refusals are recorded through the main addon (writ.proxy.addon.WritAddon),
  the one place for records; a bug fails as the policy's fail mode says.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable
from typing import Any, Protocol

from mitmproxy import connection
from mitmproxy.proxy import server_hooks
from mitmproxy.proxy.mode_specs import UpstreamMode

from writ.blocklist import Index
from writ.policies import FailMode, Policy
from writ.proxy.destination import (
    Connect,
    Refuse,
    Resolve,
    Unresolved,
    judge_destination,
    system_resolve,
)
from writ.proxy.judge import Ruling, authority_of

__all__ = ["ConnectAddon", "Core"]

log = logging.getLogger("writ.proxy")


class Core(Protocol):
    """What the connection hooks use of the main addon: its index and its records."""

    policy: Policy

    def index(self) -> Index | None: ...
    def record(self, conn: Any, target: str | Callable[[], str], out: Ruling,
               version: str | None) -> None: ...


class ConnectAddon:
    def __init__(self, core: Core) -> None:
        self.core = core
        # How a destination name becomes addresses (writ.proxy.destination).
        self.resolve: Resolve = system_resolve
        # Connections pinned to a judged address -> the name they were asked for.
        self._named: weakref.WeakKeyDictionary[connection.Server, connection.Address] = (
            weakref.WeakKeyDictionary())

    async def server_connect(self, data: server_hooks.ServerConnectionHookData) -> None:
        """Never open a connection to an address an ip/ip_prefix order blocks,
        and open it to exactly the address judged (writ.proxy.destination)."""
        core = self.core
        index = core.index()
        server = data.server
        address = server.address
        if index is None or not index.ip_count or not address:
            return
        host, port = str(address[0]), int(address[1])
        try:
            got = await judge_destination(index, host, port, self.resolve)
        except Exception:  # a bug: the fail mode decides, as in the other hooks
            log.exception("writ: internal error in server_connect")
            if core.policy.fail is not FailMode.OPEN:
                server.error = "writ could not judge the destination (fails closed)"
            return
        upstream = _is_upstream_proxy(data)
        if got is None or (upstream and not isinstance(got, Refuse)):
            # The operator's upstream proxy resolves and connects to the
            # destination itself: its own address is judged, never pinned, and
            # resolving it is mitmproxy's business (docs/operator.md §5).
            return
        if isinstance(got, Connect):
            self._named[server] = address
            server.address = (got.address, port)
            return
        target = f"connect {authority_of(host)}:{port}"
        if isinstance(got, Unresolved):
            server.error = (f"destination {host} could not be resolved ({got.reason}): "
                            "not connected")
            core.record(data.client, f"{target} (unresolved)", Ruling("error", "refused"),
                        index.version)
            return
        d = got.decision
        server.error = (f"destination {got.address} blocked by court order "
                        f"{', '.join(d.orders)} ({d.rule})")
        core.record(data.client, f"{target} ({got.address})", Ruling("block", "refused", d),
                    index.version)

    def server_connected(self, data: server_hooks.ServerConnectionHookData) -> None:
        self._unpin(data.server)

    def server_connect_error(self, data: server_hooks.ServerConnectionHookData) -> None:
        self._unpin(data.server)

    def _unpin(self, server: connection.Server) -> None:
        """Give a pinned connection its name back once it is open: TLS takes its
        default SNI and the name it verifies from `address`, and mitmproxy reuses
        a connection for later requests by the name asked for. mitmproxy's
        Server refuses a new `address` on an open connection (it would misname
        it); this one is open to the address judged for that very name, as if
        mitmproxy had resolved the name itself (`peername` is that address)."""
        named = self._named.pop(server, None)
        if named is not None:
            object.__setattr__(server, "address", named)


def _is_upstream_proxy(data: server_hooks.ServerConnectionHookData) -> bool:
    """Is this the connection to the upstream proxy of an `upstream:` listener?"""
    mode = data.client.proxy_mode
    return isinstance(mode, UpstreamMode) and data.server.address == mode.address
