"""Readiness: 200 with every dependency up, 503 naming the one that is down (really cut)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from lms_live.app import create_app
from tests.conftest import make_settings
from tests.netproxy import TcpProxy


@pytest.fixture
async def pg_proxy() -> AsyncIterator[TcpProxy]:
    proxy = await TcpProxy("127.0.0.1", 5432).start()
    yield proxy
    await proxy.close()


@pytest.fixture
async def redis_proxy() -> AsyncIterator[TcpProxy]:
    proxy = await TcpProxy("127.0.0.1", 6379).start()
    yield proxy
    await proxy.close()


def _via(url: str, proxy: TcpProxy, default_port: int) -> str:
    return url.replace(f"127.0.0.1:{default_port}", f"127.0.0.1:{proxy.port}")


@pytest.mark.shared_db
async def test_database_outage_is_reported_and_recovers(
    aiohttp_client: Any,
    tmp_path: Path,
    worker_id: str,
    pg_url: str,
    redis_url: str,
    redis: Any,
    pg_proxy: TcpProxy,
) -> None:
    settings = make_settings(
        tmp_path, worker_id, pg_url=_via(pg_url, pg_proxy, 5432), redis_url=redis_url
    )
    client = await aiohttp_client(create_app(settings))
    assert (await client.get("/api/v1/ready")).status == 200

    await pg_proxy.cut()
    response = await client.get("/api/v1/ready")
    assert response.status == 503
    assert await response.json() == {
        "status": "unavailable",
        "checks": {"database": "down", "redis": "up", "broker": "up"},
    }
    assert (await client.get("/api/v1/health")).status == 200

    await pg_proxy.restore()
    assert (await client.get("/api/v1/ready")).status == 200


async def test_redis_outage_takes_redis_and_broker_down(
    aiohttp_client: Any,
    tmp_path: Path,
    worker_id: str,
    pg_url: str,
    redis_url: str,
    redis: Any,
    database: Any,
    redis_proxy: TcpProxy,
) -> None:
    settings = make_settings(
        tmp_path, worker_id, pg_url=pg_url, redis_url=_via(redis_url, redis_proxy, 6379)
    )
    client = await aiohttp_client(create_app(settings, database=database))
    assert (await client.get("/api/v1/ready")).status == 200

    await redis_proxy.cut()
    response = await client.get("/api/v1/ready")
    assert response.status == 503
    body = await response.json()
    assert body["checks"] == {"database": "up", "redis": "down", "broker": "down"}

    await redis_proxy.restore()
    assert (await client.get("/api/v1/ready")).status == 200


async def test_embedded_default_is_ready_without_services(
    aiohttp_client: Any, tmp_path: Path, worker_id: str
) -> None:
    from lms_live import migrations

    settings = make_settings(tmp_path, worker_id, pg_url=None, redis_url=None)
    await asyncio.to_thread(migrations.upgrade, "head", url=settings.effective_database_url)
    client = await aiohttp_client(create_app(settings))
    response = await client.get("/api/v1/ready")
    assert response.status == 200
    assert (await response.json())["checks"] == {"database": "up", "redis": "up", "broker": "up"}
    assert (tmp_path / "var" / "lms_live.db").exists()
