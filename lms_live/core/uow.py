"""Unit of work: one transaction per request or socket event, side effects after the commit.

Emits and task sends collected during the work run only once the transaction has committed,
so nobody is told about data that was rolled back. A failed emit is logged (clients recover
through `seq`); a failed task send propagates, so the caller learns it was not queued.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession
from taskiq import AsyncBroker

from lms_live import keys
from lms_live.core.errors import KeepsChanges
from lms_live.core.realtime import Emitter, ServerEmitter
from lms_live.worker.broker import enqueue

log = logging.getLogger("lms_live.uow")


@dataclass
class UnitOfWork:
    """The session of the transaction plus the effects to run after it commits."""

    session: AsyncSession
    _emits: list[tuple[str, Any, str, str]] = field(default_factory=list)
    _tasks: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    callbacks: list[Callable[[], Awaitable[object]]] = field(default_factory=list)

    def emit(self, event: str, data: Any, *, room: str, namespace: str) -> None:
        """Emit to a room once committed."""
        self._emits.append((event, data, room, namespace))

    def enqueue(self, task_name: str, **kwargs: Any) -> None:
        """Send a task once committed."""
        self._tasks.append((task_name, kwargs))

    def after_commit(self, callback: Callable[[], Awaitable[object]]) -> None:
        """Run `callback` once committed (before tasks and emits)."""
        self.callbacks.append(callback)

    async def run_effects(
        self,
        *,
        emitter: Emitter,
        broker: AsyncBroker,
        callbacks: list[Callable[[], Awaitable[object]]] | None = None,
    ) -> None:
        """Run the callbacks, send the tasks, then the emits (called after the commit)."""
        for callback in callbacks or ():
            await callback()
        for name, kwargs in self._tasks:
            await enqueue(broker, name, **kwargs)
        for event, data, room, namespace in self._emits:
            try:
                await emitter.emit(event, data, room=room, namespace=namespace)
            except Exception:
                log.exception("emit of %s to %s failed after commit", event, room)


@asynccontextmanager
async def unit_of_work(app: web.Application) -> AsyncIterator[UnitOfWork]:
    """Open a transaction; commit on success, then run the collected effects. An error marked
    `KeepsChanges` commits too and is raised after the effects."""
    kept: BaseException | None = None
    async with app[keys.DATABASE].sessions() as session:
        work = UnitOfWork(session)
        async with session.begin():
            try:
                yield work
            except KeepsChanges as exc:
                kept = exc
    await work.run_effects(
        emitter=ServerEmitter(app[keys.SIO]), broker=app[keys.BROKER], callbacks=work.callbacks
    )
    if kept is not None:
        raise kept
