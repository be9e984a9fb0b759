"""Fixtures for the resolver tests live in support.py (so tests can import its helpers)."""

from tests.dns.support import resolver, standin

__all__ = ["resolver", "standin"]
