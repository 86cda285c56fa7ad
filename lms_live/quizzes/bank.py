"""The question bank and quiz authoring: questions and their versions, quizzes, their slots
(fixed questions or tag pools), publication checks and per-learner accommodations.

Invariants (see quizzes.models):
- a question version that an attempt shows never changes: a content edit of a used version
  adds version n+1 and moves `question.current_version`; an unused one is edited in place. The
  current version is locked (FOR UPDATE) before the usage check, so an attempt referencing it
  (the foreign key key-share locks it) has either committed and is seen, or waits for the
  edit; an attempt that reads the versions it draws FOR KEY SHARE never draws from content
  being edited;
- questions are never deleted, only archived: archived questions are not drawn from pools, and
  a fixed slot on one keeps a quiz from being published;
- every quiz write (fields, slots, publication, accommodations) locks the quiz row first;
- a published quiz stays publishable (`publication_problems` is empty): checked when it is
  published, when its slots are replaced, and when a question it uses is archived or loses a
  tag (those lock the published quizzes concerned). Lock order: question, then quiz, then
  question version; an attempt starting takes its quiz (key share) before a version;
- the questions of one attempt are distinct: a pool never draws a question fixed elsewhere in
  the quiz nor one another pool drew, and the publication check counts the same way (a
  matching of pools to questions);
- changing or removing an accommodation moves the deadline of that learner's attempt in
  progress (`deadlines.recompute_open_attempt`) in the same transaction;
- a page of questions or quizzes costs a fixed number of queries, whatever its size.
"""

from __future__ import annotations

import uuid
from collections import defaultdict, deque
from collections.abc import Collection, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, and_, case, delete, exists, func, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from lms_live.auth.exceptions import UserNotFound
from lms_live.auth.models import User
from lms_live.core.db import like_contains, utcnow
from lms_live.core.errors import Conflict, NotFound, ValidationFailed
from lms_live.core.security import Principal
from lms_live.courses.access import ensure_teaches, get_course
from lms_live.courses.models import Course, Lesson
from lms_live.enrollments.access import OPEN
from lms_live.enrollments.models import Enrollment
from lms_live.quizzes import deadlines
from lms_live.quizzes.formats import ImportedQuestion
from lms_live.quizzes.models import (
    Accommodation,
    Attempt,
    AttemptQuestion,
    AttemptStatus,
    Question,
    QuestionTag,
    QuestionVersion,
    Quiz,
    QuizSlot,
)
from lms_live.quizzes.spec import QuestionSpec, load_spec

K = TypeVar("K", bound=Hashable)

MAX_QUESTIONS_PER_ATTEMPT = 500
EXCERPT = 200
# A version's content: what a learner sees and is graded on.
CONTENT_FIELDS = ("type", "prompt", "points", "general_feedback", "image_file", "body")
QUIZ_FIELDS = (
    "title",
    "instructions",
    "time_limit_seconds",
    "opens_at",
    "closes_at",
    "max_attempts",
    "min_wait_seconds",
    "pass_percent",
    "grading_method",
    "shuffle_questions",
    "shuffle_options",
    "review_policy",
    "overdue_policy",
    "overdue_grace_seconds",
)
ALLOWANCE_FIELDS = ("extra_seconds", "time_multiplier", "extra_attempts", "opens_at", "closes_at")


# --------------------------------------------------------------------------- errors


class QuestionNotFound(NotFound):
    code = "question_not_found"
    message = "No such question."


class QuestionVersionNotFound(NotFound):
    code = "question_version_not_found"
    message = "This question has no such version."


class QuizNotFound(NotFound):
    code = "quiz_not_found"
    message = "No such quiz."


class AccommodationNotFound(NotFound):
    code = "accommodation_not_found"
    message = "This learner has no accommodation on this quiz."


class QuizHasAttempts(Conflict):
    code = "quiz_has_attempts"
    message = "Learners have attempted this quiz; unpublish it instead."


class QuizUsedByLesson(Conflict):
    code = "quiz_used_by_lesson"
    message = "A lesson shows this quiz; change or delete the lesson first."


class QuestionNeededByQuiz(Conflict):
    code = "question_needed_by_quiz"
    message = "A published quiz needs this question; see the details."


class QuizNotReady(ValidationFailed):
    code = "quiz_not_ready"
    message = "The quiz cannot be published as it is; see the details."


class QuizWindowInvalid(ValidationFailed):
    code = "quiz_window_invalid"
    message = "The quiz must close after it opens."


class SlotQuestionInvalid(ValidationFailed):
    code = "slot_question_invalid"
    message = "Some slots name a question this quiz cannot use; see the details."


class TooManyQuestions(ValidationFailed):
    code = "too_many_questions"
    message = f"An attempt may hold at most {MAX_QUESTIONS_PER_ATTEMPT} questions."


class ImportInvalid(ValidationFailed):
    code = "import_invalid"
    message = "The file cannot be imported; nothing was. See the details."


class LearnerNotEnrolled(ValidationFailed):
    code = "learner_not_enrolled"
    message = "Accommodations are for learners enrolled in the course; see the details."


# --------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class QuestionDraft:
    """The fields of a new question (validated by the schema)."""

    title: str
    prompt: str
    points: float
    general_feedback: str
    image_file: str | None
    tags: list[str]
    body: QuestionSpec


