"""Quiz attempts over REST: starting and resuming, autosave revisions, the server-judged deadline
(deadline + grace accepted, a millisecond later refused), submitting and grading, attempt
limits, windows, minimum waits and accommodations, the review policy at each moment, no right
answers in any payload while an attempt is open (every question type), lesson completion on a
pass, the instructors' endpoints, and bad input answered with a 4xx that changes nothing.

The clock is the app's `QUIZ_CLOCK`, moved by the tests (no sleeping). The helpers here (quizzes
with their questions, the fake clock) are shared with tests/test_quiz_sweeper.py.
"""

from __future__ import annotations

import asyncio
import json
import uuid
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from lms_live import keys
from lms_live.auth.models import Role
from lms_live.core.realtime import user_room
from lms_live.courses.models import Lesson, LessonKind
from lms_live.enrollments.models import Enrollment, LessonCompletion
from lms_live.quizzes.deadlines import QUIZ_CLOCK, Clock
from lms_live.quizzes.models import (
    Accommodation,
    Answer,
    Attempt,
    AttemptQuestion,
    Question,
    QuestionTag,
    QuestionVersion,
    Quiz,
    QuizSlot,
)
from lms_live.quizzes.spec import (
    AcceptedText,
    Choice,
    EssaySpec,
    Item,
    MatchingSpec,
    MultipleChoiceSpec,
    NumericAnswer,
    NumericSpec,
    OrderingSpec,
    Pair,
    QuestionSpec,
    Scoring,
    ShortTextSpec,
    SingleChoiceSpec,
    TrueFalseSpec,
)
from tests.authkit import Api
from tests.test_enrollments import Built, Outline, Person, build_course, enroll, person, scalar

T0 = datetime(2030, 1, 7, 9, 0, tzinfo=UTC)

# --------------------------------------------------------------------------- helpers

# Everything only an instructor may see carries SECRET (or is the numeric value below), so a
# payload can be searched for leaks.
SINGLE = SingleChoiceSpec(
    options=[
        Choice(id="a", text="Paris", correct=True, feedback="SECRET-FB-single-right"),
        Choice(id="b", text="Rome", feedback="SECRET-FB-single-wrong"),
        Choice(id="c", text="Madrid"),
    ]
)
MULTIPLE = MultipleChoiceSpec(
    options=[
        Choice(id="a", text="Two", correct=True, feedback="SECRET-FB-multi"),
        Choice(id="b", text="Three", correct=True),
        Choice(id="c", text="Four"),
    ],
    scoring=Scoring.PARTIAL,
)
TRUE_FALSE = TrueFalseSpec(answer=True, feedback_true="SECRET-FB-tf", feedback_false="SECRET-FB-f")
SHORT = ShortTextSpec(accepted=[AcceptedText(text="SECRETWORD", feedback="SECRET-FB-short")])
SECRET_NUMBER = 42.4242
NUMERIC = NumericSpec(answers=[NumericAnswer(value=SECRET_NUMBER, tolerance=0.01)])
ORDERING = OrderingSpec(
    items=[
        Item(id="x", text="First step"),
        Item(id="y", text="Second step"),
        Item(id="z", text="Third step"),
    ]
)
MATCHING = MatchingSpec(
    pairs=[
        Pair(id="p", prompt="France", answer="Paris city"),
        Pair(id="q", prompt="Italy", answer="Rome city"),
    ],
    distractors=[Item(id="r", text="Berlin city")],
)
ESSAY = EssaySpec(guidance="SECRET-GUIDE for graders")

ALL_TYPES: list[tuple[str, QuestionSpec, float]] = [
    ("Capital of France?", SINGLE, 1.0),
    ("Which are prime?", MULTIPLE, 1.0),
    ("The sky is blue.", TRUE_FALSE, 1.0),
    ("The word?", SHORT, 1.0),
    ("The number?", NUMERIC, 1.0),
    ("Put in order.", ORDERING, 1.0),
    ("Match the capitals.", MATCHING, 1.0),
    ("Discuss.", ESSAY, 1.0),
]


class FakeClock:
    """The quiz engine's clock, moved by the test."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def use_clock(api: Api, now: datetime = T0) -> FakeClock:
    """Install a fake clock on the running app (aiohttp warns about changing a started app)."""
    clock = FakeClock(now)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        installed: Clock = clock
        api.app[QUIZ_CLOCK] = installed
    return clock


@dataclass
class QuizBuilt:
    built: Built
    owner: Person
    quiz: Quiz
    questions: list[Question]

    @property
    def id(self) -> uuid.UUID:
        return self.quiz.id


QUIZ_OUTLINE: Outline = ((("Read", LessonKind.TEXT, True), ("Check", LessonKind.QUIZ, True)),)


async def add_question(
    session: Any,
    course_id: uuid.UUID,
    prompt: str,
    spec: QuestionSpec,
    points: float = 1.0,
    *,
    tags: Sequence[str] = (),
    archived: bool = False,
) -> Question:
    """A bank question with its first version."""
    question = Question(course_id=course_id, title=prompt[:200], archived=archived)
    session.add(question)
    await session.flush()
    session.add(
        QuestionVersion(
            question_id=question.id,
            version=1,
            type=spec.type.value,
            prompt=prompt,
            points=points,
            general_feedback=f"SECRET-GF {prompt}",
            body=spec.model_dump(mode="json"),
        )
    )
    for tag in tags:
        session.add(QuestionTag(question_id=question.id, tag=tag))
    await session.flush()
    return question


async def make_quiz(
    api: Api,
    *,
    questions: Sequence[tuple[str, QuestionSpec, float]] = (("Capital?", SINGLE, 1.0),),
    owner: Person | None = None,
    outline: Outline = QUIZ_OUTLINE,
    link_lesson: bool = True,
    **fields: Any,
) -> QuizBuilt:
    """A published quiz of fixed questions in a course whose `quiz` lesson points at it."""
    owner = owner or await person(api, Role.INSTRUCTOR)
    built = await build_course(api, owner, outline=outline)
    async with api.app[keys.DATABASE].transaction() as session:
        quiz = Quiz(course_id=built.id, title="Checkpoint", **{"published": True, **fields})
        session.add(quiz)
        await session.flush()
        made = []
        for position, (prompt, spec, points) in enumerate(questions):
            question = await add_question(session, built.id, prompt, spec, points)
            session.add(QuizSlot(quiz_id=quiz.id, position=position, question_id=question.id))
            made.append(question)
        if link_lesson:
            for lesson in built.lessons:
                if lesson.kind == LessonKind.QUIZ:
                    row = await session.get(Lesson, lesson.id)
                    assert row is not None
                    row.quiz_id = quiz.id
    return QuizBuilt(built, owner, quiz, made)


async def learner(api: Api, made: QuizBuilt) -> Person:
    """A student enrolled in the quiz's course."""
    student = await person(api)
    status, body = await enroll(api, student, made.built.id)
    assert status == 201, body
    return student


