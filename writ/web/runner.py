"""Serving the web app on the running loop: what `writ web` and `writ serve` call."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from writ.blocklist import BlocklistHolder
from writ.endpoints import split_hostport
from writ.metrics import Metrics
from writ.pages.i18n import CatalogError
from writ.policies import Policy
from writ.web.app import make_app

__all__ = ["WebHandle", "WebStartError", "run_web", "serve_app"]


class WebStartError(Exception):
    """The web server could not start; the message names the address."""


@dataclass
class WebHandle:
    runner: web.AppRunner

    @property
    def addresses(self) -> list[tuple[str, int]]:
        return [(str(a[0]), int(a[1])) for a in self.runner.addresses]

    @property
    def port(self) -> int:
        return self.addresses[0][1]

    async def shutdown(self) -> None:
        await self.runner.cleanup()


async def run_web(holder: BlocklistHolder, policy: Policy, *, metrics: Metrics | None = None,
                  token: str | None = None, listen: str | None = None,
                  sink_stats: Callable[[], Mapping[str, float]] | None = None,
                  store_status: Callable[[], Any] | None = None) -> WebHandle:
    """Start the app on `listen` (default policy.web.listen, loopback); return once bound."""
    where = listen or policy.web.listen
    try:
        host, port = split_hostport(where)
    except ValueError as e:  # say where the address came from: the flag or the policy
        raise WebStartError(f"{'--listen' if listen else 'web.listen'}: {e}") from None
    try:
        app = make_app(holder, policy, metrics=metrics, token=token, sink_stats=sink_stats,
                       store_status=store_status)
    except CatalogError as e:  # a bad message catalog in pages.languages_dir
        raise WebStartError(str(e)) from None
    return await serve_app(app, host, port, f"web server on {where}")


async def serve_app(app: web.Application, host: str, port: int, name: str) -> WebHandle:
    """Bind `app` to host:port and serve it on the running loop; a failed bind is a
    WebStartError naming `name` (the listener and its address), nothing left open."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as e:
        await runner.cleanup()
        raise WebStartError(f"{name}: {e.strerror or e}") from None
    return WebHandle(runner)
