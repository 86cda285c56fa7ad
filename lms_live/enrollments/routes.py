"""HTTP endpoints of enrollments and progress: enroll and leave, the learner's courses and
progress, completing and opening lessons, and a course's roster for its instructors.

Every write: parse, open the unit of work, call the service, commit, then publish the progress
events (`/progress` streams) after the commit.
"""

from __future__ import annotations

from aiohttp import web

from lms_live import keys
from lms_live.core.http import JsonBody, RouteTable, json_response, require_principal
from lms_live.core.uow import unit_of_work
from lms_live.enrollments import service
from lms_live.enrollments.events import publish_progress
from lms_live.enrollments.models import Enrollment, EnrollmentStatus
from lms_live.enrollments.schemas import (
    CourseIdPath,
    CourseProgressOut,
    CourseRefOut,
    EnrollmentOut,
    LessonIdPath,
    MyEnrollmentOut,
    MyEnrollmentsPage,
    MyEnrollmentsQuery,
    ResumeOut,
    RosterEntryOut,
    RosterPage,
    RosterQuery,
    RosterUserOut,
)

routes = RouteTable()
TAGS = ["enrollments"]
TEACHERS = ["instructor", "admin"]


def _enrollment_out(enrollment: Enrollment) -> EnrollmentOut:
    return EnrollmentOut(
        id=enrollment.id,
        course_id=enrollment.course_id,
        user_id=enrollment.user_id,
        status=EnrollmentStatus(enrollment.status),
        enrolled_at=enrollment.enrolled_at,
        progress_percent=enrollment.progress_percent,
        last_activity_at=enrollment.last_activity_at,
        last_lesson_id=enrollment.last_lesson_id,
        completed_at=enrollment.completed_at,
        cancelled_at=enrollment.cancelled_at,
    )


def _resume_out(resume: service.Resume | None) -> ResumeOut | None:
    return ResumeOut(lesson_id=resume.lesson_id, title=resume.title) if resume else None


def _progress_out(progress: service.Progress) -> CourseProgressOut:
    enrollment = progress.enrollment
    return CourseProgressOut(
        course_id=enrollment.course_id,
        enrollment_id=enrollment.id,
        status=EnrollmentStatus(enrollment.status),
        percent=enrollment.progress_percent,
        completed_lessons=progress.completed_lessons,
        required_lessons=progress.required_lessons,
        completed_lesson_ids=progress.completed_lesson_ids,
        last_lesson_id=enrollment.last_lesson_id,
        last_activity_at=enrollment.last_activity_at,
        completed_at=enrollment.completed_at,
        resume=_resume_out(progress.resume),
    )


# --------------------------------------------------------------------------- enrolling


@routes.post(
    "/api/v1/courses/{course_id}/enrollment",
    operation_id="enroll",
    summary="Enroll in a course",
    tags=TAGS,
    path_model=CourseIdPath,
    response=EnrollmentOut,
    status=201,
    responses={200: EnrollmentOut},
    roles=[],
    errors=[402, 409],
)
async def enroll(request: web.Request, path: CourseIdPath) -> EnrollmentOut | web.Response:
    """201 when enrolled now (or re-enrolled: progress is kept), 200 with the enrollment when
    already enrolled. Published courses only: a draft is 404 (409 `course_not_published` for
    its instructors and admins), an archived one 409 `course_not_open`; the course's
    instructors get 409 `teaches_course`; a paid course 402 `payment_required` with its price
    in `details`."""
    principal = require_principal(request)
    async with unit_of_work(request.app) as work:
        enrolled = await service.enroll(work.session, principal=principal, course_id=path.course_id)
        out = _enrollment_out(enrolled.enrollment)
    if enrolled.created:
        return out
    return json_response(request, JsonBody.dump(EnrollmentOut, out), status=200)


@routes.delete(
    "/api/v1/courses/{course_id}/enrollment",
    operation_id="unenroll",
    summary="Leave a course",
    tags=TAGS,
    path_model=CourseIdPath,
    roles=[],
)
async def unenroll(request: web.Request, path: CourseIdPath) -> None:
    """The enrollment becomes `cancelled` (progress is kept for a later return). Leaving again
    is a no-op; never enrolled is 404 `enrollment_not_found`."""
    principal = require_principal(request)
    async with unit_of_work(request.app) as work:
        await service.cancel(work.session, user_id=principal.user_id, course_id=path.course_id)


# --------------------------------------------------------------------------- learner's views


