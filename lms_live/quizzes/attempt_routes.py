"""HTTP endpoints of quiz attempts: start or resume, autosave, submit, review and the learner's
result; for the course's instructors (and admins) the attempt list, essay grading, score
overrides, resets and regrades.

Time is the server's: each handler reads the injected clock (`app[QUIZ_CLOCK]`, default
`core.db.utcnow`) once, when its handling starts, and the service judges by that moment.
Writes: parse, open the unit of work, call the service, commit, then the effects (progress
events for lessons completed by a pass, `quiz_regraded` notifications).
"""

from __future__ import annotations

from datetime import datetime

from aiohttp import web

from lms_live import keys
from lms_live.auth.models import User
from lms_live.core.db import utcnow
from lms_live.core.http import JsonBody, RouteTable, json_response, require_principal
from lms_live.core.realtime import user_room
from lms_live.core.uow import UnitOfWork, unit_of_work
from lms_live.courses.markdown import render as render_markdown
from lms_live.enrollments import service as enrollments
from lms_live.enrollments.events import publish_progress
from lms_live.notifications.namespace import NAMESPACE as NOTIFICATIONS
from lms_live.quizzes import attempts as service
from lms_live.quizzes.attempt_schemas import (
    AnswerPath,
    AnswerSavedOut,
    AttemptIdPath,
    AttemptListItemOut,
    AttemptOut,
    AttemptQuestionOut,
    AttemptsPage,
    AttemptsQuery,
    AttemptUserOut,
    GradeAnswerIn,
    MyAttemptOut,
    MyResultOut,
    OverrideIn,
    QuizIdPath,
    RegradeIn,
    RegradeOut,
    ResetOut,
    ResetQuery,
    ReviewOut,
    SaveAnswerIn,
)
from lms_live.quizzes.deadlines import GRACE_SECONDS, QUIZ_CLOCK, remaining_seconds
from lms_live.quizzes.models import Attempt, AttemptStatus

routes = RouteTable()
TAGS = ["attempts"]
TEACHERS = ["instructor", "admin"]
REGRADED_EVENT = "quiz_regraded"


def now_of(request: web.Request) -> datetime:
    """The server's receive time of this request, by the injected clock."""
    clock = request.app.get(QUIZ_CLOCK, utcnow)
    return clock()


def _attempt_out(shown: service.AttemptShown, *, now: datetime, teacher: bool) -> AttemptOut:
    attempt, review = shown.attempt, shown.review
    in_progress = attempt.status == AttemptStatus.IN_PROGRESS
    points = review.points and not in_progress
    return AttemptOut(
        id=attempt.id,
        quiz_id=attempt.quiz_id,
        user_id=attempt.user_id,
        number=attempt.number,
        status=AttemptStatus(attempt.status),
        started_at=attempt.started_at,
        deadline=attempt.deadline,
        submitted_at=attempt.submitted_at,
        submitted_by=attempt.submitted_by,
        server_now=now,
        remaining_seconds=remaining_seconds(now, attempt.deadline) if in_progress else None,
        grace_seconds=GRACE_SECONDS,
        max_score=attempt.max_score,
        score=service.effective_score(attempt) if points else None,
        percent=attempt.percent if points else None,
        passed=None if in_progress else attempt.passed,
        needs_grading=attempt.needs_grading,
        override_reason=attempt.override_reason if teacher else None,
        review=ReviewOut(
            answers=review.answers or in_progress,
            correctness=review.correctness,
            points=review.points,
            feedback=review.feedback,
            right_answers=review.right_answers,
        ),
        questions=[
            AttemptQuestionOut(
                position=q.position,
                prompt=q.prompt,
                prompt_html=render_markdown(q.prompt),
                image_file=q.image_file,
                points=q.points,
                question=q.view,
                response=q.response,
                revision=q.revision,
                saved_at=q.saved_at,
                state=q.state,
                score=q.score,
                feedback=q.feedback,
                general_feedback=q.general_feedback,
                right_answer=q.right_answer,
            )
            for q in shown.questions
        ],
    )


async def _shown(work: UnitOfWork, request: web.Request, attempt: Attempt) -> AttemptOut:
    """The attempt as the caller sees it now (after a change in this unit of work)."""
    principal = require_principal(request)
    now = now_of(request)
    shown = await service.show_attempt(
        work.session, principal=principal, attempt_id=attempt.id, now=now
    )
    return _attempt_out(shown, now=now, teacher=attempt.user_id != principal.user_id)


