"""Exports of the blocklist for other software (pure renderers; no I/O)."""

from writ.export.rpz import RpzAction, RpzOptions, render_rpz

__all__ = ["RpzAction", "RpzOptions", "render_rpz"]
