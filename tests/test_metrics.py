"""Prometheus metrics: labelled by route template, optionally behind a token."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from lms_live.app import create_app
from lms_live.core.metrics import Metrics
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


def test_request_histogram_buckets_are_cumulative_and_inclusive() -> None:
    """The HTTP series are counted without prometheus-client's per-sample locks; the text
    they render must read as the library's own Counter and Histogram would."""
    metrics = Metrics()
    for seconds in (0.0005, 0.001, 0.002, 0.3, 20):
        metrics.observe_request("GET", "/x", 200, seconds)
    metrics.observe_request("GET", "/x", 404, 0.001)
    lines = set(generate_latest(metrics.registry).decode().splitlines())
    assert 'lms_http_requests_total{method="GET",route="/x",status="200"} 5.0' in lines
    assert 'lms_http_requests_total{method="GET",route="/x",status="404"} 1.0' in lines
    bucket = "lms_http_request_duration_seconds_bucket"
    assert f'{bucket}{{le="0.001",method="GET",route="/x"}} 3.0' in lines  # le is inclusive
    assert f'{bucket}{{le="0.0025",method="GET",route="/x"}} 4.0' in lines
    assert f'{bucket}{{le="0.5",method="GET",route="/x"}} 5.0' in lines
    assert f'{bucket}{{le="10.0",method="GET",route="/x"}} 5.0' in lines
    assert f'{bucket}{{le="+Inf",method="GET",route="/x"}} 6.0' in lines
    assert 'lms_http_request_duration_seconds_count{method="GET",route="/x"} 6.0' in lines
    assert 'lms_http_request_duration_seconds_sum{method="GET",route="/x"} 20.3045' in lines
