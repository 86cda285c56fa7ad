"""The overdue sweeper: an attempt abandoned mid-way is closed at deadline + grace by the quiz's
overdue policy (auto-submit and grade, grace period then submit, or abandon), graded exactly
once, also with two sweepers running at the same moment on real PostgreSQL connections; and
the scheduled task does the same through the broker.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from taskiq import InMemoryBroker

from lms_live import keys
from lms_live.core.db import utcnow
from lms_live.courses.models import LessonKind
from lms_live.enrollments.models import LessonCompletion
from lms_live.quizzes import attempts
from lms_live.quizzes.models import Answer, Attempt
from lms_live.quizzes.tasks import SWEEP
from lms_live.worker.broker import enqueue, periodic_intervals, run_periodic
from tests.authkit import Api
from tests.test_quiz_attempts import (
    SINGLE,
    T0,
    TRUE_FALSE,
    QuizBuilt,
    attempt_row,
    learner,
    make_quiz,
    right_response,
    save,
    show,
    started,
    submit,
    use_clock,
)


async def sweep(api: Api, at: Any, **kwargs: Any) -> int:
    """One sweeper run in a transaction of its own."""
    async with api.app[keys.DATABASE].transaction() as session:
        return await attempts.sweep_overdue(session, now=at, **kwargs)


async def abandoned_attempt(api: Api, made: QuizBuilt) -> tuple[Any, dict[str, Any]]:
    """A learner who starts, answers the first question right, and leaves."""
    student = await learner(api, made)
    attempt = await started(api, made, student)
    view = attempt["questions"][0]["question"]
    status, body = await save(api, attempt["id"], student, 0, right_response(view))
    assert status == 200, body
    return student, attempt


async def test_an_abandoned_attempt_is_submitted_and_graded_once_at_its_deadline(
    api: Api,
) -> None:
    use_clock(api)
    made = await make_quiz(
        api, questions=[("Capital?", SINGLE, 1.0), ("Tf", TRUE_FALSE, 1.0)], time_limit_seconds=60
    )
    student, attempt = await abandoned_attempt(api, made)
    deadline = T0 + timedelta(seconds=60)

    assert await sweep(api, deadline) == 0
    assert await sweep(api, deadline + timedelta(seconds=2)) == 0  # a save could still land
    assert await sweep(api, deadline + timedelta(seconds=2, milliseconds=1)) == 1
    row = await attempt_row(api, attempt["id"])
    assert (row.status, row.submitted_by) == ("submitted", "sweeper")
    assert row.submitted_at == deadline + timedelta(seconds=2, milliseconds=1)
    assert (row.score, row.max_score, row.percent, row.passed) == (1.0, 2.0, 50.0, True)
    assert await sweep(api, deadline + timedelta(minutes=5)) == 0
    assert (await attempt_row(api, attempt["id"])).submitted_at == row.submitted_at

    status, shown = await show(api, attempt["id"], student)
    assert shown["status"] == "submitted"
    assert shown["score"] == 1.0
    status, again = await submit(api, attempt["id"], student)
    assert status == 200
    assert again["submitted_by"] == "sweeper"


async def test_the_abandon_policy_closes_without_a_score(api: Api) -> None:
    use_clock(api)
    made = await make_quiz(api, time_limit_seconds=60, overdue_policy="abandon")
    student, attempt = await abandoned_attempt(api, made)
    assert await sweep(api, T0 + timedelta(seconds=63)) == 1
    row = await attempt_row(api, attempt["id"])
    assert (row.status, row.submitted_by, row.score, row.passed) == (
        "abandoned",
        "sweeper",
        None,
        None,
    )
    status, body = await submit(api, attempt["id"], student)
    assert (status, body["error"]) == (409, "attempt_closed")
    status, shown = await show(api, attempt["id"], student)
    assert shown["status"] == "abandoned"
    assert shown["score"] is None


async def test_the_grace_policy_takes_saves_for_its_grace_then_submits(api: Api) -> None:
    clock = use_clock(api)
    made = await make_quiz(
        api, time_limit_seconds=60, overdue_policy="grace", overdue_grace_seconds=30
    )
    student = await learner(api, made)
    attempt = await started(api, made, student)
    view = attempt["questions"][0]["question"]

    clock.now = T0 + timedelta(seconds=60 + 30 + 2)
    assert await sweep(api, clock.now) == 0
    status, body = await save(api, attempt["id"], student, 0, right_response(view))
    assert status == 200, body
    clock.advance(0.001)
    status, body = await save(api, attempt["id"], student, 0, right_response(view), revision=2)
    assert (status, body["error"]) == (409, "deadline_passed")
    assert await sweep(api, clock.now) == 1
    row = await attempt_row(api, attempt["id"])
    assert (row.status, row.score, row.passed) == ("submitted", 1.0, True)


async def test_untimed_attempts_are_never_swept(api: Api) -> None:
    use_clock(api)
    made = await make_quiz(api)
    _, attempt = await abandoned_attempt(api, made)
    assert await sweep(api, T0 + timedelta(days=365)) == 0
    assert (await attempt_row(api, attempt["id"])).status == "in_progress"


async def test_the_sweeper_completes_the_quiz_lesson_on_a_pass(api: Api) -> None:
    use_clock(api)
    made = await make_quiz(api, time_limit_seconds=60, pass_percent=100)
    student, _attempt = await abandoned_attempt(api, made)
    done: list[attempts.Completion] = []
    assert await sweep(api, T0 + timedelta(minutes=2), completions=done) == 1
    lesson = next(x for x in made.built.lessons if x.kind == LessonKind.QUIZ)
    assert [(c.lesson_id, c.change.user_id) for c in done] == [(lesson.id, student.id)]
    async with api.app[keys.DATABASE].sessions() as session:
        completed = await session.scalar(
            select(func.count())
            .select_from(LessonCompletion)
            .where(LessonCompletion.lesson_id == lesson.id)
        )
    assert completed == 1


async def test_the_sweeper_takes_batches(api: Api) -> None:
    use_clock(api)
    made = await make_quiz(api, time_limit_seconds=60)
    for _ in range(5):
        await abandoned_attempt(api, made)
    later = T0 + timedelta(minutes=2)
    assert [await sweep(api, later, limit=2) for _ in range(4)] == [2, 2, 1, 0]


async def test_the_scheduled_task_sweeps_through_the_broker(api: Api) -> None:
    use_clock(api, utcnow() - timedelta(hours=1))
    made = await make_quiz(api, time_limit_seconds=60)
    student, attempt = await abandoned_attempt(api, made)
    await enqueue(api.app[keys.BROKER], SWEEP)
    await api.app[keys.BROKER].wait_all()  # type: ignore[attr-defined]
    row = await attempt_row(api, attempt["id"])
    assert (row.status, row.submitted_by, row.score) == ("submitted", "sweeper", 1.0)
    # The pass completed the quiz lesson, and /progress heard it on the learner's stream.
    events = await api.app[keys.STREAMS].since(f"learner:{student.id}", 0)
    assert events is not None
    lesson = next(x for x in made.built.lessons if x.kind == LessonKind.QUIZ)
    assert [(e.event, e.data.get("lesson_id")) for e in events][:2] == [
        ("lesson_completed", str(lesson.id)),
        ("progress_changed", None),
    ]


# --------------------------------------------------------------------------- two sweepers


async def _overdue_attempts(api: Api, n: int) -> tuple[QuizBuilt, list[str]]:
    use_clock(api)
    made = await make_quiz(api, time_limit_seconds=60)
    ids = []
    for _ in range(n):
        _, attempt = await abandoned_attempt(api, made)
        ids.append(attempt["id"])
    return made, ids


@pytest.mark.shared_db
async def test_two_sweepers_at_once_grade_each_attempt_once(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    made, ids = await _overdue_attempts(api, 12)
    later = T0 + timedelta(minutes=2)
    graded: list[str] = []
    original = attempts._grade_attempt

    async def counting(session: Any, *, attempt: Attempt, quiz: Any) -> None:
        graded.append(str(attempt.id))
        await asyncio.sleep(0.01)  # widen the window for the other sweeper
        await original(session, attempt=attempt, quiz=quiz)

    monkeypatch.setattr(attempts, "_grade_attempt", counting)
    counts: list[int] = []
    for _ in range(3):
        counts += await asyncio.gather(*(sweep(api, later, limit=5) for _ in range(2)))
    assert sum(counts) == 12, counts
    assert sorted(graded) == sorted(ids)  # every attempt graded, none twice
    async with api.app[keys.DATABASE].sessions() as session:
        rows = list(await session.scalars(select(Attempt).where(Attempt.quiz_id == made.id)))
        answers = await session.scalar(select(func.count()).select_from(Answer))
    assert {(r.status, r.submitted_by, r.score) for r in rows} == {("submitted", "sweeper", 1.0)}
    assert answers == 12


@pytest.mark.shared_db
async def test_a_sweeper_skips_rows_another_sweeper_holds(api: Api) -> None:
    """Deterministic: the first sweeper has closed every attempt but not committed; the second
    neither waits nor closes any again; after the commit nothing is left."""
    _, ids = await _overdue_attempts(api, 3)
    later = T0 + timedelta(minutes=2)
    database = api.app[keys.DATABASE]
    async with database.transaction() as session:
        assert await attempts.sweep_overdue(session, now=later) == 3
        assert await asyncio.wait_for(sweep(api, later), 5) == 0
    assert await sweep(api, later) == 0
    rows = [await attempt_row(api, i) for i in ids]
    assert {(r.status, r.score) for r in rows} == {("submitted", 1.0)}


@pytest.mark.shared_db
async def test_a_save_in_flight_holds_the_sweeper_off(api: Api) -> None:
    """A save share-locks its attempt: the sweeper skips it until the save has committed."""
    use_clock(api)
    made = await make_quiz(api, time_limit_seconds=60)
    student = await learner(api, made)
    attempt = await started(api, made, student)
    later = T0 + timedelta(minutes=2)
    database = api.app[keys.DATABASE]
    async with database.transaction() as session:
        await session.execute(
            select(Attempt).where(Attempt.id == uuid.UUID(attempt["id"])).with_for_update(read=True)
        )
        assert await asyncio.wait_for(sweep(api, later), 5) == 0
    assert await sweep(api, later) == 1


# --------------------------------------------------------------------------- embedded default


async def test_run_periodic_sends_each_interval_task_on_time_and_stops() -> None:
    broker = InMemoryBroker(await_inplace=True)
    ran: list[float] = []

    async def tick() -> None:
        ran.append(asyncio.get_running_loop().time())

    broker.register_task(tick, task_name="test.tick")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    started = loop.time()
    job = asyncio.create_task(run_periodic(broker, stop, intervals=[("test.tick", 0.05)]))
    await asyncio.sleep(0.32)
    stop.set()
    await asyncio.wait_for(job, 1)
    assert 4 <= len(ran) <= 7, ran
    assert ran[0] - started >= 0.045  # first run one interval after the start
    assert (SWEEP, 5.0) in periodic_intervals()


async def test_the_embedded_default_sweeps_overdue_attempts_itself(
    aiohttp_client: Any, tmp_path: Path, worker_id: str
) -> None:
    """No Redis and no scheduler process (`make run`): serve sends the sweeper itself."""
    from lms_live import migrations
    from lms_live.app import create_app
    from tests.conftest import SmtpInbox, make_settings

    settings = make_settings(tmp_path, worker_id, pg_url=None)
    await asyncio.to_thread(migrations.upgrade, "head", url=settings.effective_database_url)
    api = Api(await aiohttp_client(create_app(settings)), SmtpInbox())
    use_clock(api, utcnow() - timedelta(hours=1))  # the attempt is long overdue in real time
    made = await make_quiz(api, time_limit_seconds=60)
    _, attempt = await abandoned_attempt(api, made)
    async with asyncio.timeout(12):  # the sweeper runs every 5 s
        while (await attempt_row(api, attempt["id"])).status == "in_progress":
            await asyncio.sleep(0.2)
    row = await attempt_row(api, attempt["id"])
    assert (row.status, row.submitted_by, row.score) == ("submitted", "sweeper", 1.0)
