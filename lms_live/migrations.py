"""Running Alembic migrations from code (CLI, `serve` on the embedded default, tests)."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection

from lms_live.paths import ALEMBIC_INI, MIGRATIONS


def alembic_config(*, url: str | None = None, connection: Connection | None = None) -> Config:
    """Alembic config for this project, targeting `url` or `connection` (else the settings)."""
    config = Config(str(ALEMBIC_INI))
    config.set_main_option("script_location", str(MIGRATIONS))
    if url is not None:
        config.attributes["url"] = url
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade(revision: str = "head", *, url: str | None = None) -> None:
    """Migrate up to `revision` (blocking; runs its own event loop)."""
    command.upgrade(alembic_config(url=url), revision)


def downgrade(revision: str, *, url: str | None = None) -> None:
    """Migrate down to `revision`."""
    command.downgrade(alembic_config(url=url), revision)


def current(*, url: str | None = None) -> None:
    """Print the current revision."""
    command.current(alembic_config(url=url), verbose=True)
