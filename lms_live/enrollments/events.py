"""Progress events: numbered in their streams, emitted on `/progress` after the commit.

Streams (see core.streams) and the rooms they are emitted to:
  course:<course id>   room `course:<course id>`: the course's instructors' dashboards
  learner:<user id>    room `user:<user id>`: the learner's own sockets
Events (each carries the stream's `seq`): `lesson_completed {course_id, user_id, lesson_id}`,
`progress_changed {course_id, user_id, percent, completed_lessons, required_lessons}`,
`course_completed {course_id, user_id, completed_at}`, and on course streams only
`learner_online` / `learner_offline {course_id, user_id}`.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from aiohttp import web

from lms_live import keys
from lms_live.core.realtime import Emitter, ServerEmitter, user_room
from lms_live.core.streams import StreamLog, publish
from lms_live.enrollments.progress import ProgressChange

log = logging.getLogger("lms_live.progress")

NAMESPACE = "/progress"


def course_stream(course_id: uuid.UUID | str) -> str:
    return f"course:{course_id}"


def learner_stream(user_id: uuid.UUID | str) -> str:
    return f"learner:{user_id}"


async def to_course(
    app: web.Application, course_id: uuid.UUID | str, event: str, data: dict[str, Any]
) -> None:
    """One event on a course's stream (its instructors' dashboards)."""
    await _course_event(app[keys.STREAMS], ServerEmitter(app[keys.SIO]), course_id, event, data)


async def _course_event(
    streams: StreamLog,
    emitter: Emitter,
    course_id: uuid.UUID | str,
    event: str,
    data: dict[str, Any],
) -> None:
    await publish(
        streams,
        emitter,
        stream=course_stream(course_id),
        event=event,
        data=data,
        room=course_stream(course_id),
        namespace=NAMESPACE,
    )


async def _learner_event(
    streams: StreamLog, emitter: Emitter, user_id: uuid.UUID | str, event: str, data: dict[str, Any]
) -> None:
    await publish(
        streams,
        emitter,
        stream=learner_stream(user_id),
        event=event,
        data=data,
        room=user_room(str(user_id)),
        namespace=NAMESPACE,
    )


async def publish_progress(
    app: web.Application, changes: list[ProgressChange], *, lesson_id: uuid.UUID | None = None
) -> None:
    """After a commit: tell the learners and their courses' dashboards what changed. A failed
    publish is logged, never raised: the change is committed and clients catch up by `seq`
    or snapshot."""
    await publish_progress_with(
        app[keys.STREAMS], ServerEmitter(app[keys.SIO]), changes, lesson_id=lesson_id
    )


async def publish_progress_with(
    streams: StreamLog,
    emitter: Emitter,
    changes: list[ProgressChange],
    *,
    lesson_id: uuid.UUID | None = None,
) -> None:
    """`publish_progress` from anywhere: a worker passes its stream log and emitter."""
    for change in changes:
        base = {"course_id": str(change.course_id), "user_id": str(change.user_id)}
        events: list[tuple[str, dict[str, Any]]] = []
        if lesson_id is not None:
            events.append(("lesson_completed", base | {"lesson_id": str(lesson_id)}))
        events.append(
            (
                "progress_changed",
                base
                | {
                    "percent": change.percent,
                    "completed_lessons": change.completed_lessons,
                    "required_lessons": change.required_lessons,
                },
            )
        )
        if change.course_completed and change.completed_at is not None:
            events.append(
                ("course_completed", base | {"completed_at": change.completed_at.isoformat()})
            )
        try:
            for event, data in events:
                await _course_event(streams, emitter, change.course_id, event, data)
                await _learner_event(streams, emitter, change.user_id, event, data)
        except Exception:
            log.exception("progress events of enrollment %s not published", change.enrollment_id)
