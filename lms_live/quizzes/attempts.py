"""Quiz attempts: starting (drawing the questions), autosaving answers, submitting and grading,
the overdue sweeper, review, and the instructors' grading, overrides, resets and regrades.

Invariants kept here (with models.py and deadlines.py):
- every function takes `now` from its caller (the route's injected clock, or the sweeper's);
  saves and submits are judged by it against `deadline + grace` and refused when late;
- one attempt in progress per learner and quiz: starting locks the learner's attempts of the
  quiz and inserts under a savepoint, so the loser of a double start (unique quiz, user,
  number) returns the winner's attempt instead of a second one;
- a save share-locks its attempt row and row-locks its answer; submit, the sweeper, grading
  and overrides lock the attempt row (`FOR UPDATE`; the sweeper with `SKIP LOCKED`), so an
  attempt leaves `in_progress` exactly once and is never graded while a save is landing;
- while an attempt is in progress nothing derived from the right answers is returned (no
  correctness, points earned, feedback or right answers): learners see `grading.public_view`
  and their own saved responses; after that, what the quiz's review policy allows now;
- a score always stays within [0, max_score]; passing (percent >= pass_percent) completes
  the quiz lessons of the course for an enrolled learner (never undone by a regrade).
"""

from __future__ import annotations

import enum
import math
import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, delete, func, literal_column, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from lms_live.auth.models import User
from lms_live.core.db import upsert_for
from lms_live.core.errors import (
    ConcurrentUpdate,
    Conflict,
    EnrollmentRequired,
    NotFound,
    ValidationFailed,
)
from lms_live.core.security import Principal
from lms_live.courses.access import ensure_teaches, get_course, may_teach
from lms_live.courses.models import Lesson, LessonKind
from lms_live.enrollments.access import OPEN, is_enrolled
from lms_live.enrollments.models import Enrollment
from lms_live.enrollments.progress import ProgressChange
from lms_live.enrollments.service import complete_lesson
from lms_live.quizzes import grading
from lms_live.quizzes.bank import assign_pools
from lms_live.quizzes.deadlines import (
    GRACE,
    accept_until,
    accepts,
    closes_for,
    deadline_for,
    opens_for,
    window_open,
)
from lms_live.quizzes.models import (
    Accommodation,
    Answer,
    Attempt,
    AttemptQuestion,
    AttemptStatus,
    GradingMethod,
    OverduePolicy,
    Question,
    QuestionTag,
    QuestionVersion,
    Quiz,
    QuizSlot,
)
from lms_live.quizzes.spec import QuestionSpec, load_spec

LEARNER = "learner"
SWEEPER = "sweeper"


# --------------------------------------------------------------------------- failures


class QuizNotFound(NotFound):
    code = "quiz_not_found"
    message = "No such quiz."


class QuizNotPublished(Conflict):
    code = "quiz_not_published"
    message = "This quiz is not published: learners cannot take it yet."


class QuizNotOpen(Conflict):
    code = "quiz_not_open"
    message = "This quiz is not open yet."


class QuizClosed(Conflict):
    code = "quiz_closed"
    message = "This quiz is closed."


class QuizEmpty(Conflict):
    code = "quiz_empty"
    message = "This quiz has no questions to draw yet."


class NoAttemptsLeft(Conflict):
    code = "no_attempts_left"
    message = "You have used every attempt allowed on this quiz."


class WaitBeforeRetry(Conflict):
    code = "attempt_wait"
    message = "Wait before starting another attempt."

    def __init__(self, retry_after: float) -> None:
        self.retry_after = max(1, math.ceil(retry_after))
        super().__init__(
            details=[{"retry_after": self.retry_after}],
            headers={"Retry-After": str(self.retry_after)},
        )


class AttemptNotFound(NotFound):
    code = "attempt_not_found"
    message = "No such attempt."


class QuestionNotFound(NotFound):
    code = "question_not_found"
    message = "This attempt has no question at that position."


class AttemptClosed(Conflict):
    code = "attempt_closed"
    message = "This attempt is no longer open; nothing was saved."


class DeadlinePassed(Conflict):
    code = "deadline_passed"
    message = "Received after this attempt's deadline; nothing was saved."


class StaleAnswer(Conflict):
    code = "stale_answer"
    message = "A newer save of this answer is already stored; this one was not saved."


class RevisionConflict(Conflict):
    code = "revision_conflict"
    message = "A different answer was already saved under this revision; send a higher one."


class InvalidResponse(ValidationFailed):
    code = "invalid_response"
    message = "This response does not fit the question."


class AttemptInProgress(Conflict):
    code = "attempt_in_progress"
    message = "This attempt is still in progress; grade it once it is submitted."


class AttemptNotSubmitted(Conflict):
    code = "attempt_not_submitted"
    message = "Only a submitted attempt can be graded."


class NotAnswered(Conflict):
    code = "not_answered"
    message = "The learner saved no answer to this question."


class ScoreOutOfRange(ValidationFailed):
    code = "score_out_of_range"
    message = "The score must be between 0 and the points available."


# --------------------------------------------------------------------------- review policy


class ReviewWhen(enum.StrEnum):
    """When the learner sees one part of the review. `during` cannot show anything derived
    from the right answers while the attempt is open, so it shows from the submit on."""

    NEVER = "never"
    DURING = "during"
    AFTER_SUBMIT = "after_submit"
    AFTER_CLOSE = "after_close"


