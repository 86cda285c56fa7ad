"""The `lms-live worker` and `scheduler` processes on the real Redis: delivery, acknowledgement,
clean stop within 10 s of SIGTERM, redelivery after a crash, periodic tasks, retries."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from redis.asyncio import Redis
from taskiq import AsyncBroker, ScheduledTask

from lms_live.emails.tasks import SEND_EMAIL
from lms_live.settings import Settings
from lms_live.system.tasks import HEARTBEAT_KEY
from lms_live.worker.broker import (
    CONSUMER_GROUP,
    enqueue,
    make_broker,
    make_schedule_source,
    schedule_prefix,
)
from tests.conftest import SmtpInbox, free_port, make_settings

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


class Process:
    """A child `lms-live` process whose output is collected line by line."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path) -> None:
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "lms_live", *args],
            env=env,
            cwd=cwd,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    async def wait_for_line(self, text: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.lines):
            if self.proc.poll() is not None:
                raise AssertionError(f"exited {self.proc.returncode}:\n{''.join(self.lines)}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no {text!r} in:\n{''.join(self.lines)}")
            await asyncio.sleep(0.05)

    async def stop(self, sig: int = signal.SIGTERM) -> tuple[int, float]:
        """Send a signal; return the exit code and seconds until exit."""
        started = time.monotonic()
        self.proc.send_signal(sig)
        while self.proc.poll() is None:
            if time.monotonic() - started > 20:
                self.proc.kill()
                raise AssertionError("process ignored the signal")
            await asyncio.sleep(0.02)
        self._reader.join(5)
        return self.proc.returncode, time.monotonic() - started


