"""Course outlines: sections and lessons, their order, and who may read a lesson.

Invariants (see courses.models):
- every change to an outline locks the course row first (`get_course(..., lock=True)`), then
  rewrites positions densely: sections 0..n-1 per course, lessons 0..n-1 per section. Ids are
  looked up before the lock only to find the course; the rows are read again under it;
- a lesson carries only the content fields of its kind (`check_content`), on creation and
  after every change;
- whenever the set of required lessons of a course changes, every enrollment's progress is
  recomputed in the same transaction; the changes are returned for the caller to publish
  after the commit.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from lms_live.core.db import utcnow
from lms_live.core.errors import Conflict, EnrollmentRequired, NotFound, ValidationFailed
from lms_live.core.security import Principal
from lms_live.courses.access import ensure_teaches, get_course, may_teach
from lms_live.courses.models import Course, CourseStatus, Lesson, LessonKind, Section
from lms_live.enrollments.access import is_enrolled
from lms_live.enrollments.progress import ProgressChange, recompute_course

T = TypeVar("T")

CONTENT_FIELDS = ("body", "video_url", "file_ref", "quiz_id")
_KIND_FIELDS: dict[LessonKind, frozenset[str]] = {
    LessonKind.TEXT: frozenset({"body"}),
    LessonKind.VIDEO: frozenset({"video_url"}),
    LessonKind.FILE: frozenset({"file_ref"}),
    LessonKind.QUIZ: frozenset({"quiz_id"}),
}
_KIND_REQUIRES: dict[LessonKind, str] = {
    LessonKind.VIDEO: "video_url",
    LessonKind.FILE: "file_ref",
    LessonKind.QUIZ: "quiz_id",
}
LESSON_FIELDS = (
    "title",
    "body",
    "video_url",
    "duration_seconds",
    "file_ref",
    "quiz_id",
    "is_preview",
    "is_required",
)


class SectionNotFound(NotFound):
    code = "section_not_found"
    message = "No such section."


class LessonNotFound(NotFound):
    code = "lesson_not_found"
    message = "No such lesson."


class PositionOutOfRange(ValidationFailed):
    code = "position_out_of_range"
    message = "The position is past the end of the list."


class LessonContentInvalid(ValidationFailed):
    code = "lesson_content_invalid"
    message = "The lesson's fields do not fit its kind."


class LessonKindFixed(ValidationFailed):
    code = "lesson_kind_fixed"
    message = "A lesson's kind cannot change; create a new lesson instead."


class OutlineMismatch(Conflict):
    code = "outline_mismatch"
    message = (
        "The outline sent does not name every section and lesson of the course exactly once; "
        "it may have changed meanwhile. Reload it and try again."
    )


@dataclass(frozen=True, slots=True)
class SectionOutline:
    """A section and its lessons, in order."""

    section: Section
    lessons: list[Lesson]


@dataclass(frozen=True, slots=True)
class Outline:
    course_id: uuid.UUID
    sections: list[SectionOutline]


@dataclass(frozen=True, slots=True)
class Edited(Generic[T]):
    """The result of an edit and the progress it changed (to publish after the commit)."""

    value: T
    progress: list[ProgressChange]


class _Placed(Protocol):
    position: int
    updated_at: datetime


P = TypeVar("P", bound=_Placed)


# --------------------------------------------------------------------------- rules


def check_content(kind: LessonKind, values: Mapping[str, Any]) -> None:
    """LessonContentInvalid unless `values` (the whole resulting lesson) fit the kind."""
    details: list[dict[str, Any]] = []
    for name in CONTENT_FIELDS:
        if name not in _KIND_FIELDS[kind] and _given(values.get(name)):
            details.append(_detail(name, f"Not used by {kind.value} lessons.", "not_for_kind"))
    required = _KIND_REQUIRES.get(kind)
    if required is not None and not _given(values.get(required)):
        details.append(_detail(required, f"Required by {kind.value} lessons.", "required"))
    if details:
        raise LessonContentInvalid(details=details)


def _given(value: Any) -> bool:
    return value is not None and value != ""


def _detail(name: str, msg: str, kind: str) -> dict[str, Any]:
    return {"loc": ["body", name], "msg": msg, "type": kind}


def _place(items: list[P], item: P, position: int | None, *, size: int) -> None:
    """Put `item` at `position` (the end when None) among `items`, renumbered 0..n-1; `size`
    is the number of valid places."""
    if position is None:
        position = size - 1
    if position >= size:
        raise PositionOutOfRange(
            details=[{"loc": ["body", "position"], "msg": f"At most {size - 1}.", "max": size - 1}]
        )
    if item in items:
        items.remove(item)
    items.insert(position, item)
    _renumber(items)


def _renumber(items: Iterable[_Placed]) -> None:
    now = utcnow()
    for index, item in enumerate(items):
        if item.position != index:
            item.position = index
            item.updated_at = now


# --------------------------------------------------------------------------- lookups


async def _editable_course(
    session: AsyncSession, *, principal: Principal, course_id: uuid.UUID
) -> Course:
    """The course, locked for an outline change, if the caller teaches it."""
    course = await get_course(session, course_id=course_id, lock=True)
    await ensure_teaches(session, principal=principal, course=course)
    return course


async def _section_course(session: AsyncSession, section_id: uuid.UUID) -> uuid.UUID:
    course_id = await session.scalar(select(Section.course_id).where(Section.id == section_id))
    if course_id is None:
        raise SectionNotFound()
    return course_id


async def _lesson_course(session: AsyncSession, lesson_id: uuid.UUID) -> uuid.UUID:
    course_id = await session.scalar(select(Lesson.course_id).where(Lesson.id == lesson_id))
    if course_id is None:
        raise LessonNotFound()
    return course_id


async def _sections(session: AsyncSession, course_id: uuid.UUID) -> list[Section]:
    rows = await session.scalars(
        select(Section)
        .where(Section.course_id == course_id)
        .order_by(Section.position, Section.created_at, Section.id)
    )
    return list(rows)


async def _lessons(session: AsyncSession, section_id: uuid.UUID) -> list[Lesson]:
    rows = await session.scalars(
        select(Lesson)
        .where(Lesson.section_id == section_id)
        .order_by(Lesson.position, Lesson.created_at, Lesson.id)
    )
    return list(rows)


def _pick(items: Sequence[T], id_: uuid.UUID, missing: type[NotFound]) -> T:
    for item in items:
        if getattr(item, "id", None) == id_:
            return item
    raise missing()


async def _recompute(session: AsyncSession, course_id: uuid.UUID) -> list[ProgressChange]:
    await session.flush()
    return await recompute_course(session, course_id=course_id)


async def load_outline(session: AsyncSession, *, course_id: uuid.UUID) -> Outline:
    """Every section of the course with its lessons, in order (no access check)."""
    sections = await _sections(session, course_id)
    rows = await session.scalars(
        select(Lesson)
        .where(Lesson.course_id == course_id)
        .order_by(Lesson.position, Lesson.created_at, Lesson.id)
    )
    by_section: dict[uuid.UUID, list[Lesson]] = {s.id: [] for s in sections}
    for lesson in rows:
        by_section.setdefault(lesson.section_id, []).append(lesson)
    return Outline(course_id, [SectionOutline(s, by_section[s.id]) for s in sections])


# --------------------------------------------------------------------------- sections


async def get_outline(
    session: AsyncSession, *, principal: Principal, course_id: uuid.UUID
) -> Outline:
    """The outline of a course its caller teaches (or any, for admins)."""
    course = await get_course(session, course_id=course_id)
    await ensure_teaches(session, principal=principal, course=course)
    return await load_outline(session, course_id=course_id)


async def add_section(
    session: AsyncSession,
    *,
    principal: Principal,
    course_id: uuid.UUID,
    title: str,
    position: int | None,
) -> Section:
    """A new empty section at `position` (0..n; the end by default)."""
    await _editable_course(session, principal=principal, course_id=course_id)
    sections = await _sections(session, course_id)
    section = Section(course_id=course_id, title=title, position=len(sections))
    _place(sections, section, position, size=len(sections) + 1)
    session.add(section)
    await session.flush()
    return section


async def update_section(
    session: AsyncSession,
    *,
    principal: Principal,
    section_id: uuid.UUID,
    title: str | None = None,
    position: int | None = None,
) -> SectionOutline:
    """Rename and/or move a section within its course."""
    course_id = await _section_course(session, section_id)
    await _editable_course(session, principal=principal, course_id=course_id)
    sections = await _sections(session, course_id)
    section = _pick(sections, section_id, SectionNotFound)
    if title is not None:
        section.title = title
    if position is not None:
        _place(sections, section, position, size=len(sections))
    await session.flush()
    return SectionOutline(section, await _lessons(session, section_id))


async def remove_section(
    session: AsyncSession, *, principal: Principal, section_id: uuid.UUID
) -> list[ProgressChange]:
    """Delete a section and its lessons; progress is recomputed if a required lesson went."""
    course_id = await _section_course(session, section_id)
    await _editable_course(session, principal=principal, course_id=course_id)
    sections = await _sections(session, course_id)
    section = _pick(sections, section_id, SectionNotFound)
    removed_required = await session.scalars(
        delete(Lesson)
        .where(Lesson.section_id == section_id)
        .returning(Lesson.is_required)
        .execution_options(synchronize_session=False)
    )
    had_required = any(removed_required)
    await session.delete(section)
    sections.remove(section)
    _renumber(sections)
    return await _recompute(session, course_id) if had_required else []


# --------------------------------------------------------------------------- lessons


async def add_lesson(
    session: AsyncSession,
    *,
    principal: Principal,
    section_id: uuid.UUID,
    kind: LessonKind,
    values: Mapping[str, Any],
    position: int | None,
) -> Edited[Lesson]:
    """A new lesson of `kind` in the section at `position` (0..n; the end by default)."""
    unknown = set(values) - set(LESSON_FIELDS)
    if unknown:
        raise ValueError(f"not lesson fields: {sorted(unknown)}")
    check_content(kind, values)
    course_id = await _section_course(session, section_id)
    await _editable_course(session, principal=principal, course_id=course_id)
    await _pick_section(session, course_id, section_id)
    lessons = await _lessons(session, section_id)
    fields = {name: value for name, value in values.items() if value is not None}
    lesson = Lesson(
        section_id=section_id,
        course_id=course_id,
        kind=kind.value,
        position=len(lessons),
        **fields,
    )
    _place(lessons, lesson, position, size=len(lessons) + 1)
    session.add(lesson)
    await session.flush()
    progress = await _recompute(session, course_id) if lesson.is_required else []
    return Edited(lesson, progress)


async def _pick_section(
    session: AsyncSession, course_id: uuid.UUID, section_id: uuid.UUID
) -> Section:
    """The section, read again under the course lock (it may have gone meanwhile)."""
    section = await session.scalar(
        select(Section).where(Section.id == section_id, Section.course_id == course_id)
    )
    if section is None:
        raise SectionNotFound()
    return section


async def update_lesson(
    session: AsyncSession,
    *,
    principal: Principal,
    lesson_id: uuid.UUID,
    changes: Mapping[str, Any],
    kind: LessonKind | None = None,
    position: int | None = None,
) -> Edited[Lesson]:
    """Change some fields of a lesson (not its kind) and/or move it within its section; the
    resulting lesson must fit its kind."""
    unknown = set(changes) - set(LESSON_FIELDS)
    if unknown:
        raise ValueError(f"not lesson fields: {sorted(unknown)}")
    course_id = await _lesson_course(session, lesson_id)
    await _editable_course(session, principal=principal, course_id=course_id)
    lesson = await session.scalar(select(Lesson).where(Lesson.id == lesson_id))
    if lesson is None:
        raise LessonNotFound()
    current = LessonKind(lesson.kind)
    if kind is not None and kind != current:
        raise LessonKindFixed(
            details=[{"loc": ["body", "kind"], "msg": f"The lesson is a {current.value} lesson."}]
        )
    resulting = {name: getattr(lesson, name) for name in LESSON_FIELDS} | dict(changes)
    check_content(current, resulting)
    was_required = lesson.is_required
    for name, value in changes.items():
        setattr(lesson, name, "" if name == "body" and value is None else value)
    if position is not None:
        lessons = await _lessons(session, lesson.section_id)
        _place(lessons, lesson, position, size=len(lessons))
    await session.flush()
    progress = await _recompute(session, course_id) if lesson.is_required != was_required else []
    return Edited(lesson, progress)


async def remove_lesson(
    session: AsyncSession, *, principal: Principal, lesson_id: uuid.UUID
) -> list[ProgressChange]:
    """Delete a lesson, close up its section; progress is recomputed if it was required."""
    course_id = await _lesson_course(session, lesson_id)
    await _editable_course(session, principal=principal, course_id=course_id)
    lesson = await session.scalar(select(Lesson).where(Lesson.id == lesson_id))
    if lesson is None:
        raise LessonNotFound()
    lessons = await _lessons(session, lesson.section_id)
    await session.delete(lesson)
    lessons.remove(lesson)
    _renumber(lessons)
    return await _recompute(session, course_id) if lesson.is_required else []


# --------------------------------------------------------------------------- order


async def reorder(
    session: AsyncSession,
    *,
    principal: Principal,
    course_id: uuid.UUID,
    order: Sequence[tuple[uuid.UUID, Sequence[uuid.UUID]]],
) -> Outline:
    """Apply a whole new order: `(section id, [lesson ids])` naming every section and lesson
    of the course exactly once (lessons may change section); OutlineMismatch otherwise."""
    await _editable_course(session, principal=principal, course_id=course_id)
    outline = await load_outline(session, course_id=course_id)
    sections = {entry.section.id: entry.section for entry in outline.sections}
    lessons = {lesson.id: lesson for entry in outline.sections for lesson in entry.lessons}
    details = _mismatch("section", [sid for sid, _ in order], list(sections))
    details += _mismatch("lesson", [lid for _, ids in order for lid in ids], list(lessons))
    if details:
        raise OutlineMismatch(details=details)
    # One explicit timestamp for every row moved: a batched UPDATE would otherwise leave the
    # objects holding other `updated_at` values than the rows.
    now = utcnow()
    for section_position, (section_id, lesson_ids) in enumerate(order):
        section = sections[section_id]
        if section.position != section_position:
            section.position = section_position
            section.updated_at = now
        for lesson_position, lesson_id in enumerate(lesson_ids):
            lesson = lessons[lesson_id]
            if (lesson.section_id, lesson.position) != (section_id, lesson_position):
                lesson.section_id = section_id
                lesson.position = lesson_position
                lesson.updated_at = now
    await session.flush()
    return Outline(
        course_id,
        [
            SectionOutline(sections[sid], [lessons[lid] for lid in lesson_ids])
            for sid, lesson_ids in order
        ],
    )


def _mismatch(
    entity: str, sent: Sequence[uuid.UUID], actual: Sequence[uuid.UUID]
) -> list[dict[str, Any]]:
    """What is wrong with the ids sent for one kind of item (empty when they match)."""
    counts = Counter(sent)
    known = set(actual)
    problems = {
        "missing": [i for i in actual if i not in counts],
        "unknown": list(dict.fromkeys(i for i in sent if i not in known)),
        "duplicated": [i for i, n in counts.items() if n > 1],
    }
    return [
        {"entity": entity, "problem": problem, "ids": [str(i) for i in ids]}
        for problem, ids in problems.items()
        if ids
    ]


# --------------------------------------------------------------------------- reading


async def readable_lesson(
    session: AsyncSession, *, principal: Principal, lesson_id: uuid.UUID
) -> Lesson:
    """A lesson its caller may read: the course's instructors and admins always; enrolled
    learners while the course is published or archived; anyone for a preview lesson of a
    published course. Otherwise 403 enrollment_required, or 404 while the course is a draft
    (drafts are not revealed)."""
    lesson = await session.get(Lesson, lesson_id)
    if lesson is None:
        raise LessonNotFound()
    course = await get_course(session, course_id=lesson.course_id)
    if await may_teach(session, principal=principal, course=course):
        return lesson
    if course.status == CourseStatus.DRAFT:
        raise LessonNotFound()
    if course.status == CourseStatus.PUBLISHED and lesson.is_preview:
        return lesson
    if await is_enrolled(session, user_id=principal.user_id, course_id=course.id):
        return lesson
    raise EnrollmentRequired()
