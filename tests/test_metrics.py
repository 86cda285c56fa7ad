"""Prometheus metrics: labelled by route template, optionally behind a token."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from lms_live.app import create_app
from tests.conftest import make_settings


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def test_requests_are_counted_by_route_template(client: Any) -> None:
    for _ in range(3):
        await client.get("/api/v1/system/clock")
    await client.get(f"/api/v1/unknown/{uuid.uuid4()}")
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.content_type == "text/plain"
    text = await response.text()
    samples = _samples(text)
    clock = (
        "lms_http_requests_total",
        frozenset({("method", "GET"), ("route", "/api/v1/system/clock"), ("status", "200")}),
    )
    assert samples[clock] == 3
    unmatched = (
        "lms_http_requests_total",
        frozenset({("method", "GET"), ("route", "unmatched"), ("status", "404")}),
    )
    assert samples[unmatched] == 1
    assert "/api/v1/unknown/" not in text
    latency = (
        "lms_http_request_duration_seconds_count",
        frozenset({("method", "GET"), ("route", "/api/v1/system/clock")}),
    )
    assert samples[latency] == 3
    assert "lms_http_requests_in_flight" in text
    assert "lms_sockets_connected" in text
    assert "lms_tasks_total" in text
    assert "lms_task_duration_seconds" in text
    assert "process_resident_memory_bytes" in text


async def test_metrics_token_is_required_when_configured(
    aiohttp_client: Any,
    tmp_path: Path,
    worker_id: str,
    pg_url: str,
    redis_url: str,
    redis: Any,
    database: Any,
) -> None:
    settings = make_settings(
        tmp_path, worker_id, pg_url=pg_url, redis_url=redis_url, metrics_token="scrape-me"
    )
    client = await aiohttp_client(create_app(settings, database=database))
    assert (await client.get("/metrics")).status == 401
    assert (await client.get("/metrics", headers={"Authorization": "Bearer wrong"})).status == 401
    ok = await client.get("/metrics", headers={"Authorization": "Bearer scrape-me"})
    assert ok.status == 200
    assert "lms_http_requests_total" in await ok.text()
