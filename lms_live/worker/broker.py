"""Taskiq wiring: broker choice, task registry, shared resources, metrics and retries.

- With REDIS_URL: `LmsStreamBroker` (a Redis stream and consumer group; acknowledged after the
  task ran, so a task whose worker dies is redelivered after WORKER_REDELIVER_AFTER); retries
  are scheduled through a Redis schedule source that `lms-live scheduler` serves. Without
  it: `InMemoryBroker` running tasks in the web process, retries delayed in-process.
- Tasks are plain async functions registered by name with `@task("lms.<area>.<verb>")`; the
  web app and the worker register the same ones. `TaskResources` (built by the same factories
  as the web app's) reach a task through `resources(context)`.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from taskiq import (
    AsyncBroker,
    Context,
    InMemoryBroker,
    ScheduleSource,
    SmartRetryMiddleware,
    TaskiqEvents,
    TaskiqMessage,
    TaskiqMiddleware,
    TaskiqResult,
    TaskiqState,
)
from taskiq.kicker import AsyncKicker
from taskiq_redis import ListRedisScheduleSource

from lms_live.core.db import Database
from lms_live.core.mail import EmailTemplates, Mailer
from lms_live.core.metrics import Metrics
from lms_live.core.realtime import Emitter
from lms_live.core.redis import KeyValueStore, driver_options
from lms_live.core.storage import Storage
from lms_live.core.streams import MemoryStreamLog, StreamLog
from lms_live.settings import Settings
from lms_live.worker.stream import LmsStreamBroker

log = logging.getLogger("lms_live.worker")

TASK_MODULES = (
    "lms_live.emails.tasks",
    "lms_live.system.tasks",
    "lms_live.certificates.tasks",
    "lms_live.quizzes.tasks",
)
CONSUMER_GROUP = "lms-workers"

TaskFunction = Callable[..., Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class TaskSpec:
    name: str
    function: TaskFunction
    retries: int
    schedule: tuple[dict[str, Any], ...]


_REGISTRY: dict[str, TaskSpec] = {}


def task(
    name: str, *, retries: int = 0, schedule: tuple[dict[str, Any], ...] = ()
) -> Callable[[TaskFunction], TaskFunction]:
    """Declare a task by name; `retries` with exponential backoff, `schedule` for periodic runs."""

    def register(function: TaskFunction) -> TaskFunction:
        _REGISTRY[name] = TaskSpec(name, function, retries, schedule)
        return function

    return register


def task_specs() -> dict[str, TaskSpec]:
    """Every declared task (importing the task modules first)."""
    for module in TASK_MODULES:
        importlib.import_module(module)
    return dict(_REGISTRY)


@dataclass(slots=True)
class TaskResources:
    """What tasks may use; built by the same factories as the web app's."""

    settings: Settings
    database: Database
    kv: KeyValueStore
    mailer: Mailer
    email_templates: EmailTemplates
    storage: Storage
    emitter: Emitter
    metrics: Metrics
    streams: StreamLog = field(default_factory=MemoryStreamLog)


def resources(context: Context) -> TaskResources:
    """The resources of the process running this task."""
    found: TaskResources = context.state.resources
    return found


class TaskMetrics(TaskiqMiddleware):
    """Counts and times every task run into the process's Metrics; logs failures."""

    def __init__(self) -> None:
        super().__init__()
        self._attempts: dict[str, int] = {}

    def pre_execute(self, message: TaskiqMessage) -> TaskiqMessage:
        self._attempts[message.task_id] = int(message.labels.get("_retries", 0)) + 1
        return message

    def post_execute(self, message: TaskiqMessage, result: TaskiqResult[Any]) -> None:
        state_resources: TaskResources | None = getattr(self.broker.state, "resources", None)
        if state_resources is None:
            return
        self._attempts.pop(message.task_id, None)
        outcome = "error" if result.is_err else "ok"
        state_resources.metrics.tasks.labels(message.task_name, outcome).inc()
        state_resources.metrics.task_latency.labels(message.task_name).observe(
            result.execution_time
        )

    def on_error(
        self, message: TaskiqMessage, result: TaskiqResult[Any], exception: BaseException
    ) -> None:
        attempt = self._attempts.get(message.task_id, 1)
        log.warning(
            "task %s (%s) failed on attempt %d: %s: %s",
            message.task_name,
            message.task_id,
            attempt,
            type(exception).__name__,
            exception,
        )


class BackoffRetry(SmartRetryMiddleware):
    """Exponential backoff with jitter; delayed by the schedule source, or in-process."""

    _pending: set[asyncio.Task[None]]

    async def on_send(
        self, kicker: AsyncKicker[Any, Any], message: TaskiqMessage, delay: float
    ) -> None:
        log.info("retrying task %s in %.1fs", message.task_name, delay)
        if self.schedule_source is not None:
            await super().on_send(kicker, message, delay)
            return

        async def later() -> None:
            await asyncio.sleep(delay)
            await kicker.kiq(*message.args, **message.kwargs)

        pending = getattr(self, "_pending", None)
        if pending is None:
            pending = self._pending = set()
        job = asyncio.create_task(later())
        pending.add(job)
        job.add_done_callback(pending.discard)


DEFAULT_SCHEDULE_PREFIX = "lms:schedule"


