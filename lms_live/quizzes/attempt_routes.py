"""HTTP endpoints of the quiz engine (being built)."""

from __future__ import annotations

from lms_live.core.http import RouteTable

routes = RouteTable()
