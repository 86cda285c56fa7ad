"""Database behaviour the error model depends on."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool


@pytest.mark.shared_db
async def test_a_deadlock_is_recognised_as_a_write_conflict(pg_url: str, database: None) -> None:
    """Two transactions locking rows in opposite orders: PostgreSQL aborts one, and the
    error middleware must see a retryable conflict (409), not a crash (500)."""
    from sqlalchemy import text

    from lms_live.core.middleware import is_write_conflict

    engine = create_async_engine(pg_url, poolclass=NullPool)
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE IF NOT EXISTS _deadlock (id int primary key)"))
        await conn.execute(text("INSERT INTO _deadlock VALUES (1), (2) ON CONFLICT DO NOTHING"))
    first_locked, second_locked = asyncio.Event(), asyncio.Event()

    async def worker(mine: int, other: int, locked: asyncio.Event, wait: asyncio.Event) -> None:
        async with engine.begin() as conn:
            lock = text("SELECT * FROM _deadlock WHERE id = :id FOR UPDATE")
            await conn.execute(lock, {"id": mine})
            locked.set()
            await wait.wait()
            await conn.execute(lock, {"id": other})

    outcomes = await asyncio.gather(
        worker(1, 2, first_locked, second_locked),
        worker(2, 1, second_locked, first_locked),
        return_exceptions=True,
    )
    async with engine.begin() as conn:
        await conn.execute(text("DROP TABLE _deadlock"))
    await engine.dispose()
    failures = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(failures) == 1
    assert is_write_conflict(failures[0])
