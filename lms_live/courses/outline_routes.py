"""HTTP endpoints of course outlines (being built)."""

from __future__ import annotations

from lms_live.core.http import RouteTable

routes = RouteTable()