async def call(
    api: Api, method: str, url: str, who: Person | None = None, body: Any = None
) -> tuple[int, Any]:
    kwargs: dict[str, Any] = {"headers": who.headers if who else {}}
    if body is not None:
        kwargs["json"] = body
    response = await api.client.request(method, url, **kwargs)
    data = await response.json() if response.content_type == "application/json" else None
    return response.status, data


async def start(api: Api, made: QuizBuilt, who: Person) -> tuple[int, Any]:
    return await call(api, "POST", f"/api/v1/quizzes/{made.id}/attempts", who)


async def started(api: Api, made: QuizBuilt, who: Person) -> dict[str, Any]:
    status, body = await start(api, made, who)
    assert status == 201, body
    result: dict[str, Any] = body
    return result


async def show(api: Api, attempt_id: str, who: Person) -> tuple[int, Any]:
    return await call(api, "GET", f"/api/v1/attempts/{attempt_id}", who)


async def save(
    api: Api, attempt_id: str, who: Person, position: int, response: Any, revision: int = 1
) -> tuple[int, Any]:
    return await call(
        api,
        "PUT",
        f"/api/v1/attempts/{attempt_id}/answers/{position}",
        who,
        {"response": response, "revision": revision},
    )


async def submit(api: Api, attempt_id: str, who: Person) -> tuple[int, Any]:
    return await call(api, "POST", f"/api/v1/attempts/{attempt_id}/submit", who)


def label(view: dict[str, Any], group: str, text: str) -> str:
    """The label the learner's screen shows for the entry reading `text`."""
    found: str = next(e["id"] for e in view[group] if e["text"] == text)
    return found


def right_response(view: dict[str, Any]) -> dict[str, Any]:
    """A full-marks response to one of the ALL_TYPES questions, in screen labels."""
    kind = view["type"]
    if kind == "single_choice":
        return {"choice": label(view, "options", "Paris")}
    if kind == "multiple_choice":
        return {"choices": [label(view, "options", "Two"), label(view, "options", "Three")]}
    if kind == "true_false":
        return {"value": True}
    if kind == "short_text":
        return {"text": " secretword "}
    if kind == "numeric":
        return {"value": 42.43}
    if kind == "ordering":
        return {
            "order": [label(view, "items", t) for t in ("First step", "Second step", "Third step")]
        }
    if kind == "matching":
        return {
            "matches": {
                label(view, "prompts", "France"): label(view, "choices", "Paris city"),
                label(view, "prompts", "Italy"): label(view, "choices", "Rome city"),
            }
        }
    return {"text": "A thoughtful essay."}


def wrong_single(view: dict[str, Any]) -> dict[str, Any]:
    return {"choice": label(view, "options", "Rome")}


def error(status: int, body: Any) -> tuple[int, Any]:
    return status, body.get("error") if isinstance(body, dict) else None


def assert_nothing_revealed(payload: Any) -> None:
    """No right answer, correctness, points earned or feedback anywhere in the payload."""
    text = json.dumps(payload)
    for secret in ("SECRET", str(SECRET_NUMBER), '"correct"', "accepted", "tolerance", "guidance"):
        assert secret not in text, secret
    questions = payload.get("questions", [])
    for question in questions:
        for hidden in ("state", "score", "feedback", "general_feedback", "right_answer"):
            assert question[hidden] is None, (hidden, question)


async def count(api: Api, model: Any, *where: Any) -> int:
    return int(await scalar(api, select(func.count()).select_from(model).where(*where)))


async def answer_rows(api: Api, attempt_id: str) -> list[Answer]:
    async with api.app[keys.DATABASE].sessions() as session:
        return list(
            await session.scalars(
                select(Answer)
                .join(AttemptQuestion, AttemptQuestion.id == Answer.attempt_question_id)
                .where(AttemptQuestion.attempt_id == uuid.UUID(attempt_id))
                .order_by(AttemptQuestion.position)
            )
        )


async def attempt_row(api: Api, attempt_id: str | uuid.UUID) -> Attempt:
    async with api.app[keys.DATABASE].sessions() as session:
        found = await session.get(Attempt, uuid.UUID(str(attempt_id)))
    assert found is not None
    return found


async def accommodate(api: Api, made: QuizBuilt, who: Person, **fields: Any) -> None:
    async with api.app[keys.DATABASE].transaction() as session:
        session.add(Accommodation(quiz_id=made.id, user_id=who.id, **fields))


# --------------------------------------------------------------------------- start and resume


async def test_start_fixes_the_deadline_and_resuming_returns_the_same_attempt(api: Api) -> None:
    clock = use_clock(api)
    made = await make_quiz(api, questions=ALL_TYPES, time_limit_seconds=600)
    student = await learner(api, made)

    attempt = await started(api, made, student)
    assert attempt["status"] == "in_progress"
    assert attempt["number"] == 1
    assert datetime.fromisoformat(attempt["started_at"]) == T0
    assert datetime.fromisoformat(attempt["deadline"]) == T0 + timedelta(seconds=600)
    assert attempt["remaining_seconds"] == 600
    assert attempt["grace_seconds"] == 2
    assert attempt["max_score"] == 8
    assert [q["position"] for q in attempt["questions"]] == list(range(8))
    assert [q["question"]["type"] for q in attempt["questions"]] == [
        spec.type.value for _, spec, _ in ALL_TYPES
    ]

    clock.advance(100)
    status, again = await start(api, made, student)
    assert status == 200
    assert again["id"] == attempt["id"]
    assert again["remaining_seconds"] == 500
    assert [q["question"] for q in again["questions"]] == [
        q["question"] for q in attempt["questions"]
    ]
    status, shown = await show(api, attempt["id"], student)
    assert status == 200
    assert shown["remaining_seconds"] == 500
    assert datetime.fromisoformat(shown["server_now"]) == T0 + timedelta(seconds=100)
    assert await count(api, Attempt, Attempt.quiz_id == made.id) == 1


