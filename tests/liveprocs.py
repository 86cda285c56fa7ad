"""Live app instances and a private Redis as real child processes, for reliability tests that
kill them (`kill -9`) or restart what they depend on.

`AppProcess` runs `lms-live serve` (the console script of this venv) with the settings given
as environment variables, its output in a log file quoted when a test fails. `RedisServer`
runs `redis-server` on a port of its own (never the shared 6379), without persistence, so a
restart loses everything as a crash would. `ProcWorld` is `tests.livekit.LiveWorld` pointed
at those processes: it seeds through its own connection to the same database and issues
tokens with the same SECRET_KEY and PUBLIC_URL (the token issuer).

Readiness is polled (a child process offers nothing to wait on); every wait has a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

import aiohttp
from redis.asyncio import Redis

from lms_live import keys
from lms_live.core.db import Database, make_engine
from lms_live.core.security import TokenCodec
from lms_live.settings import Settings
from tests.conftest import free_port, make_settings
from tests.livekit import LiveWorld

LMS_LIVE = Path(sys.executable).with_name("lms-live")
SECRET_KEY = "reliability-test-secret-0123456789abcdef"  # >= 32 chars, as production wants
PUBLIC_URL = "http://127.0.0.1"
POLL = 0.05

T = TypeVar("T")


async def eventually(
    probe: Callable[[], Awaitable[T]], done: Callable[[T], bool], timeout: float = 5
) -> T:
    """Poll `probe` until `done` holds for its value (state with no event to wait on)."""
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"still {value!r} after {timeout}s")
        await asyncio.sleep(POLL)


def child_env(**values: str) -> dict[str, str]:
    """This environment without any lms_live setting, plus `values` (upper-cased names)."""
    names = {name.upper() for name in Settings.model_fields}
    env = {k: v for k, v in os.environ.items() if k not in names}
    env.update({k.upper(): v for k, v in values.items()})
    return env


class Child:
    """A child process whose output goes to a log file."""

    def __init__(self, args: list[str], *, env: dict[str, str], cwd: Path, log: Path) -> None:
        self.args = args
        self.env = env
        self.cwd = cwd
        self.log = log
        self._out: IO[bytes] | None = None
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start (or start again) the process, appending to its log."""
        self._out = self.log.open("ab")
        self.proc = subprocess.Popen(
            self.args, env=self.env, cwd=self.cwd, stdout=self._out, stderr=subprocess.STDOUT
        )

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def tail(self, lines: int = 40) -> str:
        """The end of the process's log (for failure messages)."""
        if not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def kill(self) -> None:
        """`kill -9` and reap it."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self._close_log()

    def stop(self, timeout: float = 15) -> int | None:
        """SIGTERM, then SIGKILL if it has not exited after `timeout`; its exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._close_log()
        return self.proc.returncode

    def _close_log(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None


class AppProcess(Child):
    """`lms-live serve --port <port> --no-migrate` with these settings."""

    def __init__(self, port: int, *, env: dict[str, str], cwd: Path, log: Path) -> None:
        super().__init__(
            [str(LMS_LIVE), "serve", "--port", str(port), "--no-migrate"],
            env=env,
            cwd=cwd,
            log=log,
        )
        self.port = port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def wait_healthy(self, timeout: float = 30) -> None:
        """Until GET /api/v1/health answers 200; fails early if the process exits."""
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as http:
            while True:
                if not self.running():
                    raise AssertionError(f"lms-live serve exited early:\n{self.tail()}")
                try:
                    async with http.get(
                        f"{self.url}/api/v1/health", timeout=aiohttp.ClientTimeout(total=1)
                    ) as response:
                        if response.status == 200:
                            return
                except (aiohttp.ClientError, TimeoutError):
                    pass
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"lms-live serve not healthy in {timeout}s:\n{self.tail()}"
                    )
                await asyncio.sleep(POLL)


