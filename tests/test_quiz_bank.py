"""The question bank over HTTP: every question type stored and read back, search and pages,
versions (an edit of a question an attempt shows makes a new version, the attempt keeps the
old one), archiving, import from GIFT, Aiken and CSV (all or nothing) and CSV export, and who
may do any of it. Attempts are written straight into the database (their endpoints belong to
the attempts module)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import pytest
from aiohttp import FormData, web
from pydantic import TypeAdapter
from sqlalchemy import event, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from lms_live import keys
from lms_live.auth.models import Role, User
from lms_live.core.db import utcnow
from lms_live.courses.models import Course, CourseInstructor, CourseStatus
from lms_live.enrollments.models import Enrollment
from lms_live.quizzes import formats
from lms_live.quizzes.models import (
    Attempt,
    AttemptQuestion,
    AttemptStatus,
    Question,
    QuestionTag,
    QuestionVersion,
    Quiz,
)
from lms_live.quizzes.spec import QuestionSpec
from tests.authkit import Api

Headers = dict[str, str]
API = "/api/v1"
SPEC: TypeAdapter[QuestionSpec] = TypeAdapter(QuestionSpec)

BODIES: dict[str, dict[str, Any]] = {
    "single_choice": {
        "type": "single_choice",
        "options": [
            {"id": "a", "text": "Paris", "correct": True, "feedback": "Right."},
            {"id": "b", "text": "Lyon", "feedback": "Second city."},
        ],
    },
    "multiple_choice": {
        "type": "multiple_choice",
        "options": [
            {"id": "a", "text": "2", "correct": True},
            {"id": "b", "text": "3", "correct": True},
            {"id": "c", "text": "4"},
        ],
        "scoring": "partial",
    },
    "true_false": {"type": "true_false", "answer": True, "feedback_false": "It is true."},
    "short_text": {
        "type": "short_text",
        "accepted": [{"text": "Paris"}, {"text": "paris france", "score": 0.5}],
        "case_sensitive": False,
    },
    "numeric": {
        "type": "numeric",
        "answers": [{"value": 3.14, "tolerance": 0.01}, {"value": 3, "score": 0.5}],
    },
    "ordering": {
        "type": "ordering",
        "items": [{"id": "a", "text": "one"}, {"id": "b", "text": "two"}],
    },
    "matching": {
        "type": "matching",
        "pairs": [
            {"id": "a", "prompt": "France", "answer": "Paris"},
            {"id": "b", "prompt": "Italy", "answer": "Rome"},
        ],
        "distractors": [{"id": "c", "text": "Berlin"}],
    },
    "essay": {"type": "essay", "guidance": "Mentions X.", "min_words": 10},
}


# --------------------------------------------------------------------------- helpers


async def teacher(api: Api, role: Role = Role.INSTRUCTOR) -> tuple[User, Headers]:
    """A signed-in user and its Authorization header."""
    user, headers, _ = await api.signed_in(role)
    return user, headers


async def make_course(api: Api, owner: User) -> Course:
    async with api.app[keys.DATABASE].transaction() as session:
        course = Course(
            slug=uuid.uuid4().hex,
            title="Geography",
            owner_id=owner.id,
            status=CourseStatus.PUBLISHED.value,
        )
        session.add(course)
    return course


async def call(
    api: Api, method: str, path: str, headers: Headers | None = None, body: Any = None
) -> tuple[int, Any]:
    """One JSON request; the status and the decoded body (None for 204)."""
    response = await api.client.request(method, path, headers=headers or {}, json=body)
    if response.status == 204:
        return 204, None
    return response.status, await response.json()


async def add_question(
    api: Api, headers: Headers, course_id: uuid.UUID | str, **fields: Any
) -> dict[str, Any]:
    """POST a question (a single choice one unless told); asserts 201."""
    fields.setdefault("title", f"Question {uuid.uuid4().hex[:6]}")
    fields.setdefault("prompt", "What is the capital of France?")
    fields.setdefault("body", BODIES["single_choice"])
    status, body = await call(api, "POST", f"{API}/courses/{course_id}/questions", headers, fields)
    assert status == 201, body
    result: dict[str, Any] = body
    return result


async def enroll(
    api: Api, user_id: uuid.UUID, course_id: uuid.UUID, *, status: str = "active"
) -> None:
    async with api.app[keys.DATABASE].transaction() as session:
        session.add(Enrollment(user_id=user_id, course_id=course_id, status=status))


async def make_attempt(
    api: Api,
    *,
    quiz_id: uuid.UUID,
    user_id: uuid.UUID,
    version_ids: list[uuid.UUID] | None = None,
    status: str = AttemptStatus.IN_PROGRESS.value,
    started_at: datetime | None = None,
    deadline: datetime | None = None,
) -> uuid.UUID:
    """An attempt row (and one attempt question per version), as the attempts module would."""
    started = started_at or utcnow()
    async with api.app[keys.DATABASE].transaction() as session:
        number = await session.scalar(
            select(func.count())
            .select_from(Attempt)
            .where(Attempt.quiz_id == quiz_id, Attempt.user_id == user_id)
        )
        attempt = Attempt(
            quiz_id=quiz_id,
            user_id=user_id,
            number=int(number or 0) + 1,
            status=status,
            started_at=started,
            deadline=deadline,
            submitted_at=None if status == AttemptStatus.IN_PROGRESS.value else started,
        )
        session.add(attempt)
        await session.flush()
        for position, version_id in enumerate(version_ids or []):
            session.add(
                AttemptQuestion(
                    attempt_id=attempt.id,
                    position=position,
                    question_version_id=version_id,
                    option_order=[],
                    points=1.0,
                )
            )
    return attempt.id


async def make_quiz_row(api: Api, course_id: uuid.UUID) -> uuid.UUID:
    async with api.app[keys.DATABASE].transaction() as session:
        quiz = Quiz(course_id=course_id, title="Quiz")
        session.add(quiz)
    return quiz.id


async def version_rows(api: Api, question_id: str) -> list[QuestionVersion]:
    async with api.app[keys.DATABASE].sessions() as session:
        return list(
            await session.scalars(
                select(QuestionVersion)
                .where(QuestionVersion.question_id == uuid.UUID(question_id))
                .order_by(QuestionVersion.version)
            )
        )


async def question_count(api: Api, course_id: uuid.UUID) -> int:
    async with api.app[keys.DATABASE].sessions() as session:
        count = await session.scalar(
            select(func.count()).select_from(Question).where(Question.course_id == course_id)
        )
        versions = await session.scalar(
            select(func.count())
            .select_from(QuestionVersion)
            .join(Question, Question.id == QuestionVersion.question_id)
            .where(Question.course_id == course_id)
        )
    assert versions == count
    return int(count or 0)


@contextmanager
def statements(app: web.Application) -> Iterator[list[str]]:
    """Every SQL statement the app sends meanwhile."""
    seen: list[str] = []
    bind = app[keys.DATABASE].sessions.kw.get("bind")
    target: Any = (
        bind.sync_connection
        if isinstance(bind, AsyncConnection)
        else app[keys.DATABASE].engine.sync_engine
    )

    def record(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if not statement.startswith(("SAVEPOINT", "RELEASE", "ROLLBACK TO")):
            seen.append(statement)

    event.listen(target, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(target, "before_cursor_execute", record)


# --------------------------------------------------------------------------- create


@pytest.mark.parametrize("kind", sorted(BODIES))
async def test_every_question_type_is_stored_as_version_1(api: Api, kind: str) -> None:
    owner, headers = await teacher(api)
    course = await make_course(api, owner)
    body = await add_question(
        api,
        headers,
        course.id,
        title=f"A {kind} question",
        prompt="Answer **this**.",
        points=2.5,
        general_feedback="See chapter 2.",
        image_file="images/q1.png",
        tags=["Europe", "capitals"],
        body=BODIES[kind],
    )
    expected = SPEC.validate_python(BODIES[kind]).model_dump(mode="json")
    assert body["course_id"] == str(course.id)
    assert body["title"] == f"A {kind} question"
    assert body["tags"] == ["capitals", "europe"]
    assert (body["archived"], body["current_version"]) == (False, 1)
    assert body["created_by"] == str(owner.id)
    version = body["version"]
    assert version["version"] == 1
    assert version["type"] == kind
    assert version["body"] == expected
    assert version["points"] == 2.5
    assert version["prompt"] == "Answer **this**."
    assert version["prompt_html"] == "<p>Answer <strong>this</strong>.</p>\n"
    assert version["general_feedback_html"] == "<p>See chapter 2.</p>\n"
    assert version["image_file"] == "images/q1.png"
    assert version["used"] is False
    assert [(v["version"], v["type"], v["used"]) for v in body["versions"]] == [(1, kind, False)]

    [row] = await version_rows(api, body["id"])
    assert (row.version, row.type, row.points, row.body) == (1, kind, 2.5, expected)
    async with api.app[keys.DATABASE].sessions() as session:
        tags = set(
            await session.scalars(
                select(QuestionTag.tag).where(QuestionTag.question_id == uuid.UUID(body["id"]))
            )
        )
    assert tags == {"capitals", "europe"}
    status, again = await call(api, "GET", f"{API}/questions/{body['id']}", headers)
    assert (status, again) == (200, body)


async def test_prompts_are_rendered_safely_and_defaults_apply(api: Api) -> None:
    owner, headers = await teacher(api)
    course = await make_course(api, owner)
    body = await add_question(
        api, headers, course.id, prompt="<script>alert(1)</script> [x](javascript:alert(1))"
    )
    html = body["version"]["prompt_html"]
    assert "<script>" not in html
    assert "&lt;script&gt;" in html
    assert "javascript:" not in html.replace("[x](javascript:alert(1))", "")
    assert 'href="javascript' not in html
    assert body["version"]["points"] == 1.0
    assert body["version"]["general_feedback"] == ""
    assert body["version"]["general_feedback_html"] == ""
    assert body["version"]["image_file"] is None
    assert body["tags"] == []


BAD_QUESTIONS: list[tuple[str, dict[str, Any]]] = [
    ("no body", {"body": None}),
    ("unknown type", {"body": {"type": "drawing"}}),
    (
        "two right options",
        {
            "body": {
                **BODIES["single_choice"],
                "options": [
                    {"id": "a", "text": "x", "correct": True},
                    {"id": "b", "text": "y", "correct": True},
                ],
            }
        },
    ),
    (
        "repeated option ids",
        {
            "body": {
                "type": "multiple_choice",
                "options": [{"id": "a", "text": "x", "correct": True}, {"id": "a", "text": "y"}],
            }
        },
    ),
    ("no full marks", {"body": {"type": "numeric", "answers": [{"value": 1, "score": 0.5}]}}),
    ("extra spec field", {"body": {**BODIES["true_false"], "hint": "x"}}),
    ("points zero", {"points": 0}),
    ("points negative", {"points": -1}),
    ("points too many", {"points": 1000.5}),
    ("points as text", {"points": "2"}),
    ("blank prompt", {"prompt": "   "}),
    ("prompt too long", {"prompt": "x" * 20_001}),
    ("empty title", {"title": "  "}),
    ("title with a newline", {"title": "a\nb"}),
    ("too many tags", {"tags": [f"t{n}" for n in range(21)]}),
    ("tag without letters", {"tags": ["!!!"]}),
    ("bad image key", {"image_file": "../etc/passwd"}),
    ("unknown field", {"difficulty": 3}),
    ("NUL in the prompt", {"prompt": "a\x00b"}),
    ("feedback too long", {"general_feedback": "x" * 10_001}),
]


@pytest.mark.parametrize(("case", "change"), BAD_QUESTIONS, ids=[c for c, _ in BAD_QUESTIONS])
async def test_bad_questions_are_refused_and_nothing_is_stored(
    api: Api, case: str, change: dict[str, Any]
) -> None:
    owner, headers = await teacher(api)
    course = await make_course(api, owner)
    fields: dict[str, Any] = {
        "title": "Q",
        "prompt": "Why?",
        "body": BODIES["single_choice"],
    } | change
    fields = {name: value for name, value in fields.items() if value is not None}
    status, body = await call(api, "POST", f"{API}/courses/{course.id}/questions", headers, fields)
    assert status == 422, (case, body)
    assert body["error"] == "validation_failed"
    assert body["details"]
    assert await question_count(api, course.id) == 0


async def test_questions_need_a_course(api: Api) -> None:
    _, headers = await teacher(api)
    path = f"{API}/courses/{uuid.uuid4()}/questions"
    question = {"title": "Q", "prompt": "P", "body": BODIES["true_false"]}
    assert (await call(api, "POST", path, headers, question))[1]["error"] == "course_not_found"
    status, body = await call(api, "POST", f"{API}/courses/nope/questions", headers, question)
    assert (status, body["error"]) == (422, "validation_failed")
    response = await api.client.post(
        f"{API}/courses/{uuid.uuid4()}/questions", data="{", headers=headers
    )
    assert response.status in (400, 415)


# --------------------------------------------------------------------------- list


async def test_the_bank_is_searched_filtered_and_paged(api: Api) -> None:
    owner, headers = await teacher(api)
    course = await make_course(api, owner)
    other = await make_course(api, owner)
    capital = await add_question(
        api, headers, course.id, title="Capital of France", tags=["europe"]
    )
    river = await add_question(
        api,
        headers,
        course.id,
        title="Longest river",
        prompt="Which river is the longest? 100% sure",
        tags=["rivers", "europe"],
        body=BODIES["short_text"],
    )
    essay = await add_question(api, headers, course.id, title="Essay", body=BODIES["essay"])
    await add_question(api, headers, other.id, title="Capital of Spain")
    await call(api, "DELETE", f"{API}/questions/{essay['id']}", headers)

    async def listed(query: str = "") -> tuple[list[str], int]:
        status, body = await call(
            api, "GET", f"{API}/courses/{course.id}/questions{query}", headers
        )
        assert status == 200, body
        return [item["title"] for item in body["items"]], body["total"]

    assert await listed() == (["Longest river", "Capital of France"], 2)
    assert await listed("?include_archived=true") == (
        ["Essay", "Longest river", "Capital of France"],
        3,
    )
    assert await listed("?tag=Rivers") == (["Longest river"], 1)
    assert await listed("?tag=europe") == (["Longest river", "Capital of France"], 2)
    assert await listed("?type=short_text") == (["Longest river"], 1)
    assert await listed("?type=essay&include_archived=true") == (["Essay"], 1)
    assert await listed("?q=CAPITAL") == (["Capital of France"], 1)
    assert await listed("?q=longest") == (["Longest river"], 1)  # the title...
    assert await listed("?q=river%20is") == (["Longest river"], 1)  # ...and the prompt
    assert await listed("?q=100%25") == (["Longest river"], 1)
    assert await listed("?q=%25") == (["Longest river"], 1)  # '%' is a character, not a wildcard
    assert await listed("?q=_") == ([], 0)
    assert await listed("?limit=1") == (["Longest river"], 2)
    assert await listed("?limit=1&offset=1") == (["Capital of France"], 2)

    status, body = await call(api, "GET", f"{API}/courses/{course.id}/questions", headers)
    item = next(i for i in body["items"] if i["id"] == river["id"])
    assert item == {
        "id": river["id"],
        "course_id": str(course.id),
        "title": "Longest river",
        "tags": ["europe", "rivers"],
        "archived": False,
        "current_version": 1,
        "type": "short_text",
        "points": 1.0,
        "prompt_excerpt": "Which river is the longest? 100% sure",
        "created_at": river["created_at"],
        "updated_at": river["updated_at"],
    }
    assert capital["id"] in {i["id"] for i in body["items"]}

    for bad in ("?type=drawing", "?limit=0", "?limit=101", "?offset=-1", "?tag=!!", "?q=a%01"):
        status, error = await call(api, "GET", f"{API}/courses/{course.id}/questions{bad}", headers)
        assert (status, error["error"]) == (422, "validation_failed"), bad


async def test_a_page_of_questions_costs_a_fixed_number_of_queries(api: Api) -> None:
    owner, headers = await teacher(api)
    course = await make_course(api, owner)
    path = f"{API}/courses/{course.id}/questions?limit=100"
    counts = []
    for total in (2, 12):
        while (await call(api, "GET", path, headers))[1]["total"] < total:
            await add_question(api, headers, course.id, tags=["a", "b"])
        with statements(api.app) as seen:
            status, body = await call(api, "GET", path, headers)
        assert (status, len(body["items"])) == (200, total)
        counts.append(len(seen))
    assert counts[0] == counts[1]


# --------------------------------------------------------------------------- versions


async def test_editing_an_unused_question_changes_version_1_in_place(api: Api) -> None:
    owner, headers = await teacher(api)
    course = await make_course(api, owner)
    created = await add_question(api, headers, course.id, tags=["a"])
    status, body = await call(
        api,
        "PATCH",
        f"{API}/questions/{created['id']}",
        headers,
        {
            "title": "Renamed",
            "prompt": "New prompt",
            "points": 3,
            "general_feedback": "New feedback",
            "image_file": "img/x.png",
            "tags": ["B", "c"],
            "body": BODIES["numeric"],
        },
    )
    assert status == 200, body
    assert (body["title"], body["tags"], body["current_version"]) == ("Renamed", ["b", "c"], 1)
    version = body["version"]
    assert (version["version"], version["type"], version["prompt"]) == (1, "numeric", "New prompt")
    assert (version["points"], version["general_feedback"]) == (3.0, "New feedback")
    assert version["image_file"] == "img/x.png"
    [row] = await version_rows(api, created["id"])
    assert (row.type, row.prompt, row.points) == ("numeric", "New prompt", 3.0)
    assert row.body == SPEC.validate_python(BODIES["numeric"]).model_dump(mode="json")

    # Null clears the feedback and the image.
    status, body = await call(
        api,
        "PATCH",
        f"{API}/questions/{created['id']}",
        headers,
        {"general_feedback": None, "image_file": None},
    )
    assert status == 200
    assert (body["version"]["general_feedback"], body["version"]["image_file"]) == ("", None)
    assert len(await version_rows(api, created["id"])) == 1


async def test_editing_a_used_question_makes_version_2_and_attempts_keep_version_1(
    api: Api,
) -> None:
    owner, headers = await teacher(api)
    course = await make_course(api, owner)
    student = await api.user(Role.STUDENT)
    created = await add_question(api, headers, course.id, prompt="Old prompt", points=1)
    [v1] = await version_rows(api, created["id"])
    quiz_id = await make_quiz_row(api, course.id)
    attempt_id = await make_attempt(api, quiz_id=quiz_id, user_id=student.id, version_ids=[v1.id])

    status, body = await call(api, "GET", f"{API}/questions/{created['id']}", headers)
    assert body["version"]["used"] is True

    # Title and tags never make a version.
    status, body = await call(
        api, "PATCH", f"{API}/questions/{created['id']}", headers, {"title": "T", "tags": ["x"]}
    )
    assert (status, body["current_version"], body["title"]) == (200, 1, "T")
    # Content equal to the current one changes nothing.
    status, body = await call(
        api, "PATCH", f"{API}/questions/{created['id']}", headers, {"prompt": "Old prompt"}
    )
    assert (status, body["current_version"]) == (200, 1)

    status, body = await call(
        api,
        "PATCH",
        f"{API}/questions/{created['id']}",
        headers,
        {"prompt": "New prompt", "body": BODIES["true_false"]},
    )
    assert status == 200, body
    assert body["current_version"] == 2
    assert body["version"]["version"] == 2
    assert body["version"]["prompt"] == "New prompt"
    assert body["version"]["type"] == "true_false"
    assert body["version"]["used"] is False
    assert body["version"]["points"] == 1.0  # carried over from version 1
    assert [(v["version"], v["type"], v["used"]) for v in body["versions"]] == [
        (1, "single_choice", True),
        (2, "true_false", False),
    ]

    rows = await version_rows(api, created["id"])
    assert [(r.version, r.prompt) for r in rows] == [(1, "Old prompt"), (2, "New prompt")]
    async with api.app[keys.DATABASE].sessions() as session:
        shown = await session.scalar(
            select(AttemptQuestion.question_version_id).where(
                AttemptQuestion.attempt_id == attempt_id
            )
        )
    assert shown == v1.id

    status, old = await call(api, "GET", f"{API}/questions/{created['id']}/versions/1", headers)
    assert status == 200
    assert (old["prompt"], old["type"], old["used"], old["current"]) == (
        "Old prompt",
        "single_choice",
        True,
        False,
    )
    assert old["question_id"] == created["id"]
    assert old["body"] == SPEC.validate_python(BODIES["single_choice"]).model_dump(mode="json")

    # Version 2 is not used yet: the next edit changes it in place.
    status, body = await call(
        api, "PATCH", f"{API}/questions/{created['id']}", headers, {"points": 5}
    )
    assert (status, body["current_version"], body["version"]["points"]) == (200, 2, 5.0)
    assert len(await version_rows(api, created["id"])) == 2

    # Once version 2 is shown too, an edit makes version 3.
    await make_attempt(api, quiz_id=quiz_id, user_id=student.id, version_ids=[rows[1].id])
    status, body = await call(
        api, "PATCH", f"{API}/questions/{created['id']}", headers, {"image_file": "a.png"}
    )
    assert (status, body["current_version"]) == (200, 3)
    status, current = await call(api, "GET", f"{API}/questions/{created['id']}/versions/3", headers)
    assert (current["current"], current["image_file"], current["points"]) == (True, "a.png", 5.0)


async def test_versions_that_do_not_exist_are_404(api: Api) -> None:
    owner, headers = await teacher(api)
    course = await make_course(api, owner)
    created = await add_question(api, headers, course.id)
    path = f"{API}/questions/{created['id']}/versions"
    assert (await call(api, "GET", f"{path}/2", headers))[1]["error"] == (
        "question_version_not_found"
    )
    for bad in ("0", "-1", "x", "99999999999"):
        status, body = await call(api, "GET", f"{path}/{bad}", headers)
        assert (status, body["error"]) == (422, "validation_failed"), bad
    status, body = await call(api, "GET", f"{API}/questions/{uuid.uuid4()}/versions/1", headers)
    assert (status, body["error"]) == (404, "question_not_found")
    for method in ("GET", "PATCH", "DELETE"):
        status, body = await call(
            api, method, f"{API}/questions/{uuid.uuid4()}", headers, {"title": "x"}
        )
        assert (status, body["error"]) == (404, "question_not_found"), method


BAD_PATCHES: list[tuple[str, Any]] = [
    ("nothing", {}),
    ("null title", {"title": None}),
    ("null prompt", {"prompt": None}),
    ("null body", {"body": None}),
    ("null tags", {"tags": None}),
    ("null points", {"points": None}),
    ("null archived", {"archived": None}),
    ("archived as text", {"archived": "yes"}),
    ("zero points", {"points": 0}),
    ("bad body", {"body": {"type": "true_false"}}),
    ("unknown field", {"version": 3}),
    ("not an object", ["title"]),
]


@pytest.mark.parametrize(("case", "patch"), BAD_PATCHES, ids=[c for c, _ in BAD_PATCHES])
async def test_bad_edits_are_refused_and_change_nothing(api: Api, case: str, patch: Any) -> None:
    owner, headers = await teacher(api)
    course = await make_course(api, owner)
    created = await add_question(api, headers, course.id)
    status, body = await call(api, "PATCH", f"{API}/questions/{created['id']}", headers, patch)
    assert (status, body["error"]) == (422, "validation_failed"), case
    status, after = await call(api, "GET", f"{API}/questions/{created['id']}", headers)
    assert after == created


# --------------------------------------------------------------------------- archive


async def test_questions_are_archived_and_restored(api: Api) -> None:
    owner, headers = await teacher(api)
    course = await make_course(api, owner)
    created = await add_question(api, headers, course.id)
    assert await call(api, "DELETE", f"{API}/questions/{created['id']}", headers) == (204, None)
    assert await call(api, "DELETE", f"{API}/questions/{created['id']}", headers) == (204, None)
    status, body = await call(api, "GET", f"{API}/questions/{created['id']}", headers)
    assert (status, body["archived"]) == (200, True)
    status, page = await call(api, "GET", f"{API}/courses/{course.id}/questions", headers)
    assert page["total"] == 0
    assert await question_count(api, course.id) == 1  # never deleted

    status, body = await call(
        api, "PATCH", f"{API}/questions/{created['id']}", headers, {"archived": False}
    )
    assert (status, body["archived"]) == (200, False)
    status, page = await call(api, "GET", f"{API}/courses/{course.id}/questions", headers)
    assert page["total"] == 1


async def test_a_question_a_published_quiz_needs_is_not_archived(api: Api) -> None:
    owner, headers = await teacher(api)
    course = await make_course(api, owner)
    first = await add_question(api, headers, course.id, tags=["algebra"])
    second = await add_question(api, headers, course.id, tags=["algebra"])
    fixed = await add_question(api, headers, course.id)
    status, quiz = await call(
        api, "POST", f"{API}/courses/{course.id}/quizzes", headers, {"title": "Q"}
    )
    slots = {"slots": [{"question_id": fixed["id"]}, {"pool_tag": "algebra", "pool_count": 2}]}
    assert (await call(api, "PUT", f"{API}/quizzes/{quiz['id']}/slots", headers, slots))[0] == 200
    assert (await call(api, "POST", f"{API}/quizzes/{quiz['id']}/publish", headers))[0] == 200

    for question in (first, fixed):
        status, body = await call(api, "DELETE", f"{API}/questions/{question['id']}", headers)
        assert (status, body["error"]) == (409, "question_needed_by_quiz"), body
        assert body["details"][0]["quiz_id"] == quiz["id"]
        status, body = await call(
            api, "PATCH", f"{API}/questions/{question['id']}", headers, {"archived": True}
        )
        assert (status, body["error"]) == (409, "question_needed_by_quiz")
    status, body = await call(
        api, "PATCH", f"{API}/questions/{second['id']}", headers, {"tags": ["geometry"]}
    )
    assert (status, body["error"]) == (409, "question_needed_by_quiz")
    status, body = await call(api, "GET", f"{API}/questions/{second['id']}", headers)
    assert (body["tags"], body["archived"]) == (["algebra"], False)

    # A third question in the pool leaves room to retire one.
    await add_question(api, headers, course.id, tags=["algebra"])
    assert (await call(api, "DELETE", f"{API}/questions/{first['id']}", headers))[0] == 204
    # Unpublished, the quiz no longer holds its questions back.
    assert (await call(api, "POST", f"{API}/quizzes/{quiz['id']}/unpublish", headers))[0] == 200
    assert (await call(api, "DELETE", f"{API}/questions/{fixed['id']}", headers))[0] == 204


# --------------------------------------------------------------------------- import / export

GIFT = """// A comment
$CATEGORY: $course$/top/Capitals

