"""HTTP endpoints of the course catalog (public) and of course authoring.

The catalog answers anonymous callers; a valid token only adds `viewer` and lets a course's
instructors and admins see its draft or archived page. Authoring is for instructors and
admins by role, then for the course's own instructors (or admins) by the service; every write
runs in one unit of work with the course row locked.
"""

from __future__ import annotations

from aiohttp import web

from lms_live import keys
from lms_live.core.http import RouteTable, principal_of, require_principal
from lms_live.core.uow import unit_of_work
from lms_live.courses import service
from lms_live.courses.markdown import render
from lms_live.courses.models import CourseStatus, LessonKind, Level
from lms_live.courses.schemas import (
    CatalogPage,
    CatalogPath,
    CatalogQuery,
    CourseCardOut,
    CourseDetailOut,
    CourseIn,
    CourseInstructorPath,
    CourseListItemOut,
    CourseOut,
    CoursePatchIn,
    CoursePath,
    CoursesPage,
    CoursesQuery,
    InstructorsOut,
    OutlineLessonOut,
    OutlineSectionOut,
    PersonOut,
    ViewerOut,
)

routes = RouteTable()
CATALOG = ["catalog"]
COURSES = ["courses"]
TEACHERS = ["instructor", "admin"]


# --------------------------------------------------------------------------- responses


def _person(person: service.Person) -> PersonOut:
    return PersonOut(id=person.id, full_name=person.full_name)


def _card(facts: service.CourseFacts) -> CourseCardOut:
    course = facts.course
    return CourseCardOut(
        id=course.id,
        slug=course.slug,
        title=course.title,
        summary=course.summary,
        level=Level(course.level),
        language=course.language,
        tags=facts.tags,
        price_minor=course.price_minor,
        currency=course.currency,
        is_free=course.price_minor == 0,
        owner=_person(facts.owner),
        published_at=course.published_at,
        enrollment_count=course.enrollment_count,
        lesson_count=facts.lesson_count,
        total_duration_seconds=facts.total_duration_seconds,
        cover_file=course.cover_file,
    )


def _sections(sections: list[service.OutlineSection]) -> list[OutlineSectionOut]:
    return [
        OutlineSectionOut(
            id=section.id,
            title=section.title,
            position=section.position,
            lessons=[
                OutlineLessonOut(
                    id=lesson.id,
                    title=lesson.title,
                    kind=LessonKind(lesson.kind),
                    position=lesson.position,
                    is_preview=lesson.is_preview,
                    is_required=lesson.is_required,
                    duration_seconds=lesson.duration_seconds,
                )
                for lesson in section.lessons
            ],
        )
        for section in sections
    ]


def _detail(detail: service.CourseDetail) -> CourseDetailOut:
    course = detail.facts.course
    viewer = detail.viewer
    return CourseDetailOut(
        **_card(detail.facts).model_dump(),
        status=CourseStatus(course.status),
        description=course.description,
        description_html=render(course.description),
        instructors=[_person(p) for p in detail.facts.instructors],
        sections=_sections(detail.sections),
        viewer=None
        if viewer is None
        else ViewerOut(enrolled=viewer.enrolled, teaches=viewer.teaches),
    )


def _authored_item(facts: service.CourseFacts) -> CourseListItemOut:
    course = facts.course
    return CourseListItemOut(
        id=course.id,
        slug=course.slug,
        title=course.title,
        summary=course.summary,
        level=Level(course.level),
        language=course.language,
        tags=facts.tags,
        price_minor=course.price_minor,
        currency=course.currency,
        is_free=course.price_minor == 0,
        status=CourseStatus(course.status),
        published_at=course.published_at,
        owner_id=course.owner_id,
        instructors=[_person(p) for p in facts.instructors],
        cover_file=course.cover_file,
        enrollment_count=course.enrollment_count,
        lesson_count=facts.lesson_count,
        total_duration_seconds=facts.total_duration_seconds,
        created_at=course.created_at,
        updated_at=course.updated_at,
    )


