"""Migrations walk up, down and up again on PostgreSQL and SQLite, and match the models."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import asyncpg
import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, select
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from lms_live.auth.models import User
from lms_live.core.db import Base, Database
from lms_live.migrations import alembic_config
from lms_live.models import load_models
from tests.conftest import PG_HOST, PG_PORT


@pytest.fixture
async def scratch_pg(worker_id: str, pg_url: str) -> AsyncIterator[str]:
    name = f"lms_mig_{worker_id}"
    conn = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user="postgres", database="postgres")
    await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await conn.execute(f'CREATE DATABASE "{name}"')
    yield f"postgresql+asyncpg://postgres@{PG_HOST}:{PG_PORT}/{name}"
    await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await conn.close()


@pytest.fixture(params=["postgresql", "sqlite"])
def empty_db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'walk.db'}"
    url: str = request.getfixturevalue("scratch_pg")
    return url


async def _tables(url: str) -> set[str]:
    engine = create_async_engine(url, poolclass=NullPool)
    async with engine.connect() as conn:
        names = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
    await engine.dispose()
    return names - {"alembic_version"}


def _walk(url: str) -> list[str]:
    config = alembic_config(url=url)
    revisions = [
        s.revision for s in ScriptDirectory.from_config(config).walk_revisions("base", "heads")
    ]
    revisions.reverse()
    for revision in revisions:
        command.upgrade(config, revision)
    for _ in revisions:
        command.downgrade(config, "-1")
    command.upgrade(config, "head")
    return revisions


async def test_every_revision_walks_up_down_and_up(empty_db: str) -> None:
    revisions = await asyncio.to_thread(_walk, empty_db)
    assert revisions
    load_models()
    assert await _tables(empty_db) == set(Base.metadata.tables)


async def test_models_and_migrations_agree(empty_db: str) -> None:
    config = alembic_config(url=empty_db)
    await asyncio.to_thread(command.upgrade, config, "head")
    # `alembic check` raises when autogenerate would produce any operation.
    await asyncio.to_thread(command.check, config)


def test_constraint_names_follow_the_convention() -> None:
    load_models()
    table = Base.metadata.tables["user"]
    names = {c.name for c in table.constraints}
    assert {"pk_user", "uq_user_email", "ck_user_role"} <= names


async def test_timestamps_are_utc_aware_on_both_dialects(empty_db: str) -> None:
    await asyncio.to_thread(command.upgrade, alembic_config(url=empty_db), "head")
    engine = create_async_engine(empty_db, poolclass=NullPool)
    db = Database.from_engine(engine)
    paris = timezone(timedelta(hours=1))
    verified = datetime(2026, 1, 2, 13, 0, tzinfo=paris)
    async with db.transaction() as session:
        user = User(
            email=f"{uuid.uuid4().hex}@x.test",
            full_name="T",
            password_hash="h",
            email_verified_at=verified,
        )
        session.add(user)
    async with db.transaction() as session:
        loaded = await session.scalar(select(User).where(User.id == user.id))
    await engine.dispose()
    assert loaded is not None
    assert isinstance(loaded.id, uuid.UUID)
    assert loaded.email_verified_at == verified
    assert loaded.email_verified_at is not None
    assert loaded.email_verified_at.tzinfo is not None
    assert loaded.email_verified_at.utcoffset() == timedelta(0)
    assert loaded.created_at.tzinfo is not None
    assert abs(loaded.created_at - datetime.now(UTC)) < timedelta(minutes=1)


async def test_naive_datetimes_are_refused(database: Database) -> None:
    async with database.sessions() as session:
        session.add(
            User(
                email="naive@x.test",
                full_name="N",
                password_hash="h",
                email_verified_at=datetime(2026, 1, 1),
            )
        )
        with pytest.raises(Exception, match="naive datetimes"):
            await session.flush()
