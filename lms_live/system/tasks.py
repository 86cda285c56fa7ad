"""System tasks: the scheduler's heartbeat, proof that scheduler -> broker -> worker runs.

Redis key: `lms:system:heartbeat` = ISO time of the last run (TTL 10 minutes).
"""

from __future__ import annotations

from taskiq import Context, TaskiqDepends

from lms_live.core.db import utcnow
from lms_live.worker.broker import resources, task

HEARTBEAT = "lms.system.heartbeat"
HEARTBEAT_KEY = "lms:system:heartbeat"


@task(HEARTBEAT, schedule=({"interval": 30},))
async def heartbeat(ctx: Context = TaskiqDepends()) -> None:
    """Record that a scheduled task ran (read back by GET /api/v1/system/info)."""
    await resources(ctx).kv.set(HEARTBEAT_KEY, utcnow().isoformat(), ttl=600)
