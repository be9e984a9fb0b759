"""The block-page server for DNS-sinkholed clients and the admin API (aiohttp)."""

from writ.web.app import make_app, read_token
from writ.web.runner import WebHandle, WebStartError, run_web

__all__ = ["WebHandle", "WebStartError", "make_app", "read_token", "run_web"]