async def test_no_right_answers_while_open_for_every_question_type(api: Api) -> None:
    clock = use_clock(api)
    made = await make_quiz(
        api,
        questions=ALL_TYPES,
        shuffle_options=True,
        review_policy={
            "answers": "during",
            "correctness": "after_submit",
            "points": "after_submit",
            "feedback": "after_submit",
            "right_answers": "after_submit",
        },
    )
    student = await learner(api, made)
    attempt = await started(api, made, student)
    assert_nothing_revealed(attempt)

    for question in attempt["questions"]:
        response = right_response(question["question"])
        status, saved = await save(api, attempt["id"], student, question["position"], response)
        assert status == 200, saved
        assert_nothing_revealed({"saved": saved})

    clock.advance(10)
    status, shown = await show(api, attempt["id"], student)
    assert status == 200
    assert_nothing_revealed(shown)
    assert shown["score"] is None
    assert shown["percent"] is None
    assert shown["passed"] is None
    assert [q["revision"] for q in shown["questions"]] == [1] * 8
    for question in shown["questions"]:
        expected = right_response(question["question"])
        if "choices" in expected:
            expected = {"choices": sorted(expected["choices"], key=int)}
        assert question["response"] == expected
    status, resumed = await start(api, made, student)
    assert status == 200
    assert_nothing_revealed(resumed)

    # The same payloads reveal it all once submitted (the policy says right after submit).
    status, done = await submit(api, attempt["id"], student)
    assert status == 200, done
    assert done["status"] == "submitted"
    assert all(q["right_answer"] is not None for q in done["questions"][:7])
    assert done["questions"][0]["feedback"] == "SECRET-FB-single-right"
    assert done["questions"][7]["state"] == "needs_grading"


async def test_saved_responses_are_shown_in_the_learners_own_labels(api: Api) -> None:
    use_clock(api)
    made = await make_quiz(api, questions=[("Order", ORDERING, 2.0), ("Match", MATCHING, 2.0)])
    student = await learner(api, made)
    attempt = await started(api, made, student)
    ordering, matching = (q["question"] for q in attempt["questions"])
    # Labels never give the right order away: shown shuffled, labelled by place.
    assert [i["text"] for i in ordering["items"]] != ["First step", "Second step", "Third step"]
    assert [i["id"] for i in ordering["items"]] == ["1", "2", "3"]

    order = right_response(ordering)
    assert (await save(api, attempt["id"], student, 0, order))[0] == 200
    matches = right_response(matching)
    assert (await save(api, attempt["id"], student, 1, matches))[0] == 200
    _, shown = await show(api, attempt["id"], student)
    assert [q["response"] for q in shown["questions"]] == [order, matches]
    rows = await answer_rows(api, attempt["id"])
    assert rows[0].response == {"order": ["x", "y", "z"]}  # stored by spec ids
    assert rows[1].response == {"matches": {"p": "p", "q": "q"}}

    _status, done = await submit(api, attempt["id"], student)
    assert done["score"] == 4.0
    assert done["percent"] == 100.0
    assert done["passed"] is True


# --------------------------------------------------------------------------- autosave


async def test_autosave_latest_revision_wins_and_stale_saves_are_refused(api: Api) -> None:
    use_clock(api)
    made = await make_quiz(api)
    student = await learner(api, made)
    attempt = await started(api, made, student)
    view = attempt["questions"][0]["question"]
    right, wrong = right_response(view), wrong_single(view)

    assert (await save(api, attempt["id"], student, 0, wrong, revision=1))[0] == 200
    status, body = await save(api, attempt["id"], student, 0, right, revision=3)
    assert status == 200
    assert body == {
        "position": 0,
        "revision": 3,
        "saved_at": body["saved_at"],
        "response": right,
    }
    # A late-arriving older save cannot overwrite the newer one.
    status, body = await save(api, attempt["id"], student, 0, wrong, revision=2)
    assert error(status, body) == (409, "stale_answer")
    assert body["details"] == [{"stored_revision": 3}]
    # The same save again (a retry) is a no-op; the same revision with another answer is not.
    assert (await save(api, attempt["id"], student, 0, right, revision=3))[0] == 200
    status, body = await save(api, attempt["id"], student, 0, wrong, revision=3)
    assert error(status, body) == (409, "revision_conflict")

    rows = await answer_rows(api, attempt["id"])
    assert len(rows) == 1
    assert rows[0].revision == 3
    assert rows[0].response == {"choice": "a"}


@pytest.mark.shared_db
async def test_concurrent_first_saves_keep_one_row_and_the_highest_revision(api: Api) -> None:
    use_clock(api)
    made = await make_quiz(api)
    student = await learner(api, made)
    attempt = await started(api, made, student)
    view = attempt["questions"][0]["question"]
    responses = [right_response(view), wrong_single(view)]

    results = await asyncio.gather(
        *(save(api, attempt["id"], student, 0, responses[n % 2], revision=n) for n in range(1, 9))
    )
    assert all(status in (200, 409) for status, _ in results), results
    rows = await answer_rows(api, attempt["id"])
    assert len(rows) == 1
    assert rows[0].revision == 8
    assert rows[0].response == {"choice": "a"}  # revision 8 saved the right option


