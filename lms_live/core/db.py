"""Data layer: declarative base, naming convention, UTC timestamps, engine and sessions.

Invariants: every table has a UUID primary key and UTC-aware `created_at`/`updated_at`;
constraint and index names come from one naming convention (so migrations are stable on
PostgreSQL and SQLite alike); datetimes are stored in UTC and always read back tz-aware.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import DateTime, MetaData, Uuid, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from lms_live.settings import Settings

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """The server clock, UTC-aware: the only clock that counts."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always returned timezone-aware (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not accepted; use an aware UTC datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base of every model."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime, uuid.UUID: Uuid}


class IdMixin:
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def make_engine(settings: Settings, *, url: str | None = None) -> AsyncEngine:
    """Create the async engine for DATABASE_URL (or the embedded SQLite file). Connects lazily."""
    target = make_url(url or settings.effective_database_url)
    kwargs: dict[str, Any] = {"echo": settings.database_echo}
    if target.get_backend_name() == "sqlite":
        if target.database and target.database != ":memory:":
            Path(target.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(target, **kwargs)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    # A fixed pool by default (no overflow): SQLAlchemy closes an overflow connection as soon as
    # it is returned while the pool is full, so under a steady load above the pool size every
    # few requests paid a new connection (PostgreSQL forks a backend; asyncpg introspects types
    # and prepares statements again): GET /users/me under 32 concurrent clients cost 1.35 ms
    # of CPU per request with 10 + 10 overflow, 0.96 ms with a pool that fits. A request that
    # finds every connection busy waits (DATABASE_POOL_TIMEOUT, then 503) instead.
    # Last in, first out: a quiet instance keeps reusing its most recent connection, which
    # needs no ping (PING_AFTER_IDLE); first in, first out handed out the one idle longest,
    # so at a request a second every checkout paid a ping's two round trips.
    kwargs |= {
        "pool_size": settings.database_pool_size,
        "max_overflow": settings.database_max_overflow,
        "pool_timeout": settings.database_pool_timeout,
        "pool_use_lifo": True,
    }
    engine = create_async_engine(target, **kwargs)
    event.listen(engine.sync_engine.pool, "checkin", _checked_in)
    event.listen(engine.sync_engine.pool, "checkout", _ping_if_idle)
    return engine


# A pooled connection used within this many seconds is handed out without a ping: SQLAlchemy's
# pool_pre_ping costs two round trips (BEGIN, ROLLBACK) on every checkout, a third of a small
# request's database time under load; an idle one is pinged first, so connections that died
# during an outage (a restart, a cut network) are replaced instead of failing a request.
PING_AFTER_IDLE = 1.0


def _checked_in(dbapi_connection: Any, record: Any) -> None:
    record.info["idle_since"] = time.monotonic()


def _ping_if_idle(dbapi_connection: Any, record: Any, proxy: Any) -> None:
    idle_since = record.info.get("idle_since")
    if idle_since is not None and time.monotonic() - idle_since < PING_AFTER_IDLE:
        return
    try:
        dbapi_connection.ping()
    except Exception as exc:
        # The pool discards this connection and checks out (or opens) another.
        raise DisconnectionError() from exc


@dataclass(frozen=True, slots=True)
class Database:
    """The engine and its session factory; tests swap the factory for one bound to a
    connection whose transaction is rolled back."""

    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    # Sessions on autocommit connections (`reads`); None: `sessions` (the tests' factory).
    read_sessions: async_sessionmaker[AsyncSession] | None = None

    @classmethod
    def from_engine(cls, engine: AsyncEngine) -> Database:
        sessions = async_sessionmaker(engine, expire_on_commit=False)
        if engine.dialect.name != "postgresql":  # SQLite's driver sends no BEGIN for reads
            return cls(engine, sessions)
        reads = async_sessionmaker(
            engine.execution_options(isolation_level="AUTOCOMMIT"), expire_on_commit=False
        )
        return cls(engine, sessions, reads)

    def reads(self) -> AsyncSession:
        """A session for read-only work, each statement on its own (autocommit): no BEGIN
        and ROLLBACK round trips around it. Every statement sees what was committed when it
        started, as in a READ COMMITTED transaction; never for writes or row locks (nothing
        would hold them). Every read-only request, socket handler and loop uses it."""
        return (self.read_sessions or self.sessions)()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """One unit of work: commit on success, roll back on any error."""
        async with self.sessions() as session, session.begin():
            yield session

    async def ping(self) -> None:
        """Round-trip to the database; raises if it cannot be reached."""
        async with self.sessions() as session:
            await session.execute(text("SELECT 1"))


def upsert_for(session: AsyncSession, model: type[Any]) -> Any:
    """`INSERT` into `model` in the session's dialect (PostgreSQL or SQLite), with its
    `on_conflict_do_nothing` and `returning`."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(model)
    return sqlite.insert(model)


def escape_like(text: str) -> str:
    """`text` with LIKE's wildcards (and the escape character) taken literally; pass
    `escape="\\\\"` to `like`/`ilike`."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def like_contains(text: str) -> str:
    """A LIKE pattern matching `text` anywhere, its wildcards taken literally (pass
    `escape="\\\\"` to `like`/`ilike`)."""
    return f"%{escape_like(text)}%"
