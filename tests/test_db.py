"""Database behaviour the error model depends on."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy.exc
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.pool import NullPool

from lms_live.core.db import Database, make_engine
from tests.conftest import make_settings


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


async def test_the_pool_is_fixed_and_hands_out_the_most_recent_connection(
    pg_url: str, tmp_path: Path, worker_id: str
) -> None:
    """No overflow: a checkout beyond the pool waits (then times out) instead of opening a
    connection that is closed again on return; last in, first out, so a quiet instance
    reuses a warm connection (no ping)."""
    settings = make_settings(
        tmp_path, worker_id, pg_url=pg_url, database_pool_size=2, database_pool_timeout=0.5
    )
    engine = make_engine(settings)
    try:
        first, second = await engine.connect(), await engine.connect()
        drivers = [(await c.get_raw_connection()).driver_connection for c in (first, second)]
        with pytest.raises(sqlalchemy.exc.TimeoutError):
            await engine.connect()
        await first.close()
        await second.close()  # returned last: handed out next
        again = await engine.connect()
        assert (await again.get_raw_connection()).driver_connection is drivers[1]
        await again.close()
        assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    finally:
        await engine.dispose()


async def driver_of(session: AsyncSession) -> Any:
    """The asyncpg connection under a session."""
    raw = (await (await session.connection()).get_raw_connection()).driver_connection
    assert raw is not None
    return raw


async def test_reads_send_no_transaction_statements(
    pg_url: str, tmp_path: Path, worker_id: str
) -> None:
    """`Database.reads()` on PostgreSQL: the SELECT alone, no BEGIN/ROLLBACK around it;
    `transaction()` still wraps its work in one."""
    engine = make_engine(make_settings(tmp_path, worker_id, pg_url=pg_url))
    database = Database.from_engine(engine)
    try:
        async with database.reads() as session:
            raw = await driver_of(session)
            assert not raw.is_in_transaction()
            assert await session.scalar(text("SELECT 1")) == 1
            assert not raw.is_in_transaction()
        async with database.transaction() as session:
            await session.scalar(text("SELECT 1"))
            assert (await driver_of(session)).is_in_transaction()
    finally:
        await engine.dispose()
