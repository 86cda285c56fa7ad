"""`lms-live` (also `python -m lms_live`): serve, worker, scheduler, migrate, create-admin, demo."""

from __future__ import annotations

import asyncio
import gc
import logging
import secrets
import sys
import time
from typing import Any

import click
from aiohttp import web
from pydantic import ValidationError

from lms_live import migrations
from lms_live.core.logging import configure_logging
from lms_live.settings import Settings

log = logging.getLogger("lms_live")


def load_settings() -> Settings:
    """Settings from the environment; a clear message naming the setting when invalid."""
    try:
        return Settings()
    except ValidationError as exc:
        lines = []
        for error in exc.errors(include_url=False, include_input=False):
            where = ".".join(str(p) for p in error["loc"]).upper() or "settings"
            lines.append(f"  {where}: {error['msg'].removeprefix('Value error, ')}")
        raise click.ClickException("invalid configuration:\n" + "\n".join(lines)) from exc


def tune_gc() -> None:
    """Once, after start-up: move everything alive now (modules, models, routes: ~140k
    objects) out of the collector's reach and collect less often. A full collection over
    that heap took ~120 ms here, a pause every client would see; request garbage is young
    and still collected. Done once per process, never per app (repeated freezing would pin
    garbage)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 1000)


@click.group()
def main() -> None:
    """lms_live: a real-time learning platform."""


@main.command()
@click.option("--host", default=None, help="Interface to bind (default: HOST, 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default: PORT, 8080).")
@click.option(
    "--migrate/--no-migrate",
    default=None,
    help="Apply migrations first (default: only on the embedded SQLite database).",
)
def serve(host: str | None, port: int | None, migrate: bool | None) -> None:
    """Run the web server (REST, Socket.IO, pages)."""
    started = time.perf_counter()
    settings = load_settings()
    configure_logging(settings)
    if migrate or (migrate is None and settings.database_url is None):
        migrations.upgrade("head")
    from lms_live.app import create_app

    app = create_app(settings)
    bind_host, bind_port = host or settings.host, port if port is not None else settings.port

    async def announce(_: web.Application) -> None:
        tune_gc()
        log.info(
            "lms_live serving on http://%s:%d (%s, ready in %.2fs)",
            bind_host,
            bind_port,
            settings.environment,
            time.perf_counter() - started,
        )

    app.on_startup.append(announce)
    web.run_app(
        app,
        host=bind_host,
        port=bind_port,
        access_log=None,
        print=None,
        shutdown_timeout=10,
        loop=new_event_loop(),
    )


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's event loop when installed (a dependency except on Windows): its transports
    and scheduling cost a fraction of asyncio's on a socket fan-out; else asyncio's."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - Windows
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


def _run(coro: Any) -> None:
    from lms_live.worker.main import NeedsRedis

    try:
        asyncio.run(coro)
    except NeedsRedis as exc:
        raise click.ClickException(str(exc)) from exc


@main.command()
def worker() -> None:
    """Run a task worker (needs REDIS_URL); stops cleanly on SIGTERM."""
    from lms_live.worker.main import run_worker

    settings = load_settings()
    configure_logging(settings)
    _run(run_worker(settings))


@main.command()
def scheduler() -> None:
    """Run the scheduler of periodic tasks and retries (needs REDIS_URL; run exactly one)."""
    from lms_live.worker.main import run_scheduler

    settings = load_settings()
    configure_logging(settings)
    _run(run_scheduler(settings))


@main.group()
def migrate() -> None:
    """Database migrations (Alembic)."""


@migrate.command("upgrade")
@click.argument("revision", default="head")
def migrate_upgrade(revision: str) -> None:
    """Migrate up to REVISION (default: head)."""
    load_settings()
    migrations.upgrade(revision)


@migrate.command("downgrade")
@click.argument("revision")
def migrate_downgrade(revision: str) -> None:
    """Migrate down to REVISION (e.g. -1, base)."""
    load_settings()
    migrations.downgrade(revision)


@migrate.command("current")
def migrate_current() -> None:
    """Show the database's current revision."""
    load_settings()
    migrations.current()


@main.command("create-admin")
@click.option("--email", prompt=True, help="The admin's email address.")
@click.option("--name", "full_name", prompt="Full name", help="The admin's full name.")
@click.option(
    "--password",
    prompt=True,
    hide_input=True,
    confirmation_prompt=True,
    envvar="LMS_ADMIN_PASSWORD",
    help="Password (prompted when omitted; or LMS_ADMIN_PASSWORD).",
)
def create_admin(email: str, full_name: str, password: str) -> None:
    """Create the first administrator (there is no unauthenticated bootstrap endpoint)."""
    from lms_live.seed import create_admin as create

    settings = load_settings()
    try:
        user_id = asyncio.run(create(settings, email=email, full_name=full_name, password=password))
    except Exception as exc:
        from lms_live.core.errors import LmsError

        if isinstance(exc, LmsError):
            raise click.ClickException(exc.text) from exc
        raise
    click.echo(f"admin {email} created (id {user_id})")


@main.command()
@click.option("--learners", default=20, show_default=True, help="How many demo learners.")
@click.option(
    "--password",
    default=None,
    help="Password of every demo account (default: a random one, printed at the end).",
)
def demo(learners: int, password: str | None) -> None:
    """Seed demo data: an instructor, learners, a course they follow and its quiz (idempotent)."""
    from lms_live.seed import seed_demo

    settings = load_settings()
    password = password or secrets.token_urlsafe(9)
    with click.progressbar(
        length=learners + 2, label="seeding demo accounts and course", file=sys.stderr
    ) as bar:
        summary = asyncio.run(
            seed_demo(settings, learners=learners, password=password, progress=bar.update)
        )
    click.echo(f"instructor: {summary.instructor}")
    click.echo(f"learners:   {summary.first_learner} ... ({summary.learners} in all)")
    click.echo(f"created {summary.created}, already present {summary.existing}")
    click.echo(f"course:     {summary.course} (published, every demo learner enrolled)")
    click.echo("quiz:       Rivers check (4 questions, 10 minutes, its optional quiz lesson)")
    click.echo(f"password of every demo account: {password}")


if __name__ == "__main__":
    main()
