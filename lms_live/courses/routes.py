"""HTTP endpoints of the course catalog and authoring (being built)."""

from __future__ import annotations

from lms_live.core.http import RouteTable

routes = RouteTable()