async def test_bad_saves_are_refused_with_4xx_and_store_nothing(api: Api) -> None:
    use_clock(api)
    made = await make_quiz(api, questions=[("Capital?", SINGLE, 1.0), ("Number?", NUMERIC, 1.0)])
    student = await learner(api, made)
    other = await learner(api, made)
    attempt = await started(api, made, student)
    base = f"/api/v1/attempts/{attempt['id']}/answers"
    url = f"{base}/0"

    cases: list[tuple[Person, str, Any, tuple[int, str]]] = [
        (student, url, {"response": {"choice": "a"}, "revision": 1}, (422, "invalid_response")),
        (student, url, {"response": {"choice": "99"}, "revision": 1}, (422, "invalid_response")),
        (student, url, {"response": {"value": 1}, "revision": 1}, (422, "invalid_response")),
        (
            student,
            url,
            {"response": {"choice": "1", "x": 1}, "revision": 1},
            (422, "invalid_response"),
        ),
        (student, url, {"response": "1", "revision": 1}, (422, "validation_failed")),
        (student, url, {"response": {"choice": "1"}}, (422, "validation_failed")),
        (student, url, {"response": {"choice": "1"}, "revision": -1}, (422, "validation_failed")),
        (
            student,
            url,
            {"response": {"choice": "1"}, "revision": 1, "x": 1},
            (422, "validation_failed"),
        ),
        (
            student,
            f"{base}/1",
            {"response": {"value": "NaN"}, "revision": 1},
            (422, "invalid_response"),
        ),
        (
            student,
            f"{base}/1",
            {"response": {"value": True}, "revision": 1},
            (422, "invalid_response"),
        ),
        (
            student,
            f"{base}/7",
            {"response": {}, "revision": 1},
            (404, "question_not_found"),
        ),
        (
            student,
            f"{base}/-1",
            {"response": {}, "revision": 1},
            (422, "validation_failed"),
        ),
        (
            student,
            f"{base}/x",
            {"response": {}, "revision": 1},
            (422, "validation_failed"),
        ),
        (other, url, {"response": {"choice": "1"}, "revision": 1}, (404, "attempt_not_found")),
        (
            student,
            f"/api/v1/attempts/{uuid.uuid4()}/answers/0",
            {"response": {"choice": "1"}, "revision": 1},
            (404, "attempt_not_found"),
        ),
        (
            student,
            "/api/v1/attempts/nope/answers/0",
            {"response": {"choice": "1"}, "revision": 1},
            (422, "validation_failed"),
        ),
    ]
    for who, target, body, expected in cases:
        status, answer = await call(api, "PUT", target, who, body)
        assert error(status, answer) == expected, (target, body, answer)

    response = await api.client.put(url, data=b"{nope", headers=student.headers)
    assert response.status in (400, 415)
    response = await api.client.put(
        url, data=b'{"response": {}, "revision": 1}', headers=student.headers
    )
    assert response.status == 415  # no JSON content type
    status, body = await call(api, "PUT", url, None, {"response": {"choice": "1"}, "revision": 1})
    assert status == 401
    assert await answer_rows(api, attempt["id"]) == []


# --------------------------------------------------------------------------- the deadline


async def test_saves_and_submit_are_judged_by_deadline_plus_grace(api: Api) -> None:
    clock = use_clock(api)
    made = await make_quiz(api, time_limit_seconds=60)
    student = await learner(api, made)
    attempt = await started(api, made, student)
    view = attempt["questions"][0]["question"]
    deadline = datetime.fromisoformat(attempt["deadline"])
    assert deadline == T0 + timedelta(seconds=60)

    clock.now = deadline + timedelta(seconds=2)  # the last accepted moment
    status, saved = await save(api, attempt["id"], student, 0, wrong_single(view), revision=1)
    assert status == 200, saved
    status, shown = await show(api, attempt["id"], student)
    assert shown["remaining_seconds"] == 0
    assert shown["status"] == "in_progress"

    clock.now = deadline + timedelta(seconds=2, milliseconds=1)
    status, body = await save(api, attempt["id"], student, 0, right_response(view), revision=2)
    assert error(status, body) == (409, "deadline_passed")
    status, body = await submit(api, attempt["id"], student)
    assert error(status, body) == (409, "deadline_passed")
    rows = await answer_rows(api, attempt["id"])
    assert [(r.revision, r.response) for r in rows] == [(1, {"choice": "b"})]
    assert (await attempt_row(api, attempt["id"])).status == "in_progress"  # the sweeper's


async def test_submit_at_the_last_accepted_moment_is_graded(api: Api) -> None:
    clock = use_clock(api)
    made = await make_quiz(api, time_limit_seconds=60)
    student = await learner(api, made)
    attempt = await started(api, made, student)
    view = attempt["questions"][0]["question"]
    assert (await save(api, attempt["id"], student, 0, right_response(view)))[0] == 200

    clock.now = T0 + timedelta(seconds=62)
    status, done = await submit(api, attempt["id"], student)
    assert status == 200, done
    assert done["status"] == "submitted"
    assert done["submitted_by"] == "learner"
    assert done["score"] == 1.0
    assert done["passed"] is True


async def test_the_window_close_caps_the_deadline(api: Api) -> None:
    use_clock(api)
    made = await make_quiz(api, time_limit_seconds=3600, closes_at=T0 + timedelta(minutes=10))
    student = await learner(api, made)
    attempt = await started(api, made, student)
    assert datetime.fromisoformat(attempt["deadline"]) == T0 + timedelta(minutes=10)


async def test_accommodation_extra_time_moves_the_deadline(api: Api) -> None:
    use_clock(api)
    made = await make_quiz(api, time_limit_seconds=600)
    student = await learner(api, made)
    await accommodate(api, made, student, time_multiplier=1.5, extra_seconds=30)
    attempt = await started(api, made, student)
    assert datetime.fromisoformat(attempt["deadline"]) == T0 + timedelta(seconds=930)
    assert attempt["remaining_seconds"] == 930


# --------------------------------------------------------------------------- submit and grade


async def test_submit_grades_once_and_submitting_again_answers_the_same(api: Api) -> None:
    clock = use_clock(api)
    made = await make_quiz(
        api,
        questions=[("Capital?", SINGLE, 2.0), ("Number?", NUMERIC, 2.0)],
        pass_percent=60,
    )
    student = await learner(api, made)
    attempt = await started(api, made, student)
    view = attempt["questions"][0]["question"]
    assert (await save(api, attempt["id"], student, 0, right_response(view)))[0] == 200
    assert (await save(api, attempt["id"], student, 1, {"value": 1.0}))[0] == 200

    clock.advance(30)
    status, done = await submit(api, attempt["id"], student)
    assert status == 200, done
    assert (done["score"], done["percent"], done["passed"]) == (2.0, 50.0, False)
    assert [q["state"] for q in done["questions"]] == ["correct", "incorrect"]
    assert [q["score"] for q in done["questions"]] == [2.0, 0.0]
    assert datetime.fromisoformat(done["submitted_at"]) == T0 + timedelta(seconds=30)

    clock.advance(30)
    status, again = await submit(api, attempt["id"], student)
    assert status == 200
    assert again["submitted_at"] == done["submitted_at"]
    assert (again["score"], again["passed"]) == (2.0, False)
    status, body = await save(api, attempt["id"], student, 0, wrong_single(view), revision=9)
    assert error(status, body) == (409, "attempt_closed")
    status, body = await submit(api, attempt["id"], await learner(api, made))
    assert error(status, body) == (404, "attempt_not_found")


