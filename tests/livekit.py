"""Helpers for live quiz tests: a world of app instances on the real PostgreSQL and Redis, a
quiz in one line, `/live` sockets that keep every event they receive."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import socketio
from aiohttp import ClientSession
from aiohttp.test_utils import TestServer
from redis.asyncio import Redis
from sqlalchemy import select

from lms_live import keys
from lms_live.app import create_app
from lms_live.auth.models import Role, User
from lms_live.core.db import utcnow
from lms_live.courses.models import Course, CourseStatus
from lms_live.enrollments.models import Enrollment
from lms_live.quizzes.models import Question, QuestionVersion, Quiz, QuizSlot
from lms_live.quizzes.spec import (
    Choice,
    NumericAnswer,
    NumericSpec,
    QuestionSpec,
    SingleChoiceSpec,
    TrueFalseSpec,
)
from tests.conftest import make_settings

NS = "/live"
EVENTS = (
    "session_started",
    "question_opened",
    "clock_paused",
    "clock_resumed",
    "question_closed",
    "leaderboard",
    "question_skipped",
    "session_finished",
    "tick",
    "player_joined",
    "player_left",
    "player_kicked",
    "dashboard",
    "kicked",
    "session_ended",
)

CAPITAL = SingleChoiceSpec(
    options=[
        Choice(id="paris", text="Paris", correct=True),
        Choice(id="lyon", text="Lyon"),
        Choice(id="nice", text="Nice"),
    ]
)
EARTH = TrueFalseSpec(answer=True)
SEVEN = NumericSpec(answers=[NumericAnswer(value=7.0)])
QUESTIONS: tuple[tuple[str, QuestionSpec], ...] = (
    ("Capital of France?", CAPITAL),
    ("The Earth is round.", EARTH),
    ("3 + 4?", SEVEN),
)


class LiveSocket:
    """A `/live` client and every event it received, in order."""

    def __init__(self) -> None:
        self.client = socketio.AsyncClient(reconnection=False)
        self.events: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
        self.seen: list[tuple[str, dict[str, Any]]] = []
        self.refusal: dict[str, Any] | None = None
        for name in EVENTS:
            self.client.on(name, self._keeper(name), namespace=NS)
        self.client.on("connect_error", self._refused, namespace=NS)

    def _refused(self, data: Any = None) -> None:
        self.refusal = data if isinstance(data, dict) else {"message": str(data)}

    def _keeper(self, name: str) -> Any:
        def keep(data: dict[str, Any]) -> None:
            self.events.put_nowait((name, data))
            self.seen.append((name, data))

        return keep

    async def call(self, event: str, data: Any = None, timeout: float = 10) -> dict[str, Any]:
        answer: dict[str, Any] = await self.client.call(
            event, data if data is not None else {}, namespace=NS, timeout=timeout
        )
        return answer

    async def next(self, name: str, timeout: float = 10) -> dict[str, Any]:
        """The next event of this name (skipping others)."""
        async with asyncio.timeout(timeout):
            while True:
                event, data = await self.events.get()
                if event == name:
                    return data

    async def disconnect(self) -> None:
        if self.client.connected:
            await self.client.disconnect()


@dataclass
class Quizzed:
    owner: User
    course: Course
    quiz: Quiz
    learners: list[User]


@dataclass
class Player:
    user: User | None
    join: dict[str, Any]
    socket: LiveSocket

    @property
    def id(self) -> str:
        return str(self.join["player_id"])


@dataclass
class LiveWorld:
    servers: list[TestServer]
    http: ClientSession
    sockets: list[LiveSocket] = field(default_factory=list)

    @property
    def app(self) -> Any:
        return self.servers[0].app

    def url(self, index: int, path: str) -> str:
        return str(self.servers[index].make_url(path))

    async def user(self, role: Role = Role.STUDENT, name: str = "Learner") -> User:
        async with self.app[keys.DATABASE].transaction() as session:
            user = User(
                email=f"{uuid.uuid4().hex[:10]}@example.org",
                full_name=name,
                password_hash="x",
                role=role.value,
                email_verified_at=utcnow(),
            )
            session.add(user)
        return user

    def token(self, user: User) -> str:
        return str(self.app[keys.TOKENS].issue(user_id=user.id, role=user.role))

    def bearer(self, user: User) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(user)}"}

    async def quiz(
        self,
        learners: int = 3,
        questions: Sequence[tuple[str, QuestionSpec]] = QUESTIONS,
    ) -> Quizzed:
        """An instructor, a published course with `learners` enrolled, a quiz of these questions."""
        owner = await self.user(Role.INSTRUCTOR, "Tess Teacher")
        people = [await self.user(Role.STUDENT, f"Learner {n + 1}") for n in range(learners)]
        async with self.app[keys.DATABASE].transaction() as session:
            course = Course(
                slug=uuid.uuid4().hex,
                title="Geography",
                owner_id=owner.id,
                status=CourseStatus.PUBLISHED.value,
            )
            session.add(course)
            await session.flush()
            for learner in people:
                session.add(Enrollment(user_id=learner.id, course_id=course.id))
            quiz = Quiz(course_id=course.id, title="Live check", published=True)
            session.add(quiz)
            await session.flush()
            for position, (prompt, spec) in enumerate(questions):
                question = Question(course_id=course.id, title=prompt)
                session.add(question)
                await session.flush()
                session.add(
                    QuestionVersion(
                        question_id=question.id,
                        version=1,
                        type=spec.type.value,
                        prompt=prompt,
                        body=spec.model_dump(mode="json"),
                    )
                )
                session.add(QuizSlot(quiz_id=quiz.id, position=position, question_id=question.id))
        return Quizzed(owner, course, quiz, people)

    async def request(
        self, method: str, path: str, *, who: User | None = None, json: Any = None, server: int = 0
    ) -> tuple[int, Any]:
        headers = self.bearer(who) if who else {}
        async with self.http.request(
            method, self.url(server, path), headers=headers, json=json
        ) as response:
            if response.content_type == "application/json":
                return response.status, await response.json()
            return response.status, await response.text()

    async def session(self, made: Quizzed, **options: Any) -> dict[str, Any]:
        status, body = await self.request(
            "POST", f"/api/v1/quizzes/{made.quiz.id}/live-sessions", who=made.owner, json=options
        )
        assert status == 201, body
        result: dict[str, Any] = body
        return result

    async def socket(
        self, server: int, auth: dict[str, Any], socket: LiveSocket | None = None
    ) -> LiveSocket:
        socket = socket or LiveSocket()
        await socket.client.connect(
            self.url(server, "/"),
            namespaces=[NS],
            auth=auth,
            transports=["websocket"],
            wait_timeout=5,
        )
        self.sockets.append(socket)
        return socket

    async def host(self, made: Quizzed, live: dict[str, Any], server: int = 0) -> LiveSocket:
        socket = await self.socket(server, {"token": self.token(made.owner)})
        ack = await socket.call("host", {"session_id": live["id"]})
        assert ack["ok"], ack
        return socket

    async def player(
        self,
        live: dict[str, Any],
        user: User | None,
        *,
        server: int = 0,
        nickname: str | None = None,
    ) -> Player:
        status, join = await self.request(
            "POST",
            "/api/v1/live/join",
            who=user,
            json={"code": live["code"], **({"nickname": nickname} if nickname else {})},
            server=server,
        )
        assert status == 200, join
        auth: dict[str, Any] = {"player_token": join["player_token"]}
        if user is not None:
            auth["token"] = self.token(user)
        socket = await self.socket(server, auth)
        ack = await socket.call("join")
        assert ack["ok"], ack
        return Player(user, join, socket)

    async def rows(self, model: Any, *where: Any) -> list[Any]:
        async with self.app[keys.DATABASE].sessions() as session:
            return list(await session.scalars(select(model).where(*where)))


def label_of(question: dict[str, Any], text: str) -> str:
    """The label players send for the option showing `text`."""
    for option in question["options"]:
        if option["text"] == text:
            return str(option["id"])
    raise AssertionError(f"no option {text!r} in {question}")


# --------------------------------------------------------------------------- fixtures
# A test module imports `world_fixture` (the fixture `world`) and may override the fixtures
# `live_settings` and `live_instances` (tests/conftest.py).


@pytest.fixture(name="world")
async def world_fixture(
    aiohttp_server: Any,
    tmp_path: Path,
    worker_id: str,
    pg_url: str,
    redis_url: str,
    redis: Redis,
    database: None,
    live_settings: dict[str, Any],
    live_instances: int,
) -> AsyncIterator[LiveWorld]:
    """App instances on the real PostgreSQL and Redis, with quick sweeps and dashboards."""
    settings = make_settings(
        tmp_path,
        worker_id,
        pg_url=pg_url,
        redis_url=redis_url,
        task_broker="memory",
        **{"live_sweep_interval": 0.05, "live_dashboard_interval": 0.1, **live_settings},
    )
    servers = [await aiohttp_server(create_app(settings)) for _ in range(live_instances)]
    async with aiohttp.ClientSession() as http:
        result = LiveWorld(servers, http)
        yield result
        for socket in result.sockets:
            await socket.disconnect()
