"""The error model and request parsing: every bad input is a clear 4xx JSON error."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import pytest
from aiohttp import web
from pydantic import BaseModel, Field

from lms_live import keys
from lms_live.core.errors import Conflict
from lms_live.core.http import RouteTable
from lms_live.core.logging import configure_logging
from tests.conftest import bearer


class ItemPath(BaseModel):
    item_id: uuid.UUID


class ItemQuery(BaseModel):
    limit: int = Field(10, ge=1, le=100)
    tag: list[str] = []


class ItemIn(BaseModel):
    name: str = Field(min_length=1, max_length=20)
    price: int = Field(ge=0)


class ItemOut(BaseModel):
    id: uuid.UUID
    name: str
    price: int
    limit: int
    tags: list[str]


probe = RouteTable()


@probe.post(
    "/api/v1/probe/items/{item_id}",
    summary="probe",
    path_model=ItemPath,
    query=ItemQuery,
    body=ItemIn,
    response=ItemOut,
    status=201,
)
async def create_item(
    request: web.Request, path: ItemPath, query: ItemQuery, body: ItemIn
) -> ItemOut:
    return ItemOut(
        id=path.item_id, name=body.name, price=body.price, limit=query.limit, tags=query.tag
    )


@probe.get("/api/v1/probe/boom", summary="fails")
async def boom(request: web.Request) -> None:
    raise RuntimeError("secret internal detail: password=hunter2")


@probe.get("/api/v1/probe/conflict", summary="conflicts")
async def conflict(request: web.Request) -> None:
    raise Conflict("Already there.", details=[{"field": "name"}])


@probe.get("/api/v1/probe/admin", summary="admins only", roles=["admin"])
async def admin_only(request: web.Request) -> None:
    return None


@pytest.fixture
async def api(aiohttp_client: Any, app: web.Application) -> Any:
    probe.install(app)
    return await aiohttp_client(app)


ITEM = f"/api/v1/probe/items/{uuid.uuid4()}"


async def test_valid_request_is_parsed_and_answered(api: Any) -> None:
    response = await api.post(ITEM + "?limit=5&tag=a&tag=b", json={"name": "x", "price": 3})
    assert response.status == 201
    body = await response.json()
    assert body["name"] == "x"
    assert body["limit"] == 5
    assert body["tags"] == ["a", "b"]


@pytest.mark.parametrize(
    ("data", "content_type", "status", "code"),
    [
        (b"{not json", "application/json", 400, "malformed_json"),
        (b"", "application/json", 400, "malformed_json"),
        (b"\xff\xfe", "application/json", 400, "malformed_json"),
        (b'{"name": "x", "price": 1}', "text/plain", 415, "unsupported_media_type"),
        (
            b'{"name": "x", "price": 1}',
            "application/x-www-form-urlencoded",
            415,
            "unsupported_media_type",
        ),
        (b'{"name": "", "price": -1}', "application/json", 422, "validation_failed"),
        (b"[1, 2]", "application/json", 422, "validation_failed"),
        (b'"text"', "application/json", 422, "validation_failed"),
    ],
)
async def test_bad_bodies_get_clear_errors(
    api: Any, data: bytes, content_type: str, status: int, code: str
) -> None:
    response = await api.post(ITEM, data=data, headers={"Content-Type": content_type})
    assert response.status == status
    body = await response.json()
    assert body["error"] == code
    assert isinstance(body["message"], str)
    assert body["message"]
    assert isinstance(body["details"], list)


async def test_validation_errors_list_fields_without_echoing_values(api: Any) -> None:
    response = await api.post(ITEM, json={"name": "", "price": "secret-value"})
    assert response.status == 422
    body = await response.json()
    locations = {tuple(d["loc"]) for d in body["details"]}
    assert locations == {("body", "name"), ("body", "price")}
    assert "secret-value" not in await response.text()


async def test_bad_path_and_query_values_are_422(api: Any) -> None:
    response = await api.post("/api/v1/probe/items/not-a-uuid", json={"name": "x", "price": 1})
    assert response.status == 422
    assert (await response.json())["details"][0]["loc"] == ["path", "item_id"]
    response = await api.post(ITEM + "?limit=1000", json={"name": "x", "price": 1})
    assert response.status == 422
    assert (await response.json())["details"][0]["loc"] == ["query", "limit"]


async def test_nul_characters_are_refused_anywhere(api: Any) -> None:
    """PostgreSQL text cannot hold NUL: refused at the edge, not a 500 from the database."""
    response = await api.post(ITEM, json={"name": "a\u0000b", "price": 1})
    assert response.status == 422
    assert (await response.json())["details"][0]["loc"] == ["body", "name"]
    response = await api.post(ITEM + "?tag=ok&tag=a%00b", json={"name": "x", "price": 1})
    assert response.status == 422
    body = await response.json()
    assert body["details"] == [
        {
            "loc": ["query", "tag", 1],
            "msg": "NUL characters are not allowed",
            "type": "nul_character",
        }
    ]


async def test_oversized_body_is_413(api: Any, app: web.Application) -> None:
    limit = app[keys.SETTINGS].max_body_bytes
    big = b'{"name": "' + b"x" * (limit + 10) + b'", "price": 1}'
    response = await api.post(ITEM, data=big, headers={"Content-Type": "application/json"})
    assert response.status == 413
    assert (await response.json())["error"] == "payload_too_large"


async def test_oversized_chunked_body_is_413(api: Any) -> None:
    async def chunks() -> Any:
        for _ in range(40):
            yield b"x" * 65536

    response = await api.post(ITEM, data=chunks(), headers={"Content-Type": "application/json"})
    assert response.status == 413


async def test_unknown_api_path_is_json_404(api: Any) -> None:
    response = await api.get("/api/v1/does-not-exist")
    assert response.status == 404
    assert response.content_type == "application/json"
    assert (await response.json())["error"] == "not_found"


async def test_wrong_method_is_json_405_with_allow(api: Any) -> None:
    response = await api.delete("/api/v1/health")
    assert response.status == 405
    assert (await response.json())["error"] == "method_not_allowed"
    assert "GET" in response.headers["Allow"]


async def test_domain_error_keeps_its_status_and_details(api: Any) -> None:
    response = await api.get("/api/v1/probe/conflict")
    assert response.status == 409
    assert await response.json() == {
        "error": "conflict",
        "message": "Already there.",
        "details": [{"field": "name"}],
    }


async def test_unexpected_error_is_generic_500_logged_with_request_id(
    api: Any, app: web.Application, caplog: pytest.LogCaptureFixture
) -> None:
    configure_logging(app[keys.SETTINGS])
    caplog.set_level(logging.ERROR, logger="lms_live.http")
    response = await api.get("/api/v1/probe/boom", headers={"X-Request-ID": "req-500-test"})
    assert response.status == 500
    text = await response.text()
    assert "hunter2" not in text
    assert "RuntimeError" not in text
    body = await response.json()
    assert body["error"] == "internal_error"
    assert body["details"] == [{"request_id": "req-500-test"}]
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors
    assert errors[0].request_id == "req-500-test"  # type: ignore[attr-defined]
    assert errors[0].exc_info is not None


async def test_roles_are_enforced(api: Any, app: web.Application) -> None:
    assert (await api.get("/api/v1/probe/admin")).status == 401
    bad = await api.get("/api/v1/probe/admin", headers={"Authorization": "Bearer nonsense"})
    assert bad.status == 401
    assert (await bad.json())["error"] == "invalid_token"
    assert bad.headers["WWW-Authenticate"] == "Bearer"
    student = await api.get("/api/v1/probe/admin", headers=bearer(app, role="student"))
    assert student.status == 403
    admin = await api.get("/api/v1/probe/admin", headers=bearer(app, role="admin"))
    assert admin.status == 204
