"""The metrics listener of `writ dns`, `writ proxy` and `writ icap` (`--metrics
HOST:PORT`, policy `dns|proxy|icap.metrics`): /metrics, /healthz and /readyz
only, as `writ web` serves them (docs/operator.md §6).

Invariants:
- Nothing else is served on it: no admin API, no block page, no register;
  any other path is 404. Probes and scrapers carry no secrets.
- One process (`make_metrics_app`): the same handlers as writ.web.app, over
  the node's own holder, counters and store. The parent of workers
  (`make_workers_app`): a writ.metrics.WorkerBoard's sums, served from a
  thread of its own (`MetricsThread`), since that process runs no event
  loop; the board is read under its lock, so a scrape never sees half a
  snapshot and never waits for a worker.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web

from writ.blocklist import BlocklistHolder
from writ.endpoints import split_hostport
from writ.metrics import Metrics, WorkerBoard
from writ.web import prom
from writ.web.app import (
    CLOCK,
    HOLDER,
    METRICS,
    SINK_STATS,
    STORE_STATUS,
    healthz,
    metrics_page,
    not_found,
    readyz,
)
from writ.web.runner import WebHandle, WebStartError, serve_app

__all__ = ["MetricsThread", "make_metrics_app", "make_workers_app", "run_metrics"]

BOARD = web.AppKey("board", WorkerBoard)


def make_metrics_app(holder: BlocklistHolder, metrics: Metrics, *,
                     sink_stats: Callable[[], Mapping[str, float]] | None = None,
                     store_status: Callable[[], Any] | None = None,
                     clock: Callable[[], float] = time.time) -> web.Application:
    """/metrics, /healthz, /readyz of one process's node, as writ.web.app answers them."""
    app = web.Application()
    app[HOLDER] = holder
    app[METRICS] = metrics
    app[SINK_STATS] = sink_stats
    app[CLOCK] = clock
    app[STORE_STATUS] = store_status
    _routes(app, metrics_page, readyz)
    return app


async def _workers_metrics(request: web.Request) -> web.Response:
    metrics, blocklists, extra, ages = request.app[BOARD].totals()
    clock: Any = request.app[CLOCK]
    text = prom.render_workers(metrics, blocklists, clock(), extra, ages)
    return web.Response(body=text.encode(), headers={"Content-Type": prom.CONTENT_TYPE})


async def _workers_ready(request: web.Request) -> web.Response:
    ready, detail = request.app[BOARD].readiness()
    return web.json_response({"ready": ready, "detail": detail}, status=200 if ready else 503,
                             headers={"Cache-Control": "no-store"})


def make_workers_app(board: WorkerBoard,
                     clock: Callable[[], float] = time.time) -> web.Application:
    """/metrics, /healthz, /readyz of the parent of `--workers N`: the board's sums."""
    app = web.Application()
    app[BOARD] = board
    app[CLOCK] = clock
    _routes(app, _workers_metrics, _workers_ready)
    return app


def _routes(app: web.Application, metrics: Any, ready: Any) -> None:
    r = app.router
    r.add_get("/healthz", healthz)
    r.add_get("/readyz", ready)
    r.add_get("/metrics", metrics)
    r.add_route("*", "/{tail:.*}", not_found)


async def run_metrics(app: web.Application, where: str, key: str) -> WebHandle:
    """Serve `app` on `where` (`key` names where the address came from in errors)."""
    try:
        host, port = split_hostport(where)
    except ValueError as e:
        raise WebStartError(f"{key}: {e}") from None
    return await serve_app(app, host, port, f"metrics listener on {where}")


class MetricsThread:
    """`app` served on `where` by an event loop in a thread of its own (the parent
    of workers runs none). `start()` returns once it listens or raises
    WebStartError; `stop()` closes it."""

    def __init__(self, app: web.Application, where: str, key: str) -> None:
        self.app, self.where, self.key = app, where, key
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="writ-metrics",
                                        daemon=True)
        self._handle: WebHandle | None = None

    def start(self) -> MetricsThread:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(
            run_metrics(self.app, self.where, self.key), self._loop)
        try:
            self._handle = future.result()
        except BaseException:
            self._halt()
            raise
        return self

    @property
    def addresses(self) -> list[tuple[str, int]]:
        return self._handle.addresses if self._handle else []

    def stop(self) -> None:
        if self._handle is not None:
            handle, self._handle = self._handle, None
            asyncio.run_coroutine_threadsafe(handle.shutdown(), self._loop).result(timeout=10)
        self._halt()

    def _halt(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()