::France::What is the capital of France? {=Paris ~Lyon ~Marseille}

::Sky:: The sky is blue. {T}

// [tag:Numbers]
::Pi::What is pi? {#3.14:0.01}
"""

AIKEN = """What is 2 + 2?
A. 3
B. 4
ANSWER: B

Which is a fruit?
A) Carrot
B) Apple
C) Potato
ANSWER: B
"""

CSV = (
    "type,title,prompt,points,tags,options,answer,feedback\r\n"
    "single_choice,Capital,What is the capital of Italy?,2,europe;capitals,Rome|Milan,A,\r\n"
    'essay,Essay,"Describe\nyour town",5,,,,Be concrete.\r\n'
)


async def import_file(
    api: Api, headers: Headers, course_id: uuid.UUID, fmt: str, data: Any, **kwargs: Any
) -> tuple[int, Any]:
    response = await api.client.post(
        f"{API}/courses/{course_id}/questions/import?format={fmt}",
        data=data,
        headers=headers | kwargs.pop("extra_headers", {}),
        **kwargs,
    )
    return response.status, await response.json()


async def test_gift_aiken_and_csv_files_are_imported(api: Api) -> None:
    owner, headers = await teacher(api)
    course = await make_course(api, owner)
    text = {"Content-Type": "text/plain"}

    status, body = await import_file(api, headers, course.id, "gift", GIFT, extra_headers=text)
    assert status == 201, body
    assert body["imported"] == 3
    titles = []
    for question_id in body["question_ids"]:
        status, question = await call(api, "GET", f"{API}/questions/{question_id}", headers)
        titles.append((question["title"], question["version"]["type"], question["tags"]))
    assert titles == [
        ("France", "single_choice", ["capitals"]),
        ("Sky", "true_false", ["capitals"]),
        ("Pi", "numeric", ["capitals", "numbers"]),
    ]

    form = FormData()
    form.add_field("note", "ignored")
    form.add_field("file", AIKEN.encode(), filename="quiz.txt", content_type="text/plain")
    status, body = await import_file(api, headers, course.id, "aiken", form)
    assert (status, body["imported"]) == (201, 2), body

    status, body = await import_file(
        api,
        headers,
        course.id,
        "csv",
        CSV.encode("utf-8-sig"),
        extra_headers={"Content-Type": "text/csv"},
    )
    assert (status, body["imported"]) == (201, 2), body
    status, essay = await call(api, "GET", f"{API}/questions/{body['question_ids'][1]}", headers)
    assert (essay["title"], essay["version"]["points"]) == ("Essay", 5.0)
    assert essay["version"]["prompt"] == "Describe\nyour town"
    assert essay["version"]["general_feedback"] == "Be concrete."
    assert essay["created_by"] == str(owner.id)
    assert await question_count(api, course.id) == 7


BAD_FILES: list[tuple[str, str, bytes, int, str]] = [
    ("gift", "syntax", b"::A::Question {=a ~b\n", 422, "import_invalid"),
    ("gift", "second question bad", b"Q1 {T}\n\nQ2 {=a =b ~c} extra }\n", 422, "import_invalid"),
    ("aiken", "no answer", b"Q?\nA. x\nB. y\n", 422, "import_invalid"),
    ("csv", "unknown type", b"type,prompt\r\nfoo,Q\r\n", 422, "import_invalid"),
    (
        "csv",
        "zero points",
        b"type,prompt,points,answer\r\ntrue_false,Q,0,true\r\n",
        422,
        "import_invalid",
    ),
    ("csv", "empty", b"", 422, "import_invalid"),
    ("gift", "only comments", b"// nothing here\n", 422, "import_invalid"),
    ("gift", "not UTF-8", b"Q1 {T}\n\nQ\xe9 {F}\n", 422, "import_invalid"),
    ("pdf", "unknown format", b"Q {T}", 422, "validation_failed"),
]


@pytest.mark.parametrize(
    ("fmt", "case", "data", "status", "error"), BAD_FILES, ids=[c[1] for c in BAD_FILES]
)
async def test_bad_files_import_nothing(
    api: Api, fmt: str, case: str, data: bytes, status: int, error: str
) -> None:
    owner, headers = await teacher(api)
    course = await make_course(api, owner)
    got, body = await import_file(
        api, headers, course.id, fmt, data, extra_headers={"Content-Type": "text/plain"}
    )
    assert (got, body["error"]) == (status, error), body
    if error == "import_invalid":
        assert body["details"]
        assert set(body["details"][0]) == {"line", "reason"}
    assert await question_count(api, course.id) == 0


async def test_bad_file_reports_its_line(api: Api) -> None:
    owner, headers = await teacher(api)
    course = await make_course(api, owner)
    data = "Q1 {T}\n\nQ2 {F}\n\nQ3 {=a ~b\n"
    status, body = await import_file(
        api, headers, course.id, "gift", data, extra_headers={"Content-Type": "text/plain"}
    )
    assert status == 422
    assert body["details"][0]["line"] == 5
    status, body = await import_file(
        api,
        headers,
        course.id,
        "gift",
        b"Q1 {T}\n\nQ\xe9 {F}\n",
        extra_headers={"Content-Type": "text/plain"},
    )
    assert body["details"] == [{"line": 3, "reason": "not UTF-8 text"}]
    assert await question_count(api, course.id) == 0


async def test_uploads_are_checked(api: Api) -> None:
    owner, headers = await teacher(api)
    course = await make_course(api, owner)
    big = b"Q {T}\n\n" * (2 * 1024 * 1024 // 7 + 1)
    for content_type in ("text/plain", None):
        if content_type is None:
            form = FormData()
            form.add_field("file", big, filename="big.gift", content_type="text/plain")
            data: Any = form
            extra = {}
        else:
            data, extra = big, {"Content-Type": content_type}
        status, body = await import_file(api, headers, course.id, "gift", data, extra_headers=extra)
        assert (status, body["error"]) == (413, "payload_too_large")

    async def chunks() -> Any:
        for _ in range(40):
            yield b"Q {T}\n\n" * 10_000

    status, body = await import_file(  # chunked: no Content-Length to judge by
        api, headers, course.id, "gift", chunks(), extra_headers={"Content-Type": "text/plain"}
    )
    assert (status, body["error"]) == (413, "payload_too_large")

    status, body = await import_file(
        api, headers, course.id, "gift", b"{}", extra_headers={"Content-Type": "application/json"}
    )
    assert (status, body["error"]) == (415, "unsupported_media_type")
    form = FormData()
    form.add_field("other", b"Q {T}", filename="a.gift")
    status, body = await import_file(api, headers, course.id, "gift", form)
    assert (status, body["error"]) == (422, "file_missing")
    status, body = await import_file(
        api,
        headers,
        course.id,
        "gift",
        b"--x\r\nbroken",
        extra_headers={"Content-Type": "multipart/form-data; boundary=y"},
    )
    assert status in (400, 422), body
    assert await question_count(api, course.id) == 0


async def test_exported_csv_reads_back_the_same_questions(api: Api) -> None:
    owner, headers = await teacher(api)
    course = await make_course(api, owner)
    for kind, body in BODIES.items():
        await add_question(
            api,
            headers,
            course.id,
            title=f"T {kind}",
            prompt=f"Prompt of {kind}\nline 2",
            points=1.5,
            tags=["all", kind.replace("_", "-")],
            general_feedback="GF",
            body=body,
        )
    archived = await add_question(api, headers, course.id, title="Archived")
    await call(api, "DELETE", f"{API}/questions/{archived['id']}", headers)

    response = await api.client.get(
        f"{API}/courses/{course.id}/questions/export.csv", headers=headers
    )
    assert response.status == 200
    assert response.content_type == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    text = await response.text()
    parsed = formats.parse_csv(text)
    assert [q.title for q in parsed] == [f"T {kind}" for kind in BODIES]
    for question, (kind, body) in zip(parsed, BODIES.items(), strict=True):
        assert question.spec == SPEC.validate_python(body)
        assert (question.points, question.general_feedback) == (1.5, "GF")
        assert question.prompt == f"Prompt of {kind}\nline 2"
        assert question.tags == sorted(["all", kind.replace("_", "-")])

    # Imported into another course, the export gives the same file.
    other = await make_course(api, owner)
    status, body = await import_file(
        api, headers, other.id, "csv", text, extra_headers={"Content-Type": "text/csv"}
    )
    assert (status, body["imported"]) == (201, len(BODIES))
    again = await api.client.get(f"{API}/courses/{other.id}/questions/export.csv", headers=headers)
    assert await again.text() == text

    with_archived = await api.client.get(
        f"{API}/courses/{course.id}/questions/export.csv?include_archived=true", headers=headers
    )
    assert len(formats.parse_csv(await with_archived.text())) == len(BODIES) + 1
    one_tag = await api.client.get(
        f"{API}/courses/{course.id}/questions/export.csv?tag=essay", headers=headers
    )
    assert [q.title for q in formats.parse_csv(await one_tag.text())] == ["T essay"]


# --------------------------------------------------------------------------- authorization


async def test_only_the_course_instructors_and_admins_use_the_bank(api: Api) -> None:
    owner, owner_headers = await teacher(api)
    course = await make_course(api, owner)
    question = await add_question(api, owner_headers, course.id)
    co, co_headers = await teacher(api)
    async with api.app[keys.DATABASE].transaction() as session:
        session.add(CourseInstructor(course_id=course.id, user_id=co.id))
    _, other_headers = await teacher(api)
    _, admin_headers = await teacher(api, Role.ADMIN)
    student, student_headers = await teacher(api, Role.STUDENT)
    await enroll(api, student.id, course.id)  # taking the course opens none of its bank

    qid = question["id"]
    operations: list[tuple[str, str, Any, int]] = [
        ("GET", f"{API}/courses/{course.id}/questions", None, 200),
        (
            "POST",
            f"{API}/courses/{course.id}/questions",
            {"title": "N", "prompt": "P", "body": BODIES["essay"]},
            201,
        ),
        ("GET", f"{API}/questions/{qid}", None, 200),
        ("PATCH", f"{API}/questions/{qid}", {"title": "Renamed"}, 200),
        ("GET", f"{API}/questions/{qid}/versions/1", None, 200),
        ("DELETE", f"{API}/questions/{qid}", None, 204),
        ("GET", f"{API}/courses/{course.id}/questions/export.csv", None, 200),
    ]
    for method, path, body, ok in operations:
        for name, headers, expected in (
            ("anonymous", {}, (401, "unauthorized")),
            ("student", student_headers, (403, "forbidden")),
            ("other instructor", other_headers, (403, "forbidden")),
        ):
            response = await api.client.request(method, path, headers=headers, json=body)
            error = (await response.json())["error"]
            assert (response.status, error) == expected, (name, method, path)
        for name, headers in (("co-instructor", co_headers), ("admin", admin_headers)):
            response = await api.client.request(method, path, headers=headers, json=body)
            assert response.status == ok, (name, method, path, await response.text())
        response = await api.client.request(method, path, headers=owner_headers, json=body)
        assert response.status == ok, (method, path)

    import_path = f"{API}/courses/{course.id}/questions/import?format=gift"
    for headers, refused in (({}, 401), (student_headers, 403), (other_headers, 403)):
        response = await api.client.post(
            import_path, data="Q {T}", headers=headers | {"Content-Type": "text/plain"}
        )
        assert response.status == refused
    response = await api.client.post(
        import_path, data="Q {T}", headers=admin_headers | {"Content-Type": "text/plain"}
    )
    assert response.status == 201