class RetrySource(ListRedisScheduleSource):
    """taskiq-redis's list schedule source, reading back the minute of a time key whatever
    the prefix holds.

    Upstream takes the text after the key's second colon as the minute, so under a prefix
    with a colon (ours: `lms:schedule`) no key of a past minute ever parsed: a retry was
    found only if the scheduler's refresh (every 5 s) ran within the minute it was due in,
    and one due in the last seconds of a minute was never sent."""

    def _parse_time_key(self, key: str) -> datetime | None:
        stamp = key.removeprefix(f"{self._prefix}:time:")
        try:
            return datetime.strptime(stamp, "%Y-%m-%dT%H:%M").replace(tzinfo=UTC)
        except ValueError:
            return None


def schedule_prefix(settings: Settings) -> str:
    """The Redis key prefix of delayed runs: one per deployment, like TASK_QUEUE, so that
    deployments sharing a Redis database never run each other's retries. The default queue
    keeps the prefix it always had (retries waiting during an upgrade are not stranded)."""
    default_queue = Settings.model_fields["task_queue"].default
    if settings.task_queue == default_queue:
        return DEFAULT_SCHEDULE_PREFIX
    return f"{settings.task_queue}:schedule"


def make_schedule_source(settings: Settings) -> ScheduleSource | None:
    """Where delayed runs (retries) wait: Redis, or nowhere (in-process delay)."""
    if not (settings.uses_task_stream and settings.redis_url):
        return None
    return RetrySource(settings.redis_url, prefix=schedule_prefix(settings), **driver_options())


def make_broker(settings: Settings) -> AsyncBroker:
    """The broker for these settings, with every task registered. Connects at startup."""
    broker: AsyncBroker
    if settings.uses_task_stream and settings.redis_url:
        redeliver_ms = int(settings.worker_redeliver_after * 1000)
        broker = LmsStreamBroker(
            settings.redis_url,
            queue_name=settings.task_queue,
            consumer_group_name=CONSUMER_GROUP,
            consumer_id="0",  # a group created late still sees tasks queued before it
            idle_timeout=redeliver_ms,
            reclaim_interval=min(30.0, settings.worker_redeliver_after / 2),
            xread_block=1000,  # below redis-py's 5 s socket timeout; bounds the stop delay
            xread_count=1,  # read one at a time: nothing extra is held while stopping
            health_check_interval=settings.redis_health_check_interval,
            **driver_options(),
        )
    else:
        broker = InMemoryBroker()
    broker.add_middlewares(
        TaskMetrics(),
        BackoffRetry(
            default_retry_count=3,
            default_delay=2,
            use_jitter=True,
            use_delay_exponent=True,
            max_delay_exponent=300,
            schedule_source=make_schedule_source(settings),
        ),
    )
    for spec in task_specs().values():
        labels: dict[str, Any] = {}
        if spec.retries:
            labels |= {"retry_on_error": True, "max_retries": spec.retries}
        if spec.schedule:
            labels["schedule"] = list(spec.schedule)
        broker.register_task(spec.function, task_name=spec.name, **labels)
    return broker


def bind_resources(
    broker: AsyncBroker,
    make: Callable[[], Awaitable[TaskResources]],
    close: Callable[[TaskResources], Awaitable[None]],
) -> None:
    """Build resources at worker startup (unless the web app already provided them)."""

    async def startup(state: TaskiqState) -> None:
        if getattr(state, "resources", None) is None:
            state.resources = await make()
            state.owns_resources = True

    async def shutdown(state: TaskiqState) -> None:
        if getattr(state, "owns_resources", False):
            await close(state.resources)
            state.resources = None
            state.owns_resources = False

    broker.add_event_handler(TaskiqEvents.WORKER_STARTUP, startup)
    broker.add_event_handler(TaskiqEvents.WORKER_SHUTDOWN, shutdown)


def periodic_intervals() -> list[tuple[str, float]]:
    """(task name, seconds) of every task scheduled by interval."""
    return [
        (spec.name, float(entry["interval"]))
        for spec in task_specs().values()
        for entry in spec.schedule
        if "interval" in entry
    ]


async def run_periodic(
    broker: AsyncBroker,
    stop: asyncio.Event,
    *,
    intervals: list[tuple[str, float]] | None = None,
) -> None:
    """The scheduler's job inside `serve` on the embedded default (no Redis, so no scheduler
    process): send each interval task when due, until `stop`. A failed send is logged and
    tried again at the next interval."""
    loop = asyncio.get_running_loop()
    plan = periodic_intervals() if intervals is None else intervals
    due = {name: loop.time() + seconds for name, seconds in plan}
    while plan and not stop.is_set():
        wait = max(0.0, min(due.values()) - loop.time())
        try:
            await asyncio.wait_for(stop.wait(), wait)
            return
        except TimeoutError:
            pass
        now = loop.time()
        for name, seconds in plan:
            if due[name] <= now:
                due[name] = now + seconds
                try:
                    await enqueue(broker, name)
                except Exception:
                    log.exception("periodic task %s could not be sent", name)
    await stop.wait()


async def enqueue(broker: AsyncBroker, name: str, **kwargs: Any) -> None:
    """Send a task by name (the sender need not import the task's module)."""
    await AsyncKicker(task_name=name, broker=broker, labels=_labels_of(broker, name)).kiq(**kwargs)


def _labels_of(broker: AsyncBroker, name: str) -> dict[str, Any]:
    registered = broker.find_task(name)
    return dict(registered.labels) if registered is not None else {}
