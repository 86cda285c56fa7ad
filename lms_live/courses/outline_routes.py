"""HTTP endpoints of course outlines: sections, lessons, their order, and reading a lesson.

Authoring is for the course's instructors and admins (the role on the route, the course in
the service). Edits that change a course's required lessons publish the recomputed progress
of its learners once the transaction has committed.
"""

from __future__ import annotations

from aiohttp import web

from lms_live.core.http import RouteTable, require_principal
from lms_live.core.uow import UnitOfWork, unit_of_work
from lms_live.courses import outline
from lms_live.courses.markdown import render
from lms_live.courses.models import Lesson, LessonKind, Section
from lms_live.courses.outline_schemas import (
    AuthoredLessonOut,
    AuthoredSectionOut,
    CoursePath,
    LessonContentOut,
    LessonIn,
    LessonPatchIn,
    LessonPath,
    OutlineIn,
    OutlineOut,
    SectionIn,
    SectionPatchIn,
    SectionPath,
)
from lms_live.enrollments.events import publish_progress
from lms_live.enrollments.progress import ProgressChange
from lms_live.enrollments.service import on_course_completed

routes = RouteTable()
TAGS = ["outline"]
TEACHERS = ["instructor", "admin"]


async def _publish(request: web.Request, work: UnitOfWork, changes: list[ProgressChange]) -> None:
    """After an outline change that moved progress: completions it caused get their
    certificate (a required lesson removed can complete a course), then the events."""
    for change in changes:
        if change.course_completed:
            await on_course_completed(work, change)
    if changes:
        work.after_commit(lambda: publish_progress(request.app, changes))


def _lesson(lesson: Lesson) -> AuthoredLessonOut:
    return AuthoredLessonOut(
        id=lesson.id,
        course_id=lesson.course_id,
        section_id=lesson.section_id,
        title=lesson.title,
        kind=LessonKind(lesson.kind),
        position=lesson.position,
        body=lesson.body,
        video_url=lesson.video_url,
        duration_seconds=lesson.duration_seconds,
        file_ref=lesson.file_ref,
        quiz_id=lesson.quiz_id,
        is_preview=lesson.is_preview,
        is_required=lesson.is_required,
        created_at=lesson.created_at,
        updated_at=lesson.updated_at,
    )


def _section(section: Section, lessons: list[Lesson]) -> AuthoredSectionOut:
    return AuthoredSectionOut(
        id=section.id,
        course_id=section.course_id,
        title=section.title,
        position=section.position,
        lessons=[_lesson(lesson) for lesson in lessons],
    )


def _outline(found: outline.Outline) -> OutlineOut:
    return OutlineOut(
        course_id=found.course_id,
        sections=[_section(entry.section, entry.lessons) for entry in found.sections],
    )


# --------------------------------------------------------------------------- sections


@routes.post(
    "/api/v1/courses/{course_id}/sections",
    summary="Add a section to a course",
    tags=TAGS,
    path_model=CoursePath,
    body=SectionIn,
    response=AuthoredSectionOut,
    status=201,
    roles=TEACHERS,
)
async def create_section(
    request: web.Request, path: CoursePath, body: SectionIn
) -> AuthoredSectionOut:
    """Inserted at `position` (the end by default); later sections move down one place."""
    principal = require_principal(request)
    async with unit_of_work(request.app) as work:
        section = await outline.add_section(
            work.session,
            principal=principal,
            course_id=path.course_id,
            title=body.title,
            position=body.position,
        )
        return _section(section, [])


@routes.patch(
    "/api/v1/sections/{section_id}",
    summary="Rename or move a section",
    tags=TAGS,
    path_model=SectionPath,
    body=SectionPatchIn,
    response=AuthoredSectionOut,
    roles=TEACHERS,
)
async def update_section(
    request: web.Request, path: SectionPath, body: SectionPatchIn
) -> AuthoredSectionOut:
    principal = require_principal(request)
    async with unit_of_work(request.app) as work:
        found = await outline.update_section(
            work.session,
            principal=principal,
            section_id=path.section_id,
            title=body.title,
            position=body.position,
        )
        return _section(found.section, found.lessons)


@routes.delete(
    "/api/v1/sections/{section_id}",
    summary="Delete a section and its lessons",
    tags=TAGS,
    path_model=SectionPath,
    roles=TEACHERS,
)
async def delete_section(request: web.Request, path: SectionPath) -> None:
    """Learners' completions of its lessons go too; their progress is recomputed."""
    principal = require_principal(request)
    async with unit_of_work(request.app) as work:
        changes = await outline.remove_section(
            work.session, principal=principal, section_id=path.section_id
        )
        await _publish(request, work, changes)


# --------------------------------------------------------------------------- lessons