async def test_unanswered_questions_score_zero(api: Api) -> None:
    use_clock(api)
    made = await make_quiz(api, questions=[("Capital?", SINGLE, 1.0), ("Tf", TRUE_FALSE, 1.0)])
    student = await learner(api, made)
    attempt = await started(api, made, student)
    status, done = await submit(api, attempt["id"], student)
    assert status == 200
    assert (done["score"], done["percent"], done["passed"]) == (0.0, 0.0, False)
    assert [q["state"] for q in done["questions"]] == ["unanswered", "unanswered"]


async def test_essays_leave_the_result_pending_until_graded(api: Api) -> None:
    use_clock(api)
    made = await make_quiz(
        api, questions=[("Capital?", SINGLE, 1.0), ("Discuss", ESSAY, 3.0)], pass_percent=50
    )
    student = await learner(api, made)
    attempt = await started(api, made, student)
    view = attempt["questions"][0]["question"]
    await save(api, attempt["id"], student, 0, right_response(view))
    await save(api, attempt["id"], student, 1, {"text": "Some thoughts."})
    status, done = await submit(api, attempt["id"], student)
    assert (done["score"], done["passed"], done["needs_grading"]) == (1.0, None, True)
    assert done["questions"][1]["state"] == "needs_grading"

    status, graded = await call(
        api,
        "PUT",
        f"/api/v1/attempts/{attempt['id']}/answers/1/grade",
        made.owner,
        {"score": 2.5, "feedback": "Good points."},
    )
    assert status == 200, graded
    assert (graded["score"], graded["percent"], graded["passed"]) == (3.5, 87.5, True)
    assert graded["needs_grading"] is False
    assert graded["questions"][1]["state"] == "partial"
    assert graded["questions"][1]["feedback"] == "Good points."
    status, mine = await show(api, attempt["id"], student)
    assert mine["questions"][1]["feedback"] == "Good points."
    assert mine["passed"] is True


# --------------------------------------------------------------------------- starting rules


async def test_attempt_limit_counts_extra_attempts(api: Api) -> None:
    clock = use_clock(api)
    made = await make_quiz(api, max_attempts=1)
    student = await learner(api, made)
    first = await started(api, made, student)
    await submit(api, first["id"], student)
    clock.advance(5)
    status, body = await start(api, made, student)
    assert error(status, body) == (409, "no_attempts_left")
    assert body["details"] == [{"attempts_allowed": 1}]

    await accommodate(api, made, student, extra_attempts=1)
    second = await started(api, made, student)
    assert second["number"] == 2
    await submit(api, second["id"], student)
    status, body = await start(api, made, student)
    assert error(status, body) == (409, "no_attempts_left")
    assert await count(api, Attempt, Attempt.quiz_id == made.id) == 2


async def test_minimum_wait_between_attempts(api: Api) -> None:
    clock = use_clock(api)
    made = await make_quiz(api, min_wait_seconds=600)
    student = await learner(api, made)
    first = await started(api, made, student)
    clock.advance(60)
    await submit(api, first["id"], student)

    clock.advance(100)
    response = await api.client.post(f"/api/v1/quizzes/{made.id}/attempts", headers=student.headers)
    body = await response.json()
    assert (response.status, body["error"]) == (409, "attempt_wait")
    assert body["details"] == [{"retry_after": 500}]
    assert response.headers["Retry-After"] == "500"
    _status, result = await call(api, "GET", f"/api/v1/quizzes/{made.id}/my-result", student)
    assert datetime.fromisoformat(result["next_attempt_at"]) == T0 + timedelta(seconds=660)

    clock.advance(500)
    assert (await start(api, made, student))[0] == 201


async def test_window_and_accommodation_dates(api: Api) -> None:
    clock = use_clock(api)
    made = await make_quiz(api, opens_at=T0 + timedelta(hours=1), closes_at=T0 + timedelta(hours=2))
    early, late = await learner(api, made), await learner(api, made)
    status, body = await start(api, made, early)
    assert error(status, body) == (409, "quiz_not_open")
    await accommodate(api, made, early, opens_at=T0 - timedelta(hours=1))
    assert (await start(api, made, early))[0] == 201

    clock.now = T0 + timedelta(hours=2)
    status, body = await start(api, made, late)
    assert error(status, body) == (409, "quiz_closed")
    await accommodate(api, made, late, closes_at=T0 + timedelta(hours=3))
    attempt = await started(api, made, late)
    assert datetime.fromisoformat(attempt["deadline"]) == T0 + timedelta(hours=3)


async def test_who_may_start(api: Api) -> None:
    use_clock(api)
    made = await make_quiz(api)
    stranger = await person(api)
    status, body = await start(api, made, stranger)
    assert error(status, body) == (403, "enrollment_required")
    status, body = await start(api, made, made.owner)
    assert error(status, body) == (403, "enrollment_required")
    status, body = await call(api, "POST", f"/api/v1/quizzes/{uuid.uuid4()}/attempts", stranger)
    assert error(status, body) == (404, "quiz_not_found")
    status, body = await call(api, "POST", "/api/v1/quizzes/nope/attempts", stranger)
    assert status == 422
    assert (await call(api, "POST", f"/api/v1/quizzes/{made.id}/attempts"))[0] == 401

    draft = await make_quiz(api, owner=made.owner, published=False)
    student = await learner(api, draft)
    status, body = await start(api, draft, student)
    assert error(status, body) == (404, "quiz_not_found")
    status, body = await start(api, draft, made.owner)
    assert error(status, body) == (409, "quiz_not_published")

    empty = await make_quiz(api, questions=[])
    status, body = await start(api, empty, await learner(api, empty))
    assert error(status, body) == (409, "quiz_empty")
    assert await count(api, Attempt, Attempt.quiz_id.in_([made.id, draft.id, empty.id])) == 0


@pytest.mark.shared_db
async def test_double_click_starts_one_attempt(api: Api) -> None:
    use_clock(api)
    made = await make_quiz(api, questions=ALL_TYPES)
    student = await learner(api, made)
    results = await asyncio.gather(*(start(api, made, student) for _ in range(5)))
    statuses = sorted(status for status, _ in results)
    assert statuses == [200, 200, 200, 200, 201], results
    assert len({body["id"] for _, body in results}) == 1
    assert await count(api, Attempt, Attempt.quiz_id == made.id) == 1
    assert await count(api, AttemptQuestion) == 8


