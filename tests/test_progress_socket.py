"""`/progress`: learners follow their own stream, instructors watch their courses live, across
two instances sharing Redis: presence counted per user (several tabs count once), numbered
events in order, catch-up by `seq` or a snapshot, unauthorized joins refused in the ack."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import socketio
from aiohttp.test_utils import TestServer
from redis.asyncio import Redis

from lms_live import keys
from lms_live.app import create_app
from lms_live.auth.models import Role, User
from lms_live.core.db import utcnow
from lms_live.courses.models import Course, CourseStatus, Lesson, LessonKind, Section
from lms_live.enrollments.events import publish_progress
from lms_live.enrollments.models import Enrollment
from lms_live.enrollments.progress import ProgressChange
from tests.conftest import make_settings

pytestmark = pytest.mark.shared_db
NS = "/progress"
EVENTS = (
    "learner_online",
    "learner_offline",
    "lesson_completed",
    "progress_changed",
    "course_completed",
)


class Socket:
    """A `/progress` client and every event it received, in order."""

    def __init__(self) -> None:
        self.client = socketio.AsyncClient(reconnection=False)
        self.events: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
        for name in EVENTS:
            self.client.on(name, self._keeper(name), namespace=NS)

    def _keeper(self, name: str) -> Any:
        def keep(data: dict[str, Any]) -> None:
            self.events.put_nowait((name, data))

        return keep

    async def call(self, event: str, data: Any = None) -> dict[str, Any]:
        answer: dict[str, Any] = await self.client.call(event, data, namespace=NS, timeout=5)
        return answer

    async def next(self, name: str | None = None) -> tuple[str, dict[str, Any]]:
        """The next event (of this name, skipping others)."""
        async with asyncio.timeout(5):
            while True:
                event = await self.events.get()
                if name is None or event[0] == name:
                    return event

    async def quiet(self, seconds: float = 0.4) -> list[tuple[str, dict[str, Any]]]:
        """Whatever arrives within `seconds` (expected: nothing)."""
        await asyncio.sleep(seconds)
        seen = []
        while not self.events.empty():
            seen.append(self.events.get_nowait())
        return seen


class World:
    def __init__(self, servers: list[TestServer]) -> None:
        self.servers = servers
        self.sockets: list[Socket] = []
        self.app = servers[0].app

    async def user(self, role: Role, name: str) -> User:
        async with self.app[keys.DATABASE].transaction() as session:
            user = User(
                email=f"{uuid.uuid4().hex[:10]}@example.org",
                full_name=name,
                password_hash="x",
                role=role.value,
            )
            session.add(user)
        return user

    def token(self, user: User) -> str:
        return self.app[keys.TOKENS].issue(user_id=user.id, role=user.role)

    async def course(self, owner: User, *learners: User) -> Course:
        async with self.app[keys.DATABASE].transaction() as session:
            course = Course(
                slug=uuid.uuid4().hex,
                title="Rivers",
                owner_id=owner.id,
                status=CourseStatus.PUBLISHED.value,
            )
            session.add(course)
            await session.flush()
            section = Section(course_id=course.id, title="One", position=0)
            session.add(section)
            await session.flush()
            session.add(
                Lesson(
                    section_id=section.id,
                    course_id=course.id,
                    title="Source",
                    kind=LessonKind.TEXT.value,
                    position=0,
                )
            )
            for learner in learners:
                session.add(Enrollment(user_id=learner.id, course_id=course.id))
        return course

    async def connect(self, index: int, user: User) -> Socket:
        socket = Socket()
        await socket.client.connect(
            str(self.servers[index].make_url("/")),
            namespaces=[NS],
            auth={"token": self.token(user)},
            transports=["websocket"],
            wait_timeout=5,
        )
        self.sockets.append(socket)
        return socket


@pytest.fixture
async def world(
    aiohttp_server: Any,
    tmp_path: Path,
    worker_id: str,
    pg_url: str,
    redis_url: str,
    redis: Redis,
    database: None,
) -> AsyncIterator[World]:
    settings = make_settings(
        tmp_path, worker_id, pg_url=pg_url, redis_url=redis_url, task_broker="memory"
    )
    servers = [await aiohttp_server(create_app(settings)) for _ in range(2)]
    result = World(servers)
    yield result
    for socket in result.sockets:
        if socket.client.connected:
            await socket.client.disconnect()


def change(
    course: Course, learner: User, percent: float, done: int, *, completed: bool = False
) -> ProgressChange:
    return ProgressChange(
        enrollment_id=uuid.uuid4(),
        user_id=learner.id,
        course_id=course.id,
        percent=percent,
        completed_lessons=done,
        required_lessons=2,
        course_completed=completed,
        completed_at=utcnow() if completed else None,
    )


async def test_instructor_sees_presence_across_instances_counting_tabs_once(world: World) -> None:
    teacher = await world.user(Role.INSTRUCTOR, "Tess Teacher")
    ann = await world.user(Role.STUDENT, "Ann Learner")
    bob = await world.user(Role.STUDENT, "Bob Learner")
    course = await world.course(teacher, ann, bob)

    first_tab = await world.connect(0, ann)
    dashboard = await world.connect(1, teacher)
    joined = await dashboard.call("join_course", {"course_id": str(course.id)})
    assert joined["ok"] is True
    assert joined["reset"] is True
    learners = joined["snapshot"]["learners"]
    assert [row["full_name"] for row in learners] == ["Ann Learner", "Bob Learner"]
    assert [row["percent"] for row in learners] == [0.0, 0.0]
    assert joined["snapshot"]["online"] == [str(ann.id)]
    head = joined["seq"]

    # A second tab of Ann (on the other instance) changes nothing; Bob coming online does.
    second_tab = await world.connect(1, ann)
    await world.connect(0, bob)
    name, data = await dashboard.next()
    assert (name, data["user_id"], data["seq"]) == ("learner_online", str(bob.id), head + 1)

    # Ann closes one tab: still online. Closing the last one: offline, on every instance.
    await first_tab.client.disconnect()
    assert await dashboard.quiet() == []
    await second_tab.client.disconnect()
    name, data = await dashboard.next()
    assert (name, data["user_id"], data["seq"]) == ("learner_offline", str(ann.id), head + 2)
    assert data["course_id"] == str(course.id)


async def test_progress_events_arrive_in_order_and_a_reconnect_catches_up(world: World) -> None:
    teacher = await world.user(Role.INSTRUCTOR, "Tess Teacher")
    ann = await world.user(Role.STUDENT, "Ann Learner")
    course = await world.course(teacher, ann)
    dashboard = await world.connect(0, teacher)
    joined = await dashboard.call("join_course", {"course_id": str(course.id)})
    learner = await world.connect(1, ann)
    followed = await learner.call("follow_me")
    assert followed["ok"] is True
    assert followed["reset"] is True
    assert followed["snapshot"]["courses"][0]["course_id"] == str(course.id)
    await dashboard.next("learner_online")

    lesson = uuid.uuid4()
    await publish_progress(world.app, [change(course, ann, 50.0, 1)], lesson_id=lesson)
    seen = [await dashboard.next(), await dashboard.next()]
    assert [name for name, _ in seen] == ["lesson_completed", "progress_changed"]
    assert seen[0][1]["lesson_id"] == str(lesson)
    assert seen[1][1] | {"seq": 0} == {
        "seq": 0,
        "course_id": str(course.id),
        "user_id": str(ann.id),
        "percent": 50.0,
        "completed_lessons": 1,
        "required_lessons": 2,
    }
    assert [data["seq"] for _, data in seen] == [joined["seq"] + 2, joined["seq"] + 3]
    mine = [await learner.next(), await learner.next()]
    assert [name for name, _ in mine] == ["lesson_completed", "progress_changed"]
    assert [data["seq"] for _, data in mine] == [followed["seq"] + 1, followed["seq"] + 2]
    last_seen = seen[-1][1]["seq"]

    # The dashboard drops; the learner finishes meanwhile; the dashboard comes back with its
    # last seq and receives exactly what it missed, in order.
    await dashboard.client.disconnect()
    await publish_progress(world.app, [change(course, ann, 100.0, 2, completed=True)])
    back = await world.connect(1, teacher)
    caught = await back.call("join_course", {"course_id": str(course.id), "last_seq": last_seen})
    assert caught["ok"] is True
    assert "reset" not in caught
    assert [item["event"] for item in caught["events"]] == ["progress_changed", "course_completed"]
    assert [item["data"]["seq"] for item in caught["events"]] == [last_seen + 1, last_seen + 2]
    assert caught["events"][0]["data"]["percent"] == 100.0
    assert caught["seq"] == last_seen + 2

    # A seq the stream never reached (Redis lost it): a reset with a fresh snapshot.
    lost = await back.call("join_course", {"course_id": str(course.id), "last_seq": 10_000})
    assert lost["reset"] is True
    assert lost["snapshot"]["learners"][0]["user_id"] == str(ann.id)


async def test_unauthorized_and_malformed_joins_are_refused_in_the_ack(world: World) -> None:
    teacher = await world.user(Role.INSTRUCTOR, "Tess Teacher")
    stranger = await world.user(Role.INSTRUCTOR, "Other Teacher")
    admin = await world.user(Role.ADMIN, "Ada Admin")
    ann = await world.user(Role.STUDENT, "Ann Learner")
    course = await world.course(teacher, ann)
    target = {"course_id": str(course.id)}

    for user in (ann, stranger):
        refused = await (await world.connect(0, user)).call("join_course", target)
        assert refused["ok"] is False
        assert refused["error"]["code"] == "forbidden"
    socket = await world.connect(0, admin)
    assert (await socket.call("join_course", target))["ok"] is True
    unknown = await socket.call("join_course", {"course_id": str(uuid.uuid4())})
    assert unknown["error"]["code"] == "course_not_found"
    for bad in ({}, {"course_id": "nope"}, {"course_id": str(course.id), "last_seq": -1}, "x"):
        answer = await socket.call("join_course", bad)
        assert answer["ok"] is False, bad
        assert answer["error"]["code"] == "validation_failed", bad

    # A refused learner never receives the course's events.
    learner = await world.connect(1, ann)
    await learner.call("join_course", target)
    await publish_progress(world.app, [change(course, ann, 50.0, 1)])
    name, data = await learner.next()
    assert name == "progress_changed"
    assert data["user_id"] == str(ann.id)
    assert await learner.quiet() == []  # only the learner-stream copy, not the course one


async def test_anonymous_sockets_are_refused(world: World) -> None:
    client = socketio.AsyncClient(reconnection=False)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await client.connect(
            str(world.servers[0].make_url("/")),
            namespaces=[NS],
            transports=["websocket"],
            wait_timeout=5,
        )