def _authored(detail: service.CourseDetail) -> CourseOut:
    course = detail.facts.course
    return CourseOut(
        **_authored_item(detail.facts).model_dump(),
        description=course.description,
        description_html=render(course.description),
        sections=_sections(detail.sections),
    )


# --------------------------------------------------------------------------- catalog


@routes.get(
    "/api/v1/catalog",
    summary="Find published courses",
    tags=CATALOG,
    query=CatalogQuery,
    response=CatalogPage,
    operation_id="list_catalog",
)
async def list_catalog(request: web.Request, query: CatalogQuery) -> CatalogPage:
    """Published courses only. `q` searches titles and summaries (best matches first unless
    `sort` is given); every order ends with the course id, so pages are stable."""
    async with request.app[keys.DATABASE].reads() as session:
        page = await service.catalog(
            session,
            search=query.q,
            instructor_id=query.instructor,
            level=query.level,
            language=query.language,
            tag=query.tag,
            price=query.price,
            sort=query.sort,
            limit=query.limit,
            offset=query.offset,
        )
    return CatalogPage(
        items=[_card(facts) for facts in page.items],
        total=page.total,
        limit=query.limit,
        offset=query.offset,
    )


@routes.get(
    "/api/v1/catalog/{slug}",
    summary="A course's catalog page",
    tags=CATALOG,
    path_model=CatalogPath,
    response=CourseDetailOut,
    operation_id="get_catalog_course",
)
async def get_catalog_course(request: web.Request, path: CatalogPath) -> CourseDetailOut:
    """The card, description, instructors and outline (never lesson content). Draft and
    archived courses answer 404 except to their instructors and admins; `viewer` is null for
    anonymous callers."""
    async with request.app[keys.DATABASE].reads() as session:
        detail = await service.catalog_course(
            session, slug=path.slug, principal=principal_of(request)
        )
    return _detail(detail)


# --------------------------------------------------------------------------- authoring


@routes.post(
    "/api/v1/courses",
    summary="Create a course (a draft)",
    tags=COURSES,
    body=CourseIn,
    response=CourseOut,
    status=201,
    roles=TEACHERS,
    errors=[409],
    operation_id="create_course",
)
async def create_course(request: web.Request, body: CourseIn) -> CourseOut:
    """The caller owns the new draft. Without `slug` one is made from the title (`-2`, `-3`,
    ... when taken); an explicit slug already in use answers 409 `slug_taken`."""
    principal = require_principal(request)
    draft = service.CourseDraft(
        title=body.title,
        summary=body.summary,
        description=body.description,
        level=body.level.value,
        language=body.language,
        tags=body.tags,
        price_minor=body.price_minor,
        currency=body.currency,
        slug=body.slug,
        cover_file=body.cover_file,
    )
    async with unit_of_work(request.app) as work:
        detail = await service.create_course(work.session, principal=principal, draft=draft)
    return _authored(detail)


@routes.get(
    "/api/v1/courses",
    summary="The courses I teach",
    tags=COURSES,
    query=CoursesQuery,
    response=CoursesPage,
    roles=TEACHERS,
    operation_id="list_my_courses",
)
async def list_my_courses(request: web.Request, query: CoursesQuery) -> CoursesPage:
    """Courses the caller owns or co-teaches (an admin: every course), newest first."""
    principal = require_principal(request)
    async with request.app[keys.DATABASE].reads() as session:
        page = await service.authored_courses(
            session,
            principal=principal,
            status=query.status,
            limit=query.limit,
            offset=query.offset,
        )
    return CoursesPage(
        items=[_authored_item(facts) for facts in page.items],
        total=page.total,
        limit=query.limit,
        offset=query.offset,
    )


@routes.get(
    "/api/v1/courses/{course_id}",
    summary="A course as its authors see it",
    tags=COURSES,
    path_model=CoursePath,
    response=CourseOut,
    roles=TEACHERS,
    operation_id="get_course",
)
async def get_authored_course(request: web.Request, path: CoursePath) -> CourseOut:
    principal = require_principal(request)
    async with request.app[keys.DATABASE].reads() as session:
        detail = await service.authored_course(
            session, principal=principal, course_id=path.course_id
        )
    return _authored(detail)