@routes.post(
    "/api/v1/sections/{section_id}/lessons",
    summary="Add a lesson to a section",
    tags=TAGS,
    path_model=SectionPath,
    body=LessonIn,
    response=AuthoredLessonOut,
    status=201,
    roles=TEACHERS,
)
async def create_lesson(
    request: web.Request, path: SectionPath, body: LessonIn
) -> AuthoredLessonOut:
    """Content fields by kind: `body` (text), `video_url` (video, required), `file_ref`
    (file, required), `quiz_id` (quiz, required); `duration_seconds` for any kind. A field of
    another kind is refused (422 `lesson_content_invalid`)."""
    principal = require_principal(request)
    values = body.model_dump(include=set(outline.LESSON_FIELDS))
    async with unit_of_work(request.app) as work:
        edited = await outline.add_lesson(
            work.session,
            principal=principal,
            section_id=path.section_id,
            kind=body.kind,
            values=values,
            position=body.position,
        )
        await _publish(request, work, edited.progress)
        return _lesson(edited.value)


@routes.patch(
    "/api/v1/lessons/{lesson_id}",
    summary="Change a lesson",
    tags=TAGS,
    path_model=LessonPath,
    body=LessonPatchIn,
    response=AuthoredLessonOut,
    roles=TEACHERS,
)
async def update_lesson(
    request: web.Request, path: LessonPath, body: LessonPatchIn
) -> AuthoredLessonOut:
    """Any subset of the fields; the resulting lesson must fit its kind, which cannot change
    (422 `lesson_kind_fixed`). `position` moves it within its section."""
    principal = require_principal(request)
    changes = body.model_dump(include=set(outline.LESSON_FIELDS), exclude_unset=True)
    async with unit_of_work(request.app) as work:
        edited = await outline.update_lesson(
            work.session,
            principal=principal,
            lesson_id=path.lesson_id,
            changes=changes,
            kind=body.kind,
            position=body.position,
        )
        await _publish(request, work, edited.progress)
        return _lesson(edited.value)


@routes.delete(
    "/api/v1/lessons/{lesson_id}",
    summary="Delete a lesson",
    tags=TAGS,
    path_model=LessonPath,
    roles=TEACHERS,
)
async def delete_lesson(request: web.Request, path: LessonPath) -> None:
    principal = require_principal(request)
    async with unit_of_work(request.app) as work:
        changes = await outline.remove_lesson(
            work.session, principal=principal, lesson_id=path.lesson_id
        )
        await _publish(request, work, changes)


@routes.get(
    "/api/v1/lessons/{lesson_id}",
    summary="Read a lesson",
    tags=TAGS,
    path_model=LessonPath,
    response=LessonContentOut,
    roles=[],
    errors=[403],
)
async def read_lesson(request: web.Request, path: LessonPath) -> LessonContentOut:
    """For the course's instructors and admins; enrolled learners (published or archived
    course); anyone signed in for a preview lesson of a published course. Others get 403
    `enrollment_required`, or 404 while the course is a draft."""
    principal = require_principal(request)
    async with unit_of_work(request.app) as work:
        lesson = await outline.readable_lesson(
            work.session, principal=principal, lesson_id=path.lesson_id
        )
        return LessonContentOut(
            **_lesson(lesson).model_dump(exclude={"created_at", "updated_at"}),
            body_html=render(lesson.body),
        )


# --------------------------------------------------------------------------- outline


@routes.get(
    "/api/v1/courses/{course_id}/outline",
    summary="A course's outline, for its authors",
    tags=TAGS,
    path_model=CoursePath,
    response=OutlineOut,
    roles=TEACHERS,
)
async def get_outline(request: web.Request, path: CoursePath) -> OutlineOut:
    principal = require_principal(request)
    async with unit_of_work(request.app) as work:
        found = await outline.get_outline(
            work.session, principal=principal, course_id=path.course_id
        )
        return _outline(found)


@routes.put(
    "/api/v1/courses/{course_id}/outline",
    summary="Reorder sections and lessons",
    tags=TAGS,
    path_model=CoursePath,
    body=OutlineIn,
    response=OutlineOut,
    roles=TEACHERS,
    errors=[409],
)
async def reorder_outline(request: web.Request, path: CoursePath, body: OutlineIn) -> OutlineOut:
    """The body names every section of the course once, in the new order, each with every
    lesson it is to hold, in order (lessons may change section). Anything missing, unknown or
    repeated answers 409 `outline_mismatch` with the ids in `details`: someone changed the
    outline meanwhile; reload it."""
    principal = require_principal(request)
    async with unit_of_work(request.app) as work:
        found = await outline.reorder(
            work.session,
            principal=principal,
            course_id=path.course_id,
            order=[(entry.id, entry.lessons) for entry in body.sections],
        )
        return _outline(found)
