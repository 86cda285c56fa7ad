"""First checks of the wiring: health, ready, errors as JSON."""

from __future__ import annotations

from typing import Any


async def test_health_answers_ok(client: Any) -> None:
    response = await client.get("/api/v1/health")
    assert response.status == 200
    assert await response.json() == {"status": "ok"}


async def test_ready_reports_every_dependency_up(client: Any) -> None:
    response = await client.get("/api/v1/ready")
    assert response.status == 200
    assert await response.json() == {
        "status": "ready",
        "checks": {"database": "up", "redis": "up", "broker": "up"},
    }