async def test_pools_draw_distinct_active_questions_per_attempt(api: Api) -> None:
    use_clock(api)
    made = await make_quiz(api, questions=[("Fixed", TRUE_FALSE, 1.0)], shuffle_questions=True)
    async with api.app[keys.DATABASE].transaction() as session:
        for n in range(4):
            await add_question(session, made.built.id, f"Algebra {n}", SINGLE, tags=["algebra"])
        await add_question(session, made.built.id, "Old", SINGLE, tags=["algebra"], archived=True)
        session.add(QuizSlot(quiz_id=made.id, position=1, pool_tag="algebra", pool_count=3))
    drawn: set[str] = set()
    for _ in range(6):
        student = await learner(api, made)
        attempt = await started(api, made, student)
        prompts = [q["prompt"] for q in attempt["questions"]]
        assert len(prompts) == 4
        assert len(set(prompts)) == 4
        assert "Fixed" in prompts
        assert "Old" not in prompts
        drawn.update(prompts)
        assert attempt["max_score"] == 4
    assert drawn <= {"Fixed", "Algebra 0", "Algebra 1", "Algebra 2", "Algebra 3"}


async def test_overlapping_pools_always_draw_in_full(api: Api) -> None:
    """ "Both" is tagged x and y, "Only x" only x: pool x then pool y. Drawing pool x first at
    random would take "Both" half the time and leave pool y empty; the draw is one matching,
    so every attempt gets both questions."""
    use_clock(api)
    made = await make_quiz(api, questions=[])
    async with api.app[keys.DATABASE].transaction() as session:
        await add_question(session, made.built.id, "Both", SINGLE, tags=["x", "y"])
        await add_question(session, made.built.id, "Only x", SINGLE, tags=["x"])
        session.add(QuizSlot(quiz_id=made.id, position=0, pool_tag="x", pool_count=1))
        session.add(QuizSlot(quiz_id=made.id, position=1, pool_tag="y", pool_count=1))
    for _ in range(12):
        attempt = await started(api, made, await learner(api, made))
        assert [q["prompt"] for q in attempt["questions"]] == ["Only x", "Both"]


# --------------------------------------------------------------------------- review policy


async def test_review_policy_at_each_moment(api: Api) -> None:
    clock = use_clock(api)
    made = await make_quiz(
        api,
        questions=[("Capital?", SINGLE, 1.0)],
        closes_at=T0 + timedelta(hours=1),
        review_policy={
            "answers": "after_submit",
            "correctness": "after_submit",
            "points": "after_close",
            "feedback": "after_close",
            "right_answers": "after_close",
        },
    )
    student = await learner(api, made)
    attempt = await started(api, made, student)
    view = attempt["questions"][0]["question"]
    await save(api, attempt["id"], student, 0, wrong_single(view))
    _, done = await submit(api, attempt["id"], student)
    assert done["review"] == {
        "answers": True,
        "correctness": True,
        "points": False,
        "feedback": False,
        "right_answers": False,
    }
    question = done["questions"][0]
    assert question["response"] == wrong_single(view)
    assert question["state"] == "incorrect"
    assert (question["score"], question["feedback"], question["right_answer"]) == (None, None, None)
    assert done["score"] is None
    assert done["percent"] is None
    assert "SECRET" not in json.dumps(done)

    clock.now = T0 + timedelta(hours=1)
    _status, later = await show(api, attempt["id"], student)
    question = later["questions"][0]
    assert later["score"] == 0.0
    assert later["percent"] == 0.0
    assert question["score"] == 0.0
    assert question["feedback"] == "SECRET-FB-single-wrong"
    assert question["general_feedback"] == "SECRET-GF Capital?"
    assert question["right_answer"] == {"choice": label(view, "options", "Paris")}


async def test_review_policy_never_shows_nothing_and_instructors_see_everything(
    api: Api,
) -> None:
    use_clock(api)
    never = dict.fromkeys(
        ("answers", "correctness", "points", "feedback", "right_answers"), "never"
    )
    made = await make_quiz(api, questions=ALL_TYPES, review_policy=never)
    student = await learner(api, made)
    attempt = await started(api, made, student)
    for question in attempt["questions"]:
        await save(
            api, attempt["id"], student, question["position"], right_response(question["question"])
        )
    status, done = await submit(api, attempt["id"], student)
    assert status == 200
    assert_nothing_revealed(done)
    assert all(q["response"] is None for q in done["questions"])
    assert done["passed"] is True  # pass or fail is always shown

    status, full = await show(api, attempt["id"], made.owner)
    assert status == 200
    assert full["score"] == 7.0
    assert all(q["right_answer"] is not None for q in full["questions"][:7])
    assert all(q["response"] is not None for q in full["questions"])
    status, body = await show(api, attempt["id"], await person(api, Role.INSTRUCTOR))
    assert error(status, body) == (404, "attempt_not_found")
    status, body = await show(api, attempt["id"], await learner(api, made))
    assert error(status, body) == (404, "attempt_not_found")


async def test_instructors_see_no_right_answers_in_an_open_attempt(api: Api) -> None:
    use_clock(api)
    made = await make_quiz(api, questions=ALL_TYPES)
    student = await learner(api, made)
    attempt = await started(api, made, student)
    status, shown = await show(api, attempt["id"], made.owner)
    assert status == 200
    assert_nothing_revealed(shown)


# --------------------------------------------------------------------------- lesson completion


async def test_passing_completes_the_quiz_lesson(api: Api) -> None:
    use_clock(api)
    made = await make_quiz(api, pass_percent=100)
    student = await learner(api, made)
    lesson = next(x for x in made.built.lessons if x.kind == LessonKind.QUIZ)

    failed = await started(api, made, student)
    view = failed["questions"][0]["question"]
    await save(api, failed["id"], student, 0, wrong_single(view))
    assert (await submit(api, failed["id"], student))[1]["passed"] is False
    assert await count(api, LessonCompletion, LessonCompletion.lesson_id == lesson.id) == 0

    passed = await started(api, made, student)
    view = passed["questions"][0]["question"]
    await save(api, passed["id"], student, 0, right_response(view))
    assert (await submit(api, passed["id"], student))[1]["passed"] is True
    assert await count(api, LessonCompletion, LessonCompletion.lesson_id == lesson.id) == 1
    enrollment: Enrollment = await scalar(
        api, select(Enrollment).where(Enrollment.user_id == student.id)
    )
    assert enrollment.progress_percent == 50.0
    _status, result = await call(api, "GET", f"/api/v1/quizzes/{made.id}/my-result", student)
    assert (result["percent"], result["passed"], result["attempts_used"]) == (100.0, True, 2)


