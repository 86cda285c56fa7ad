"""The `lms-live worker` and `lms-live scheduler` processes.

The worker builds its resources with the same factories as the web app, consumes the Redis
task stream, and on SIGTERM/SIGINT stops taking new tasks, lets running ones finish for up to
WORKER_SHUTDOWN_TIMEOUT seconds, then exits (an unfinished task stays unacknowledged and is
redelivered to another worker). The scheduler sends periodic tasks and due retries; run
exactly one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from datetime import timedelta

from prometheus_client import start_http_server
from taskiq import AsyncBroker, ScheduleSource, TaskiqScheduler
from taskiq.api import run_receiver_task
from taskiq.cli.scheduler.run import SchedulerLoop
from taskiq.schedule_sources import LabelScheduleSource

from lms_live.core.db import Database, make_engine
from lms_live.core.mail import EmailTemplates, make_mailer
from lms_live.core.metrics import Metrics
from lms_live.core.realtime import ManagerEmitter, close_manager, make_client_manager
from lms_live.core.redis import MemoryKeyValue, RedisKeyValue, make_redis
from lms_live.core.storage import open_storage
from lms_live.settings import Settings
from lms_live.worker.broker import (
    TaskResources,
    bind_resources,
    make_broker,
    make_schedule_source,
)

log = logging.getLogger("lms_live.worker")


class NeedsRedis(RuntimeError):
    """Workers and the scheduler share tasks with the web app through Redis."""


async def build_resources(settings: Settings) -> TaskResources:
    """Task resources from the same factories the web app uses."""
    redis = make_redis(settings)
    manager = make_client_manager(settings, write_only=True)
    return TaskResources(
        settings=settings,
        database=Database.from_engine(make_engine(settings)),
        kv=RedisKeyValue(redis) if redis is not None else MemoryKeyValue(),
        mailer=make_mailer(settings),
        email_templates=EmailTemplates(),
        storage=await open_storage(settings),
        emitter=ManagerEmitter(manager),
        metrics=Metrics(),
    )


async def close_resources(res: TaskResources) -> None:
    """Close what `build_resources` opened."""
    await res.database.engine.dispose()
    await res.storage.close()
    if isinstance(res.kv, RedisKeyValue):
        await res.kv.redis.aclose()
    if isinstance(res.emitter, ManagerEmitter):
        await close_manager(res.emitter.manager)


def _stop_event() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


def _require_redis(settings: Settings) -> None:
    if not settings.redis_url:
        raise NeedsRedis(
            "REDIS_URL is not set: in the embedded default, tasks run inside `lms-live serve`."
        )


async def run_worker(settings: Settings, *, stop: asyncio.Event | None = None) -> None:
    """Consume tasks until `stop` is set (SIGTERM/SIGINT by default), then drain and exit."""
    _require_redis(settings)
    stop = stop or _stop_event()
    broker = make_broker(settings)
    bind_resources(broker, lambda: build_resources(settings), close_resources)
    broker.is_worker_process = True
    await broker.startup()
    res: TaskResources = broker.state.resources
    res.metrics.watch_gc()
    if settings.worker_metrics_port:
        start_http_server(settings.worker_metrics_port, registry=res.metrics.registry)
    receiver = asyncio.create_task(
        run_receiver_task(
            broker,
            max_async_tasks=settings.worker_concurrency,
            run_startup=False,
            propagate_exceptions=True,
        )
    )
    log.info("worker started (concurrency %d)", settings.worker_concurrency)
    await _until(stop, receiver)
    log.info(
        "worker stopping: finishing running tasks (at most %.0fs)", settings.worker_shutdown_timeout
    )
    await _drain(broker, receiver, settings.worker_shutdown_timeout)
    log.info("worker stopped")


async def _until(stop: asyncio.Event, task: asyncio.Task[None]) -> None:
    waiter = asyncio.create_task(stop.wait())
    await asyncio.wait({waiter, task}, return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    if task.done() and task.exception() is not None:
        raise task.exception()  # type: ignore[misc]


async def _drain(broker: AsyncBroker, receiver: asyncio.Task[None], grace: float) -> None:
    receiver.cancel()
    with contextlib.suppress(asyncio.CancelledError, TimeoutError):
        await asyncio.wait_for(receiver, grace)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(broker.shutdown(), 2)


async def run_scheduler(settings: Settings, *, stop: asyncio.Event | None = None) -> None:
    """Send periodic tasks (task `schedule` labels) and due retries until stopped."""
    _require_redis(settings)
    stop = stop or _stop_event()
    broker = make_broker(settings)
    broker.is_scheduler_process = True
    sources: list[ScheduleSource] = [LabelScheduleSource(broker)]
    retries = make_schedule_source(settings)
    if retries is not None:
        sources.append(retries)
    scheduler = TaskiqScheduler(broker, sources)
    for source in sources:
        await source.startup()
    await scheduler.startup()
    loop = asyncio.create_task(
        SchedulerLoop(scheduler).run(
            update_interval=timedelta(seconds=30), loop_interval=timedelta(seconds=1)
        )
    )
    log.info(
        "scheduler started with %d periodic tasks",
        len(await LabelScheduleSource(broker).get_schedules()),
    )
    await _until(stop, loop)
    loop.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await loop
    await scheduler.shutdown()
    for source in sources:
        await source.shutdown()
    log.info("scheduler stopped")