async def _after_pass(
    work: UnitOfWork, request: web.Request, done: list[service.Completion]
) -> None:
    """Lessons completed by a pass: the course's completion effects, progress events after
    the commit."""
    app = request.app
    for completion in done:
        if completion.change.course_completed:
            await enrollments.on_course_completed(work, completion.change)

        async def publish(c: service.Completion = completion) -> None:
            await publish_progress(app, [c.change], lesson_id=c.lesson_id)

        work.after_commit(publish)


# --------------------------------------------------------------------------- learners


@routes.post(
    "/api/v1/quizzes/{quiz_id}/attempts",
    operation_id="start_attempt",
    summary="Start (or resume) an attempt",
    tags=TAGS,
    path_model=QuizIdPath,
    response=AttemptOut,
    status=201,
    responses={200: AttemptOut},
    roles=[],
    errors=[403, 404, 409],
)
async def start_attempt(request: web.Request, path: QuizIdPath) -> AttemptOut | web.Response:
    """201 with a new attempt (questions drawn, deadline fixed by the server); 200 with the
    attempt already in progress. Enrolled learners only (403 `enrollment_required`); 409
    `quiz_not_open` / `quiz_closed` outside the window (an accommodation's dates override),
    `no_attempts_left`, `attempt_wait` (with `retry_after` seconds and a Retry-After header)
    before the quiz's minimum wait has passed, `quiz_empty`. A draft quiz is 404."""
    principal = require_principal(request)
    now = now_of(request)
    async with unit_of_work(request.app) as work:
        started = await service.start_attempt(
            work.session, principal=principal, quiz_id=path.quiz_id, now=now
        )
        out = await _shown(work, request, started.attempt)
    if started.created:
        return out
    return json_response(request, JsonBody.dump(AttemptOut, out), status=200)


@routes.get(
    "/api/v1/attempts/{attempt_id}",
    operation_id="get_attempt",
    summary="An attempt: questions, saved answers, time left, review",
    tags=TAGS,
    path_model=AttemptIdPath,
    response=AttemptOut,
    roles=[],
    errors=[404],
)
async def get_attempt(request: web.Request, path: AttemptIdPath) -> AttemptOut:
    """For its learner: the questions in the stored order, their saved answers and the time
    left by the server's clock; once submitted, what the review policy shows at this moment.
    Nothing about right answers while in progress. The course's instructors and admins see a
    submitted attempt in full; anyone else gets 404."""
    principal = require_principal(request)
    now = now_of(request)
    async with request.app[keys.DATABASE].reads() as session:
        shown = await service.show_attempt(
            session, principal=principal, attempt_id=path.attempt_id, now=now
        )
    return _attempt_out(shown, now=now, teacher=shown.attempt.user_id != principal.user_id)


@routes.put(
    "/api/v1/attempts/{attempt_id}/answers/{position}",
    operation_id="save_answer",
    summary="Autosave one answer",
    tags=TAGS,
    path_model=AnswerPath,
    body=SaveAnswerIn,
    response=AnswerSavedOut,
    roles=[],
    errors=[404, 409, 422],
)
async def save_answer(request: web.Request, path: AnswerPath, body: SaveAnswerIn) -> AnswerSavedOut:
    """Stored (and committed) before the answer: the highest `revision` wins; an equal
    revision with the same response is a no-op. 409 `stale_answer` (lower revision),
    `revision_conflict` (same revision, other response), `deadline_passed` (received after
    deadline + grace: nothing stored), `attempt_closed`; 422 `invalid_response`."""
    now = now_of(request)
    principal = require_principal(request)
    async with unit_of_work(request.app) as work:
        saved = await service.save_answer(
            work.session,
            principal=principal,
            attempt_id=path.attempt_id,
            position=path.position,
            response=body.response,
            revision=body.revision,
            now=now,
        )
        return AnswerSavedOut(
            position=saved.position,
            revision=saved.answer.revision,
            saved_at=saved.answer.saved_at,
            response=saved.response,
        )