@routes.patch(
    "/api/v1/courses/{course_id}",
    summary="Change a course's fields",
    tags=COURSES,
    path_model=CoursePath,
    body=CoursePatchIn,
    response=CourseOut,
    roles=TEACHERS,
    errors=[409],
    operation_id="update_course",
)
async def update_course(request: web.Request, path: CoursePath, body: CoursePatchIn) -> CourseOut:
    """Any subset of the creation fields; `tags` replaces the whole set; a new slug must be
    free (409 `slug_taken`)."""
    principal = require_principal(request)
    async with unit_of_work(request.app) as work:
        detail = await service.update_course(
            work.session, principal=principal, course_id=path.course_id, changes=body.changes()
        )
    return _authored(detail)


@routes.delete(
    "/api/v1/courses/{course_id}",
    summary="Delete a draft course",
    tags=COURSES,
    path_model=CoursePath,
    roles=TEACHERS,
    errors=[409],
    operation_id="delete_course",
)
async def delete_course(request: web.Request, path: CoursePath) -> None:
    """Only a draft nobody ever enrolled in: 409 `course_not_draft` (archive it instead) or
    `course_has_enrollments`."""
    principal = require_principal(request)
    async with unit_of_work(request.app) as work:
        await service.delete_course(work.session, principal=principal, course_id=path.course_id)


@routes.post(
    "/api/v1/courses/{course_id}/publish",
    summary="Publish a course",
    tags=COURSES,
    path_model=CoursePath,
    response=CourseOut,
    roles=TEACHERS,
    operation_id="publish_course",
)
async def publish_course(request: web.Request, path: CoursePath) -> CourseOut:
    """From draft or archived. An incomplete course answers 422 `course_incomplete` with every
    problem in `details`; publishing a published course changes nothing."""
    principal = require_principal(request)
    async with unit_of_work(request.app) as work:
        detail = await service.publish_course(
            work.session, principal=principal, course_id=path.course_id
        )
    return _authored(detail)


@routes.post(
    "/api/v1/courses/{course_id}/archive",
    summary="Archive a published course",
    tags=COURSES,
    path_model=CoursePath,
    response=CourseOut,
    roles=TEACHERS,
    errors=[409],
    operation_id="archive_course",
)
async def archive_course(request: web.Request, path: CoursePath) -> CourseOut:
    """Leaves the catalog; enrolled learners keep access. A draft answers 409
    `course_not_published`; archiving an archived course changes nothing."""
    principal = require_principal(request)
    async with unit_of_work(request.app) as work:
        detail = await service.archive_course(
            work.session, principal=principal, course_id=path.course_id
        )
    return _authored(detail)


@routes.put(
    "/api/v1/courses/{course_id}/instructors/{user_id}",
    summary="Add a co-instructor",
    tags=COURSES,
    path_model=CourseInstructorPath,
    response=InstructorsOut,
    roles=TEACHERS,
    errors=[409],
    operation_id="add_course_instructor",
)
async def add_course_instructor(request: web.Request, path: CourseInstructorPath) -> InstructorsOut:
    """The owner or an admin only. The user must be an instructor or admin (422
    `not_an_instructor`) and not the owner (409); adding twice changes nothing."""
    principal = require_principal(request)
    async with unit_of_work(request.app) as work:
        people = await service.add_instructor(
            work.session, principal=principal, course_id=path.course_id, user_id=path.user_id
        )
    return InstructorsOut(instructors=[_person(p) for p in people])


@routes.delete(
    "/api/v1/courses/{course_id}/instructors/{user_id}",
    summary="Remove a co-instructor",
    tags=COURSES,
    path_model=CourseInstructorPath,
    roles=TEACHERS,
    operation_id="remove_course_instructor",
)
async def remove_course_instructor(request: web.Request, path: CourseInstructorPath) -> None:
    """The owner or an admin only; 404 `co_instructor_not_found` when the user does not
    co-teach the course."""
    principal = require_principal(request)
    async with unit_of_work(request.app) as work:
        await service.remove_instructor(
            work.session, principal=principal, course_id=path.course_id, user_id=path.user_id
        )
