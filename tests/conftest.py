"""Test fixtures against the real PostgreSQL and Redis of this machine.

Each xdist worker gets its own database `lms_test_<worker>` (built once by the real
migrations) and its own Redis database number and channel names. Tests run inside a
transaction that is rolled back, unless marked `shared_db` (real connections, tables truncated
afterwards). A service that cannot be reached fails the run; nothing is skipped.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import socket
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from aiosmtpd.controller import Controller
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
from sqlalchemy.pool import NullPool
from taskiq import InMemoryBroker

from lms_live import keys, migrations
from lms_live.app import create_app
from lms_live.core.db import Base, Database
from lms_live.models import load_models
from lms_live.settings import Settings

PG_HOST = os.environ.get("LMS_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("LMS_TEST_PG_PORT", "5432"))
REDIS_HOST = os.environ.get("LMS_TEST_REDIS_HOST", "127.0.0.1")
REDIS_PORT = int(os.environ.get("LMS_TEST_REDIS_PORT", "6379"))


# LMS_TEST_SLOT=<n> lets several test runs share this machine's PostgreSQL and Redis (each slot
# its own databases, Redis databases and channels); CI runs one suite and leaves it unset.
SLOT = int(os.environ.get("LMS_TEST_SLOT", "0") or 0)


@pytest.fixture(scope="session")
def worker_id(worker_id: str) -> str:
    """xdist's worker id ("master" or "gw<n>"), prefixed with the slot when one is set."""
    return f"s{SLOT}{worker_id}" if SLOT else worker_id


def _worker_index(worker_id: str) -> int:
    match = re.search(r"gw(\d+)$", worker_id)
    return (int(match.group(1)) if match else 0) + 2 * SLOT


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=3):
            return True
    except OSError:
        return False


async def _recreate_database(name: str) -> None:
    conn = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user="postgres", database="postgres")
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Tests that call configure_logging must not leave its handler behind."""
    root = logging.getLogger()
    before = list(root.handlers)
    level = root.level
    yield
    for handler in [h for h in root.handlers if h not in before]:
        root.removeHandler(handler)
        handler.close()
    root.setLevel(level)


@pytest.fixture(scope="session")
def pg_url(worker_id: str) -> str:
    """URL of this worker's test database, migrated to head once per session."""
    if not _reachable(PG_HOST, PG_PORT):
        pytest.fail(f"PostgreSQL is not reachable at {PG_HOST}:{PG_PORT}; start it (see README).")
    name = f"lms_test_{worker_id}"
    url = f"postgresql+asyncpg://postgres@{PG_HOST}:{PG_PORT}/{name}"

    def build() -> None:
        asyncio.run(_recreate_database(name))
        migrations.upgrade("head", url=url)

    # In a thread of its own: the first test asking for it may already run an event loop.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(build).result()
    return url


@pytest.fixture(scope="session")
def redis_url(worker_id: str) -> str:
    """This worker's Redis database (1..15)."""
    if not _reachable(REDIS_HOST, REDIS_PORT):
        pytest.fail(f"Redis is not reachable at {REDIS_HOST}:{REDIS_PORT}; start it (see README).")
    return f"redis://{REDIS_HOST}:{REDIS_PORT}/{1 + _worker_index(worker_id) % 15}"


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    """A client on this worker's Redis database, emptied before the test."""
    client = Redis.from_url(redis_url)
    await client.flushdb()
    yield client
    await client.aclose()


