"""The OpenAPI 3.1 document: valid, complete, and served with a working docs page."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from aiohttp import web
from openapi_spec_validator import validate

from lms_live import app as app_module
from lms_live import keys


async def test_document_is_valid_openapi_31(client: Any) -> None:
    response = await client.get("/api/v1/openapi.json")
    assert response.status == 200
    spec = await response.json()
    assert spec["openapi"] == "3.1.0"
    validate(spec)


async def test_the_document_is_built_once_and_off_the_event_loop(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    builds: list[int] = []
    real = app_module._openapi_body

    def spy(*args: Any, **kwargs: Any) -> bytes:
        builds.append(threading.get_ident())
        return real(*args, **kwargs)

    monkeypatch.setattr(app_module, "_openapi_body", spy)
    responses = await asyncio.gather(
        *(client.get("/api/v1/openapi.json") for _ in range(5)),
        client.get("/api/v1/health"),  # served meanwhile
    )
    assert [r.status for r in responses] == [200] * 6
    bodies = {await r.read() for r in responses[:5]}
    assert len(bodies) == 1
    assert len(builds) == 1
    assert builds[0] != threading.get_ident()
    await client.get("/api/v1/openapi.json")
    assert len(builds) == 1  # cached


async def test_a_failed_build_is_tried_again(client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    real = app_module._openapi_body
    calls: list[int] = []

    def flaky(*args: Any, **kwargs: Any) -> bytes:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("first build fails")
        return real(*args, **kwargs)

    monkeypatch.setattr(app_module, "_openapi_body", flaky)
    assert (await client.get("/api/v1/openapi.json")).status == 500
    second = await client.get("/api/v1/openapi.json")
    assert second.status == 200
    assert (await second.json())["openapi"] == "3.1.0"


async def test_every_registered_operation_is_documented(client: Any, app: web.Application) -> None:
    spec = await (await client.get("/api/v1/openapi.json")).json()
    for route in app[keys.ROUTES]:
        if not route.in_schema:
            continue
        operation = spec["paths"][route.openapi_path][route.method.lower()]
        assert operation["operationId"] == route.operation_id
        assert operation["summary"]
        own = {str(status) for status, _ in route.responses}
        for status, response in operation["responses"].items():
            if int(status) >= 400 and status not in own:
                schema = response["content"]["application/json"]["schema"]
                assert schema["$ref"].endswith("/ErrorBody"), (route.path, status)


async def test_errors_and_security_are_documented(client: Any) -> None:
    spec = await (await client.get("/api/v1/openapi.json")).json()
    email = spec["paths"]["/api/v1/system/test-email"]["post"]
    assert {"401", "403", "413", "415", "422", "429", "500"} <= set(email["responses"])
    assert email["security"] == [{"bearerAuth": []}]
    assert email["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "TestEmailIn"
    )
    ready = spec["paths"]["/api/v1/ready"]["get"]["responses"]
    assert ready["503"]["content"]["application/json"]["schema"]["$ref"].endswith("/ReadyOut")
    assert "security" not in spec["paths"]["/api/v1/health"]["get"]


async def test_docs_page_uses_local_assets_only(client: Any) -> None:
    page = await client.get("/api/docs")
    assert page.status == 200
    html = await page.text()
    assert "http://" not in html
    assert "https://" not in html
    for asset in (
        "/static/vendor/swagger-ui/swagger-ui-bundle.js",
        "/static/vendor/swagger-ui/swagger-ui.css",
        "/static/docs/swagger-init.js",
    ):
        assert asset in html
        response = await client.get(asset)
        assert response.status == 200, asset
        assert len(await response.read()) > 500
