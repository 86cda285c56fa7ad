"""Authorization matrix of the quiz engine: question bank, quiz authoring, accommodations,
attempts (learners) and their grading (instructors) x the six callers of
tests/test_authz_matrix.py.

The world of every cell: the instructor owns a published course the student is enrolled in.
Its bank holds a single-choice question, an essay and a spare question. The published quiz
shows the first two (fixed slots); the student has an accommodation on it and one submitted
attempt (the choice right, the essay waiting for a grade). A second published quiz (the
single choice) has the student's attempt in progress; a draft quiz (the spare question) is
ready to publish. The quizzes and questions are ORM rows; the attempts are made by the
attempts service itself, so they are what a learner would leave behind.

Authoring and grading are for instructors and admins by role (students 403 `forbidden`), then
for the course's own instructors (the other instructor 403 `forbidden`, object level). A
learner's attempt is private: anyone else but the course's teachers gets 404
`attempt_not_found`. Each row's `then` checks that a refused call changed nothing and that an
allowed one did what it says.

`tests/test_authz_matrix.py::test_matrix_covers_every_endpoint` counts these rows too.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from lms_live import keys
from lms_live.core.db import utcnow
from lms_live.core.security import Principal
from lms_live.courses.models import Course, CourseStatus
from lms_live.enrollments.models import Enrollment, EnrollmentStatus
from lms_live.quizzes import attempts
from lms_live.quizzes.models import (
    Accommodation,
    Answer,
    Attempt,
    AttemptQuestion,
    AttemptStatus,
    Question,
    Quiz,
    QuizSlot,
)
from tests.authkit import Api
from tests.test_authz_learning import learners_only, teachers_only
from tests.test_authz_matrix import (
    ACTORS,
    Expected,
    Row,
    World,
    build_world,
    send,
    signed_in,
)
from tests.test_quiz_attempts import ESSAY, SINGLE, TRUE_FALSE, add_question

TEACHERS = ("instructor", "admin")  # who may act on the instructor's course
ESSAY_TEXT = "Paris has been the capital since the Capetians made it their seat."
ACCOMMODATION_SECONDS = 30
NOT_PUBLISHED: Expected = (409, "quiz_not_published")


@dataclass
class QuizWorld:
    """The actors (tests/test_authz_matrix.py) and the ids of the quiz objects by name:
    course, single, essay, spare (questions), quiz, second_quiz, draft_quiz, submitted (the
    student's attempt on quiz), running (their attempt in progress on second_quiz)."""

    world: World
    ids: dict[str, uuid.UUID]

    @property
    def api(self) -> Api:
        return self.world.api

    def headers(self, actor: str) -> dict[str, str]:
        return dict(self.world.headers(actor))

    def id(self, name: str) -> uuid.UUID:
        """An object of the world, or an actor's user id."""
        if name in self.ids:
            return self.ids[name]
        return self.world.members[name].user.id

    def value(self, ref: str) -> str:
        """A path or query value: the id of a named object or actor, else `ref` itself."""
        if ref in self.ids or ref in self.world.members:
            return str(self.id(ref))
        return ref

    async def scalar(self, statement: Any) -> Any:
        async with self.api.app[keys.DATABASE].sessions() as session:
            return await session.scalar(statement)

    async def count(self, model: Any, *where: Any) -> int:
        found = await self.scalar(select(func.count()).select_from(model).where(*where))
        return int(found or 0)


async def build_quiz_world(api: Api) -> QuizWorld:
    world = await build_world(api)
    student = world.members["student"].user.id
    now = utcnow()
    async with api.app[keys.DATABASE].transaction() as session:
        course = Course(
            slug="quiz-course",
            title="Quiz course",
            summary="Quizzes inside",
            owner_id=world.members["instructor"].user.id,
            status=CourseStatus.PUBLISHED.value,
            published_at=now,
            enrollment_count=1,
        )
        session.add(course)
        await session.flush()
        session.add(
            Enrollment(user_id=student, course_id=course.id, status=EnrollmentStatus.ACTIVE.value)
        )
        single = await add_question(session, course.id, "Capital of France?", SINGLE, 1.0)
        essay = await add_question(session, course.id, "Why Paris?", ESSAY, 2.0)
        spare = await add_question(session, course.id, "The sky is blue.", TRUE_FALSE, 1.0)
        quiz = Quiz(course_id=course.id, title="Checkpoint", published=True)
        second = Quiz(course_id=course.id, title="Second checkpoint", published=True)
        draft = Quiz(course_id=course.id, title="Draft quiz")
        session.add_all([quiz, second, draft])
        await session.flush()
        session.add_all(
            [
                QuizSlot(quiz_id=quiz.id, position=0, question_id=single.id),
                QuizSlot(quiz_id=quiz.id, position=1, question_id=essay.id),
                QuizSlot(quiz_id=second.id, position=0, question_id=single.id),
                QuizSlot(quiz_id=draft.id, position=0, question_id=spare.id),
                Accommodation(
                    quiz_id=quiz.id, user_id=student, extra_seconds=ACCOMMODATION_SECONDS
                ),
            ]
        )
        await session.flush()
        # The student's attempts, left by the service as a learner's requests would.
        principal = Principal(
            user_id=student, role="student", jti="matrix", expires_at=now + timedelta(hours=1)
        )
        first = await attempts.start_attempt(session, principal=principal, quiz_id=quiz.id, now=now)
        submitted = first.attempt.id
        for position, response in ((0, {"choice": "1"}), (1, {"text": ESSAY_TEXT})):
            await attempts.save_answer(
                session,
                principal=principal,
                attempt_id=submitted,
                position=position,
                response=response,
                revision=1,
                now=now,
            )
        graded = await attempts.submit_attempt(
            session, principal=principal, attempt_id=submitted, now=now
        )
        assert graded.attempt.needs_grading is True
        running = await attempts.start_attempt(
            session, principal=principal, quiz_id=second.id, now=now
        )
        ids = {
            "course": course.id,
            "single": single.id,
            "essay": essay.id,
            "spare": spare.id,
            "quiz": quiz.id,
            "second_quiz": second.id,
            "draft_quiz": draft.id,
            "submitted": submitted,
            "running": running.attempt.id,
        }
    return QuizWorld(world, ids)


# --------------------------------------------------------------------------- rows


@dataclass(frozen=True)
class QuizCall:
    """What to send: path values, a JSON body, query parameters or a text/plain body."""

    path: dict[str, str] = field(default_factory=dict)
    json: Any = None
    query: dict[str, str] | None = None
    text: str | None = None


QuizBuild = Callable[[QuizWorld, str], Awaitable[QuizCall]]
QuizCheck = Callable[[QuizWorld, str, Any], Awaitable[None]]


@dataclass(frozen=True)
class QuizRow:
    method: str
    path: str  # as declared in the route table
    expect: Mapping[str, Expected]
    build: QuizBuild
    then: QuizCheck | None = None
    variant: str = ""

    def id_for(self, actor: str) -> str:
        suffix = f" ({self.variant})" if self.variant else ""
        return f"{actor}-{self.method} {self.path}{suffix}"

    def as_row(self) -> Row:
        """The shape the coverage check of tests/test_authz_matrix.py reads."""
        return Row(self.method, self.path, self.expect, send(), variant=self.variant)


def on(
    json: Any = None,
    *,
    query: dict[str, str] | None = None,
    text: str | None = None,
    **path: str,
) -> QuizBuild:
    """Path values named after the world's objects or actors (on(quiz_id="quiz")), or given
    as they are (position="0")."""

    async def build(w: QuizWorld, actor: str) -> QuizCall:
        values = {name: w.value(ref) for name, ref in path.items()}
        return QuizCall(path=values, json=json, query=query, text=text)

    return build


def teaches(actor: str) -> bool:
    return actor in TEACHERS


# ---- builders that need ids in the body or query


async def reversed_slots(w: QuizWorld, actor: str) -> QuizCall:
    body = {"slots": [{"question_id": str(w.id("essay"))}, {"question_id": str(w.id("single"))}]}
    return QuizCall(path={"quiz_id": str(w.id("quiz"))}, json=body)


async def group_accommodation(w: QuizWorld, actor: str) -> QuizCall:
    body = {"user_ids": [str(w.id("student"))], "extra_seconds": 60}
    return QuizCall(path={"quiz_id": str(w.id("quiz"))}, json=body)


async def reset_students_attempts(w: QuizWorld, actor: str) -> QuizCall:
    return QuizCall(path={"quiz_id": str(w.id("quiz"))}, query={"user_id": str(w.id("student"))})


async def regrade_tampered_score(w: QuizWorld, actor: str) -> QuizCall:
    """The submitted attempt's stored score spoiled first: a regrade puts it right."""
    async with w.api.app[keys.DATABASE].transaction() as session:
        attempt = await session.get(Attempt, w.id("submitted"))
        assert attempt is not None
        attempt.score, attempt.percent = 0.0, 0.0
    return QuizCall(path={"quiz_id": str(w.id("quiz"))}, json={"to_current_version": False})


# ---- checks: what must hold after the request


async def course_questions(w: QuizWorld) -> int:
    return await w.count(Question, Question.course_id == w.id("course"))


def questions_added_by_teachers(added: int) -> QuizCheck:
    async def check(w: QuizWorld, actor: str, body: Any) -> None:
        assert await course_questions(w) == 3 + (added if teaches(actor) else 0)

    return check


async def lists_the_bank(w: QuizWorld, actor: str, body: Any) -> None:
    if teaches(actor):
        assert body["total"] == 3
        assert {item["id"] for item in body["items"]} == {
            str(w.id(name)) for name in ("single", "essay", "spare")
        }


async def exports_the_bank(w: QuizWorld, actor: str, body: Any) -> None:
    if teaches(actor):
        assert "Capital of France?" in body
        assert "Why Paris?" in body


async def shows_the_question_with_answers(w: QuizWorld, actor: str, body: Any) -> None:
    if teaches(actor):
        assert body["id"] == str(w.id("single"))
        assert body["version"]["body"]["options"][0]["correct"] is True


async def shows_version_one(w: QuizWorld, actor: str, body: Any) -> None:
    if teaches(actor):
        assert (body["question_id"], body["version"]) == (str(w.id("single")), 1)
        # The submitted attempt shows it: it will never change again.
        assert (body["current"], body["used"]) == (True, True)


async def question_title(w: QuizWorld) -> str:
    return str(await w.scalar(select(Question.title).where(Question.id == w.id("single"))))


async def renamed_question_by_teachers(w: QuizWorld, actor: str, body: Any) -> None:
    expected = "Renamed question" if teaches(actor) else "Capital of France?"
    assert await question_title(w) == expected


async def spare_archived_by_teachers(w: QuizWorld, actor: str, body: Any) -> None:
    archived = await w.scalar(select(Question.archived).where(Question.id == w.id("spare")))
    assert archived is teaches(actor)


async def course_quizzes(w: QuizWorld) -> int:
    return await w.count(Quiz, Quiz.course_id == w.id("course"))


async def quiz_added_by_teachers(w: QuizWorld, actor: str, body: Any) -> None:
    assert await course_quizzes(w) == 3 + (1 if teaches(actor) else 0)


async def lists_the_quizzes(w: QuizWorld, actor: str, body: Any) -> None:
    if teaches(actor):
        assert body["total"] == 3


async def shows_the_quiz(w: QuizWorld, actor: str, body: Any) -> None:
    if teaches(actor):
        assert body["id"] == str(w.id("quiz"))
        assert body["attempt_count"] == 1


async def renamed_quiz_by_teachers(w: QuizWorld, actor: str, body: Any) -> None:
    title = await w.scalar(select(Quiz.title).where(Quiz.id == w.id("quiz")))
    assert title == ("Renamed quiz" if teaches(actor) else "Checkpoint")


async def draft_deleted_by_teachers(w: QuizWorld, actor: str, body: Any) -> None:
    assert await w.count(Quiz, Quiz.id == w.id("draft_quiz")) == (0 if teaches(actor) else 1)


def published_after(quiz: str, by_teachers: bool) -> QuizCheck:
    """The quiz's `published` flag: `by_teachers` after a teacher's call, else as it was."""

    async def check(w: QuizWorld, actor: str, body: Any) -> None:
        published = await w.scalar(select(Quiz.published).where(Quiz.id == w.id(quiz)))
        assert published is (by_teachers if teaches(actor) else not by_teachers)

    return check


async def slot_questions(w: QuizWorld) -> list[uuid.UUID | None]:
    async with w.api.app[keys.DATABASE].sessions() as session:
        return list(
            await session.scalars(
                select(QuizSlot.question_id)
                .where(QuizSlot.quiz_id == w.id("quiz"))
                .order_by(QuizSlot.position)
            )
        )


async def shows_the_slots(w: QuizWorld, actor: str, body: Any) -> None:
    if teaches(actor):
        assert [slot["question"]["id"] for slot in body["slots"]] == [
            str(w.id("single")),
            str(w.id("essay")),
        ]


async def slots_reversed_by_teachers(w: QuizWorld, actor: str, body: Any) -> None:
    order = ["essay", "single"] if teaches(actor) else ["single", "essay"]
    assert await slot_questions(w) == [w.id(name) for name in order]


async def lists_the_accommodation(w: QuizWorld, actor: str, body: Any) -> None:
    if teaches(actor):
        assert [item["user_id"] for item in body["items"]] == [str(w.id("student"))]


def students_extra_seconds(by_teachers: int | None) -> QuizCheck:
    """The student's accommodation afterwards (None: gone); untouched unless a teacher called."""

    async def check(w: QuizWorld, actor: str, body: Any) -> None:
        found = await w.scalar(
            select(Accommodation.extra_seconds).where(
                Accommodation.quiz_id == w.id("quiz"), Accommodation.user_id == w.id("student")
            )
        )
        assert found == (by_teachers if teaches(actor) else ACCOMMODATION_SECONDS)
        assert await w.count(Accommodation) == (0 if found is None else 1)

    return check


async def attempts_of(w: QuizWorld, quiz: str, user: str) -> int:
    return await w.count(Attempt, Attempt.quiz_id == w.id(quiz), Attempt.user_id == w.id(user))


def attempts_on(quiz: str, *, students: int) -> QuizCheck:
    """Attempts on `quiz` afterwards: the student's (`students` when they called, else what
    the world holds), and none of anyone else, whoever called."""
    held = {"quiz": 1, "second_quiz": 1, "draft_quiz": 0}[quiz]

    async def check(w: QuizWorld, actor: str, body: Any) -> None:
        others = await w.count(
            Attempt, Attempt.quiz_id == w.id(quiz), Attempt.user_id != w.id("student")
        )
        assert others == 0
        assert await attempts_of(w, quiz, "student") == (students if actor == "student" else held)

    return check


async def reads_the_attempt(w: QuizWorld, actor: str, body: Any) -> None:
    if actor == "student" or teaches(actor):
        assert body["id"] == str(w.id("submitted"))
        assert body["user_id"] == str(w.id("student"))
        # The course's teachers review it in full; the learner by the review policy.
        assert body["review"]["right_answers"] is teaches(actor)
        assert body["questions"][1]["response"] == {"text": ESSAY_TEXT}


async def reads_the_attempt_in_progress(w: QuizWorld, actor: str, body: Any) -> None:
    if actor == "student" or teaches(actor):
        assert body["id"] == str(w.id("running"))
        assert body["status"] == AttemptStatus.IN_PROGRESS.value
        # Nothing derived from the right answers while it is open, for anyone.
        for question in body["questions"]:
            assert question["right_answer"] is None
            assert question["state"] is None
            assert question["score"] is None


async def saved_by_student_only(w: QuizWorld, actor: str, body: Any) -> None:
    saved = await w.count(
        Answer,
        Answer.attempt_question_id.in_(
            select(AttemptQuestion.id).where(AttemptQuestion.attempt_id == w.id("running"))
        ),
    )
    assert saved == (1 if actor == "student" else 0)


async def submitted_by_student_only(w: QuizWorld, actor: str, body: Any) -> None:
    status = await w.scalar(select(Attempt.status).where(Attempt.id == w.id("running")))
    expected = AttemptStatus.SUBMITTED if actor == "student" else AttemptStatus.IN_PROGRESS
    assert status == expected.value


async def my_own_result_only(w: QuizWorld, actor: str, body: Any) -> None:
    """The student's own attempts (others are refused: not learners of the course)."""
    if actor != "student":
        return
    ids = [item["id"] for item in body["attempts"]]
    assert ids == ([str(w.id("submitted"))] if actor == "student" else [])


async def lists_the_students_attempt(w: QuizWorld, actor: str, body: Any) -> None:
    if teaches(actor):
        assert [item["id"] for item in body["items"]] == [str(w.id("submitted"))]
        assert body["items"][0]["user"]["id"] == str(w.id("student"))


async def essay_graded_by_teachers(w: QuizWorld, actor: str, body: Any) -> None:
    async with w.api.app[keys.DATABASE].sessions() as session:
        answer = await session.scalar(
            select(Answer)
            .join(AttemptQuestion, AttemptQuestion.id == Answer.attempt_question_id)
            .where(AttemptQuestion.attempt_id == w.id("submitted"), AttemptQuestion.position == 1)
        )
        attempt = await session.get(Attempt, w.id("submitted"))
    assert answer is not None
    assert attempt is not None
    if teaches(actor):
        assert (answer.score, answer.graded_by) == (1.5, w.id(actor))
        assert (attempt.score, attempt.needs_grading) == (2.5, False)
    else:
        assert (answer.graded_by, answer.feedback) == (None, "")
        assert (attempt.score, attempt.needs_grading) == (1.0, True)


async def overridden_by_teachers(w: QuizWorld, actor: str, body: Any) -> None:
    found = await w.scalar(select(Attempt.override_score).where(Attempt.id == w.id("submitted")))
    assert found == (3.0 if teaches(actor) else None)


async def reset_by_teachers(w: QuizWorld, actor: str, body: Any) -> None:
    assert await attempts_of(w, "quiz", "student") == (0 if teaches(actor) else 1)
    if teaches(actor):
        assert body == {"deleted": 1}


async def regraded_by_teachers(w: QuizWorld, actor: str, body: Any) -> None:
    score = await w.scalar(select(Attempt.score).where(Attempt.id == w.id("submitted")))
    assert score == (1.0 if teaches(actor) else 0.0)
    if teaches(actor):
        assert body == {"attempts": 1, "changed": 1}


# --------------------------------------------------------------------------- the matrix

ESSAY_QUESTION = {"title": "New essay", "prompt": "Discuss.", "body": {"type": "essay"}}
GIFT = "::Sky:: The sky is blue. {T}\n"

BANK_ROWS: list[QuizRow] = [
    QuizRow(
        "POST",
        "/api/v1/courses/{course_id}/questions",
        teachers_only(201),
        on(ESSAY_QUESTION, course_id="course"),
        questions_added_by_teachers(1),
    ),
    QuizRow(
        "GET",
        "/api/v1/courses/{course_id}/questions",
        teachers_only(200),
        on(course_id="course"),
        lists_the_bank,
    ),
    # The bank's right answers leave the server only here: never for learners.
    QuizRow(
        "GET",
        "/api/v1/questions/{question_id}",
        teachers_only(200),
        on(question_id="single"),
        shows_the_question_with_answers,
    ),
    QuizRow(
        "PATCH",
        "/api/v1/questions/{question_id}",
        teachers_only(200),
        on({"title": "Renamed question"}, question_id="single"),
        renamed_question_by_teachers,
    ),
    # The spare question (no published quiz needs it) is archived.
    QuizRow(
        "DELETE",
        "/api/v1/questions/{question_id}",
        teachers_only(204),
        on(question_id="spare"),
        spare_archived_by_teachers,
    ),
    QuizRow(
        "GET",
        "/api/v1/questions/{question_id}/versions/{version}",
        teachers_only(200),
        on(question_id="single", version="1"),
        shows_version_one,
    ),
    QuizRow(
        "POST",
        "/api/v1/courses/{course_id}/questions/import",
        teachers_only(201),
        on(query={"format": "gift"}, text=GIFT, course_id="course"),
        questions_added_by_teachers(1),
    ),
    QuizRow(
        "GET",
        "/api/v1/courses/{course_id}/questions/export.csv",
        teachers_only(200),
        on(course_id="course"),
        exports_the_bank,
    ),
]

QUIZ_ROWS: list[QuizRow] = [
    QuizRow(
        "POST",
        "/api/v1/courses/{course_id}/quizzes",
        teachers_only(201),
        on({"title": "New quiz"}, course_id="course"),
        quiz_added_by_teachers,
    ),
    QuizRow(
        "GET",
        "/api/v1/courses/{course_id}/quizzes",
        teachers_only(200),
        on(course_id="course"),
        lists_the_quizzes,
    ),
    QuizRow(
        "GET", "/api/v1/quizzes/{quiz_id}", teachers_only(200), on(quiz_id="quiz"), shows_the_quiz
    ),
    QuizRow(
        "PATCH",
        "/api/v1/quizzes/{quiz_id}",
        teachers_only(200),
        on({"title": "Renamed quiz"}, quiz_id="quiz"),
        renamed_quiz_by_teachers,
    ),
    # The draft: nobody attempted it and no lesson shows it, so it may go.
    QuizRow(
        "DELETE",
        "/api/v1/quizzes/{quiz_id}",
        teachers_only(204),
        on(quiz_id="draft_quiz"),
        draft_deleted_by_teachers,
    ),
    QuizRow(
        "POST",
        "/api/v1/quizzes/{quiz_id}/publish",
        teachers_only(200),
        on(quiz_id="draft_quiz"),
        published_after("draft_quiz", by_teachers=True),
    ),
    QuizRow(
        "POST",
        "/api/v1/quizzes/{quiz_id}/unpublish",
        teachers_only(200),
        on(quiz_id="quiz"),
        published_after("quiz", by_teachers=False),
    ),
    QuizRow(
        "GET",
        "/api/v1/quizzes/{quiz_id}/slots",
        teachers_only(200),
        on(quiz_id="quiz"),
        shows_the_slots,
    ),
    QuizRow(
        "PUT",
        "/api/v1/quizzes/{quiz_id}/slots",
        teachers_only(200),
        reversed_slots,
        slots_reversed_by_teachers,
    ),
    # ---- accommodations: the enrolled student's, on the published quiz.
    QuizRow(
        "GET",
        "/api/v1/quizzes/{quiz_id}/accommodations",
        teachers_only(200),
        on(quiz_id="quiz"),
        lists_the_accommodation,
    ),
    QuizRow(
        "PUT",
        "/api/v1/quizzes/{quiz_id}/accommodations",
        teachers_only(200),
        group_accommodation,
        students_extra_seconds(60),
    ),
    QuizRow(
        "PUT",
        "/api/v1/quizzes/{quiz_id}/accommodations/{user_id}",
        teachers_only(200),
        on({"extra_seconds": 120}, quiz_id="quiz", user_id="student"),
        students_extra_seconds(120),
    ),
    QuizRow(
        "DELETE",
        "/api/v1/quizzes/{quiz_id}/accommodations/{user_id}",
        teachers_only(204),
        on(quiz_id="quiz", user_id="student"),
        students_extra_seconds(None),
    ),
]

DRAFT = signed_in(404, "quiz_not_found", instructor=NOT_PUBLISHED, admin=NOT_PUBLISHED)
ATTEMPT_READERS = signed_in(
    404, "attempt_not_found", student=(200, None), instructor=(200, None), admin=(200, None)
)

LEARNER_ROWS: list[QuizRow] = [
    # Only the enrolled learner starts one; teachers of the course are no learners of it.
    QuizRow(
        "POST",
        "/api/v1/quizzes/{quiz_id}/attempts",
        learners_only(201, (403, "enrollment_required")),
        on(quiz_id="quiz"),
        attempts_on("quiz", students=2),
    ),
    QuizRow(
        "POST",
        "/api/v1/quizzes/{quiz_id}/attempts",
        learners_only(200, (403, "enrollment_required")),
        on(quiz_id="second_quiz"),
        attempts_on("second_quiz", students=1),
        variant="resume",
    ),
    # A draft does not exist for learners; its own teachers are told it is unpublished.
    QuizRow(
        "POST",
        "/api/v1/quizzes/{quiz_id}/attempts",
        DRAFT,
        on(quiz_id="draft_quiz"),
        attempts_on("draft_quiz", students=0),
        variant="draft quiz",
    ),
    # A submitted attempt: its learner by the review policy, the course's teachers in full.
    QuizRow(
        "GET",
        "/api/v1/attempts/{attempt_id}",
        ATTEMPT_READERS,
        on(attempt_id="submitted"),
        reads_the_attempt,
    ),
    QuizRow(
        "GET",
        "/api/v1/attempts/{attempt_id}",
        ATTEMPT_READERS,
        on(attempt_id="running"),
        reads_the_attempt_in_progress,
        variant="in progress",
    ),
    # Saving and submitting: the learner's own attempt only (404 for anyone else, teachers
    # included: nobody answers for a learner).
    QuizRow(
        "PUT",
        "/api/v1/attempts/{attempt_id}/answers/{position}",
        learners_only(200, (404, "attempt_not_found")),
        on({"response": {"choice": "1"}, "revision": 1}, attempt_id="running", position="0"),
        saved_by_student_only,
    ),
    QuizRow(
        "POST",
        "/api/v1/attempts/{attempt_id}/submit",
        learners_only(200, (404, "attempt_not_found")),
        on(attempt_id="running"),
        submitted_by_student_only,
    ),
    # Any signed-in caller reads their own result on a published quiz (the service asks for
    # no enrollment): nobody else's attempts ever show.
    QuizRow(
        "GET",
        "/api/v1/quizzes/{quiz_id}/my-result",
        learners_only(200, (403, "enrollment_required")),
        on(quiz_id="quiz"),
        my_own_result_only,
    ),
    QuizRow(
        "GET",
        "/api/v1/quizzes/{quiz_id}/my-result",
        DRAFT,
        on(quiz_id="draft_quiz"),
        variant="draft quiz",
    ),
]

GRADING_ROWS: list[QuizRow] = [
    QuizRow(
        "GET",
        "/api/v1/quizzes/{quiz_id}/attempts",
        teachers_only(200),
        on(quiz_id="quiz"),
        lists_the_students_attempt,
    ),
    # The essay (position 1, 2 points) of the submitted attempt.
    QuizRow(
        "PUT",
        "/api/v1/attempts/{attempt_id}/answers/{position}/grade",
        teachers_only(200),
        on({"score": 1.5, "feedback": "Well argued."}, attempt_id="submitted", position="1"),
        essay_graded_by_teachers,
    ),
    QuizRow(
        "POST",
        "/api/v1/attempts/{attempt_id}/override",
        teachers_only(200),
        on({"score": 3.0, "reason": "Oral exam instead"}, attempt_id="submitted"),
        overridden_by_teachers,
    ),
    QuizRow(
        "DELETE",
        "/api/v1/quizzes/{quiz_id}/attempts",
        teachers_only(200),
        reset_students_attempts,
        reset_by_teachers,
    ),
    QuizRow(
        "POST",
        "/api/v1/quizzes/{quiz_id}/regrade",
        teachers_only(200),
        regrade_tampered_score,
        regraded_by_teachers,
    ),
]


async def analyses_the_submitted_attempt(w: QuizWorld, actor: str, body: Any) -> None:
    if teaches(actor):
        assert (body["attempts"], body["learners"]) == (1, 1)
        single, essay = body["questions"]
        assert (single["question_id"], single["facility"]) == (str(w.id("single")), 1.0)
        assert single["options"][0]["count"] == 1
        assert (essay["question_id"], essay["pending"]) == (str(w.id("essay")), 1)


async def exports_the_submitted_attempt(w: QuizWorld, actor: str, body: Any) -> None:
    if teaches(actor):
        header, row = body.splitlines()
        assert header.endswith("Q1 Capital of France?,Q2 Why Paris?")
        assert row.endswith(",1,")  # the choice right, the essay waiting for a grade


ANALYSIS_ROWS: list[QuizRow] = [
    QuizRow(
        "GET",
        "/api/v1/quizzes/{quiz_id}/analysis",
        teachers_only(200),
        on(quiz_id="quiz"),
        analyses_the_submitted_attempt,
    ),
    QuizRow(
        "GET",
        "/api/v1/quizzes/{quiz_id}/results.csv",
        teachers_only(200),
        on(quiz_id="quiz"),
        exports_the_submitted_attempt,
    ),
]

ROWS: list[QuizRow] = BANK_ROWS + QUIZ_ROWS + LEARNER_ROWS + GRADING_ROWS + ANALYSIS_ROWS

CELLS = [pytest.param(actor, row, id=row.id_for(actor)) for row in ROWS for actor in ACTORS]


@pytest.mark.parametrize(("actor", "row"), CELLS)
async def test_quiz_authorization(api: Api, actor: str, row: QuizRow) -> None:
    w = await build_quiz_world(api)
    call = await row.build(w, actor)
    headers = w.headers(actor)
    kwargs: dict[str, Any] = {"headers": headers}
    if call.json is not None:
        kwargs["json"] = call.json
    if call.text is not None:
        kwargs["data"] = call.text.encode()
        headers["Content-Type"] = "text/plain"
    if call.query is not None:
        kwargs["params"] = call.query
    response = await api.client.request(row.method, row.path.format(**call.path), **kwargs)
    body: Any = None
    if response.content_type == "application/json":
        body = await response.json()
    elif response.status != 204:
        body = await response.text()
    code = body.get("error") if response.status >= 400 and isinstance(body, dict) else None
    assert (response.status, code) == row.expect[actor], body
    if row.then is not None:
        await row.then(w, actor, body)


def test_every_row_names_every_actor() -> None:
    for row in ROWS:
        assert set(row.expect) == set(ACTORS), row.id_for("*")
