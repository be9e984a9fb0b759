"""The `mitmdump -s writ/proxy/mitmdump_addon.py` lifecycle: options in, a
node (writ.node.Node, with no listeners of its own: mitmdump is the proxy)
whose holder, policy and audit log the enforcing addon uses.

`writ proxy` and `writ serve` do not come here: their node builds the addon
itself. This module is the `-s` script's node, outside the proxy shell (a
shell never imports writ.node, docs/design.md §1), so there is one wiring
point: the Node opens the audit log and follows the store, as for every node.

Invariants:
- A bad option stops mitmdump at startup (OptionsError naming the option).
- Without writ_orders or writ_redis the enforcing addon has no holder and
  refuses every request (fail closed), as logged.
- Only this addon reads `ctx.options`, and only in `configure()`.
"""

from __future__ import annotations

import gc
import logging
from pathlib import Path
from typing import Any

from mitmproxy import ctx, exceptions

from writ.node import Node, NodeOptions
from writ.policies import Policy, load_policy
from writ.proxy.addon import WritAddon
from writ.proxy.steer import steer_modes

__all__ = ["Lifecycle"]

log = logging.getLogger("writ.proxy")

_OPTIONS = ("writ_orders", "writ_redis", "writ_policy", "writ_audit_log")


def _options_error(message: str) -> Exception:
    return exceptions.OptionsError(message)  # type: ignore[no-untyped-call]


class Lifecycle:
    def __init__(self, writ: WritAddon) -> None:
        self.writ = writ
        # Its audit log opens in configure(), its store starts in running().
        self._node: Node | None = None
        self._following = False

    def load(self, loader: Any) -> None:
        loader.add_option("writ_orders", str | None, None, "writ: folder of court orders")
        loader.add_option("writ_redis", str | None, None, "writ: Redis URL of the blocklist")
        loader.add_option("writ_policy", str | None, None, "writ: enforcement policy YAML")
        loader.add_option("writ_audit_log", str | None, None,
                          "writ: decision log path (default: the policy's)")

    def configure(self, updated: set[str]) -> None:
        if not updated & set(_OPTIONS):
            return
        o = ctx.options
        if not o.writ_orders and not o.writ_redis:
            # Not an OptionsError: mitmproxy rolls options back to these defaults
            # after a failed update and expects them to configure cleanly. At
            # startup mitmdump's ErrorCheck turns this ERROR into an exit.
            log.error("writ: set writ_orders or writ_redis; until then every request "
                      "is refused (fail closed)")
            self.writ.holder = None
            return
        if o.writ_orders and o.writ_redis:
            raise _options_error("writ_orders, writ_redis: give only one of them")
        try:
            policy = Policy() if o.writ_policy is None else load_policy(Path(o.writ_policy))
        except Exception as e:  # noqa: BLE001 - any failure is a startup error naming the option
            raise _options_error(f"writ_policy: {e}") from None
        which = "writ_orders" if o.writ_orders else "writ_redis"
        orders = Path(o.writ_orders) if o.writ_orders else None
        try:  # the blocklist once, now: a bad one fails mitmdump at startup
            from writ.blocklist.stores import load_holder

            keyring = Path(policy.trust.keyring) if policy.trust.keyring else None
            holder = load_holder(orders, o.writ_redis, tz=policy.timezone, keyring=keyring,
                                 limits=policy.ip.limits())
        except Exception as e:  # noqa: BLE001 - as above
            raise _options_error(f"{which}: {e}") from None
        node = Node(policy, NodeOptions(orders=orders, redis_url=o.writ_redis,
                                        components=frozenset(), audit_path=o.writ_audit_log),
                    holder=holder)
        try:
            node.open_audit()
        except Exception as e:  # noqa: BLE001 - as above
            raise _options_error(f"writ_audit_log: {e}") from None
        if self._node is not None and self._node.audit is not None:
            self._node.audit.close()
        self._node, self._following = node, False
        self.writ.attach(holder, policy, node.sink)
        self._open_steer_listeners(policy)
        # A million rules are a million long-lived objects: keep the cyclic GC
        # from walking them again and again (it would stall requests).
        gc.freeze()

    def _open_steer_listeners(self, policy: Policy) -> None:
        """connection_strategy lazy, and the policy's steer listeners join
        mitmdump's own modes, as `writ proxy` opens them (set before the
        servers start, so a taken address stops mitmdump at startup like any
        listener of its own)."""
        options: Any = ctx.options  # mitmproxy's OptionsManager is untyped
        if options.connection_strategy != "lazy":
            # As `writ proxy` runs: nothing is dialed before the hooks judged it
            # (eager would connect to a transparent destination first).
            options.update(connection_strategy="lazy")
        steer = steer_modes(policy.proxy.steer_http, policy.proxy.steer_tls)
        if steer == self.writ.steer:
            return
        modes = [m for m in ctx.options.mode if m not in self.writ.steer]
        self.writ.steer = steer
        # Steered hosts are reached under the Host they asked for.
        extra = {"keep_host_header": True} if steer else {}
        options.update(mode=[*modes, *steer], **extra)

    async def running(self) -> None:
        """Follow the folder or the Redis replica from now on (configure()
        loaded the blocklist once, so a bad one failed at startup)."""
        w = self.writ
        if self._node is None or self._following:
            return
        self._following = True
        await self._node.start()  # its audit log is open already: the store, no listeners
        if w.steer:
            # mitmproxy 12 brings its servers up before a -s script is configured:
            # start the steer listeners now (a no-op where they already run).
            addons: Any = ctx.master.addons
            ps = addons.get("proxyserver")
            if ps is not None and not await ps.setup_servers():
                log.error("writ: a steer listener (proxy.steer_http/steer_tls) did not start")

    async def done(self) -> None:
        if self._node is not None:  # the store stops, the audit log is sealed
            node, self._node = self._node, None
            await node.stop()
