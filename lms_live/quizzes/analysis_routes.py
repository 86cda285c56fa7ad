"""HTTP endpoints of quiz item analysis and result exports (being built)."""

from __future__ import annotations

from lms_live.core.http import RouteTable

routes = RouteTable()