# The same defaults as bank_schemas.ReviewPolicy (a stored `{}` reads as these).
DEFAULT_REVIEW: dict[str, str] = {
    "answers": ReviewWhen.DURING,
    "correctness": ReviewWhen.AFTER_SUBMIT,
    "points": ReviewWhen.AFTER_SUBMIT,
    "feedback": ReviewWhen.AFTER_SUBMIT,
    "right_answers": ReviewWhen.AFTER_CLOSE,
}


@dataclass(frozen=True, slots=True)
class Review:
    """What the caller sees of an attempt right now."""

    answers: bool = False
    correctness: bool = False
    points: bool = False
    feedback: bool = False
    right_answers: bool = False


FULL_REVIEW = Review(True, True, True, True, True)


def _allowed(when: str, *, submitted: bool, closed: bool) -> bool:
    if not submitted:  # nothing derived from the right answers while open
        return False
    if when in (ReviewWhen.DURING, ReviewWhen.AFTER_SUBMIT):
        return True
    return when == ReviewWhen.AFTER_CLOSE and closed


def review_for(
    quiz: Quiz,
    accommodation: Accommodation | None,
    *,
    submitted: bool,
    now: datetime,
) -> Review:
    """What the review policy lets the learner see of an attempt at `now` (`submitted`: no
    longer in progress). After close is the learner's own close (an accommodation's date
    overrides); a quiz without a close date never reaches it."""
    stored = {k: v for k, v in (quiz.review_policy or {}).items() if k in DEFAULT_REVIEW}
    policy = DEFAULT_REVIEW | stored
    close = closes_for(quiz, accommodation)
    closed = close is not None and now >= close

    def part(name: str) -> bool:
        return _allowed(str(policy[name]), submitted=submitted, closed=closed)

    return Review(
        answers=part("answers"),
        correctness=part("correctness"),
        points=part("points"),
        feedback=part("feedback"),
        right_answers=part("right_answers"),
    )


# --------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class Completion:
    """A quiz lesson completed by passing (for events and tasks after the commit)."""

    change: ProgressChange
    lesson_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class Started:
    attempt: Attempt
    created: bool


@dataclass(frozen=True, slots=True)
class Saved:
    """A stored answer; `response` as the learner's screen names it (labels)."""

    answer: Answer
    position: int
    response: dict[str, Any]


@dataclass(slots=True)
class Graded:
    """An attempt after a state change, plus the lessons its pass completed."""

    attempt: Attempt
    completions: list[Completion] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class QuestionShown:
    """One question of an attempt, with only what the caller may see (None: hidden)."""

    position: int
    prompt: str
    image_file: str | None
    points: float
    view: dict[str, Any]
    response: dict[str, Any] | None
    revision: int | None
    saved_at: datetime | None
    state: str | None
    score: float | None
    feedback: str | None
    general_feedback: str | None
    right_answer: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class AttemptShown:
    attempt: Attempt
    quiz: Quiz
    review: Review
    deadline: datetime | None
    questions: list[QuestionShown]


@dataclass(frozen=True, slots=True)
class QuizResult:
    """A learner's standing on a quiz: attempts and the grading method's result."""

    quiz: Quiz
    attempts: list[Attempt]
    points_visible: bool
    percent: float | None
    passed: bool | None
    attempts_allowed: int | None
    next_attempt_at: datetime | None


@dataclass(frozen=True, slots=True)
class Regraded:
    attempts: int
    changed: list[Attempt]
    completions: list[Completion]


# --------------------------------------------------------------------------- lookups


def spec_of(version: QuestionVersion) -> QuestionSpec:
    """The typed spec of a stored question version."""
    return load_spec(version.body)


async def get_quiz(session: AsyncSession, *, quiz_id: uuid.UUID, lock: bool = False) -> Quiz:
    """The quiz, or QuizNotFound."""
    quiz = await session.get(Quiz, quiz_id, with_for_update=lock or None)
    if quiz is None:
        raise QuizNotFound()
    return quiz


async def _teaches_quiz(session: AsyncSession, *, principal: Principal, quiz: Quiz) -> bool:
    course = await get_course(session, course_id=quiz.course_id)
    return await may_teach(session, principal=principal, course=course)


async def _ensure_teaches_quiz(session: AsyncSession, *, principal: Principal, quiz: Quiz) -> None:
    course = await get_course(session, course_id=quiz.course_id)
    await ensure_teaches(session, principal=principal, course=course)


async def _learner_quiz(session: AsyncSession, *, principal: Principal, quiz_id: uuid.UUID) -> Quiz:
    """A published quiz (a draft is 404, 409 for its own instructors)."""
    quiz = await get_quiz(session, quiz_id=quiz_id)
    if not quiz.published:
        if await _teaches_quiz(session, principal=principal, quiz=quiz):
            raise QuizNotPublished()
        raise QuizNotFound()
    return quiz


async def _accommodation(
    session: AsyncSession, *, quiz_id: uuid.UUID, user_id: uuid.UUID
) -> Accommodation | None:
    found: Accommodation | None = await session.scalar(
        select(Accommodation).where(
            Accommodation.quiz_id == quiz_id, Accommodation.user_id == user_id
        )
    )
    return found


