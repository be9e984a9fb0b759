"""The block-page server for DNS-sinkholed clients and the admin API (aiohttp)."""

from writ.web.app import make_app, read_token
from writ.web.observe import MetricsThread, make_metrics_app, make_workers_app, run_metrics
from writ.web.runner import WebHandle, WebStartError, run_web

__all__ = ["MetricsThread", "WebHandle", "WebStartError", "make_app", "make_metrics_app",
           "make_workers_app", "read_token", "run_metrics", "run_web"]