class SlowInbox(SmtpInbox):
    """An SMTP server that takes `delay` seconds to accept each message."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay
        self.started = threading.Event()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.started.set()
        await asyncio.sleep(self.delay)
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
def smtp_holder() -> Iterator[socket.socket]:
    """A socket bound (not listening) to the SMTP port until the server starts: connections
    are refused ("SMTP is down"), and no other process of a parallel run can take the port
    in the meantime (a free port picked early and bound late was sometimes taken)."""
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    yield holder
    holder.close()


@pytest.fixture
def smtp_port(smtp_holder: socket.socket) -> int:
    port: int = smtp_holder.getsockname()[1]
    return port


@pytest.fixture
def start_smtp(
    smtp_port: int, smtp_holder: socket.socket
) -> Iterator[Callable[[SmtpInbox], SmtpInbox]]:
    controllers: list[Controller] = []

    def start(inbox: SmtpInbox) -> SmtpInbox:
        smtp_holder.close()  # hand the port to the server
        controller = Controller(inbox, hostname="127.0.0.1", port=smtp_port)
        controller.start()
        controllers.append(controller)
        return inbox

    yield start
    for controller in controllers:
        controller.stop()


@pytest.fixture
def worker_settings(
    tmp_path: Path, worker_id: str, pg_url: str, redis_url: str, redis: Redis, smtp_port: int
) -> Settings:
    return make_settings(
        tmp_path,
        worker_id,
        pg_url=pg_url,
        redis_url=redis_url,
        task_queue=f"lms:test:tasks:{uuid.uuid4().hex}",
        smtp_host="127.0.0.1",
        smtp_port=smtp_port,
        smtp_timeout=30,
        worker_redeliver_after=3,
    )


@pytest.fixture
def spawn(worker_settings: Settings, tmp_path: Path) -> Iterator[Callable[..., Process]]:
    processes: list[Process] = []
    names = {name.upper() for name in Settings.model_fields}
    env = {k: v for k, v in os.environ.items() if k not in names}
    for name, value in worker_settings.model_dump(mode="json").items():
        if value is not None:
            env[name.upper()] = ",".join(value) if isinstance(value, list) else str(value)

    def start(*args: str, **extra: str) -> Process:
        process = Process(list(args), env | extra, tmp_path)
        processes.append(process)
        return process

    yield start
    for process in processes:
        if process.proc.poll() is None:
            process.proc.kill()
            process.proc.wait(5)


@pytest.fixture
async def client_broker(worker_settings: Settings) -> AsyncIterator[AsyncBroker]:
    broker = make_broker(worker_settings)
    await broker.startup()
    yield broker
    await broker.shutdown()


async def _send(broker: AsyncBroker, to: str) -> None:
    await enqueue(
        broker,
        SEND_EMAIL,
        template="test",
        to=to,
        context={"public_url": "http://x", "environment": "test"},
    )


async def _pending(redis: Redis, settings: Settings) -> int:
    info = await redis.xpending(settings.task_queue, CONSUMER_GROUP)
    return int(info["pending"])


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return str(response.read().decode())


def _subjects(messages: list[EmailMessage]) -> list[str]:
    return [str(m["To"]) for m in messages]


async def test_worker_delivers_acknowledges_and_stops_cleanly(
    spawn: Callable[..., Process],
    start_smtp: Callable[[SmtpInbox], SmtpInbox],
    client_broker: AsyncBroker,
    redis: Redis,
    worker_settings: Settings,
) -> None:
    inbox = start_smtp(SmtpInbox())
    metrics_port = free_port()
    worker = spawn("worker", WORKER_METRICS_PORT=str(metrics_port))
    await worker.wait_for_line("worker started")
    await _send(client_broker, "one@x.test")
    await _send(client_broker, "two@x.test")
    await inbox.wait_for(2, timeout=20)
    assert sorted(_subjects(inbox.messages)) == ["one@x.test", "two@x.test"]
    assert await _until_nothing_pending(redis, worker_settings) == 0
    scraped = await asyncio.to_thread(_scrape, metrics_port)
    assert 'lms_tasks_total{outcome="ok",task="lms.emails.send"} 2.0' in scraped
    assert 'lms_task_duration_seconds_count{task="lms.emails.send"} 2.0' in scraped

    code, seconds = await worker.stop()
    assert code == 0, "".join(worker.lines)
    assert seconds < 10
    consumers = await redis.xinfo_consumers(worker_settings.task_queue, CONSUMER_GROUP)
    assert consumers == []
    print(f"idle worker stopped {seconds:.2f}s after SIGTERM")


@pytest.fixture
def busy_worker(
    spawn: Callable[..., Process],
    start_smtp: Callable[[SmtpInbox], SmtpInbox],
    client_broker: AsyncBroker,
) -> Callable[[float, str], Awaitable[tuple[SlowInbox, Process]]]:
    """Start a worker and have it deliver one email to an SMTP server that takes `delay` s."""

    async def start(delay: float, to: str) -> tuple[SlowInbox, Process]:
        inbox = SlowInbox(delay=delay)
        start_smtp(inbox)
        worker = spawn("worker")
        await worker.wait_for_line("worker started")
        await _send(client_broker, to)
        await asyncio.to_thread(inbox.started.wait, 20)
        return inbox, worker

    return start


async def _until_nothing_pending(redis: Redis, settings: Settings) -> int:
    for _ in range(200):
        if await _pending(redis, settings) == 0:
            break
        await asyncio.sleep(0.05)
    return await _pending(redis, settings)


BusyWorker = Callable[[float, str], Awaitable[tuple[SlowInbox, Process]]]


async def test_sigterm_lets_the_running_task_finish(
    busy_worker: BusyWorker, redis: Redis, worker_settings: Settings
) -> None:
    inbox, worker = await busy_worker(3, "slow@x.test")
    code, seconds = await worker.stop()
    assert code == 0, "".join(worker.lines)
    assert seconds < 10
    assert _subjects(inbox.messages) == ["slow@x.test"]
    assert await _pending(redis, worker_settings) == 0


async def test_a_task_of_a_killed_worker_is_redelivered(
    busy_worker: BusyWorker,
    spawn: Callable[..., Process],
    redis: Redis,
    worker_settings: Settings,
) -> None:
    inbox, first = await busy_worker(2, "crash@x.test")
    await first.stop(signal.SIGKILL)
    assert await _pending(redis, worker_settings) == 1

    second = spawn("worker")
    await second.wait_for_line("worker started")
    await inbox.wait_for(1, timeout=30)
    # At least once: the killed attempt may have reached the server too.
    assert set(_subjects(inbox.messages)) == {"crash@x.test"}
    assert await _until_nothing_pending(redis, worker_settings) == 0
    code, _ = await second.stop()
    assert code == 0


async def test_sigterm_while_a_task_outlasts_the_deadline_leaves_it_for_redelivery(
    busy_worker: BusyWorker, redis: Redis, worker_settings: Settings
) -> None:
    _, worker = await busy_worker(20, "long@x.test")
    code, seconds = await worker.stop()
    assert code == 1
    assert seconds < 10
    assert await _pending(redis, worker_settings) == 1, "unfinished task must stay unacknowledged"


async def test_scheduler_runs_periodic_tasks_and_retries(
    spawn: Callable[..., Process],
    start_smtp: Callable[[SmtpInbox], SmtpInbox],
    client_broker: AsyncBroker,
    redis: Redis,
) -> None:
    worker = spawn("worker")
    scheduler = spawn("scheduler")
    await worker.wait_for_line("worker started")
    await scheduler.wait_for_line("scheduler started with 2 periodic tasks")
    for _ in range(200):
        if await redis.get(HEARTBEAT_KEY):
            break
        await asyncio.sleep(0.05)
    assert await redis.get(HEARTBEAT_KEY)

    # SMTP is down: the first attempt fails and the retry waits in the scheduler's source.
    await _send(client_broker, "retry@x.test")
    await worker.wait_for_line("failed on attempt 1", timeout=30)
    inbox = start_smtp(SmtpInbox())
    try:
        await inbox.wait_for(1, timeout=60)
    except TimeoutError:
        pytest.fail(
            "the retried email did not arrive in 60 s\n--- worker:\n"
            + "".join(worker.lines)[-8000:]
            + "\n--- scheduler:\n"
            + "".join(scheduler.lines)[-8000:]
        )
    assert _subjects(inbox.messages) == ["retry@x.test"]
    for process in (scheduler, worker):
        code, seconds = await process.stop()
        assert code == 0, "".join(process.lines)
        assert seconds < 10


def _deployment(
    tmp_path: Path, worker_id: str, pg_url: str, redis_url: str, queue: str
) -> Settings:
    return make_settings(
        tmp_path,
        worker_id,
        pg_url=pg_url,
        redis_url=redis_url,
        task_broker="redis",
        task_queue=queue.format(hex=uuid.uuid4().hex),
    )


def _retry(to: str, due: datetime) -> ScheduledTask:
    """A delayed run of the email task, as the retry middleware stores it."""
    return ScheduledTask(
        task_name=SEND_EMAIL,
        labels={},
        args=[],
        kwargs={"to": to},
        schedule_id=uuid.uuid4().hex,
        time=due,
    )


async def _drop_schedules(redis: Redis, settings: Settings) -> None:
    keys = [k async for k in redis.scan_iter(f"{schedule_prefix(settings)}:*")]
    if keys:
        await redis.delete(*keys)


async def test_deployments_sharing_a_redis_database_keep_their_retries_apart(
    tmp_path: Path, worker_id: str, pg_url: str, redis_url: str, redis: Redis
) -> None:
    """A delayed run (a retry) waits under its deployment's TASK_QUEUE: another deployment's
    scheduler on the same Redis database never sees it, so never runs it."""
    first, second = (
        _deployment(tmp_path, worker_id, pg_url, redis_url, "lms:test:tasks:{hex}")
        for _ in range(2)
    )
    assert schedule_prefix(first) != schedule_prefix(second)
    # unchanged for the default queue: retries waiting during an upgrade are still found
    assert schedule_prefix(Settings(_env_file=None)) == "lms:schedule"
    sources = [src for src in map(make_schedule_source, (first, second)) if src is not None]
    assert len(sources) == 2
    for source in sources:
        await source.startup()
    try:
        await sources[0].add_schedule(
            _retry("someone@example.org", datetime.now(UTC) - timedelta(seconds=1))
        )
        assert [t.kwargs["to"] for t in await sources[0].get_schedules()] == ["someone@example.org"]
        assert await sources[1].get_schedules() == []
    finally:
        for source in sources:
            await source.shutdown()
        for settings in (first, second):
            await _drop_schedules(redis, settings)


@pytest.mark.parametrize("queue", ["lms:tasks", "lms:test:tasks:{hex}"])
async def test_a_retry_due_in_a_past_minute_is_still_found(
    tmp_path: Path, worker_id: str, pg_url: str, redis_url: str, redis: Redis, queue: str
) -> None:
    """A retry whose minute has passed before the scheduler looked (due in the last seconds
    of a minute, the next refresh in the next one) must still be sent."""
    settings = _deployment(tmp_path, worker_id, pg_url, redis_url, queue)
    assert ":" in schedule_prefix(settings)  # the case taskiq-redis got wrong
    await _drop_schedules(redis, settings)
    source = make_schedule_source(settings)
    assert source is not None
    await source.startup()
    try:
        late = _retry("late@example.org", datetime.now(UTC) - timedelta(minutes=2))
        await source.add_schedule(late)
        found = await source.get_schedules()
        assert [t.schedule_id for t in found] == [late.schedule_id]
        await source.delete_schedule(late.schedule_id)  # what sending it does (post_send)
        assert await source.get_schedules() == []
    finally:
        await source.shutdown()
        await _drop_schedules(redis, settings)