@dataclass(frozen=True, slots=True)
class VersionFacts:
    version: int
    type: str
    points: float
    created_at: datetime
    used: bool


@dataclass(frozen=True, slots=True)
class QuestionView:
    """A question, its tags, its current version in full and every version's facts."""

    question: Question
    tags: list[str]
    current: QuestionVersion
    current_used: bool
    versions: list[VersionFacts]


@dataclass(frozen=True, slots=True)
class QuestionItem:
    """A question as lists show it: its current version's type, points and prompt start."""

    question: Question
    tags: list[str]
    type: str
    points: float
    excerpt: str


@dataclass(frozen=True, slots=True)
class QuestionPage:
    items: list[QuestionItem]
    total: int


@dataclass(frozen=True, slots=True)
class QuizView:
    quiz: Quiz
    slot_count: int
    question_count: int
    attempt_count: int


@dataclass(frozen=True, slots=True)
class QuizPage:
    items: list[QuizView]
    total: int


@dataclass(frozen=True, slots=True)
class SlotDraft:
    """A fixed question (`question_id`) or a pool (`pool_tag`, `pool_count`)."""

    question_id: uuid.UUID | None = None
    pool_tag: str | None = None
    pool_count: int = 1


@dataclass(frozen=True, slots=True)
class SlotQuestion:
    id: uuid.UUID
    title: str
    type: str
    points: float
    archived: bool
    current_version: int


@dataclass(frozen=True, slots=True)
class SlotView:
    slot: QuizSlot
    question: SlotQuestion | None
    available: int | None


@dataclass(frozen=True, slots=True)
class SlotsView:
    quiz_id: uuid.UUID
    slots: list[SlotView]
    question_count: int


@dataclass(frozen=True, slots=True)
class AccommodationView:
    accommodation: Accommodation
    full_name: str


# --------------------------------------------------------------------------- shared lookups


async def _taught_course(
    session: AsyncSession, *, principal: Principal, course_id: uuid.UUID
) -> Course:
    course = await get_course(session, course_id=course_id)
    await ensure_teaches(session, principal=principal, course=course)
    return course


async def _taught_question(
    session: AsyncSession, *, principal: Principal, question_id: uuid.UUID, lock: bool = False
) -> Question:
    """The question (404 `question_not_found`), if the caller teaches its course (403)."""
    question = await session.get(Question, question_id, with_for_update=lock or None)
    if question is None:
        raise QuestionNotFound()
    await _taught_course(session, principal=principal, course_id=question.course_id)
    return question


async def _taught_quiz(
    session: AsyncSession, *, principal: Principal, quiz_id: uuid.UUID, lock: bool = False
) -> Quiz:
    """The quiz (404 `quiz_not_found`), if the caller teaches its course (403)."""
    quiz = await session.get(Quiz, quiz_id, with_for_update=lock or None)
    if quiz is None:
        raise QuizNotFound()
    await _taught_course(session, principal=principal, course_id=quiz.course_id)
    return quiz


async def _tags(session: AsyncSession, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[str]]:
    found: dict[uuid.UUID, list[str]] = defaultdict(list)
    if ids:
        rows = await session.execute(
            select(QuestionTag.question_id, QuestionTag.tag)
            .where(QuestionTag.question_id.in_(ids))
            .order_by(QuestionTag.question_id, QuestionTag.tag)
        )
        for question_id, tag in rows:
            found[question_id].append(tag)
    return found


async def _replace_tags(session: AsyncSession, question_id: uuid.UUID, tags: Iterable[str]) -> None:
    await session.execute(delete(QuestionTag).where(QuestionTag.question_id == question_id))
    values = [{"question_id": question_id, "tag": tag} for tag in sorted(set(tags))]
    if values:
        await session.execute(insert(QuestionTag), values)