@routes.get(
    "/api/v1/users/me/enrollments",
    operation_id="list_my_enrollments",
    summary="My enrollments",
    tags=TAGS,
    query=MyEnrollmentsQuery,
    response=MyEnrollmentsPage,
    roles=[],
)
async def list_my_enrollments(request: web.Request, query: MyEnrollmentsQuery) -> MyEnrollmentsPage:
    """Most recently active first, each with where to resume."""
    principal = require_principal(request)
    async with request.app[keys.DATABASE].reads() as session:
        items, total = await service.my_enrollments(
            session,
            user_id=principal.user_id,
            status=query.status,
            limit=query.limit,
            offset=query.offset,
        )
    return MyEnrollmentsPage(
        items=[
            MyEnrollmentOut(
                id=item.enrollment.id,
                course=CourseRefOut(
                    id=item.enrollment.course_id, slug=item.course_slug, title=item.course_title
                ),
                status=EnrollmentStatus(item.enrollment.status),
                progress_percent=item.enrollment.progress_percent,
                enrolled_at=item.enrollment.enrolled_at,
                last_activity_at=item.enrollment.last_activity_at,
                completed_at=item.enrollment.completed_at,
                resume=_resume_out(item.resume),
            )
            for item in items
        ],
        total=total,
        limit=query.limit,
        offset=query.offset,
    )


@routes.get(
    "/api/v1/courses/{course_id}/progress",
    operation_id="get_my_course_progress",
    summary="My progress in a course",
    tags=TAGS,
    path_model=CourseIdPath,
    response=CourseProgressOut,
    roles=[],
)
async def get_my_course_progress(request: web.Request, path: CourseIdPath) -> CourseProgressOut:
    """Not enrolled: 404 `enrollment_not_found` (a cancelled enrollment shows its kept
    progress)."""
    principal = require_principal(request)
    async with request.app[keys.DATABASE].reads() as session:
        progress = await service.course_progress(
            session, user_id=principal.user_id, course_id=path.course_id
        )
    return _progress_out(progress)


# --------------------------------------------------------------------------- lessons


@routes.post(
    "/api/v1/lessons/{lesson_id}/complete",
    operation_id="complete_lesson",
    summary="Mark a lesson completed",
    tags=TAGS,
    path_model=LessonIdPath,
    response=CourseProgressOut,
    roles=[],
    errors=[403, 409],
)
async def complete_lesson(request: web.Request, path: LessonIdPath) -> CourseProgressOut:
    """Enrolled learners only (403 `enrollment_required`); a quiz lesson is completed by passing
    its quiz (409 `quiz_lesson`). Completing again changes nothing. Answers the course
    progress; progress events follow on `/progress`."""
    principal = require_principal(request)
    async with unit_of_work(request.app) as work:
        enrollment, change = await service.complete(
            work.session, user_id=principal.user_id, lesson_id=path.lesson_id
        )
        if change is not None:
            if change.course_completed:
                await service.on_course_completed(work, change)
            changes, lesson_id = [change], path.lesson_id
            work.after_commit(lambda: publish_progress(request.app, changes, lesson_id=lesson_id))
        progress = await service.progress_of(work.session, enrollment=enrollment)
        return _progress_out(progress)


@routes.post(
    "/api/v1/lessons/{lesson_id}/open",
    operation_id="open_lesson",
    summary="Record the lesson I opened",
    tags=TAGS,
    path_model=LessonIdPath,
    roles=[],
    errors=[403],
)
async def open_lesson(request: web.Request, path: LessonIdPath) -> None:
    """Remembers the lesson as the resume point (enrolled learners only)."""
    principal = require_principal(request)
    async with unit_of_work(request.app) as work:
        await service.open_lesson(work.session, user_id=principal.user_id, lesson_id=path.lesson_id)


# --------------------------------------------------------------------------- instructors


@routes.get(
    "/api/v1/courses/{course_id}/enrollments",
    operation_id="list_course_enrollments",
    summary="A course's learners and their progress",
    tags=TAGS,
    path_model=CourseIdPath,
    query=RosterQuery,
    response=RosterPage,
    roles=TEACHERS,
)
async def list_course_enrollments(
    request: web.Request, path: CourseIdPath, query: RosterQuery
) -> RosterPage:
    """The course's own instructors and admins (other instructors: 403)."""
    principal = require_principal(request)
    async with request.app[keys.DATABASE].reads() as session:
        items, total = await service.roster(
            session,
            principal=principal,
            course_id=path.course_id,
            status=query.status,
            search=query.q,
            sort=query.sort,
            limit=query.limit,
            offset=query.offset,
        )
    return RosterPage(
        items=[
            RosterEntryOut(
                enrollment_id=item.enrollment.id,
                user=RosterUserOut(id=item.user_id, full_name=item.full_name, email=item.email),
                status=EnrollmentStatus(item.enrollment.status),
                progress_percent=item.enrollment.progress_percent,
                enrolled_at=item.enrollment.enrolled_at,
                last_activity_at=item.enrollment.last_activity_at,
                completed_at=item.enrollment.completed_at,
            )
            for item in items
        ],
        total=total,
        limit=query.limit,
        offset=query.offset,
    )
