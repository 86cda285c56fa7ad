"""The middleware stack: hosts, CORS, rate limits, security headers, request ids, logs, envelope."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from lms_live import keys
from lms_live.app import create_app
from lms_live.core.db import Database
from lms_live.core.logging import configure_logging
from lms_live.core.middleware import host_allowed
from tests.conftest import bearer, make_settings
from tests.netproxy import TcpProxy

SECRET = "s" * 40


@pytest.fixture
def make_client(
    aiohttp_client: Any,
    tmp_path: Path,
    worker_id: str,
    pg_url: str,
    redis_url: str,
    database: Database,
    redis: Any,
) -> Any:
    async def build(**overrides: Any) -> Any:
        overrides.setdefault("redis_url", redis_url)
        settings = make_settings(tmp_path, worker_id, pg_url=pg_url, **overrides)
        return await aiohttp_client(create_app(settings, database=database))

    return build


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("localhost", True),
        ("localhost:8080", True),
        ("LOCALHOST", True),
        ("127.0.0.1:1234", True),
        ("[::1]:8080", True),
        ("api.example.com", True),
        ("deep.api.example.com", True),
        ("example.com", False),
        ("evil.com", False),
        ("localhost.evil.com", False),
        ("", False),
    ],
)
def test_host_patterns(host: str, allowed: bool) -> None:
    assert host_allowed(host, ["localhost", "127.0.0.1", "::1", "*.example.com"]) is allowed


async def test_untrusted_host_is_400_and_reaches_no_handler(client: Any) -> None:
    response = await client.get("/api/v1/system/clock", headers={"Host": "evil.example"})
    assert response.status == 400
    assert (await response.json())["error"] == "bad_host"
    assert "X-RateLimit-Limit" not in response.headers


async def test_cors_allows_configured_origin_only(make_client: Any) -> None:
    client = await make_client(cors_origins=["https://app.example.org"])
    preflight = await client.options(
        "/api/v1/system/clock",
        headers={
            "Origin": "https://app.example.org",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "Authorization",
        },
    )
    assert preflight.status == 200
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://app.example.org"
    simple = await client.get("/api/v1/system/clock", headers={"Origin": "https://app.example.org"})
    assert simple.headers["Access-Control-Allow-Origin"] == "https://app.example.org"
    assert "X-Request-ID" in simple.headers["Access-Control-Expose-Headers"]
    denied = await client.options(
        "/api/v1/system/clock",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
    )
    assert denied.status == 403
    assert "Access-Control-Allow-Origin" not in denied.headers
    other = await client.get("/api/v1/system/clock", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers


async def test_no_cors_headers_without_configured_origins(client: Any) -> None:
    response = await client.get("/api/v1/system/clock", headers={"Origin": "https://x.example"})
    assert response.status == 200
    assert "Access-Control-Allow-Origin" not in response.headers


async def test_rate_limit_per_ip_gives_429_with_retry_after(make_client: Any) -> None:
    client = await make_client(rate_limit="3/minute")
    statuses = []
    for _ in range(4):
        response = await client.get("/api/v1/system/clock")
        statuses.append(response.status)
    assert statuses == [200, 200, 200, 429]
    assert response.headers["X-RateLimit-Limit"] == "3"
    assert response.headers["X-RateLimit-Remaining"] == "0"
    assert 1 <= int(response.headers["Retry-After"]) <= 20
    assert (await response.json())["error"] == "rate_limited"
    # health and readiness probes are never limited
    assert (await client.get("/api/v1/health")).status == 200


async def test_success_carries_rate_limit_headers(make_client: Any) -> None:
    client = await make_client(rate_limit="10/minute")
    first = await client.get("/api/v1/system/clock")
    second = await client.get("/api/v1/system/clock")
    assert first.headers["X-RateLimit-Remaining"] == "9"
    assert second.headers["X-RateLimit-Remaining"] == "8"
    assert int(second.headers["X-RateLimit-Reset"]) >= 1


async def test_authenticated_users_have_their_own_buckets(make_client: Any) -> None:
    client = await make_client(rate_limit="2/minute")
    app = client.server.app
    alice, bob = bearer(app, role="admin"), bearer(app, role="admin")
    assert [(await client.get("/api/v1/system/clock", headers=alice)).status for _ in range(3)] == [
        200,
        200,
        429,
    ]
    # Bob shares Alice's IP (a classroom behind one NAT) but not her bucket.
    assert (await client.get("/api/v1/system/clock", headers=bob)).status == 200
    assert (await client.get("/api/v1/system/clock")).status == 200


async def test_buckets_are_shared_by_instances_on_one_redis(make_client: Any) -> None:
    first = await make_client(rate_limit="2/minute")
    second = await make_client(rate_limit="2/minute")
    assert (await first.get("/api/v1/system/clock")).status == 200
    assert (await second.get("/api/v1/system/clock")).status == 200
    assert (await first.get("/api/v1/system/clock")).status == 429


async def test_embedded_default_limits_in_memory(make_client: Any) -> None:
    client = await make_client(rate_limit="1/minute", redis_url=None)
    assert (await client.get("/api/v1/system/clock")).status == 200
    assert (await client.get("/api/v1/system/clock")).status == 429


async def test_forwarded_for_is_believed_only_from_trusted_proxies(make_client: Any) -> None:
    direct = await make_client(rate_limit="1/minute")
    headers = {"X-Forwarded-For": "203.0.113.1"}
    assert (await direct.get("/api/v1/system/clock", headers=headers)).status == 200
    spoofed = {"X-Forwarded-For": "203.0.113.2"}
    assert (await direct.get("/api/v1/system/clock", headers=spoofed)).status == 429

    proxied = await make_client(rate_limit="1/minute", trusted_proxies=["127.0.0.1/32"])
    assert (
        await proxied.get("/api/v1/system/clock", headers={"X-Forwarded-For": "198.51.100.1"})
    ).status == 200
    assert (
        await proxied.get("/api/v1/system/clock", headers={"X-Forwarded-For": "198.51.100.2"})
    ).status == 200
    assert (
        await proxied.get("/api/v1/system/clock", headers={"X-Forwarded-For": "198.51.100.1"})
    ).status == 429


async def test_rate_limits_fail_open_when_redis_is_gone(make_client: Any, redis_url: str) -> None:
    proxy = await TcpProxy("127.0.0.1", 6379).start()
    try:
        db = redis_url.rsplit("/", 1)[1]
        client = await make_client(redis_url=f"redis://127.0.0.1:{proxy.port}/{db}")
        assert "X-RateLimit-Limit" in (await client.get("/api/v1/system/clock")).headers
        await proxy.cut()
        response = await client.get("/api/v1/system/clock")
        assert response.status == 200
        assert "X-RateLimit-Limit" not in response.headers
    finally:
        await proxy.close()


SECURITY_HEADERS = (
    "X-Content-Type-Options",
    "X-Frame-Options",
    "Referrer-Policy",
    "Permissions-Policy",
    "Content-Security-Policy",
)


@pytest.mark.parametrize(
    "path", ["/api/v1/health", "/api/v1/nope", "/static/docs/swagger-init.js", "/api/docs"]
)
async def test_security_headers_on_every_response(client: Any, path: str) -> None:
    response = await client.get(path)
    for name in SECURITY_HEADERS:
        assert name in response.headers, name
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert "Strict-Transport-Security" not in response.headers


async def test_hsts_in_production(make_client: Any) -> None:
    client = await make_client(
        environment="production", secret_key=SECRET, trusted_hosts=["127.0.0.1"]
    )
    response = await client.get("/api/v1/health")
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")


async def test_request_id_is_accepted_or_generated(client: Any) -> None:
    echoed = await client.get("/api/v1/health", headers={"X-Request-ID": "abc-123"})
    assert echoed.headers["X-Request-ID"] == "abc-123"
    generated = await client.get("/api/v1/health")
    assert len(generated.headers["X-Request-ID"]) == 32
    hostile = await client.get("/api/v1/health", headers={"X-Request-ID": "a b forged log line"})
    assert hostile.headers["X-Request-ID"] != "a b forged log line"
    assert len(hostile.headers["X-Request-ID"]) == 32


async def test_access_log_has_route_template_and_no_secrets(
    client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="lms_live.http")
    await client.get(
        "/api/v1/system/clock?token=topsecret",
        headers={"Authorization": "Bearer leaked-token", "X-Request-ID": "log-check"},
    )
    records = [r for r in caplog.records if r.name == "lms_live.http"]
    assert len(records) == 1
    record = records[0]
    assert record.route == "/api/v1/system/clock"  # type: ignore[attr-defined]
    assert record.status == 200  # type: ignore[attr-defined]
    assert record.method == "GET"  # type: ignore[attr-defined]
    assert record.duration_ms >= 0  # type: ignore[attr-defined]
    text = json.dumps(record.__dict__, default=str)
    assert "topsecret" not in text
    assert "leaked-token" not in text


async def test_production_logs_are_json_lines(
    make_client: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    client = await make_client(
        environment="production", secret_key=SECRET, trusted_hosts=["127.0.0.1"]
    )
    configure_logging(client.server.app[keys.SETTINGS])
    await client.get("/api/v1/health", headers={"X-Request-ID": "json-line"})
    for handler in logging.getLogger().handlers:
        handler.flush()  # access lines are written in batches
    lines = [
        json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")
    ]
    access = [line for line in lines if line.get("route") == "/api/v1/health"]
    assert access, lines
    assert access[0]["request_id"] == "json-line"
    assert access[0]["status"] == 200
    assert access[0]["level"] == "INFO"


async def test_envelope_wraps_successes_not_errors(make_client: Any) -> None:
    client = await make_client(response_envelope=True)
    ok = await client.get("/api/v1/health")
    assert await ok.json() == {"data": {"status": "ok"}}
    missing = await client.get("/api/v1/missing")
    assert (await missing.json())["error"] == "not_found"
    spec = await (await client.get("/api/v1/openapi.json")).json()
    schema = spec["paths"]["/api/v1/health"]["get"]["responses"]["200"]["content"][
        "application/json"
    ]["schema"]
    assert schema["properties"]["data"]["$ref"].endswith("/HealthOut")


async def test_many_concurrent_requests_are_all_answered(client: Any) -> None:
    responses = await asyncio.gather(*(client.get("/api/v1/system/clock") for _ in range(50)))
    assert [r.status for r in responses] == [200] * 50


async def test_outer_stages_wrap_every_refusal_of_the_inner_ones(
    make_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Order of the stages: a refusal by the host check or the rate limit is still rendered
    as a JSON error, carries the request id and the security headers, and is counted and
    logged with its status."""
    caplog.set_level(logging.INFO, logger="lms_live.http")
    client = await make_client(rate_limit="1/minute")
    bad_host = await client.get(
        "/api/v1/system/clock", headers={"Host": "evil.example", "X-Request-ID": "order-1"}
    )
    assert (await client.get("/api/v1/system/clock")).status == 200
    limited = await client.get("/api/v1/system/clock", headers={"X-Request-ID": "order-2"})
    for response, status, request_id in ((bad_host, 400, "order-1"), (limited, 429, "order-2")):
        assert response.status == status
        assert response.headers["X-Request-ID"] == request_id
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.content_type == "application/json"
    assert (await bad_host.json())["error"] == "bad_host"
    assert (await limited.json())["error"] == "rate_limited"
    assert limited.headers["X-RateLimit-Remaining"] == "0"
    logged = {
        r.request_id: r.status  # type: ignore[attr-defined]
        for r in caplog.records
        if r.name == "lms_live.http"
    }
    assert logged["order-1"] == 400
    assert logged["order-2"] == 429
    metrics = (await (await client.get("/metrics")).text()).splitlines()
    counted = [line for line in metrics if line.startswith("lms_http_requests_total{")]
    assert any('route="/api/v1/system/clock"' in c and 'status="429"' in c for c in counted)
    assert any('route="/api/v1/system/clock"' in c and 'status="400"' in c for c in counted)


