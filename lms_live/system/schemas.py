"""Schemas of the system endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, EmailStr, Field

CheckState = Literal["up", "down"]


class HealthOut(BaseModel):
    status: Literal["ok"] = "ok"


class ReadyOut(BaseModel):
    status: Literal["ready", "unavailable"]
    checks: dict[str, CheckState] = Field(description="database, redis and broker: `up` or `down`.")


class ClockOut(BaseModel):
    server_now: datetime = Field(description="The server's clock (UTC), the only one that counts.")
    epoch_ms: int = Field(description="The same instant in milliseconds since the Unix epoch.")


class InfoOut(BaseModel):
    version: str
    environment: str
    instance_id: str
    started_at: datetime
    uptime_seconds: float
    redis: bool = Field(description="Whether this deployment runs on Redis (several instances).")
    broker: str
    last_heartbeat_at: datetime | None = Field(
        description="When the scheduler's heartbeat task last ran on a worker."
    )


class WhoAmIOut(BaseModel):
    user_id: UUID
    role: str
    token_expires_at: datetime = Field(description="When the access token stops working.")


class TestEmailIn(BaseModel):
    to: EmailStr


class QueuedOut(BaseModel):
    queued: Literal[True] = True
