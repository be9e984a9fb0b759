"""The `mitmdump -s writ/proxy/mitmdump_addon.py` lifecycle: options in, a
holder, policy and audit log out, handed to the enforcing addon.

`writ proxy` and `writ serve` do not come here: the node (writ.node) builds
the holder and the audit log and passes them to WritAddon's constructor.
Under mitmdump this addon builds them with the node's own helpers
(open_holder, open_audit_log, with_audit_path), so there is one wiring point.

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
        self._log: Any = None  # the AuditLog opened here
        self._store: Any = None  # the store keeping the holder current

    def load(self, loader: Any) -> None:
        loader.add_option("writ_orders", str | None, None, "writ: folder of court orders")
        loader.add_option("writ_redis", str | None, None, "writ: Redis URL of the blocklist")
        loader.add_option("writ_policy", str | None, None, "writ: enforcement policy YAML")
        loader.add_option("writ_audit_log", str | None, None,
                          "writ: decision log path (default: the policy's)")

    def configure(self, updated: set[str]) -> None:
        if not updated & set(_OPTIONS):
            return
        from writ import node

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
        try:
            holder = node.open_holder(Path(o.writ_orders) if o.writ_orders else None,
                                      o.writ_redis, policy)
        except Exception as e:  # noqa: BLE001 - as above
            raise _options_error(f"{which}: {e}") from None
        try:
            audit = node.open_audit_log(node.with_audit_path(policy, o.writ_audit_log),
                                        o.writ_redis, "writ")
        except Exception as e:  # noqa: BLE001 - as above
            raise _options_error(f"writ_audit_log: {e}") from None
        if self._log is not None:
            self._log.close()
        self._log = audit
        w = self.writ
        w.holder, w.policy, w.sink = holder, policy, audit
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
        if w.holder is None or self._store is not None:
            return
        from zoneinfo import ZoneInfo

        from writ.blocklist.stores import open_store

        o = ctx.options
        self._store = open_store(Path(o.writ_orders) if o.writ_orders else None, o.writ_redis,
                                 state_dir=Path("state"), tz=ZoneInfo(w.policy.timezone))
        await self._store.start(w.holder)
        if w.steer:
            # mitmproxy 12 brings its servers up before a -s script is configured:
            # start the steer listeners now (a no-op where they already run).
            addons: Any = ctx.master.addons
            ps = addons.get("proxyserver")
            if ps is not None and not await ps.setup_servers():
                log.error("writ: a steer listener (proxy.steer_http/steer_tls) did not start")

    async def done(self) -> None:
        if self._store is not None:
            await self._store.stop()
            self._store = None
        if self._log is not None:  # closing seals the file
            self._log.close()
            self._log = None