async def test_raised_redirects_get_the_request_id_and_security_headers(
    aiohttp_client: Any, settings: Any, database: Database
) -> None:
    async def moved(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("/api/v1/health")

    app = create_app(settings, database=database)
    app.router.add_get("/moved", moved)
    client = await aiohttp_client(app)
    response = await client.get("/moved", allow_redirects=False, headers={"X-Request-ID": "r-1"})
    assert response.status == 302
    assert response.headers["Location"] == "/api/v1/health"
    assert response.headers["X-Request-ID"] == "r-1"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


async def test_access_lines_go_straight_to_the_only_handler(
    make_client: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """In `lms-live serve` the installed handler is the only one, and access lines skip the
    logging module's dispatch: the same JSON lines must come out (pytest adds handlers of
    its own, so they are taken away for this test)."""
    client = await make_client(
        environment="production", secret_key=SECRET, trusted_hosts=["127.0.0.1"]
    )
    root = logging.getLogger()
    saved = root.handlers[:]
    try:
        root.handlers = []
        configure_logging(client.server.app[keys.SETTINGS])
        assert len(root.handlers) == 1
        await client.get("/api/v1/health", headers={"X-Request-ID": "direct-1"})
        await client.get("/api/v1/nope", headers={"X-Request-ID": "direct-2"})
        root.handlers[0].flush()
    finally:
        for handler in root.handlers:
            handler.close()
        root.handlers = saved
    lines = [
        json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")
    ]
    by_id = {line["request_id"]: line for line in lines if line.get("logger") == "lms_live.http"}
    assert by_id["direct-1"]["route"] == "/api/v1/health"
    assert by_id["direct-1"]["status"] == 200
    assert by_id["direct-1"]["level"] == "INFO"
    assert by_id["direct-2"]["route"] == "unmatched"
    assert by_id["direct-2"]["status"] == 404
    assert by_id["direct-2"]["message"].startswith("GET unmatched 404 ")


async def test_the_pipeline_is_the_only_middleware_layer_once_started(client: Any) -> None:
    """aiohttp's extra current-app layer (for sub-applications, which this app has none of)
    is dropped on startup; handlers still see their app."""
    app = client.server.app
    assert [handler for handler, _ in app._middlewares_handlers] == list(app.middlewares)
    assert len(app.middlewares) == 1
    response = await client.get("/api/v1/system/clock")  # reads request.app's settings
    assert response.status == 200
    assert response.headers["X-Request-ID"]
