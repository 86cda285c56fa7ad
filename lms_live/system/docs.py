"""The API docs page (Swagger UI served from `static/vendor`, no CDN) and `/metrics`."""

from __future__ import annotations

import hmac

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from lms_live import keys
from lms_live.core.errors import Unauthorized
from lms_live.core.http import RouteTable

routes = RouteTable()

DOCS_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>lms_live API</title>
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <link rel="stylesheet" href="/static/vendor/swagger-ui/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/static/vendor/swagger-ui/swagger-ui-bundle.js"></script>
  <script src="/static/docs/swagger-init.js"></script>
</body>
</html>
"""


@routes.get(
    "/api/docs",
    summary="Interactive API documentation",
    tags=["system"],
    media_type="text/html",
    in_schema=False,
    rate_limit=None,
)
async def api_docs(request: web.Request) -> web.Response:
    """Swagger UI under the same strict CSP as every page (checked in Chromium: no violations)."""
    return web.Response(text=DOCS_PAGE, content_type="text/html")


@routes.get(
    "/metrics",
    summary="Prometheus metrics",
    tags=["system"],
    media_type="text/plain",
    in_schema=False,
    rate_limit=None,
)
async def metrics(request: web.Request) -> web.Response:
    """Text exposition; requires `Authorization: Bearer <METRICS_TOKEN>` when that is set."""
    token = request.app[keys.SETTINGS].metrics_token
    if token is not None:
        sent = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(sent.encode(), token.get_secret_value().encode()):
            raise Unauthorized("A valid metrics token is required.")
    body = request.app[keys.METRICS].render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
