"""Authorization matrix of live sessions x the six callers of tests/test_authz_matrix.py.

The world is tests/test_authz_quiz.py's, plus a live session of its second quiz (single choice
only) hosted by the instructor. Sessions are for the course's instructors and admins: students
403 `forbidden` by role, the other instructor 403 `not_host` at object level. Joining is for
the course's learners (and its teachers, to try it out): anonymous callers 401
`authentication_required` (the session takes no guests), outsiders 403 `enrollment_required`.
Each row's `then` checks that a refused call changed nothing.

`tests/test_authz_matrix.py::test_matrix_covers_every_endpoint` counts these rows too.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from lms_live import keys
from lms_live.core.db import utcnow
from lms_live.core.security import Principal
from lms_live.live import service
from lms_live.live.models import LivePlayer, LiveSession
from lms_live.live.schemas import SessionOptions
from lms_live.quizzes.spec import QuestionType
from tests.authkit import Api
from tests.test_authz_matrix import ACTORS, Expected, signed_in
from tests.test_authz_quiz import QuizCall, QuizRow, QuizWorld, build_quiz_world, on, teaches

HOSTS = signed_in(
    403, "forbidden", instructor=(200, None), admin=(200, None), other_instructor=(403, "not_host")
)
JOINERS: dict[str, Expected] = {
    "anonymous": (401, "authentication_required"),
    "student": (200, None),
    "other_student": (403, "enrollment_required"),
    "instructor": (200, None),
    "other_instructor": (403, "enrollment_required"),
    "admin": (200, None),
}


async def build_live_world(api: Api) -> QuizWorld:
    w = await build_quiz_world(api)
    owner = w.id("instructor")
    principal = Principal(
        user_id=owner, role="instructor", jti="matrix", expires_at=utcnow() + timedelta(hours=1)
    )
    async with api.app[keys.DATABASE].transaction() as session:
        live = await service.create_session(
            session, principal=principal, quiz_id=w.id("second_quiz"), options=SessionOptions()
        )
        w.ids["live"] = live.id
    return w


async def sessions_created_by_teachers(w: QuizWorld, actor: str, body: Any) -> None:
    count = await w.count(LiveSession, LiveSession.quiz_id == w.id("second_quiz"))
    assert count == 1 + (1 if teaches(actor) else 0)
    if teaches(actor):
        assert body["question_count"] == 1
        assert body["join_url"].endswith(body["code"])


async def lists_the_session(w: QuizWorld, actor: str, body: Any) -> None:
    if teaches(actor):
        assert [item["id"] for item in body["items"]] == [str(w.id("live"))]


async def shows_the_session(w: QuizWorld, actor: str, body: Any) -> None:
    if teaches(actor):
        assert body["id"] == str(w.id("live"))
        assert body["phase"] == "lobby"


async def draws_the_qr_code(w: QuizWorld, actor: str, body: Any) -> None:
    if teaches(actor):
        assert body.startswith("<svg")


async def shows_results(w: QuizWorld, actor: str, body: Any) -> None:
    if teaches(actor):
        assert body["questions"][0]["type"] == QuestionType.SINGLE_CHOICE.value


async def exports_results(w: QuizWorld, actor: str, body: Any) -> None:
    if teaches(actor):
        assert body.startswith("rank,nickname,email")


async def join_by_code(w: QuizWorld, actor: str) -> QuizCall:
    code = await w.scalar(select(LiveSession.code).where(LiveSession.id == w.id("live")))
    return QuizCall(json={"code": code})


async def players_joined(w: QuizWorld, actor: str, body: Any) -> None:
    players = await w.count(LivePlayer, LivePlayer.session_id == w.id("live"))
    assert players == (1 if JOINERS[actor][0] == 200 else 0)
    if JOINERS[actor][0] == 200:
        assert body["session_id"] == str(w.id("live"))
        assert body["player_token"]


SESSIONS = "/api/v1/live-sessions/{session_id}"
ROWS: list[QuizRow] = [
    QuizRow(
        "POST",
        "/api/v1/quizzes/{quiz_id}/live-sessions",
        signed_in(
            403,
            "forbidden",
            instructor=(201, None),
            admin=(201, None),
        ),
        on({}, quiz_id="second_quiz"),
        sessions_created_by_teachers,
    ),
    QuizRow(
        "POST",
        "/api/v1/quizzes/{quiz_id}/live-sessions",
        signed_in(
            403,
            "forbidden",
            instructor=(422, "quiz_not_playable"),
            admin=(422, "quiz_not_playable"),
        ),
        on({}, quiz_id="quiz"),
        variant="an essay cannot be played live",
    ),
    QuizRow(
        "GET",
        "/api/v1/quizzes/{quiz_id}/live-sessions",
        signed_in(403, "forbidden", instructor=(200, None), admin=(200, None)),
        on(quiz_id="second_quiz"),
        lists_the_session,
    ),
    QuizRow("GET", SESSIONS, HOSTS, on(session_id="live"), shows_the_session),
    QuizRow("GET", SESSIONS + "/qr.svg", HOSTS, on(session_id="live"), draws_the_qr_code),
    QuizRow("GET", SESSIONS + "/results", HOSTS, on(session_id="live"), shows_results),
    QuizRow("GET", SESSIONS + "/results.csv", HOSTS, on(session_id="live"), exports_results),
    QuizRow("POST", "/api/v1/live/join", JOINERS, join_by_code, players_joined),
]

CELLS = [pytest.param(actor, row, id=row.id_for(actor)) for row in ROWS for actor in ACTORS]


@pytest.mark.parametrize(("actor", "row"), CELLS)
async def test_live_authorization(api: Api, actor: str, row: QuizRow) -> None:
    w = await build_live_world(api)
    call = await row.build(w, actor)
    kwargs: dict[str, Any] = {"headers": w.headers(actor)}
    if call.json is not None:
        kwargs["json"] = call.json
    response = await api.client.request(row.method, row.path.format(**call.path), **kwargs)
    body: Any = None
    if response.content_type == "application/json":
        body = await response.json()
    else:
        body = await response.text()
    code = body.get("error") if response.status >= 400 and isinstance(body, dict) else None
    assert (response.status, code) == row.expect[actor], body
    if row.then is not None:
        await row.then(w, actor, body)
