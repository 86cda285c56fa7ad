"""Public certificate verification page (being built)."""

from __future__ import annotations

from aiohttp import web


def setup_certificate_pages(app: web.Application) -> None:
    """Add the verification page routes to the app."""