@routes.post(
    "/api/v1/attempts/{attempt_id}/submit",
    operation_id="submit_attempt",
    summary="Submit an attempt",
    tags=TAGS,
    path_model=AttemptIdPath,
    response=AttemptOut,
    roles=[],
    errors=[404, 409],
)
async def submit_attempt(request: web.Request, path: AttemptIdPath) -> AttemptOut:
    """Graded at once; answers what the review policy shows now. Submitting again answers the
    same result. Received after deadline + grace: 409 `deadline_passed` (the sweeper closes
    the attempt by the quiz's overdue policy). Passing completes the quiz's lesson."""
    now = now_of(request)
    principal = require_principal(request)
    async with unit_of_work(request.app) as work:
        graded = await service.submit_attempt(
            work.session, principal=principal, attempt_id=path.attempt_id, now=now
        )
        await _after_pass(work, request, graded.completions)
        return await _shown(work, request, graded.attempt)


@routes.get(
    "/api/v1/quizzes/{quiz_id}/my-result",
    operation_id="get_my_quiz_result",
    summary="My attempts and result on a quiz",
    tags=TAGS,
    path_model=QuizIdPath,
    response=MyResultOut,
    roles=[],
    errors=[404, 409],
)
async def get_my_quiz_result(request: web.Request, path: QuizIdPath) -> MyResultOut:
    """The result by the quiz's grading method (highest, latest or average percent of the
    submitted attempts); scores show when the review policy shows points. A draft quiz is
    404 (409 `quiz_not_published` for its instructors)."""
    principal = require_principal(request)
    now = now_of(request)
    async with request.app[keys.DATABASE].reads() as session:
        result = await service.my_result(
            session, principal=principal, quiz_id=path.quiz_id, now=now
        )
    visible = result.points_visible
    running = next((a for a in result.attempts if a.status == AttemptStatus.IN_PROGRESS), None)
    return MyResultOut(
        quiz_id=result.quiz.id,
        grading_method=result.quiz.grading_method,
        pass_percent=result.quiz.pass_percent,
        attempts=[
            MyAttemptOut(
                id=a.id,
                number=a.number,
                status=AttemptStatus(a.status),
                started_at=a.started_at,
                deadline=a.deadline,
                submitted_at=a.submitted_at,
                score=service.effective_score(a) if visible else None,
                max_score=a.max_score,
                percent=a.percent if visible else None,
                passed=a.passed,
            )
            for a in result.attempts
        ],
        attempts_used=len(result.attempts),
        attempts_allowed=result.attempts_allowed,
        in_progress_attempt_id=running.id if running else None,
        next_attempt_at=result.next_attempt_at,
        percent=result.percent if visible else None,
        passed=result.passed,
    )


# --------------------------------------------------------------------------- instructors


def _list_item(attempt: Attempt, user: User) -> AttemptListItemOut:
    return AttemptListItemOut(
        id=attempt.id,
        user=AttemptUserOut(id=user.id, full_name=user.full_name, email=user.email),
        number=attempt.number,
        status=AttemptStatus(attempt.status),
        started_at=attempt.started_at,
        deadline=attempt.deadline,
        submitted_at=attempt.submitted_at,
        submitted_by=attempt.submitted_by,
        max_score=attempt.max_score,
        score=service.effective_score(attempt),
        graded_score=attempt.score,
        override_score=attempt.override_score,
        override_reason=attempt.override_reason,
        percent=attempt.percent,
        passed=attempt.passed,
        needs_grading=attempt.needs_grading,
    )


@routes.get(
    "/api/v1/quizzes/{quiz_id}/attempts",
    operation_id="list_quiz_attempts",
    summary="A quiz's attempts",
    tags=TAGS,
    path_model=QuizIdPath,
    query=AttemptsQuery,
    response=AttemptsPage,
    roles=TEACHERS,
    errors=[403, 404],
)
async def list_quiz_attempts(
    request: web.Request, path: QuizIdPath, query: AttemptsQuery
) -> AttemptsPage:
    """Newest first, filtered by learner and status. The course's instructors and admins."""
    principal = require_principal(request)
    async with request.app[keys.DATABASE].reads() as session:
        rows, total = await service.list_attempts(
            session,
            principal=principal,
            quiz_id=path.quiz_id,
            user_id=query.user_id,
            status=query.status,
            limit=query.limit,
            offset=query.offset,
        )
    return AttemptsPage(
        items=[_list_item(a, u) for a, u in rows],
        total=total,
        limit=query.limit,
        offset=query.offset,
    )