def _locked(query: Select[Attempt], lock: str | None) -> Select[Attempt]:
    if lock == "update":
        return query.with_for_update().execution_options(populate_existing=True)
    if lock == "share":
        return query.with_for_update(read=True).execution_options(populate_existing=True)
    return query


async def _attempt(
    session: AsyncSession, *, attempt_id: uuid.UUID, lock: str | None = None
) -> Attempt:
    found: Attempt | None = await session.scalar(
        _locked(select(Attempt).where(Attempt.id == attempt_id), lock)
    )
    if found is None:
        raise AttemptNotFound()
    return found


async def _own_attempt(
    session: AsyncSession, *, principal: Principal, attempt_id: uuid.UUID, lock: str | None
) -> Attempt:
    """The caller's own attempt; anyone else's is 404 (its existence is private)."""
    attempt = await _attempt(session, attempt_id=attempt_id, lock=lock)
    if attempt.user_id != principal.user_id:
        raise AttemptNotFound()
    return attempt


async def _taught_attempt(
    session: AsyncSession, *, principal: Principal, attempt_id: uuid.UUID
) -> tuple[Attempt, Quiz]:
    """An attempt of a quiz the caller teaches (locked), or 404/403."""
    attempt = await _attempt(session, attempt_id=attempt_id, lock="update")
    quiz = await get_quiz(session, quiz_id=attempt.quiz_id)
    await _ensure_teaches_quiz(session, principal=principal, quiz=quiz)
    return attempt, quiz


async def _running(
    session: AsyncSession, *, quiz_id: uuid.UUID, user_id: uuid.UUID
) -> Attempt | None:
    found: Attempt | None = await session.scalar(
        select(Attempt)
        .where(
            Attempt.quiz_id == quiz_id,
            Attempt.user_id == user_id,
            Attempt.status == AttemptStatus.IN_PROGRESS,
        )
        .order_by(Attempt.number.desc())
        .limit(1)
        .execution_options(populate_existing=True)
    )
    return found


# --------------------------------------------------------------------------- starting