# --------------------------------------------------------------------------- learner's result


async def test_my_result_follows_the_grading_method(api: Api) -> None:
    clock = use_clock(api)
    made = await make_quiz(
        api,
        questions=[("A", SINGLE, 1.0), ("B", SINGLE, 1.0)],
        grading_method="latest",
        pass_percent=75,
    )
    student = await learner(api, made)
    for right in (2, 1):
        attempt = await started(api, made, student)
        for question in attempt["questions"][:right]:
            view = question["question"]
            await save(api, attempt["id"], student, question["position"], right_response(view))
        await submit(api, attempt["id"], student)
        clock.advance(10)
    url = f"/api/v1/quizzes/{made.id}/my-result"
    status, result = await call(api, "GET", url, student)
    assert status == 200
    assert [a["percent"] for a in result["attempts"]] == [100.0, 50.0]
    assert (result["percent"], result["passed"]) == (50.0, False)

    async with api.app[keys.DATABASE].transaction() as session:
        quiz = await session.get(Quiz, made.id)
        assert quiz is not None
        quiz.grading_method = "average"
    status, result = await call(api, "GET", url, student)
    assert (result["percent"], result["passed"]) == (75.0, True)
    async with api.app[keys.DATABASE].transaction() as session:
        quiz = await session.get(Quiz, made.id)
        assert quiz is not None
        quiz.grading_method = "highest"
    status, result = await call(api, "GET", url, student)
    assert (result["percent"], result["passed"]) == (100.0, True)
    status, result = await call(api, "GET", url, await learner(api, made))
    assert result["attempts"] == []
    assert result["percent"] is None


# --------------------------------------------------------------------------- instructors


async def test_instructors_list_override_and_reset(api: Api) -> None:
    use_clock(api)
    made = await make_quiz(api, pass_percent=100)
    students = [await learner(api, made) for _ in range(2)]
    ids = []
    for student in students:
        attempt = await started(api, made, student)
        ids.append(attempt["id"])
    await submit(api, ids[0], students[0])

    url = f"/api/v1/quizzes/{made.id}/attempts"
    status, page = await call(api, "GET", url, made.owner)
    assert status == 200
    assert page["total"] == 2
    status, page = await call(api, "GET", f"{url}?status=submitted", made.owner)
    assert [i["id"] for i in page["items"]] == [ids[0]]
    assert page["items"][0]["user"]["id"] == str(students[0].id)
    status, page = await call(api, "GET", f"{url}?user_id={students[1].id}", made.owner)
    assert [i["status"] for i in page["items"]] == ["in_progress"]
    assert (await call(api, "GET", f"{url}?status=bogus", made.owner))[0] == 422
    assert error(*await call(api, "GET", url, students[0])) == (403, "forbidden")
    stranger = await person(api, Role.INSTRUCTOR)
    assert error(*await call(api, "GET", url, stranger)) == (403, "forbidden")
    admin = await person(api, Role.ADMIN)
    assert (await call(api, "GET", url, admin))[0] == 200

    override = f"/api/v1/attempts/{ids[0]}/override"
    status, body = await call(api, "POST", override, made.owner, {"score": 2, "reason": "x"})
    assert error(status, body) == (422, "score_out_of_range")
    status, body = await call(api, "POST", override, made.owner, {"score": 1, "reason": ""})
    assert status == 422
    status, body = await call(api, "POST", override, made.owner, {"score": -1, "reason": "x"})
    assert status == 422
    status, body = await call(api, "POST", override, stranger, {"score": 1, "reason": "x"})
    assert error(status, body) == (403, "forbidden")
    status, body = await call(
        api, "POST", f"/api/v1/attempts/{ids[1]}/override", made.owner, {"score": 1, "reason": "x"}
    )
    assert error(status, body) == (409, "attempt_in_progress")
    status, body = await call(
        api, "POST", override, made.owner, {"score": 1, "reason": "Question was ambiguous"}
    )
    assert status == 200, body
    assert (body["score"], body["percent"], body["passed"]) == (1.0, 100.0, True)
    assert body["override_reason"] == "Question was ambiguous"
    row = await attempt_row(api, ids[0])
    assert (row.score, row.override_score, row.passed) == (0.0, 1.0, True)
    lesson = next(x for x in made.built.lessons if x.kind == LessonKind.QUIZ)
    assert await count(api, LessonCompletion, LessonCompletion.lesson_id == lesson.id) == 1

    reset = f"/api/v1/quizzes/{made.id}/attempts?user_id={students[0].id}"
    assert error(*await call(api, "DELETE", reset, stranger)) == (403, "forbidden")
    assert (await call(api, "DELETE", f"/api/v1/quizzes/{made.id}/attempts", made.owner))[0] == 422
    status, body = await call(api, "DELETE", reset, made.owner)
    assert (status, body) == (200, {"deleted": 1})
    assert await count(api, Attempt, Attempt.user_id == students[0].id) == 0
    assert (await start(api, made, students[0]))[0] == 201


async def test_grading_answers_checks_its_input(api: Api) -> None:
    use_clock(api)
    made = await make_quiz(api, questions=[("Capital?", SINGLE, 1.0), ("Essay", ESSAY, 2.0)])
    student = await learner(api, made)
    attempt = await started(api, made, student)
    base = f"/api/v1/attempts/{attempt['id']}/answers"
    status, body = await call(api, "PUT", f"{base}/1/grade", made.owner, {"score": 1})
    assert error(status, body) == (409, "attempt_in_progress")
    await save(api, attempt["id"], student, 1, {"text": "Essay text"})
    await submit(api, attempt["id"], student)

    cases: list[tuple[str, Any, tuple[int, str]]] = [
        (f"{base}/1/grade", {"score": 3}, (422, "score_out_of_range")),
        (f"{base}/1/grade", {"score": -1}, (422, "validation_failed")),
        (f"{base}/1/grade", {"score": "NaN"}, (422, "validation_failed")),
        (f"{base}/1/grade", {}, (422, "validation_failed")),
        (f"{base}/0/grade", {"score": 1}, (409, "not_answered")),
        (f"{base}/5/grade", {"score": 1}, (404, "question_not_found")),
    ]
    for url, body, expected in cases:
        assert error(*await call(api, "PUT", url, made.owner, body)) == expected, (url, body)
    status, body = await call(api, "PUT", f"{base}/1/grade", student, {"score": 2})
    assert error(status, body) == (403, "forbidden")
    row = await attempt_row(api, attempt["id"])
    assert (row.score, row.needs_grading, row.passed) == (0.0, True, None)