@routes.put(
    "/api/v1/attempts/{attempt_id}/answers/{position}/grade",
    operation_id="grade_answer",
    summary="Grade one answer (essays, or any answer)",
    tags=TAGS,
    path_model=AnswerPath,
    body=GradeAnswerIn,
    response=AttemptOut,
    roles=TEACHERS,
    errors=[403, 404, 409, 422],
)
async def grade_answer(request: web.Request, path: AnswerPath, body: GradeAnswerIn) -> AttemptOut:
    """Score 0..the question's points (422 `score_out_of_range`) and feedback; the attempt's
    score, percent and passed are recomputed. 409 `attempt_in_progress`, `not_answered`."""
    principal = require_principal(request)
    async with unit_of_work(request.app) as work:
        graded = await service.grade_answer(
            work.session,
            principal=principal,
            attempt_id=path.attempt_id,
            position=path.position,
            score=body.score,
            feedback=body.feedback,
            now=now_of(request),
        )
        await _after_pass(work, request, graded.completions)
        return await _shown(work, request, graded.attempt)


@routes.post(
    "/api/v1/attempts/{attempt_id}/override",
    operation_id="override_attempt_score",
    summary="Override an attempt's score",
    tags=TAGS,
    path_model=AttemptIdPath,
    body=OverrideIn,
    response=AttemptOut,
    roles=TEACHERS,
    errors=[403, 404, 409, 422],
)
async def override_attempt_score(
    request: web.Request, path: AttemptIdPath, body: OverrideIn
) -> AttemptOut:
    """Score 0..max score with a reason (null score removes the override); percent and
    passed follow. Submitted attempts only (409)."""
    principal = require_principal(request)
    async with unit_of_work(request.app) as work:
        graded = await service.override_score(
            work.session,
            principal=principal,
            attempt_id=path.attempt_id,
            score=body.score,
            reason=body.reason.strip(),
        )
        await _after_pass(work, request, graded.completions)
        return await _shown(work, request, graded.attempt)


@routes.delete(
    "/api/v1/quizzes/{quiz_id}/attempts",
    operation_id="reset_quiz_attempts",
    summary="Reset a learner's attempts",
    tags=TAGS,
    path_model=QuizIdPath,
    query=ResetQuery,
    response=ResetOut,
    roles=TEACHERS,
    errors=[403, 404],
)
async def reset_quiz_attempts(
    request: web.Request, path: QuizIdPath, query: ResetQuery
) -> ResetOut:
    """Deletes every attempt (and answer) of `user_id` on this quiz; lessons the learner
    completed stay completed."""
    principal = require_principal(request)
    async with unit_of_work(request.app) as work:
        deleted = await service.reset_attempts(
            work.session, principal=principal, quiz_id=path.quiz_id, user_id=query.user_id
        )
    return ResetOut(deleted=deleted)


@routes.post(
    "/api/v1/quizzes/{quiz_id}/regrade",
    operation_id="regrade_quiz",
    summary="Regrade every submitted attempt",
    tags=TAGS,
    path_model=QuizIdPath,
    body=RegradeIn,
    response=RegradeOut,
    roles=TEACHERS,
    errors=[403, 404],
)
async def regrade_quiz(request: web.Request, path: QuizIdPath, body: RegradeIn) -> RegradeOut:
    """From the stored answers, with each attempt's question versions or (after fixing a
    question) `to_current_version`. Learners whose result changed get `quiz_regraded
    {quiz_id, attempt_id}` on `/notifications`."""
    principal = require_principal(request)
    async with unit_of_work(request.app) as work:
        regraded = await service.regrade(
            work.session,
            principal=principal,
            quiz_id=path.quiz_id,
            to_current_version=body.to_current_version,
        )
        for attempt in regraded.changed:
            work.emit(
                REGRADED_EVENT,
                {"quiz_id": str(attempt.quiz_id), "attempt_id": str(attempt.id)},
                room=user_room(str(attempt.user_id)),
                namespace=NOTIFICATIONS,
            )
        await _after_pass(work, request, regraded.completions)
    return RegradeOut(attempts=regraded.attempts, changed=len(regraded.changed))
