"""`/progress`: learners follow their own progress; instructors watch their courses live.

Protocol (every ack is `{"ok": true, ...}` or `{"ok": false, "error": {code, message}}`):
- connect with `auth={"token": ...}` (or the page cookie); the socket is counted for presence.
- `follow_me {last_seq?}` -> ack `{"seq", "events": [...]}` (missed events of the learner's
  stream, each `{"event", "data"}`), or `{"seq", "reset": true, "snapshot": {"courses": [...]}}`
  when `last_seq` is absent or the log no longer reaches back. Events then arrive live.
- `join_course {course_id, last_seq?}` (the course's instructors and admins; others get
  `forbidden`, unknown courses `course_not_found`) -> the same shape for the course stream,
  the snapshot being `{"learners": [...], "online": [user ids]}`; `leave_course {course_id}`.
- server -> client: `lesson_completed`, `progress_changed`, `course_completed`,
  `learner_online`, `learner_offline` (course streams), each with its stream's `seq`; see
  lms_live/enrollments/events.py for payloads. A gap in `seq` means: send `follow_me` /
  `join_course` again with the last `seq` seen.
Presence: a learner is online while they have at least one `/progress` socket on any
instance (several tabs count once); transitions are published to the streams of the courses
they are enrolled in.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from datetime import datetime
from typing import Any

from aiohttp import web
from pydantic import BaseModel, Field

from lms_live import keys
from lms_live.core.realtime import LmsNamespace, SocketAuth, ack_ok, acked
from lms_live.core.security import Principal
from lms_live.core.streams import StreamEvent
from lms_live.courses.access import ensure_teaches, get_course
from lms_live.enrollments import dashboard
from lms_live.enrollments.events import NAMESPACE, course_stream, learner_stream, to_course

log = logging.getLogger("lms_live.progress")


class FollowIn(BaseModel):
    last_seq: int | None = Field(None, ge=0)


class CourseIn(BaseModel):
    course_id: uuid.UUID
    last_seq: int | None = Field(None, ge=0)


def _replay(events: list[StreamEvent], head: int) -> dict[str, Any]:
    return ack_ok(seq=head, events=[e.wire() for e in events])


class ProgressNamespace(LmsNamespace):
    """See the module docstring for the protocol."""

    def __init__(self, app: web.Application, *, auth: SocketAuth) -> None:
        super().__init__(NAMESPACE, auth=auth, metrics=app[keys.METRICS])
        self.app = app

    def _connection(self, sid: str) -> str:
        return f"{self.app[keys.INSTANCE_ID]}:{sid}"

    async def joined(self, sid: str, principal: Principal) -> None:
        user_id = str(principal.user_id)
        if await self.app[keys.PRESENCE].join(user_id, self._connection(sid)):
            await self._announce(principal.user_id, "learner_online")

    async def on_disconnect(self, sid: str, reason: str | None = None) -> None:
        session = await self.get_session(sid)
        await super().on_disconnect(sid, reason)
        user_id = session.get("user_id")
        if user_id and await self.app[keys.PRESENCE].leave(user_id, self._connection(sid)):
            await self._announce(uuid.UUID(user_id), "learner_offline")

    async def _announce(self, user_id: uuid.UUID, event: str) -> None:
        try:
            async with self.app[keys.DATABASE].reads() as session:
                courses = await dashboard.enrolled_course_ids(session, user_id=user_id)
            for course_id in courses:
                data = {"course_id": str(course_id), "user_id": str(user_id)}
                await to_course(self.app, course_id, event, data)
        except Exception:
            log.exception("presence of %s not published", user_id)

    async def _stream_ack(self, stream: str, last_seq: int | None) -> dict[str, Any] | None:
        """Missed events, or None when the client must take a snapshot."""
        streams = self.app[keys.STREAMS]
        if last_seq is None:
            return None
        missed = await streams.since(stream, last_seq)
        if missed is None:
            return None
        return _replay(missed, await streams.head(stream))

    @acked
    async def on_follow_me(self, sid: str, data: Any = None) -> dict[str, Any]:
        body = FollowIn.model_validate(data or {})
        session = await self.get_session(sid)
        user_id = uuid.UUID(session["user_id"])
        stream = learner_stream(user_id)
        replay = await self._stream_ack(stream, body.last_seq)
        if replay is not None:
            return replay
        head = await self.app[keys.STREAMS].head(stream)
        async with self.app[keys.DATABASE].reads() as db:
            courses = await dashboard.learner_courses(db, user_id=user_id)
        return ack_ok(seq=head, reset=True, snapshot={"courses": courses})

    @acked
    async def on_join_course(self, sid: str, data: Any = None) -> dict[str, Any]:
        body = CourseIn.model_validate(data or {})
        principal = await self._principal(sid)
        async with self.app[keys.DATABASE].reads() as db:
            course = await get_course(db, course_id=body.course_id)
            await ensure_teaches(db, principal=principal, course=course)
        stream = course_stream(body.course_id)
        await self.enter_room(sid, stream)
        replay = await self._stream_ack(stream, body.last_seq)
        if replay is not None:
            return replay
        head = await self.app[keys.STREAMS].head(stream)
        async with self.app[keys.DATABASE].reads() as db:
            learners = await dashboard.course_learners(db, course_id=body.course_id)
        online = await self.app[keys.PRESENCE].online([row["user_id"] for row in learners])
        return ack_ok(
            seq=head, reset=True, snapshot={"learners": learners, "online": sorted(online)}
        )

    @acked
    async def on_leave_course(self, sid: str, data: Any = None) -> dict[str, Any]:
        body = CourseIn.model_validate(data or {})
        await self.leave_room(sid, course_stream(body.course_id))
        return ack_ok()

    async def _principal(self, sid: str) -> Principal:
        """The socket's caller as the access rules expect it."""
        session = await self.get_session(sid)
        return Principal(
            user_id=uuid.UUID(session["user_id"]),
            role=session["role"],
            jti="socket",
            expires_at=datetime.fromisoformat(session["expires_at"]),
        )


async def keep_presence(
    sio: Any, app: web.Application, stop: asyncio.Event, *, every: float = 20.0
) -> None:
    """Until `stop`: refresh this instance's `/progress` connections in the presence store,
    so they keep counting (those of a crashed instance expire)."""
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)
        if stop.is_set():
            return
        connections: dict[str, set[str]] = {}
        rooms = sio.manager.rooms.get(NAMESPACE, {})
        for room, members in list(rooms.items()):
            if isinstance(room, str) and room.startswith("user:"):
                ids = {f"{app[keys.INSTANCE_ID]}:{sid}" for sid in members}
                connections[room.removeprefix("user:")] = ids
        try:
            if connections:
                await app[keys.PRESENCE].refresh(connections)
        except Exception:
            log.warning("presence refresh failed", exc_info=True)