def make_settings(
    tmp_path: Path,
    worker_id: str,
    *,
    pg_url: str | None,
    redis_url: str | None = None,
    **overrides: Any,
) -> Settings:
    """Test settings; `None` URLs mean the embedded in-process equivalents."""
    values: dict[str, Any] = {
        "environment": "test",
        "database_url": pg_url,
        "redis_url": redis_url,
        "data_dir": tmp_path / "var",
        "bcrypt_rounds": 4,
        "public_url": "http://127.0.0.1",
        "socketio_channel": f"lms:test:{worker_id}:socketio",
        "task_queue": f"lms:test:{worker_id}:tasks",
        "rate_limit": "6000/minute",
        "rate_limit_auth": "600/minute",
        "live_gc_freeze": False,  # the steward's collections would pause the whole test process
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


@pytest.fixture
def settings(tmp_path: Path, worker_id: str, pg_url: str, redis_url: str, redis: Redis) -> Settings:
    """Settings on the real PostgreSQL and Redis."""
    return make_settings(tmp_path, worker_id, pg_url=pg_url, redis_url=redis_url)


@pytest.fixture
async def database(request: pytest.FixtureRequest, pg_url: str) -> AsyncIterator[Database | None]:
    """A rolled-back transaction as the app's database; `None` (app's own engine) for shared_db."""
    if request.node.get_closest_marker("shared_db"):
        yield None
        await truncate_all(pg_url)
        return
    engine = create_async_engine(pg_url, poolclass=NullPool)
    connection = await engine.connect()
    transaction = await connection.begin()
    sessions = async_sessionmaker(
        bind=connection, expire_on_commit=False, join_transaction_mode="create_savepoint"
    )
    yield Database(engine, sessions)
    await transaction.rollback()
    await connection.close()
    await engine.dispose()


async def truncate_all(pg_url: str) -> None:
    """Empty every table (for shared_db tests)."""
    load_models()
    engine = create_async_engine(pg_url, poolclass=NullPool)
    names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    async with engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {names} CASCADE"))
    await engine.dispose()


@pytest.fixture
def live_settings() -> dict[str, Any]:
    """Settings of the live quiz test instances (tests/livekit.py), over the test defaults."""
    return {}


@pytest.fixture
def live_instances() -> int:
    """How many app instances the live quiz tests run (on one PostgreSQL and one Redis)."""
    return 2


@pytest.fixture
def app(settings: Settings, database: Database | None) -> web.Application:
    return create_app(settings, database=database)


@pytest.fixture
async def client(
    aiohttp_client: Any, app: web.Application
) -> TestClient[web.Request, web.Application]:
    result: TestClient[web.Request, web.Application] = await aiohttp_client(app)
    return result


def bearer(app: web.Application, *, role: str = "student", user_id: Any = None) -> dict[str, str]:
    """An Authorization header with a fresh access token from the app's own codec."""
    import uuid

    token = app[keys.TOKENS].issue(user_id=user_id or uuid.uuid4(), role=role)
    return {"Authorization": f"Bearer {token}"}


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (for servers that cannot take port 0)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Remove lms_live settings from the environment for this test."""
    for name in list(os.environ):
        if name in {f.upper() for f in Settings.model_fields}:
            monkeypatch.delenv(name)


class SmtpInbox:
    """Messages received by a real local SMTP server (aiosmtpd)."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self._arrived = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = BytesParser(policy=policy.default).parsebytes(envelope.content)
        assert isinstance(message, EmailMessage)
        self.messages.append(message)
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._arrived.set)
        return "250 Message accepted for delivery"

    async def wait_for(self, count: int = 1, timeout: float = 10) -> list[EmailMessage]:
        """Wait until `count` messages have arrived."""
        self._loop = asyncio.get_running_loop()
        async with asyncio.timeout(timeout):
            while len(self.messages) < count:
                self._arrived.clear()
                if len(self.messages) >= count:
                    break
                await self._arrived.wait()
        return self.messages


@pytest.fixture
def smtp() -> Iterator[tuple[SmtpInbox, int]]:
    """A local SMTP server (its own thread) and its port."""
    inbox = SmtpInbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield inbox, port
    controller.stop()


@pytest.fixture
async def api(
    aiohttp_client: Any,
    tmp_path: Path,
    worker_id: str,
    pg_url: str,
    redis_url: str,
    redis: Redis,
    database: Database | None,
    smtp: tuple[SmtpInbox, int],
) -> Any:
    """The app on PostgreSQL and Redis, tasks run in-process, emails to a real SMTP server."""
    from tests.authkit import Api

    inbox, port = smtp
    settings = make_settings(
        tmp_path,
        worker_id,
        pg_url=pg_url,
        redis_url=redis_url,
        task_broker="memory",
        smtp_host="127.0.0.1",
        smtp_port=port,
        email_resend_cooldown_seconds=0,
    )
    client = await aiohttp_client(create_app(settings, database=database))
    broker = client.app[keys.BROKER]
    if database is not None and isinstance(broker, InMemoryBroker):
        # The rolled-back database is one connection: a task running beside the request (or
        # the test) would use it concurrently. Tasks run inline, before the response, instead.
        broker.await_inplace = True
    return Api(client, inbox)
