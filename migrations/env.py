"""Alembic environment: async engines, both PostgreSQL and SQLite (batch mode for SQLite).

The URL is `config.attributes["url"]`, else `sqlalchemy.url`, else lms_live's settings. A caller
that already holds a connection passes it as `config.attributes["connection"]`.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from lms_live.core.db import Base, make_engine
from lms_live.models import load_models
from lms_live.settings import Settings

load_models()
config = context.config
target_metadata = Base.metadata


# Indexes that exist only in migrations (dialect-specific, e.g. PostgreSQL full-text GIN).
MIGRATION_ONLY_INDEXES = {"ix_course_search"}


def _include_object(
    obj: object, name: str | None, type_: str, reflected: bool, compare_to: object
) -> bool:
    return not (type_ == "index" and name in MIGRATION_ONLY_INDEXES)


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        include_object=_include_object,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        compare_server_default=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_async(url: str | None) -> None:
    engine = make_engine(Settings(), url=url)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_configure)
            await connection.commit()
    finally:
        await engine.dispose()


def _run_offline() -> None:
    url = config.attributes.get("url") or config.get_main_option("sqlalchemy.url")
    context.configure(
        url=url or Settings().effective_database_url,
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    _run_offline()
elif (connection := config.attributes.get("connection")) is not None:
    _configure(connection)
else:
    asyncio.run(
        _run_async(config.attributes.get("url") or config.get_main_option("sqlalchemy.url"))
    )