async def _used_versions(session: AsyncSession, ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
    """The versions among `ids` that some attempt shows."""
    if not ids:
        return set()
    return set(
        await session.scalars(
            select(AttemptQuestion.question_version_id)
            .where(AttemptQuestion.question_version_id.in_(ids))
            .distinct()
        )
    )


# --------------------------------------------------------------------------- questions


def _content(draft: QuestionDraft) -> dict[str, Any]:
    return {
        "type": draft.body.type.value,
        "prompt": draft.prompt,
        "points": draft.points,
        "general_feedback": draft.general_feedback,
        "image_file": draft.image_file,
        "body": draft.body.model_dump(mode="json"),
    }


async def _question_view(session: AsyncSession, question: Question) -> QuestionView:
    rows = (
        await session.execute(
            select(
                QuestionVersion.id,
                QuestionVersion.version,
                QuestionVersion.type,
                QuestionVersion.points,
                QuestionVersion.created_at,
            )
            .where(QuestionVersion.question_id == question.id)
            .order_by(QuestionVersion.version)
        )
    ).all()
    used = await _used_versions(session, [row.id for row in rows])
    current = await session.scalar(
        select(QuestionVersion).where(
            QuestionVersion.question_id == question.id,
            QuestionVersion.version == question.current_version,
        )
    )
    if current is None:  # the invariant says never; answer as if the question were gone
        raise QuestionNotFound()
    tags = (await _tags(session, [question.id]))[question.id]
    return QuestionView(
        question=question,
        tags=tags,
        current=current,
        current_used=current.id in used,
        versions=[
            VersionFacts(row.version, row.type, row.points, row.created_at, row.id in used)
            for row in rows
        ],
    )


async def add_questions(
    session: AsyncSession,
    *,
    principal: Principal,
    course_id: uuid.UUID,
    drafts: Sequence[QuestionDraft],
) -> list[Question]:
    """New questions (version 1 each) in a course's bank, in order."""
    course = await _taught_course(session, principal=principal, course_id=course_id)
    questions = [
        Question(
            course_id=course.id,
            title=draft.title,
            current_version=1,
            archived=False,
            created_by=principal.user_id,
        )
        for draft in drafts
    ]
    session.add_all(questions)
    await session.flush()
    session.add_all(
        QuestionVersion(question_id=question.id, version=1, **_content(draft))
        for question, draft in zip(questions, drafts, strict=True)
    )
    tags = [
        {"question_id": question.id, "tag": tag}
        for question, draft in zip(questions, drafts, strict=True)
        for tag in sorted(set(draft.tags))
    ]
    if tags:
        await session.execute(insert(QuestionTag), tags)
    await session.flush()
    return questions


async def create_question(
    session: AsyncSession, *, principal: Principal, course_id: uuid.UUID, draft: QuestionDraft
) -> QuestionView:
    """A new question in a course's bank, at version 1."""
    [question] = await add_questions(
        session, principal=principal, course_id=course_id, drafts=[draft]
    )
    return await _question_view(session, question)


async def get_question(
    session: AsyncSession, *, principal: Principal, question_id: uuid.UUID
) -> QuestionView:
    """A question with its current version and the list of its versions."""
    question = await _taught_question(session, principal=principal, question_id=question_id)
    return await _question_view(session, question)


async def get_question_version(
    session: AsyncSession, *, principal: Principal, question_id: uuid.UUID, version: int
) -> tuple[QuestionVersion, bool, bool]:
    """One version of a question, whether an attempt shows it and whether it is current."""
    question = await _taught_question(session, principal=principal, question_id=question_id)
    found = await session.scalar(
        select(QuestionVersion).where(
            QuestionVersion.question_id == question.id, QuestionVersion.version == version
        )
    )
    if found is None:
        raise QuestionVersionNotFound()
    used = found.id in await _used_versions(session, [found.id])
    return found, used, version == question.current_version


async def list_questions(
    session: AsyncSession,
    *,
    principal: Principal,
    course_id: uuid.UUID,
    tag: str | None = None,
    type: str | None = None,
    search: str | None = None,
    include_archived: bool = False,
    limit: int = 50,
    offset: int = 0,
) -> QuestionPage:
    """A page of a course's bank, newest first, and the total matching."""
    course = await _taught_course(session, principal=principal, course_id=course_id)
    current = and_(
        QuestionVersion.question_id == Question.id,
        QuestionVersion.version == Question.current_version,
    )
    conditions: list[ColumnElement[bool]] = [Question.course_id == course.id]
    if not include_archived:
        conditions.append(Question.archived.is_(False))
    if tag is not None:
        conditions.append(
            exists().where(QuestionTag.question_id == Question.id, QuestionTag.tag == tag)
        )
    if type is not None:
        conditions.append(QuestionVersion.type == type)
    search = (search or "").strip() or None
    if search is not None:
        pattern = like_contains(search)
        conditions.append(
            or_(
                Question.title.ilike(pattern, escape="\\"),
                QuestionVersion.prompt.ilike(pattern, escape="\\"),
            )
        )
    total = await session.scalar(
        select(func.count()).select_from(Question).join(QuestionVersion, current).where(*conditions)
    )
    rows = (
        await session.execute(
            select(
                Question,
                QuestionVersion.type,
                QuestionVersion.points,
                func.substr(QuestionVersion.prompt, 1, EXCERPT),
            )
            .join(QuestionVersion, current)
            .where(*conditions)
            .order_by(Question.created_at.desc(), Question.id)
            .limit(limit)
            .offset(offset)
        )
    ).all()
    tags = await _tags(session, [row[0].id for row in rows])
    return QuestionPage(
        items=[
            QuestionItem(question, tags[question.id], kind, points, excerpt)
            for question, kind, points, excerpt in rows
        ],
        total=int(total or 0),
    )


async def update_question(
    session: AsyncSession,
    *,
    principal: Principal,
    question_id: uuid.UUID,
    changes: Mapping[str, Any],
) -> QuestionView:
    """Change a question: title, tags and `archived` in place; content (prompt, points,
    general_feedback, image_file, body) in place while no attempt shows the current version,
    else as a new version. Content equal to the current one changes nothing."""
    question = await _taught_question(
        session, principal=principal, question_id=question_id, lock=True
    )
    # The question's own fields first: archiving or dropping a tag locks the published
    # quizzes concerned, which must come before the version (an attempt starting holds its
    # quiz, then references a version: the same order, so the two never deadlock).
    old_tags = set((await _tags(session, [question.id]))[question.id])
    was_archived = question.archived
    if "title" in changes:
        question.title = changes["title"]
    if "tags" in changes:
        await _replace_tags(session, question.id, changes["tags"])
    if "archived" in changes:
        question.archived = changes["archived"]
    question.updated_at = utcnow()
    await session.flush()
    lost_tags = old_tags - set(changes["tags"]) if "tags" in changes else set()
    if (question.archived and not was_archived) or lost_tags:
        await _keep_published_quizzes_ready(session, question=question, tags=old_tags)

    content = {name: changes[name] for name in CONTENT_FIELDS if name in changes}
    if "body" in content:
        body = content["body"]
        content["type"] = body.type.value
        content["body"] = body.model_dump(mode="json")
    if content:
        await _change_content(session, question=question, content=content)
    return await _question_view(session, question)


async def _change_content(
    session: AsyncSession, *, question: Question, content: Mapping[str, Any]
) -> None:
    """Apply content changes to the current version in place, or as a new version once an
    attempt shows it (the version locked first, so a reference being added is seen)."""
    current = await session.scalar(
        select(QuestionVersion)
        .where(
            QuestionVersion.question_id == question.id,
            QuestionVersion.version == question.current_version,
        )
        .with_for_update()
    )
    if current is None:
        raise QuestionNotFound()
    changed = {name: value for name, value in content.items() if getattr(current, name) != value}
    if not changed:
        return
    if current.id in await _used_versions(session, [current.id]):
        latest = await session.scalar(
            select(func.max(QuestionVersion.version)).where(
                QuestionVersion.question_id == question.id
            )
        )
        values = {name: getattr(current, name) for name in CONTENT_FIELDS} | changed
        version = QuestionVersion(question_id=question.id, version=int(latest or 0) + 1, **values)
        session.add(version)
        question.current_version = version.version
    else:
        for name, value in changed.items():
            setattr(current, name, value)
    await session.flush()


async def archive_question(
    session: AsyncSession, *, principal: Principal, question_id: uuid.UUID
) -> None:
    """Archive a question (pools stop drawing it); archiving twice changes nothing. 409
    `question_needed_by_quiz` when a published quiz could no longer be drawn without it."""
    question = await _taught_question(
        session, principal=principal, question_id=question_id, lock=True
    )
    if question.archived:
        return
    question.archived = True
    question.updated_at = utcnow()
    await session.flush()
    tags = set((await _tags(session, [question.id]))[question.id])
    await _keep_published_quizzes_ready(session, question=question, tags=tags)


async def _keep_published_quizzes_ready(
    session: AsyncSession, *, question: Question, tags: Collection[str]
) -> None:
    """After a question was archived or lost tags (flushed): 409 when a published quiz of its
    course that uses it (fixed, or a pool on one of `tags`) is no longer publishable."""
    uses = QuizSlot.question_id == question.id
    if tags:
        uses = or_(uses, QuizSlot.pool_tag.in_(sorted(tags)))
    quizzes = list(
        await session.scalars(
            select(Quiz)
            .where(
                Quiz.course_id == question.course_id,
                Quiz.published.is_(True),
                exists().where(QuizSlot.quiz_id == Quiz.id, uses),
            )
            .order_by(Quiz.id)
            .with_for_update()
        )
    )
    broken: list[dict[str, Any]] = []
    for quiz in quizzes:
        problems = await publication_problems(session, quiz=quiz)
        if problems:
            broken.append({"quiz_id": str(quiz.id), "title": quiz.title, "problems": problems})
    if broken:
        raise QuestionNeededByQuiz(details=broken)


async def teachable_course(
    session: AsyncSession, *, principal: Principal, course_id: uuid.UUID
) -> Course:
    """The course (404 `course_not_found`) if the caller may edit its bank (else 403)."""
    return await _taught_course(session, principal=principal, course_id=course_id)


async def import_questions(
    session: AsyncSession,
    *,
    principal: Principal,
    course_id: uuid.UUID,
    questions: Sequence[ImportedQuestion],
) -> list[Question]:
    """Add parsed questions to a course's bank, all or none (the caller's transaction). A
    question worth 0 points is refused like a bad line (422 `import_invalid`): the bank's
    questions are worth more than 0."""
    zero = [
        {"line": 0, "reason": f"question {n} ('{q.title}') is worth 0 points; give it more"}
        for n, q in enumerate(questions, start=1)
        if q.points <= 0
    ]
    if zero:
        raise ImportInvalid(details=zero)
    drafts = [
        QuestionDraft(
            title=q.title,
            prompt=q.prompt,
            points=q.points,
            general_feedback=q.general_feedback,
            image_file=None,
            tags=q.tags,
            body=q.spec,
        )
        for q in questions
    ]
    return await add_questions(session, principal=principal, course_id=course_id, drafts=drafts)


async def export_questions(
    session: AsyncSession,
    *,
    principal: Principal,
    course_id: uuid.UUID,
    tag: str | None = None,
    include_archived: bool = False,
) -> list[ImportedQuestion]:
    """The current version of a course's questions (oldest first) as the CSV exporter takes
    them. Image references are not part of the CSV format."""
    course = await _taught_course(session, principal=principal, course_id=course_id)
    conditions: list[ColumnElement[bool]] = [Question.course_id == course.id]
    if not include_archived:
        conditions.append(Question.archived.is_(False))
    if tag is not None:
        conditions.append(
            exists().where(QuestionTag.question_id == Question.id, QuestionTag.tag == tag)
        )
    rows = (
        await session.execute(
            select(Question.id, Question.title, QuestionVersion)
            .join(
                QuestionVersion,
                and_(
                    QuestionVersion.question_id == Question.id,
                    QuestionVersion.version == Question.current_version,
                ),
            )
            .where(*conditions)
            .order_by(Question.created_at, Question.id)
        )
    ).all()
    tags = await _tags(session, [row.id for row in rows])
    return [
        ImportedQuestion(
            title=title,
            prompt=version.prompt,
            points=version.points,
            general_feedback=version.general_feedback,
            tags=tags[question_id],
            spec=load_spec(version.body),
        )
        for question_id, title, version in rows
    ]


# --------------------------------------------------------------------------- quizzes


async def _quiz_views(session: AsyncSession, quizzes: Sequence[Quiz]) -> list[QuizView]:
    """The quizzes with their slot, question and attempt counts (two queries)."""
    ids = [quiz.id for quiz in quizzes]
    slots: dict[uuid.UUID, tuple[int, int]] = {}
    attempts: dict[uuid.UUID, int] = {}
    if ids:
        per_slot = case((QuizSlot.question_id.is_not(None), 1), else_=QuizSlot.pool_count)
        for quiz_id, count, questions in await session.execute(
            select(QuizSlot.quiz_id, func.count(), func.coalesce(func.sum(per_slot), 0))
            .where(QuizSlot.quiz_id.in_(ids))
            .group_by(QuizSlot.quiz_id)
        ):
            slots[quiz_id] = (int(count), int(questions))
        for quiz_id, count in await session.execute(
            select(Attempt.quiz_id, func.count())
            .where(Attempt.quiz_id.in_(ids))
            .group_by(Attempt.quiz_id)
        ):
            attempts[quiz_id] = int(count)
    return [
        QuizView(
            quiz=quiz,
            slot_count=slots.get(quiz.id, (0, 0))[0],
            question_count=slots.get(quiz.id, (0, 0))[1],
            attempt_count=attempts.get(quiz.id, 0),
        )
        for quiz in quizzes
    ]


async def _quiz_view(session: AsyncSession, quiz: Quiz) -> QuizView:
    [view] = await _quiz_views(session, [quiz])
    return view


def _check_window(opens_at: datetime | None, closes_at: datetime | None) -> None:
    if opens_at is not None and closes_at is not None and closes_at <= opens_at:
        raise QuizWindowInvalid(
            details=[
                {
                    "loc": ["body", "closes_at"],
                    "msg": "closes_at must be after opens_at",
                    "type": "window",
                }
            ]
        )


async def create_quiz(
    session: AsyncSession, *, principal: Principal, course_id: uuid.UUID, fields: Mapping[str, Any]
) -> QuizView:
    """A new unpublished quiz of a course, without slots."""
    course = await _taught_course(session, principal=principal, course_id=course_id)
    values = {name: fields[name] for name in QUIZ_FIELDS if name in fields}
    _check_window(values.get("opens_at"), values.get("closes_at"))
    quiz = Quiz(course_id=course.id, published=False, **values)
    session.add(quiz)
    await session.flush()
    return await _quiz_view(session, quiz)


async def list_quizzes(
    session: AsyncSession,
    *,
    principal: Principal,
    course_id: uuid.UUID,
    limit: int = 50,
    offset: int = 0,
) -> QuizPage:
    """A course's quizzes in creation order, and how many there are."""
    course = await _taught_course(session, principal=principal, course_id=course_id)
    total = await session.scalar(
        select(func.count()).select_from(Quiz).where(Quiz.course_id == course.id)
    )
    quizzes = list(
        await session.scalars(
            select(Quiz)
            .where(Quiz.course_id == course.id)
            .order_by(Quiz.created_at, Quiz.id)
            .limit(limit)
            .offset(offset)
        )
    )
    return QuizPage(items=await _quiz_views(session, quizzes), total=int(total or 0))


async def get_quiz(session: AsyncSession, *, principal: Principal, quiz_id: uuid.UUID) -> QuizView:
    """A quiz as its authors see it."""
    quiz = await _taught_quiz(session, principal=principal, quiz_id=quiz_id)
    return await _quiz_view(session, quiz)


async def update_quiz(
    session: AsyncSession,
    *,
    principal: Principal,
    quiz_id: uuid.UUID,
    changes: Mapping[str, Any],
) -> QuizView:
    """Change some of a quiz's fields (its row locked); `review_policy` holds only the keys to
    change. Attempts already started keep their deadline."""
    quiz = await _taught_quiz(session, principal=principal, quiz_id=quiz_id, lock=True)
    for name in QUIZ_FIELDS:
        if name not in changes:
            continue
        value = changes[name]
        if name == "review_policy":
            value = {**(quiz.review_policy or {}), **value}
        setattr(quiz, name, value)
    _check_window(quiz.opens_at, quiz.closes_at)
    quiz.updated_at = utcnow()
    await session.flush()
    return await _quiz_view(session, quiz)


async def delete_quiz(session: AsyncSession, *, principal: Principal, quiz_id: uuid.UUID) -> None:
    """Delete a quiz nobody attempted and no lesson shows (409 otherwise)."""
    quiz = await _taught_quiz(session, principal=principal, quiz_id=quiz_id, lock=True)
    if await session.scalar(select(exists().where(Attempt.quiz_id == quiz.id))):
        raise QuizHasAttempts()
    if await session.scalar(select(exists().where(Lesson.quiz_id == quiz.id))):
        raise QuizUsedByLesson()
    await session.delete(quiz)
    await session.flush()


async def publish_quiz(
    session: AsyncSession, *, principal: Principal, quiz_id: uuid.UUID
) -> QuizView:
    """Publish a quiz once it can be drawn (422 `quiz_not_ready` listing every problem);
    publishing a published quiz checks again and changes nothing."""
    quiz = await _taught_quiz(session, principal=principal, quiz_id=quiz_id, lock=True)
    problems = await publication_problems(session, quiz=quiz)
    if problems:
        raise QuizNotReady(details=problems)
    if not quiz.published:
        quiz.published = True
        quiz.updated_at = utcnow()
        await session.flush()
    return await _quiz_view(session, quiz)


async def unpublish_quiz(
    session: AsyncSession, *, principal: Principal, quiz_id: uuid.UUID
) -> QuizView:
    """Unpublish a quiz (no new attempts; attempts in progress are left to their deadline)."""
    quiz = await _taught_quiz(session, principal=principal, quiz_id=quiz_id, lock=True)
    if quiz.published:
        quiz.published = False
        quiz.updated_at = utcnow()
        await session.flush()
    return await _quiz_view(session, quiz)


# --------------------------------------------------------------------------- publication


def _problem(loc: list[Any], msg: str, kind: str, **extra: Any) -> dict[str, Any]:
    return {"loc": loc, "msg": msg, "type": kind, **extra}


async def pool_candidates(
    session: AsyncSession, *, quiz: Quiz, tags: Collection[str], exclude: Collection[uuid.UUID]
) -> dict[str, set[uuid.UUID]]:
    """For each tag, the non-archived questions of the quiz's course with it, minus
    `exclude` (the quiz's fixed questions): what its pools may draw."""
    found: dict[str, set[uuid.UUID]] = {tag: set() for tag in tags}
    if tags:
        rows = await session.execute(
            select(QuestionTag.tag, Question.id)
            .join(Question, Question.id == QuestionTag.question_id)
            .where(
                Question.course_id == quiz.course_id,
                Question.archived.is_(False),
                QuestionTag.tag.in_(sorted(tags)),
            )
        )
        for tag, question_id in rows:
            if question_id not in exclude:
                found[tag].add(question_id)
    return found


async def publication_problems(session: AsyncSession, *, quiz: Quiz) -> list[dict[str, Any]]:
    """Everything that keeps the quiz from being drawn, as validation details: no slot, an
    archived fixed question, a pool with too few questions, pools that together need more
    distinct questions than their tags hold."""
    slots = list(
        await session.scalars(
            select(QuizSlot).where(QuizSlot.quiz_id == quiz.id).order_by(QuizSlot.position)
        )
    )
    if not slots:
        return [_problem(["slots"], "The quiz needs at least one question.", "missing")]
    problems: list[dict[str, Any]] = []
    fixed_ids = {slot.question_id for slot in slots if slot.question_id is not None}
    fixed = {
        row.id: row
        for row in await session.execute(
            select(Question.id, Question.title, Question.archived).where(Question.id.in_(fixed_ids))
        )
    }
    demand: dict[str, int] = defaultdict(int)
    first: dict[str, int] = {}
    for slot in slots:
        if slot.question_id is not None:
            row = fixed.get(slot.question_id)
            if row is not None and row.archived:
                problems.append(
                    _problem(
                        ["slots", slot.position, "question_id"],
                        f"Question '{row.title}' is archived; restore it or remove it.",
                        "question_archived",
                    )
                )
        elif slot.pool_tag is not None:
            demand[slot.pool_tag] += slot.pool_count
            first.setdefault(slot.pool_tag, slot.position)
    members = await pool_candidates(session, quiz=quiz, tags=demand, exclude=fixed_ids)
    short = False
    for tag, needed in demand.items():
        available = len(members[tag])
        if available < needed:
            short = True
            problems.append(
                _problem(
                    ["slots", first[tag], "pool_tag"],
                    f"The pool '{tag}' draws {needed} question(s) but only {available} "
                    "non-archived question(s) outside the quiz's fixed ones have this tag.",
                    "pool_too_small",
                    tag=tag,
                    needed=needed,
                    available=available,
                )
            )
    if not short and len(demand) > 1:
        unmet = unmet_demand(demand, members)
        if unmet:
            missing = sum(unmet.values())
            problems.append(
                _problem(
                    ["slots"],
                    f"The pools {', '.join(sorted(demand))} share questions: {missing} of the "
                    f"{sum(demand.values())} questions they draw cannot be distinct.",
                    "pools_overlap",
                    missing=missing,
                )
            )
    return problems


def unmet_demand(demand: Mapping[str, int], members: Mapping[str, Collection[K]]) -> dict[str, int]:
    """How many draws of each pool cannot get a question of their own when every question is
    drawn at most once (a maximum matching, augmenting paths); empty when all can."""
    return assign_pools(demand, members)[1]


def assign_pools(
    demand: Mapping[str, int], members: Mapping[str, Collection[K]]
) -> tuple[dict[K, str], dict[str, int]]:
    """A question for as many draws as possible (each question at most once): the pool each
    chosen question goes to, and the draws of each pool left without one. Candidates are
    tried in the order `members` lists them, so shuffled lists give a random draw."""
    owner: dict[K, str] = {}
    unmet: dict[str, int] = {}
    for tag, count in demand.items():
        for placed in range(count):
            if not _augment(tag, members, owner):
                # The graph did not change, so no later draw of this pool can succeed either.
                unmet[tag] = count - placed
                break
    return owner, unmet


def _augment(start: str, members: Mapping[str, Collection[K]], owner: dict[K, str]) -> bool:
    """Give pool `start` one more question, moving others' questions along a path if need be."""
    reached_from: dict[K, str] = {}
    via: dict[str, K] = {}
    queue = deque([start])
    seen = {start}
    while queue:
        tag = queue.popleft()
        for question in members.get(tag, ()):
            if question in reached_from:
                continue
            reached_from[question] = tag
            holder = owner.get(question)
            if holder is None:
                while True:
                    taker = reached_from[question]
                    owner[question] = taker
                    if taker == start:
                        return True
                    question = via[taker]
            if holder not in seen:
                seen.add(holder)
                via[holder] = question
                queue.append(holder)
    return False


# --------------------------------------------------------------------------- slots


async def _slots_view(session: AsyncSession, quiz: Quiz) -> SlotsView:
    slots = list(
        await session.scalars(
            select(QuizSlot).where(QuizSlot.quiz_id == quiz.id).order_by(QuizSlot.position)
        )
    )
    fixed_ids = [slot.question_id for slot in slots if slot.question_id is not None]
    questions: dict[uuid.UUID, SlotQuestion] = {}
    if fixed_ids:
        rows = await session.execute(
            select(
                Question.id,
                Question.title,
                QuestionVersion.type,
                QuestionVersion.points,
                Question.archived,
                Question.current_version,
            )
            .join(
                QuestionVersion,
                and_(
                    QuestionVersion.question_id == Question.id,
                    QuestionVersion.version == Question.current_version,
                ),
            )
            .where(Question.id.in_(fixed_ids))
        )
        questions = {row.id: SlotQuestion(*row) for row in rows}
    tags = sorted({slot.pool_tag for slot in slots if slot.pool_tag is not None})
    available: dict[str, int] = {}
    if tags:
        counts = await session.execute(
            select(QuestionTag.tag, func.count())
            .join(Question, Question.id == QuestionTag.question_id)
            .where(
                Question.course_id == quiz.course_id,
                Question.archived.is_(False),
                QuestionTag.tag.in_(tags),
            )
            .group_by(QuestionTag.tag)
        )
        available = {tag: int(count) for tag, count in counts}
    views = [
        SlotView(
            slot=slot,
            question=questions.get(slot.question_id) if slot.question_id is not None else None,
            available=available.get(slot.pool_tag, 0) if slot.pool_tag is not None else None,
        )
        for slot in slots
    ]
    count = sum(1 if slot.question_id is not None else slot.pool_count for slot in slots)
    return SlotsView(quiz_id=quiz.id, slots=views, question_count=count)


async def get_slots(
    session: AsyncSession, *, principal: Principal, quiz_id: uuid.UUID
) -> SlotsView:
    """A quiz's slots in order, each fixed one with its question's title, type and points."""
    quiz = await _taught_quiz(session, principal=principal, quiz_id=quiz_id)
    return await _slots_view(session, quiz)


async def replace_slots(
    session: AsyncSession,
    *,
    principal: Principal,
    quiz_id: uuid.UUID,
    slots: Sequence[SlotDraft],
) -> SlotsView:
    """Replace a quiz's slots. Fixed questions must be of the quiz's course and appear once
    (422 `slot_question_invalid`); a published quiz must stay publishable (422
    `quiz_not_ready`). Attempts already started keep their questions."""
    quiz = await _taught_quiz(session, principal=principal, quiz_id=quiz_id, lock=True)
    wanted = [slot.question_id for slot in slots if slot.question_id is not None]
    courses = {
        row.id: row.course_id
        for row in await session.execute(
            select(Question.id, Question.course_id).where(Question.id.in_(set(wanted)))
        )
    }
    invalid: list[dict[str, Any]] = []
    seen: dict[uuid.UUID, int] = {}
    for index, slot in enumerate(slots):
        if slot.question_id is None:
            continue
        loc = ["body", "slots", index, "question_id"]
        if courses.get(slot.question_id) != quiz.course_id:
            invalid.append(
                _problem(loc, "No question of this quiz's course has this id.", "not_in_course")
            )
        elif slot.question_id in seen:
            invalid.append(
                _problem(
                    loc, f"This question is already slot {seen[slot.question_id]}.", "repeated"
                )
            )
        else:
            seen[slot.question_id] = index
    if invalid:
        raise SlotQuestionInvalid(details=invalid)
    count = sum(1 if slot.question_id is not None else slot.pool_count for slot in slots)
    if count > MAX_QUESTIONS_PER_ATTEMPT:
        raise TooManyQuestions(details=[{"questions": count}])
    await session.execute(delete(QuizSlot).where(QuizSlot.quiz_id == quiz.id))
    if slots:
        await session.execute(
            insert(QuizSlot),
            [
                {
                    "id": uuid.uuid4(),
                    "quiz_id": quiz.id,
                    "position": position,
                    "question_id": slot.question_id,
                    "pool_tag": slot.pool_tag if slot.question_id is None else None,
                    "pool_count": slot.pool_count if slot.question_id is None else 1,
                }
                for position, slot in enumerate(slots)
            ],
        )
    if quiz.published:
        problems = await publication_problems(session, quiz=quiz)
        if problems:
            raise QuizNotReady(
                "A published quiz must stay publishable; see the details.", details=problems
            )
    quiz.updated_at = utcnow()
    await session.flush()
    return await _slots_view(session, quiz)


# --------------------------------------------------------------------------- accommodations


async def _accommodation_views(
    session: AsyncSession, accommodations: Sequence[Accommodation]
) -> list[AccommodationView]:
    names: dict[uuid.UUID, str] = {}
    ids = {a.user_id for a in accommodations}
    if ids:
        names = {
            row.id: row.full_name
            for row in await session.execute(
                select(User.id, User.full_name).where(User.id.in_(ids))
            )
        }
    return [AccommodationView(a, names.get(a.user_id, "")) for a in accommodations]


async def move_open_attempts(
    session: AsyncSession,
    *,
    quiz: Quiz,
    accommodations: Mapping[uuid.UUID, Accommodation | None],
) -> int:
    """Move the deadline of each learner's attempt in progress on the quiz to what their
    (changed or removed) accommodation gives; how many moved."""
    if not accommodations:
        return 0
    attempts = await session.scalars(
        select(Attempt)
        .where(
            Attempt.quiz_id == quiz.id,
            Attempt.user_id.in_(list(accommodations)),
            Attempt.status == AttemptStatus.IN_PROGRESS.value,
        )
        .order_by(Attempt.id)
        .with_for_update()
    )
    moved = 0
    for attempt in attempts:
        accommodation = accommodations[attempt.user_id]
        if deadlines.recompute_open_attempt(attempt, quiz=quiz, accommodation=accommodation):
            attempt.updated_at = utcnow()
            moved += 1
    await session.flush()
    return moved


async def set_accommodations(
    session: AsyncSession,
    *,
    principal: Principal,
    quiz_id: uuid.UUID,
    user_ids: Sequence[uuid.UUID],
    fields: Mapping[str, Any],
    one: bool = False,
) -> list[AccommodationView]:
    """Give each learner these adjustments on the quiz (replacing theirs), in `user_ids`
    order, and move their attempts in progress. Every learner must be enrolled (422
    `learner_not_enrolled`); `one`: a single learner named in the path (404 when unknown)."""
    quiz = await _taught_quiz(session, principal=principal, quiz_id=quiz_id, lock=True)
    if one and await session.get(User, user_ids[0]) is None:
        raise UserNotFound()
    enrolled = set(
        await session.scalars(
            select(Enrollment.user_id).where(
                Enrollment.course_id == quiz.course_id,
                Enrollment.user_id.in_(user_ids),
                Enrollment.status.in_(OPEN),
            )
        )
    )
    missing = [
        _problem(
            ["path", "user_id"] if one else ["body", "user_ids", index],
            "This user is not enrolled in the quiz's course.",
            "not_enrolled",
            user_id=str(user_id),
        )
        for index, user_id in enumerate(user_ids)
        if user_id not in enrolled
    ]
    if missing:
        raise LearnerNotEnrolled(details=missing)
    existing = {
        a.user_id: a
        for a in await session.scalars(
            select(Accommodation).where(
                Accommodation.quiz_id == quiz.id, Accommodation.user_id.in_(user_ids)
            )
        )
    }
    now = utcnow()
    result: list[Accommodation] = []
    for user_id in user_ids:
        accommodation = existing.get(user_id)
        if accommodation is None:
            accommodation = Accommodation(quiz_id=quiz.id, user_id=user_id, created_at=now)
            session.add(accommodation)
        for name in ALLOWANCE_FIELDS:
            setattr(accommodation, name, fields[name])
        accommodation.updated_at = now
        result.append(accommodation)
    await session.flush()
    await move_open_attempts(session, quiz=quiz, accommodations={a.user_id: a for a in result})
    return await _accommodation_views(session, result)


async def list_accommodations(
    session: AsyncSession, *, principal: Principal, quiz_id: uuid.UUID
) -> list[AccommodationView]:
    """A quiz's accommodations, by learner name."""
    quiz = await _taught_quiz(session, principal=principal, quiz_id=quiz_id)
    rows = (
        await session.execute(
            select(Accommodation, User.full_name)
            .join(User, User.id == Accommodation.user_id)
            .where(Accommodation.quiz_id == quiz.id)
            .order_by(User.full_name, User.id)
        )
    ).all()
    return [AccommodationView(a, name) for a, name in rows]


async def delete_accommodation(
    session: AsyncSession, *, principal: Principal, quiz_id: uuid.UUID, user_id: uuid.UUID
) -> None:
    """Remove a learner's accommodation and bring their attempt in progress back to the
    quiz's own rules."""
    quiz = await _taught_quiz(session, principal=principal, quiz_id=quiz_id, lock=True)
    accommodation = await session.scalar(
        select(Accommodation).where(
            Accommodation.quiz_id == quiz.id, Accommodation.user_id == user_id
        )
    )
    if accommodation is None:
        raise AccommodationNotFound()
    await session.delete(accommodation)
    await session.flush()
    await move_open_attempts(session, quiz=quiz, accommodations={user_id: None})