async def test_regrade_after_fixing_a_question(api: Api) -> None:
    use_clock(api)
    made = await make_quiz(api, questions=[("Capital?", SINGLE, 1.0)], pass_percent=100)
    students = [await learner(api, made) for _ in range(2)]
    for student, pick in zip(students, ("Rome", "Paris"), strict=True):
        attempt = await started(api, made, student)
        view = attempt["questions"][0]["question"]
        await save(api, attempt["id"], student, 0, {"choice": label(view, "options", pick)})
        await submit(api, attempt["id"], student)

    url = f"/api/v1/quizzes/{made.id}/regrade"
    status, body = await call(api, "POST", url, made.owner, {})
    assert (status, body) == (200, {"attempts": 2, "changed": 0})

    # The instructor fixes the key (Rome was meant): a used question gets version 2.
    fixed = SingleChoiceSpec(
        options=[
            Choice(id="a", text="Paris"),
            Choice(id="b", text="Rome", correct=True),
            Choice(id="c", text="Madrid"),
        ]
    )
    async with api.app[keys.DATABASE].transaction() as session:
        question = await session.get(Question, made.questions[0].id)
        assert question is not None
        session.add(
            QuestionVersion(
                question_id=question.id,
                version=2,
                type=fixed.type.value,
                prompt="Capital?",
                points=2.0,
                body=fixed.model_dump(mode="json"),
            )
        )
        question.current_version = 2
    status, body = await call(api, "POST", url, made.owner, {"to_current_version": "yes"})
    assert status == 422
    status, body = await call(api, "POST", url, students[0], {"to_current_version": True})
    assert status == 403
    status, body = await call(api, "POST", url, made.owner, {"to_current_version": True})
    assert (status, body) == (200, {"attempts": 2, "changed": 2})
    rows = [await scalar(api, select(Attempt).where(Attempt.user_id == s.id)) for s in students]
    assert [(r.score, r.max_score, r.passed) for r in rows] == [(2.0, 2.0, True), (0.0, 2.0, False)]
    lesson = next(x for x in made.built.lessons if x.kind == LessonKind.QUIZ)
    # The learner who now passes has the lesson; the one who no longer does keeps it.
    assert await count(api, LessonCompletion, LessonCompletion.lesson_id == lesson.id) == 2


async def test_regrade_tells_learners_whose_result_changed(api: Api) -> None:
    use_clock(api)
    made = await make_quiz(api, questions=[("Capital?", SINGLE, 1.0)])
    student = await learner(api, made)
    attempt = await started(api, made, student)
    await submit(api, attempt["id"], student)
    async with api.app[keys.DATABASE].transaction() as session:
        question = await session.get(Question, made.questions[0].id)
        assert question is not None
        session.add(
            QuestionVersion(
                question_id=question.id,
                version=2,
                type="single_choice",
                prompt="Capital?",
                points=4.0,
                body=SINGLE.model_dump(mode="json"),
            )
        )
        question.current_version = 2

    sent: list[tuple[str, Any, str | None, str | None]] = []
    sio = api.app[keys.SIO]
    original = sio.emit

    async def spy(
        event: str,
        data: Any = None,
        *,
        room: str | None = None,
        namespace: str | None = None,
        **kw: Any,
    ) -> None:
        sent.append((event, data, room, namespace))
        await original(event, data, room=room, namespace=namespace, **kw)

    sio.emit = spy
    try:
        status, body = await call(
            api,
            "POST",
            f"/api/v1/quizzes/{made.id}/regrade",
            made.owner,
            {"to_current_version": True},
        )
    finally:
        sio.emit = original
    assert (status, body) == (200, {"attempts": 1, "changed": 1})
    assert (await attempt_row(api, attempt["id"])).max_score == 4.0
    assert (
        "quiz_regraded",
        {"quiz_id": str(made.id), "attempt_id": attempt["id"]},
        user_room(str(student.id)),
        "/notifications",
    ) in sent


# --------------------------------------------------------------------------- embedded default


async def test_attempts_work_on_the_embedded_sqlite_default(
    aiohttp_client: Any, tmp_path: Any, worker_id: str, smtp: Any
) -> None:
    """No DATABASE_URL: start, save, submit and the sweeper on SQLite (no row locks there)."""
    from lms_live import migrations
    from lms_live.app import create_app
    from lms_live.quizzes import attempts
    from tests.conftest import make_settings

    settings = make_settings(tmp_path, worker_id, pg_url=None, redis_url=None)
    await asyncio.to_thread(migrations.upgrade, "head", url=settings.effective_database_url)
    api = Api(await aiohttp_client(create_app(settings)), smtp[0])
    clock = use_clock(api)
    made = await make_quiz(api, questions=ALL_TYPES, time_limit_seconds=60)
    student = await learner(api, made)
    attempt = await started(api, made, student)
    assert (await start(api, made, student))[0] == 200
    for question in attempt["questions"]:
        response = right_response(question["question"])
        assert (await save(api, attempt["id"], student, question["position"], response))[0] == 200
    status, body = await save(api, attempt["id"], student, 0, {"choice": "1"}, revision=0)
    assert error(status, body) == (409, "stale_answer")
    status, done = await submit(api, attempt["id"], student)
    assert (status, done["score"], done["passed"]) == (200, 7.0, True)

    other = await learner(api, made)
    left = await started(api, made, other)
    clock.advance(63)
    async with api.app[keys.DATABASE].transaction() as session:
        assert await attempts.sweep_overdue(session, now=clock.now) == 1
    assert (await attempt_row(api, left["id"])).submitted_by == "sweeper"


async def test_prompts_come_rendered_safely(api: Api) -> None:
    use_clock(api)
    made = await make_quiz(
        api, questions=[("**Which** city? <script>alert(1)</script>", SINGLE, 1.0)]
    )
    attempt = await started(api, made, await learner(api, made))
    [question] = attempt["questions"]
    assert question["prompt_html"].startswith("<p><strong>Which</strong> city? &lt;script&gt;")
    assert "<script>" not in question["prompt_html"]
