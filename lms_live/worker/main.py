"""The `lms-live worker` and `lms-live scheduler` processes.

The worker builds its resources with the same factories as the web app, consumes the Redis
task stream, and on SIGTERM/SIGINT stops taking new tasks, lets running ones finish for up to
WORKER_SHUTDOWN_TIMEOUT seconds, then exits (an unfinished task stays unacknowledged and is
redelivered to another worker). The scheduler sends periodic tasks and due retries; run
exactly one.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from prometheus_client import start_http_server
from taskiq import ScheduleSource, TaskiqScheduler
from taskiq.cli.scheduler.run import SchedulerLoop
from taskiq.receiver import Receiver
from taskiq.schedule_sources import LabelScheduleSource

from lms_live.core.db import Database, make_engine
from lms_live.core.mail import EmailTemplates, make_mailer
from lms_live.core.metrics import Metrics
from lms_live.core.realtime import ManagerEmitter, close_manager, make_client_manager
from lms_live.core.redis import MemoryKeyValue, RedisKeyValue, make_redis
from lms_live.core.storage import open_storage
from lms_live.core.streams import MemoryStreamLog, RedisStreamLog
from lms_live.settings import Settings
from lms_live.worker.broker import (
    TaskResources,
    bind_resources,
    make_broker,
    make_schedule_source,
    task_specs,
)
from lms_live.worker.stream import LmsStreamBroker

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
        streams=RedisStreamLog(redis) if redis is not None else MemoryStreamLog(),
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


def _running_tasks() -> list[asyncio.Task[object]]:
    return [
        task
        for task in asyncio.all_tasks()
        if not task.done() and task.get_coro().__qualname__ == "Receiver.callback"  # type: ignore[union-attr]
    ]


def _leave_now(reason: str) -> None:
    """Exit without cancelling running tasks: their messages stay unacknowledged and are
    redelivered to another worker (cancelling a taskiq task would acknowledge it)."""
    log.warning("worker exiting now (%s); unfinished tasks will be redelivered", reason)
    logging.shutdown()
    os._exit(1)


async def run_worker(settings: Settings) -> None:
    """Consume tasks until SIGTERM/SIGINT; then stop reading, let running tasks finish for up to
    WORKER_SHUTDOWN_TIMEOUT - 1.5 s, and exit (within WORKER_SHUTDOWN_TIMEOUT in any case)."""
    _require_redis(settings)
    broker = make_broker(settings)
    if not isinstance(broker, LmsStreamBroker):
        raise NeedsRedis("the worker needs the Redis stream broker")
    bind_resources(broker, lambda: build_resources(settings), close_resources)
    broker.is_worker_process = True
    loop = asyncio.get_running_loop()
    deadline = settings.worker_shutdown_timeout

    def stop(signum: int) -> None:
        if broker.stopping:
            _leave_now(f"second signal {signal.Signals(signum).name}")
        log.info(
            "worker stopping on %s: no new tasks, finishing running ones",
            signal.Signals(signum).name,
        )
        broker.request_stop()
        loop.call_later(deadline, _leave_now, f"{deadline:.0f}s shutdown deadline")

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop, sig)

    await broker.startup()
    res: TaskResources = broker.state.resources
    res.metrics.watch_gc()
    if settings.worker_metrics_port:
        start_http_server(settings.worker_metrics_port, registry=res.metrics.registry)
    log.info(
        "worker started (concurrency %d, consumer %s)",
        settings.worker_concurrency,
        broker.consumer_name,
    )
    with ThreadPoolExecutor(max_workers=4) as pool:
        receiver = Receiver(
            broker,
            executor=pool,
            max_async_tasks=settings.worker_concurrency,
            run_startup=False,
            wait_tasks_timeout=max(0.5, deadline - 1.5),
        )
        # Never set: a finish event would cancel the read, which Python 3.11 can swallow.
        await receiver.listen(asyncio.Event())
    if _running_tasks():
        _leave_now("running tasks did not finish in time")
    if await broker.pending_count() == 0:
        await broker.forget_consumer()
    await broker.shutdown()
    log.info("worker stopped")


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
            update_interval=timedelta(seconds=5), loop_interval=timedelta(seconds=1)
        )
    )
    periodic = sum(len(spec.schedule) for spec in task_specs().values())
    log.info("scheduler started with %d periodic tasks", periodic)
    waiter = asyncio.create_task(stop.wait())
    await asyncio.wait({waiter, loop}, return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    if loop.done():
        loop.result()  # the scheduler loop died: raise its error
    loop.cancel()
    # A cancel can be lost inside redis-py on Python 3.11 (see worker.stream): bounded wait.
    await asyncio.wait({loop}, timeout=3)
    if not loop.done():
        _leave_now("scheduler loop did not stop")
    await scheduler.shutdown()
    for source in sources:
        await source.shutdown()
    log.info("scheduler stopped")