class RedisServer(Child):
    """A private `redis-server` on `port`, nothing saved: a restart starts empty."""

    def __init__(self, port: int, *, cwd: Path, log: Path) -> None:
        super().__init__(
            [
                "redis-server",
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
            ],
            env=dict(os.environ),
            cwd=cwd,
            log=log,
        )
        self.port = port

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def wait_ready(self, timeout: float = 10) -> None:
        """Until it answers PING."""
        deadline = time.monotonic() + timeout
        client = Redis.from_url(self.url, socket_connect_timeout=1)
        try:
            while True:
                if not self.running():
                    raise AssertionError(f"redis-server exited early:\n{self.tail()}")
                try:
                    if await client.ping():
                        return
                except Exception as exc:  # refused until it listens
                    if time.monotonic() > deadline:
                        raise AssertionError(f"redis-server not ready: {exc}") from exc
                await asyncio.sleep(POLL)
        finally:
            await client.aclose()

    async def subscribers(self, channel: str) -> int:
        """PUBSUB NUMSUB of a channel on this server."""
        client = Redis.from_url(self.url, socket_connect_timeout=1)
        try:
            counts = await client.pubsub_numsub(channel)
        finally:
            await client.aclose()
        return int(counts[0][1]) if counts else 0

    async def wait_subscribers(self, channel: str, count: int, timeout: float = 15) -> float:
        """Until `channel` has `count` subscribers; the seconds it took."""
        started = time.monotonic()
        seen = -1
        while time.monotonic() - started < timeout:
            try:
                seen = await self.subscribers(channel)
            except Exception:  # the server may still be coming back
                seen = -1
            if seen == count:
                return time.monotonic() - started
            await asyncio.sleep(POLL)
        raise AssertionError(f"{channel} has {seen} subscribers after {timeout}s, not {count}")


@dataclass
class ProcWorld(LiveWorld):
    """`LiveWorld` over app processes: `server=n` means `apps[n]`."""

    apps: list[AppProcess] = field(default_factory=list)
    resources: dict[Any, Any] = field(default_factory=dict)
    channel: str = ""  # SOCKETIO_CHANNEL of these apps

    @property
    def app(self) -> Any:
        return self.resources

    def url(self, index: int, path: str) -> str:
        return f"{self.apps[index].url}{path}"


class Cluster:
    """Starts app processes and private Redis servers for one test; `close` stops them all."""

    def __init__(self, tmp_path: Path, worker_id: str, *, pg_url: str, redis_url: str) -> None:
        self.tmp_path = tmp_path
        self.worker_id = worker_id
        self.pg_url = pg_url
        self.redis_url = redis_url
        settings = make_settings(
            tmp_path, worker_id, pg_url=pg_url, secret_key=SECRET_KEY, public_url=PUBLIC_URL
        )
        self.engine = make_engine(settings)
        # What LiveWorld reads from `app`: this database, tokens the processes accept.
        self.resources: dict[Any, Any] = {
            keys.DATABASE: Database.from_engine(self.engine),
            keys.TOKENS: TokenCodec.from_settings(settings),
        }
        self.http = aiohttp.ClientSession()
        self.worlds: list[ProcWorld] = []
        self.redis_servers: list[RedisServer] = []

    def env(self, *, redis_url: str, tag: str) -> dict[str, str]:
        """The settings of this cluster's app processes."""
        return child_env(
            environment="test",
            database_url=self.pg_url,
            redis_url=redis_url,
            secret_key=SECRET_KEY,
            public_url=PUBLIC_URL,
            trusted_hosts="127.0.0.1,localhost",
            log_level="WARNING",
            rate_limit_enabled="false",
            live_sweep_interval="0.05",
            live_dashboard_interval="0.1",
            live_socket_events_per_second="60",
            socketio_channel=f"lms:test:{self.worker_id}:{tag}:socketio",
            task_queue=f"lms:test:{self.worker_id}:{tag}:tasks",
            task_broker="memory",
            bcrypt_rounds="4",
            data_dir=str(self.tmp_path / "var"),
        )

    async def apps(self, *, redis_url: str | None = None, count: int = 2) -> ProcWorld:
        """`count` healthy app processes on the test database and this Redis (default: the
        worker's), sharing a SOCKETIO_CHANNEL of their own."""
        tag = uuid.uuid4().hex[:8]
        env = self.env(redis_url=redis_url or self.redis_url, tag=tag)
        apps = [
            AppProcess(
                free_port(), env=env, cwd=self.tmp_path, log=self.tmp_path / f"app-{tag}-{n}.log"
            )
            for n in range(count)
        ]
        world = ProcWorld(
            [], self.http, apps=apps, resources=self.resources, channel=env["SOCKETIO_CHANNEL"]
        )
        self.worlds.append(world)
        for app in apps:
            app.start()
        await asyncio.gather(*(app.wait_healthy() for app in apps))
        return world

    async def redis_server(self) -> RedisServer:
        """A private, ready Redis server on a free port."""
        server = RedisServer(
            free_port(),
            cwd=self.tmp_path,
            log=self.tmp_path / f"redis-{len(self.redis_servers)}.log",
        )
        self.redis_servers.append(server)
        server.start()
        await server.wait_ready()
        return server

    async def close(self) -> None:
        """Disconnect the test's sockets, stop the apps, then the Redis servers."""
        for world in self.worlds:
            for socket in world.sockets:
                with contextlib.suppress(Exception):  # its instance may be dead
                    await socket.disconnect()
            for app in world.apps:
                app.stop()
        for server in self.redis_servers:
            server.stop()
        await self.http.close()
        await self.engine.dispose()