async def start_attempt(
    session: AsyncSession,
    *,
    principal: Principal,
    quiz_id: uuid.UUID,
    now: datetime,
    rng: random.Random | None = None,
) -> Started:
    """Start an attempt (created) or return the one in progress (not created)."""
    quiz = await _learner_quiz(session, principal=principal, quiz_id=quiz_id)
    # A key-share lock on the quiz (shared by every learner starting, so starts do not queue):
    # an accommodation change locks the quiz for update, so it either commits before this start
    # reads the accommodation or waits until this attempt exists and then moves its deadline.
    await session.execute(select(Quiz.id).where(Quiz.id == quiz.id).with_for_update(key_share=True))
    user_id = principal.user_id
    if not await is_enrolled(session, user_id=user_id, course_id=quiz.course_id):
        raise EnrollmentRequired()
    # Serialise this learner's starts on their attempts of the quiz (the first start has no
    # row to lock: the unique (quiz, user, number) decides that race below).
    previous = list(
        await session.scalars(
            select(Attempt)
            .where(Attempt.quiz_id == quiz.id, Attempt.user_id == user_id)
            .order_by(Attempt.number)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    )
    running = next((a for a in previous if a.status == AttemptStatus.IN_PROGRESS), None)
    if running is not None:
        return Started(running, created=False)
    accommodation = await _accommodation(session, quiz_id=quiz.id, user_id=user_id)
    if not window_open(now, quiz, accommodation):
        opens = opens_for(quiz, accommodation)
        if opens is not None and now < opens:
            raise QuizNotOpen(details=[{"opens_at": opens.isoformat()}])
        raise QuizClosed()
    if quiz.max_attempts is not None:
        allowed = quiz.max_attempts + (accommodation.extra_attempts if accommodation else 0)
        if len(previous) >= allowed:
            raise NoAttemptsLeft(details=[{"attempts_allowed": allowed}])
    ended = [a.submitted_at for a in previous if a.submitted_at is not None]
    if quiz.min_wait_seconds > 0 and ended:
        ready_at = max(ended) + timedelta(seconds=quiz.min_wait_seconds)
        if now < ready_at:
            raise WaitBeforeRetry((ready_at - now).total_seconds())

    rng = rng or random.SystemRandom()
    drawn = await draw_questions(session, quiz=quiz, rng=rng)
    if not drawn:
        raise QuizEmpty()
    attempt = Attempt(
        id=uuid.uuid4(),
        quiz_id=quiz.id,
        user_id=user_id,
        number=max((a.number for a in previous), default=0) + 1,
        status=AttemptStatus.IN_PROGRESS.value,
        started_at=now,
        deadline=deadline_for(
            now, quiz.time_limit_seconds, accommodation, closes_for(quiz, accommodation)
        ),
        max_score=_total(v.points for v in drawn),
    )
    try:
        async with session.begin_nested():
            session.add(attempt)
    except IntegrityError:
        winner = await _running(session, quiz_id=quiz.id, user_id=user_id)
        if winner is None:
            raise ConcurrentUpdate() from None
        return Started(winner, created=False)
    for position, version in enumerate(drawn):
        session.add(
            AttemptQuestion(
                attempt_id=attempt.id,
                position=position,
                question_version_id=version.id,
                option_order=grading.draw_option_order(
                    spec_of(version), rng, shuffle=quiz.shuffle_options
                ),
                points=version.points,
            )
        )
    await session.flush()
    return Started(attempt, created=True)


async def draw_questions(
    session: AsyncSession, *, quiz: Quiz, rng: random.Random
) -> list[QuestionVersion]:
    """The current versions of the attempt's questions, in the order shown: fixed slots as
    placed, pools drawn at random (distinct, non-archived, never a question already placed),
    all shuffled when the quiz says so. A pool short of questions gives what it has."""
    slots = list(
        await session.scalars(
            select(QuizSlot).where(QuizSlot.quiz_id == quiz.id).order_by(QuizSlot.position)
        )
    )
    taken = {s.question_id for s in slots if s.question_id is not None}
    # Pools share questions when tags overlap: drawing them one by one at random could leave a
    # later pool short although a full draw exists (the publish check proves one does). So the
    # draws are one matching over shuffled candidates: random, and full whenever possible.
    demand: dict[str, int] = {}
    members: dict[str, list[uuid.UUID]] = {}
    for slot in slots:
        if slot.question_id is not None or slot.pool_tag is None:
            continue
        key = str(slot.position)
        candidates = [
            c
            for c in sorted(
                await session.scalars(
                    select(Question.id)
                    .join(QuestionTag, QuestionTag.question_id == Question.id)
                    .where(
                        Question.course_id == quiz.course_id,
                        Question.archived.is_(False),
                        QuestionTag.tag == slot.pool_tag,
                    )
                )
            )
            if c not in taken
        ]
        rng.shuffle(candidates)
        demand[key], members[key] = slot.pool_count, candidates
    owner, _short = assign_pools(demand, members)
    drawn: dict[str, list[uuid.UUID]] = {}
    for question, key in owner.items():
        drawn.setdefault(key, []).append(question)
    chosen: list[uuid.UUID] = []
    for slot in slots:
        if slot.question_id is not None:
            if slot.question_id not in chosen:
                chosen.append(slot.question_id)
        else:
            picked = drawn.get(str(slot.position), [])
            rng.shuffle(picked)
            chosen.extend(picked)
    if not chosen:
        return []
    # Read under a key-share lock: a question edited in place at this moment cannot change
    # under the attempt (its option order is drawn from the version read here).
    versions = {
        v.question_id: v
        for v in await session.scalars(
            select(QuestionVersion)
            .join(Question, Question.id == QuestionVersion.question_id)
            .where(Question.id.in_(chosen), QuestionVersion.version == Question.current_version)
            .with_for_update(of=QuestionVersion, key_share=True)
        )
    }
    ordered = [versions[q] for q in chosen if q in versions]
    if quiz.shuffle_questions:
        rng.shuffle(ordered)
    return ordered


def _total(values: Any) -> float:
    return round(math.fsum(values), 6)


# --------------------------------------------------------------------------- answering


def _parse(spec: QuestionSpec, data: Any, option_order: list[str]) -> dict[str, Any]:
    """A learner's labelled response in its stored (spec-id) form, or 422."""
    try:
        return grading.parse_response(spec, data, option_order=option_order)
    except grading.InvalidResponse as exc:
        details = [d | {"loc": ["body", "response", *d.get("loc", [])]} for d in exc.details]
        raise InvalidResponse(details=details) from None
    except (ValueError, TypeError):  # anything else the response model refuses
        raise InvalidResponse() from None


async def _question_at(
    session: AsyncSession, *, attempt: Attempt, position: int
) -> tuple[AttemptQuestion, QuestionVersion]:
    row = (
        await session.execute(
            select(AttemptQuestion, QuestionVersion)
            .join(QuestionVersion, QuestionVersion.id == AttemptQuestion.question_version_id)
            .where(AttemptQuestion.attempt_id == attempt.id, AttemptQuestion.position == position)
        )
    ).first()
    if row is None:
        raise QuestionNotFound()
    return row[0], row[1]


async def _answer_of(
    session: AsyncSession, *, attempt_question_id: uuid.UUID, lock: bool = False
) -> Answer | None:
    query = select(Answer).where(Answer.attempt_question_id == attempt_question_id)
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    found: Answer | None = await session.scalar(query)
    return found


def _ensure_in_time(attempt: Attempt, quiz: Quiz, now: datetime) -> None:
    if attempt.status != AttemptStatus.IN_PROGRESS:
        raise AttemptClosed()
    if not accepts(now, accept_until(attempt.deadline, quiz)):
        raise DeadlinePassed()


async def save_answer(
    session: AsyncSession,
    *,
    principal: Principal,
    attempt_id: uuid.UUID,
    position: int,
    response: Any,
    revision: int,
    now: datetime,
) -> Saved:
    """Autosave one answer: the highest revision wins; equal revision and equal response is
    a no-op, equal revision with another response or a lower one is refused."""
    attempt = await _own_attempt(session, principal=principal, attempt_id=attempt_id, lock="share")
    quiz = await get_quiz(session, quiz_id=attempt.quiz_id)
    _ensure_in_time(attempt, quiz, now)
    question, version = await _question_at(session, attempt=attempt, position=position)
    spec = spec_of(version)
    parsed = _parse(spec, response, list(question.option_order))
    first = await _insert_first_answer(
        session, question=question, response=parsed, revision=revision, now=now
    )
    if first is not None:  # the common case: one statement
        return Saved(first, position, _labelled(spec, first, question))
    stored = await _answer_of(session, attempt_question_id=question.id, lock=True)
    if stored is None:
        raise ConcurrentUpdate()  # inserted by someone else, then gone: a reset raced this
    if revision < stored.revision:
        raise StaleAnswer(details=[{"stored_revision": stored.revision}])
    if revision == stored.revision:
        if stored.response == parsed:
            return Saved(stored, position, _labelled(spec, stored, question))
        raise RevisionConflict(details=[{"stored_revision": stored.revision}])
    stored.response = parsed
    stored.revision = revision
    stored.saved_at = now
    return Saved(stored, position, _labelled(spec, stored, question))


async def _insert_first_answer(
    session: AsyncSession,
    *,
    question: AttemptQuestion,
    response: dict[str, Any],
    revision: int,
    now: datetime,
) -> Answer | None:
    """The question's first answer in one `INSERT ... ON CONFLICT DO NOTHING` (PostgreSQL and
    SQLite); None when an answer exists already (a concurrent first save included: the unique
    index makes this statement wait for it), which the caller then judges under a row lock."""
    values = {
        "id": uuid.uuid4(),
        "attempt_question_id": question.id,
        "response": response,
        "revision": revision,
        "saved_at": now,
        "feedback": "",
    }
    statement = (
        upsert_for(session, Answer)
        .values(**values)
        .on_conflict_do_nothing(index_elements=[Answer.attempt_question_id])
        .returning(Answer.id)
    )
    if await session.scalar(statement) is None:
        return None
    return Answer(**values)


def _labelled(spec: QuestionSpec, answer: Answer, question: AttemptQuestion) -> dict[str, Any]:
    shown = grading.public_response(spec, answer.response, option_order=list(question.option_order))
    return shown if shown is not None else {}


# --------------------------------------------------------------------------- grading


async def _questions(
    session: AsyncSession, *, attempt: Attempt
) -> list[tuple[AttemptQuestion, QuestionVersion, Answer | None]]:
    rows = await session.execute(
        select(AttemptQuestion, QuestionVersion, Answer)
        .join(QuestionVersion, QuestionVersion.id == AttemptQuestion.question_version_id)
        .outerjoin(Answer, Answer.attempt_question_id == AttemptQuestion.id)
        .where(AttemptQuestion.attempt_id == attempt.id)
        .order_by(AttemptQuestion.position)
        .execution_options(populate_existing=True)
    )
    return [(aq, version, answer) for aq, version, answer in rows.all()]


async def _grade_attempt(session: AsyncSession, *, attempt: Attempt, quiz: Quiz) -> None:
    """Grade every stored answer (keeping an instructor's manual grades, within the points)
    and settle the attempt's score, percent and passed."""
    scores: list[float] = []
    pending = False
    for question, version, answer in await _questions(session, attempt=attempt):
        if answer is None:
            continue
        if answer.graded_by is not None:
            answer.score = min(max(0.0, answer.score or 0.0), question.points)
        else:
            grade = grading.grade(spec_of(version), answer.response, points=question.points)
            answer.score = min(max(0.0, grade.score), question.points)
            answer.state = grade.state.value
            answer.feedback = "\n\n".join(grade.feedback)
        pending = pending or answer.state == grading.GradeState.NEEDS_GRADING
        scores.append(answer.score)
    attempt.needs_grading = pending
    attempt.score = min(_total(scores), attempt.max_score)
    _settle(attempt, quiz)


def effective_score(attempt: Attempt) -> float | None:
    """The score that counts: an instructor's override, else the graded score."""
    if attempt.override_score is not None:
        return min(attempt.override_score, attempt.max_score)
    return attempt.score


def _settle(attempt: Attempt, quiz: Quiz) -> None:
    """Percent and passed from the effective score. Passed stays None (pending) while an
    essay awaits grading and the score so far does not pass already."""
    score = effective_score(attempt)
    if score is None:
        attempt.percent = attempt.passed = None
        return
    raw = 100.0 if attempt.max_score <= 0 else 100.0 * score / attempt.max_score
    raw = min(100.0, max(0.0, raw))
    attempt.percent = round(raw, 4)
    if raw + 1e-9 >= quiz.pass_percent:
        attempt.passed = True
    elif attempt.needs_grading and attempt.override_score is None:
        attempt.passed = None
    else:
        attempt.passed = False


async def _complete_on_pass(
    session: AsyncSession, *, attempt: Attempt, quiz: Quiz
) -> list[Completion]:
    """A passed attempt completes the course's quiz lessons of this quiz (enrolled only)."""
    if attempt.passed is not True:
        return []
    lessons = list(
        await session.scalars(
            select(Lesson).where(
                Lesson.course_id == quiz.course_id,
                Lesson.quiz_id == quiz.id,
                Lesson.kind == LessonKind.QUIZ.value,
            )
        )
    )
    if not lessons:
        return []
    enrollment: Enrollment | None = await session.scalar(
        select(Enrollment).where(
            Enrollment.user_id == attempt.user_id,
            Enrollment.course_id == quiz.course_id,
            Enrollment.status.in_(OPEN),
        )
    )
    if enrollment is None:
        return []
    completions: list[Completion] = []
    for lesson in lessons:
        change = await complete_lesson(session, enrollment=enrollment, lesson=lesson)
        if change is not None:
            completions.append(Completion(change, lesson.id))
    return completions


async def submit_attempt(
    session: AsyncSession, *, principal: Principal, attempt_id: uuid.UUID, now: datetime
) -> Graded:
    """Submit in time and grade now; a submitted attempt answers the same result again."""
    attempt = await _own_attempt(session, principal=principal, attempt_id=attempt_id, lock="update")
    if attempt.status == AttemptStatus.SUBMITTED:
        return Graded(attempt)
    quiz = await get_quiz(session, quiz_id=attempt.quiz_id)
    _ensure_in_time(attempt, quiz, now)
    return await _close(session, attempt=attempt, quiz=quiz, now=now, by=LEARNER)


async def _close(
    session: AsyncSession, *, attempt: Attempt, quiz: Quiz, now: datetime, by: str
) -> Graded:
    await _grade_attempt(session, attempt=attempt, quiz=quiz)
    attempt.status = AttemptStatus.SUBMITTED.value
    attempt.submitted_at = now
    attempt.submitted_by = by
    await session.flush()
    return Graded(attempt, await _complete_on_pass(session, attempt=attempt, quiz=quiz))


async def sweep_overdue(
    session: AsyncSession,
    *,
    now: datetime,
    limit: int = 200,
    completions: list[Completion] | None = None,
) -> int:
    """Close attempts still in progress past deadline + grace (+ the quiz's overdue grace):
    submitted and graded with what was saved, or abandoned, per the quiz's policy. Rows are
    taken `FOR UPDATE SKIP LOCKED`, so concurrent sweepers each close different attempts
    and none twice. Lessons completed by passing are appended to `completions`."""
    cutoff = now - GRACE
    query = (
        select(Attempt, Quiz)
        .join(Quiz, Quiz.id == Attempt.quiz_id)
        .where(
            Attempt.status == AttemptStatus.IN_PROGRESS,
            Attempt.deadline.is_not(None),
            Attempt.deadline < cutoff,
        )
        .order_by(Attempt.deadline)
        .limit(limit)
        .with_for_update(of=Attempt, skip_locked=True)
        .execution_options(populate_existing=True)
    )
    if session.get_bind().dialect.name == "postgresql":
        # Grace-policy attempts still taking saves are left out in SQL, so they cannot
        # fill the batch (elsewhere the check below alone decides).
        query = query.where(
            or_(
                Quiz.overdue_policy != OverduePolicy.GRACE.value,
                Attempt.deadline
                + Quiz.overdue_grace_seconds * literal_column("interval '1 second'")
                < cutoff,
            )
        )
    closed = 0
    for attempt, quiz in (await session.execute(query)).all():
        if accepts(now, accept_until(attempt.deadline, quiz)):
            continue
        if quiz.overdue_policy == OverduePolicy.ABANDON:
            attempt.status = AttemptStatus.ABANDONED.value
            attempt.submitted_at = now
            attempt.submitted_by = SWEEPER
        else:
            graded = await _close(session, attempt=attempt, quiz=quiz, now=now, by=SWEEPER)
            if completions is not None:
                completions.extend(graded.completions)
        closed += 1
    await session.flush()
    return closed


# --------------------------------------------------------------------------- review


async def show_attempt(
    session: AsyncSession, *, principal: Principal, attempt_id: uuid.UUID, now: datetime
) -> AttemptShown:
    """An attempt as its learner may see it now (review policy), or in full for the course's
    instructors once it is no longer in progress; anyone else: 404."""
    attempt = await _attempt(session, attempt_id=attempt_id)
    quiz = await get_quiz(session, quiz_id=attempt.quiz_id)
    accommodation = await _accommodation(session, quiz_id=quiz.id, user_id=attempt.user_id)
    if attempt.user_id == principal.user_id:
        review = review_for(
            quiz,
            accommodation,
            submitted=attempt.status != AttemptStatus.IN_PROGRESS,
            now=now,
        )
    elif await _teaches_quiz(session, principal=principal, quiz=quiz):
        review = FULL_REVIEW if attempt.status != AttemptStatus.IN_PROGRESS else Review()
    else:
        raise AttemptNotFound()
    return AttemptShown(
        attempt=attempt,
        quiz=quiz,
        review=review,
        deadline=attempt.deadline,
        questions=await _shown_questions(session, attempt=attempt, review=review),
    )


async def _shown_questions(
    session: AsyncSession, *, attempt: Attempt, review: Review
) -> list[QuestionShown]:
    in_progress = attempt.status == AttemptStatus.IN_PROGRESS
    graded = attempt.status == AttemptStatus.SUBMITTED
    shown: list[QuestionShown] = []
    for question, version, answer in await _questions(session, attempt=attempt):
        spec = spec_of(version)
        order = list(question.option_order)
        mine = answer if answer is not None and (in_progress or review.answers) else None
        state: str | None = None
        earned: float | None = None
        feedback: str | None = None
        if graded:
            if answer is None:
                state, earned, feedback = grading.GradeState.UNANSWERED.value, 0.0, ""
            else:
                state, earned, feedback = answer.state, answer.score, answer.feedback
        shown.append(
            QuestionShown(
                position=question.position,
                prompt=version.prompt,
                image_file=version.image_file,
                points=question.points,
                view=grading.public_view(spec, option_order=order),
                response=_labelled(spec, mine, question) if mine else None,
                revision=mine.revision if mine else None,
                saved_at=mine.saved_at if mine else None,
                state=state if review.correctness else None,
                score=earned if review.points else None,
                feedback=feedback if review.feedback else None,
                general_feedback=version.general_feedback if review.feedback else None,
                right_answer=grading.public_response(
                    spec, grading.right_answer(spec), option_order=order
                )
                if review.right_answers
                else None,
            )
        )
    return shown


# --------------------------------------------------------------------------- learner result


async def my_result(
    session: AsyncSession, *, principal: Principal, quiz_id: uuid.UUID, now: datetime
) -> QuizResult:
    """The learner's attempts on a quiz and the result by the quiz's grading method."""
    quiz = await _learner_quiz(session, principal=principal, quiz_id=quiz_id)
    accommodation = await _accommodation(session, quiz_id=quiz.id, user_id=principal.user_id)
    attempts = list(
        await session.scalars(
            select(Attempt)
            .where(Attempt.quiz_id == quiz.id, Attempt.user_id == principal.user_id)
            .order_by(Attempt.number)
        )
    )
    if not attempts and not await is_enrolled(
        session, user_id=principal.user_id, course_id=quiz.course_id
    ):
        # Like starting one: a result is for the course's learners (who keep theirs if they
        # leave it); anyone else learns nothing about the quiz's rules here.
        raise EnrollmentRequired()
    submitted = [a for a in attempts if a.status == AttemptStatus.SUBMITTED]
    points_visible = review_for(quiz, accommodation, submitted=True, now=now).points
    percent, passed = grade_across(quiz, submitted)
    allowed = None
    if quiz.max_attempts is not None:
        allowed = quiz.max_attempts + (accommodation.extra_attempts if accommodation else 0)
    ended = [a.submitted_at for a in attempts if a.submitted_at is not None]
    next_at = None
    if ended and quiz.min_wait_seconds > 0:
        ready = max(ended) + timedelta(seconds=quiz.min_wait_seconds)
        next_at = ready if ready > now else None
    return QuizResult(
        quiz=quiz,
        attempts=attempts,
        points_visible=points_visible,
        percent=percent,
        passed=passed,
        attempts_allowed=allowed,
        next_attempt_at=next_at,
    )


def grade_across(quiz: Quiz, submitted: Sequence[Attempt]) -> tuple[float | None, bool | None]:
    """The quiz percent by its grading method (highest, latest, average) and whether it
    passes (None: no submitted attempt yet, or pending essays that may still decide)."""
    scored = [a for a in submitted if a.percent is not None]
    if not scored:
        return None, None
    method = quiz.grading_method
    if method == GradingMethod.LATEST:
        counted = [max(scored, key=lambda a: a.number)]
    elif method == GradingMethod.AVERAGE:
        counted = scored
    else:
        counted = [max(scored, key=lambda a: a.percent or 0.0)]
    percent = round(math.fsum(a.percent or 0.0 for a in counted) / len(counted), 4)
    if percent + 1e-9 >= quiz.pass_percent:
        return percent, True
    if any(a.passed is None for a in counted):
        return percent, None
    return percent, False


# --------------------------------------------------------------------------- instructors


async def list_attempts(
    session: AsyncSession,
    *,
    principal: Principal,
    quiz_id: uuid.UUID,
    user_id: uuid.UUID | None,
    status: AttemptStatus | None,
    limit: int,
    offset: int,
) -> tuple[list[tuple[Attempt, User]], int]:
    """A quiz's attempts (newest first) with their learners, for its course's instructors."""
    quiz = await get_quiz(session, quiz_id=quiz_id)
    await _ensure_teaches_quiz(session, principal=principal, quiz=quiz)
    where = [Attempt.quiz_id == quiz.id]
    if user_id is not None:
        where.append(Attempt.user_id == user_id)
    if status is not None:
        where.append(Attempt.status == status.value)
    total = await session.scalar(select(func.count()).select_from(Attempt).where(*where))
    rows = await session.execute(
        select(Attempt, User)
        .join(User, User.id == Attempt.user_id)
        .where(*where)
        .order_by(Attempt.started_at.desc(), Attempt.number.desc(), Attempt.id)
        .limit(limit)
        .offset(offset)
    )
    return [(a, u) for a, u in rows.all()], int(total or 0)


async def grade_answer(
    session: AsyncSession,
    *,
    principal: Principal,
    attempt_id: uuid.UUID,
    position: int,
    score: float,
    feedback: str,
    now: datetime,
) -> Graded:
    """An instructor grades one answer (essays, or overrides any answer's auto grade)."""
    attempt, quiz = await _taught_attempt(session, principal=principal, attempt_id=attempt_id)
    if attempt.status == AttemptStatus.IN_PROGRESS:
        raise AttemptInProgress()
    if attempt.status != AttemptStatus.SUBMITTED:
        raise AttemptNotSubmitted()
    question, _ = await _question_at(session, attempt=attempt, position=position)
    if score > question.points:
        raise ScoreOutOfRange(details=[{"max": question.points}])
    answer = await _answer_of(session, attempt_question_id=question.id, lock=True)
    if answer is None:
        raise NotAnswered()
    answer.score = score
    answer.state = _state_of(score, question.points).value
    answer.feedback = feedback
    answer.graded_by = principal.user_id
    answer.graded_at = now
    await session.flush()
    was_passed = attempt.passed
    await _grade_attempt(session, attempt=attempt, quiz=quiz)
    completions = []
    if was_passed is not True:
        completions = await _complete_on_pass(session, attempt=attempt, quiz=quiz)
    return Graded(attempt, completions)


def _state_of(score: float, points: float) -> grading.GradeState:
    if points > 0 and score >= points:
        return grading.GradeState.CORRECT
    if score > 0:
        return grading.GradeState.PARTIAL
    return grading.GradeState.CORRECT if points == 0 else grading.GradeState.INCORRECT


async def override_score(
    session: AsyncSession,
    *,
    principal: Principal,
    attempt_id: uuid.UUID,
    score: float | None,
    reason: str,
) -> Graded:
    """Set (or with None, remove) an instructor's score for a submitted attempt."""
    attempt, quiz = await _taught_attempt(session, principal=principal, attempt_id=attempt_id)
    if attempt.status == AttemptStatus.IN_PROGRESS:
        raise AttemptInProgress()
    if attempt.status != AttemptStatus.SUBMITTED:
        raise AttemptNotSubmitted()
    if score is not None and score > attempt.max_score:
        raise ScoreOutOfRange(details=[{"max": attempt.max_score}])
    was_passed = attempt.passed
    attempt.override_score = score
    attempt.override_reason = reason if score is not None else None
    _settle(attempt, quiz)
    await session.flush()
    completions = []
    if was_passed is not True:
        completions = await _complete_on_pass(session, attempt=attempt, quiz=quiz)
    return Graded(attempt, completions)


async def reset_attempts(
    session: AsyncSession, *, principal: Principal, quiz_id: uuid.UUID, user_id: uuid.UUID
) -> int:
    """Delete a learner's attempts on a quiz (answers go with them); lessons stay completed."""
    quiz = await get_quiz(session, quiz_id=quiz_id)
    await _ensure_teaches_quiz(session, principal=principal, quiz=quiz)
    ids = list(
        await session.scalars(
            select(Attempt.id)
            .where(Attempt.quiz_id == quiz.id, Attempt.user_id == user_id)
            .with_for_update()
        )
    )
    if ids:
        await session.execute(
            delete(Attempt).where(Attempt.id.in_(ids)).execution_options(synchronize_session=False)
        )
        for attempt in [o for o in session.identity_map.values() if isinstance(o, Attempt)]:
            if attempt.id in ids:
                session.expunge(attempt)
    return len(ids)


async def regrade(
    session: AsyncSession, *, principal: Principal, quiz_id: uuid.UUID, to_current_version: bool
) -> Regraded:
    """Recompute every submitted attempt from its stored answers, with each attempt's own
    question versions or (`to_current_version`) re-pointed to the questions' current ones.
    Returns the attempts whose score, percent or passed changed."""
    quiz = await get_quiz(session, quiz_id=quiz_id)
    await _ensure_teaches_quiz(session, principal=principal, quiz=quiz)
    attempts = list(
        await session.scalars(
            select(Attempt)
            .where(Attempt.quiz_id == quiz.id, Attempt.status == AttemptStatus.SUBMITTED)
            .order_by(Attempt.id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    )
    current: dict[uuid.UUID, QuestionVersion] = {}
    changed: list[Attempt] = []
    completions: list[Completion] = []
    for attempt in attempts:
        before = (attempt.max_score, effective_score(attempt), attempt.percent, attempt.passed)
        if to_current_version:
            await _repoint(session, attempt=attempt, current=current)
        await _grade_attempt(session, attempt=attempt, quiz=quiz)
        after = (attempt.max_score, effective_score(attempt), attempt.percent, attempt.passed)
        if after != before:
            changed.append(attempt)
            if before[3] is not True:
                completions.extend(await _complete_on_pass(session, attempt=attempt, quiz=quiz))
    await session.flush()
    return Regraded(len(attempts), changed, completions)


async def _repoint(
    session: AsyncSession, *, attempt: Attempt, current: dict[uuid.UUID, QuestionVersion]
) -> None:
    """Move an attempt's questions to their current versions (points and options follow:
    the stored option order is kept, options new in the version are appended)."""
    points: list[float] = []
    for question, version, _ in await _questions(session, attempt=attempt):
        latest = current.get(version.question_id)
        if latest is None:
            latest = await session.scalar(
                select(QuestionVersion)
                .join(Question, Question.id == QuestionVersion.question_id)
                .where(
                    Question.id == version.question_id,
                    QuestionVersion.version == Question.current_version,
                )
            )
            if latest is None:
                latest = version
            current[version.question_id] = latest
        if latest.id != version.id:
            ids = grading.draw_option_order(spec_of(latest), random.Random(0), shuffle=False)
            kept = [i for i in question.option_order if i in ids]
            question.option_order = kept + [i for i in ids if i not in kept]
            question.question_version_id = latest.id
            question.points = latest.points
        points.append(question.points)
    attempt.max_score = _total(points)
    if attempt.override_score is not None and attempt.override_score > attempt.max_score:
        attempt.override_score = attempt.max_score
    await session.flush()
