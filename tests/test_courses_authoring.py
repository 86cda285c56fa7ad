"""Course authoring end to end: create, edit, delete, publish, archive, co-instructors.

Outlines are written straight into the database (their endpoints belong to courses.outline);
everything else goes through the HTTP API and is checked as a client and in the rows.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import func, select

from lms_live import keys
from lms_live.auth.models import Role, User
from lms_live.courses.models import (
    Course,
    CourseInstructor,
    CourseStatus,
    CourseTag,
    Lesson,
    LessonKind,
    Section,
)
from lms_live.enrollments.models import Enrollment, EnrollmentStatus
from tests.authkit import Api

Headers = dict[str, str]
COURSES = "/api/v1/courses"


# --------------------------------------------------------------------------- helpers


async def teacher(api: Api, role: Role = Role.INSTRUCTOR) -> tuple[User, Headers]:
    """A signed-in user and its Authorization header."""
    user, headers, _ = await api.signed_in(role)
    return user, headers


async def create(api: Api, headers: Headers, **fields: Any) -> dict[str, Any]:
    """POST /courses (a title made up when not given); asserts 201."""
    fields.setdefault("title", f"Course {uuid.uuid4().hex[:8]}")
    response = await api.client.post(COURSES, json=fields, headers=headers)
    assert response.status == 201, await response.text()
    body: dict[str, Any] = await response.json()
    return body


async def add_outline(
    api: Api, course_id: str | uuid.UUID, *sections: list[dict[str, Any]]
) -> list[list[Lesson]]:
    """Sections of lessons (dicts of Lesson fields; kind text by default), in order."""
    cid = uuid.UUID(str(course_id))
    created: list[list[Lesson]] = []
    async with api.app[keys.DATABASE].transaction() as session:
        first = await session.scalar(
            select(func.count()).select_from(Section).where(Section.course_id == cid)
        )
        for offset, lessons in enumerate(sections):
            section = Section(
                course_id=cid, title=f"Section {offset + 1}", position=int(first or 0) + offset
            )
            session.add(section)
            await session.flush()
            rows = []
            for position, fields in enumerate(lessons):
                values: dict[str, Any] = {
                    "kind": LessonKind.TEXT.value,
                    "title": f"Lesson {position + 1}",
                    "body": "Secret body",
                }
                values.update(fields)
                rows.append(
                    Lesson(section_id=section.id, course_id=cid, position=position, **values)
                )
            session.add_all(rows)
            created.append(rows)
    return created


async def course_row(api: Api, course_id: str | uuid.UUID) -> Course | None:
    async with api.app[keys.DATABASE].sessions() as session:
        return await session.get(Course, uuid.UUID(str(course_id)))


async def error_of(response: Any) -> tuple[int, str]:
    body = await response.json()
    return response.status, body["error"]


# --------------------------------------------------------------------------- create


async def test_create_course_defaults_and_authoring_view(api: Api) -> None:
    owner, headers = await teacher(api)
    body = await create(
        api,
        headers,
        title="  Intro to Python  ",
        summary="Learn Python from scratch.",
        description="# Hello\n\n<script>alert(1)</script>",
        tags=["Python", " python ", "Machine Learning", "PYTHON"],
    )
    assert body["title"] == "Intro to Python"
    assert body["slug"] == "intro-to-python"
    assert body["status"] == "draft"
    assert body["published_at"] is None
    assert body["owner_id"] == str(owner.id)
    assert body["instructors"] == [{"id": str(owner.id), "full_name": owner.full_name}]
    assert body["tags"] == ["machine-learning", "python"]
    assert body["level"] == "beginner"
    assert body["language"] == "en"
    assert (body["price_minor"], body["currency"], body["is_free"]) == (0, "EUR", True)
    assert body["sections"] == []
    assert (body["lesson_count"], body["total_duration_seconds"]) == (0, 0)
    assert body["enrollment_count"] == 0
    assert "<h1>Hello</h1>" in body["description_html"]
    assert "<script>" not in body["description_html"]
    assert "&lt;script&gt;" in body["description_html"]

    row = await course_row(api, body["id"])
    assert row is not None
    assert (row.slug, row.owner_id, row.status) == ("intro-to-python", owner.id, "draft")
    async with api.app[keys.DATABASE].sessions() as session:
        tags = set(
            await session.scalars(select(CourseTag.tag).where(CourseTag.course_id == row.id))
        )
    assert tags == {"python", "machine-learning"}

    again = await api.client.get(f"{COURSES}/{body['id']}", headers=headers)
    assert again.status == 200
    assert await again.json() == body


async def test_all_fields_are_stored(api: Api) -> None:
    _, headers = await teacher(api)
    body = await create(
        api,
        headers,
        title="Advanced Rust",
        summary="Ownership, lifetimes, async.",
        level="advanced",
        language="pt-BR",
        price_minor=4900,
        currency="USD",
        slug="rust-advanced",
    )
    assert body["slug"] == "rust-advanced"
    assert (body["level"], body["language"]) == ("advanced", "pt-BR")
    assert (body["price_minor"], body["currency"], body["is_free"]) == (4900, "USD", False)


async def test_generated_slugs_never_collide(api: Api) -> None:
    _, headers = await teacher(api)
    slugs = [(await create(api, headers, title="Data Science 101"))["slug"] for _ in range(3)]
    assert slugs == ["data-science-101", "data-science-101-2", "data-science-101-3"]
    # A course whose slug merely starts the same does not shift the numbering.
    assert (await create(api, headers, title="Data Science 1010"))["slug"] == "data-science-1010"
    assert (await create(api, headers, title="!!!"))["slug"] == "course"
    assert (await create(api, headers, title="???"))["slug"] == "course-2"
    assert (await create(api, headers, title="Ünïcödé Çafé"))["slug"] == "unicode-cafe"


async def test_long_titles_make_slugs_of_at_most_120(api: Api) -> None:
    _, headers = await teacher(api)
    title = "word " * 40
    first = (await create(api, headers, title=title))["slug"]
    second = (await create(api, headers, title=title))["slug"]
    assert len(first) <= 120
    assert len(second) <= 120
    assert second.endswith("-2")
    assert second != first


@pytest.mark.shared_db
async def test_concurrent_creations_of_one_title_all_succeed(api: Api) -> None:
    """Real transactions in parallel: a unique violation is retried, never a 500."""
    _, headers = await teacher(api)
    responses = await asyncio.gather(
        *[api.client.post(COURSES, json={"title": "Same title"}, headers=headers) for _ in range(6)]
    )
    assert [r.status for r in responses] == [201] * 6
    slugs = {(await r.json())["slug"] for r in responses}
    assert slugs == {"same-title", *(f"same-title-{n}" for n in range(2, 7))}


async def test_explicit_slug_rules(api: Api) -> None:
    _, headers = await teacher(api)
    assert (await create(api, headers, slug="my-course-1"))["slug"] == "my-course-1"

    taken = await api.client.post(
        COURSES, json={"title": "Other", "slug": "my-course-1"}, headers=headers
    )
    assert await error_of(taken) == (409, "slug_taken")

    for bad in [
        "My-Course",
        "my course",
        "my--course",
        "-course",
        "course-",
        "cours_e",
        "a" * 121,
        "",
    ]:
        response = await api.client.post(
            COURSES, json={"title": "Bad slug", "slug": bad}, headers=headers
        )
        assert await error_of(response) == (422, "validation_failed"), bad
        details = (await response.json())["details"]
        assert details[0]["loc"] == ["body", "slug"]
    # A generated slug steps around an explicit one.
    assert (await create(api, headers, title="My course 1"))["slug"] == "my-course-1-2"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "title"),
        ({"title": "   "}, "title"),
        ({"title": "x" * 201}, "title"),
        ({"title": "bad\x00title"}, "title"),
        ({"title": 42}, "title"),
        ({"title": "ok", "summary": "s" * 501}, "summary"),
        ({"title": "ok", "summary": "nul\x00"}, "summary"),
        ({"title": "ok", "description": "d" * 50_001}, "description"),
        ({"title": "ok", "description": "nul\x00"}, "description"),
        ({"title": "ok", "level": "expert"}, "level"),
        ({"title": "ok", "language": "english"}, "language"),
        ({"title": "ok", "language": "EN"}, "language"),
        ({"title": "ok", "language": "en-us"}, "language"),
        ({"title": "ok", "currency": "eur"}, "currency"),
        ({"title": "ok", "currency": "EURO"}, "currency"),
        ({"title": "ok", "price_minor": -1}, "price_minor"),
        ({"title": "ok", "price_minor": 100_000_001}, "price_minor"),
        ({"title": "ok", "price_minor": 9.5}, "price_minor"),
        ({"title": "ok", "price_minor": "100"}, "price_minor"),
        ({"title": "ok", "price_minor": True}, "price_minor"),
        ({"title": "ok", "tags": [f"t{i}" for i in range(11)]}, "tags"),
        ({"title": "ok", "tags": ["!!!"]}, "tags"),
        ({"title": "ok", "tags": [""]}, "tags"),
        ({"title": "ok", "tags": ["x" * 41]}, "tags"),
        ({"title": "ok", "tags": "python"}, "tags"),
        ({"title": "ok", "owner_id": str(uuid.uuid4())}, "owner_id"),
        ({"title": "ok", "status": "published"}, "status"),
    ],
)
async def test_invalid_course_fields_are_refused(
    api: Api, body: dict[str, Any], field: str
) -> None:
    _, headers = await teacher(api)
    response = await api.client.post(COURSES, json=body, headers=headers)
    assert await error_of(response) == (422, "validation_failed")
    locs = [d["loc"] for d in (await response.json())["details"]]
    assert any(loc[:2] == ["body", field] for loc in locs), locs
    async with api.app[keys.DATABASE].sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Course)) == 0


async def test_malformed_bodies_are_4xx(api: Api) -> None:
    _, headers = await teacher(api)
    broken = await api.client.post(
        COURSES, data=b"{not json", headers={**headers, "Content-Type": "application/json"}
    )
    assert await error_of(broken) == (400, "malformed_json")
    listed = await api.client.post(COURSES, json=["title"], headers=headers)
    assert await error_of(listed) == (422, "validation_failed")
    text = await api.client.post(
        COURSES, data=b"title=x", headers={**headers, "Content-Type": "text/plain"}
    )
    assert await error_of(text) == (415, "unsupported_media_type")


async def test_only_instructors_and_admins_create_courses(api: Api) -> None:
    _, student = await teacher(api, Role.STUDENT)
    refused = await api.client.post(COURSES, json={"title": "Mine"}, headers=student)
    assert await error_of(refused) == (403, "forbidden")
    anonymous = await api.client.post(COURSES, json={"title": "Mine"})
    assert await error_of(anonymous) == (401, "unauthorized")
    admin, admin_headers = await teacher(api, Role.ADMIN)
    assert (await create(api, admin_headers))["owner_id"] == str(admin.id)


# --------------------------------------------------------------------------- read and edit


async def test_authoring_view_has_the_outline_in_order_without_content(api: Api) -> None:
    _, headers = await teacher(api)
    course = await create(api, headers, title="Outlined")
    [first, second] = await add_outline(
        api,
        course["id"],
        [
            {
                "title": "Watch",
                "kind": "video",
                "video_url": "https://v.example/1",
                "duration_seconds": 300,
                "body": "",
            },
            {"title": "Read", "is_preview": True},
        ],
        [
            {
                "title": "Test",
                "kind": "quiz",
                "quiz_id": uuid.uuid4(),
                "is_required": False,
                "body": "",
            }
        ],
    )
    response = await api.client.get(f"{COURSES}/{course['id']}", headers=headers)
    assert response.status == 200
    body = await response.json()
    assert [s["title"] for s in body["sections"]] == ["Section 1", "Section 2"]
    assert [s["position"] for s in body["sections"]] == [0, 1]
    assert body["sections"][0]["lessons"] == [
        {
            "id": str(first[0].id),
            "title": "Watch",
            "kind": "video",
            "position": 0,
            "is_preview": False,
            "is_required": True,
            "duration_seconds": 300,
        },
        {
            "id": str(first[1].id),
            "title": "Read",
            "kind": "text",
            "position": 1,
            "is_preview": True,
            "is_required": True,
            "duration_seconds": None,
        },
    ]
    assert body["sections"][1]["lessons"][0]["id"] == str(second[0].id)
    assert (body["lesson_count"], body["total_duration_seconds"]) == (3, 300)
    assert "Secret body" not in await response.text()
    assert "v.example" not in await response.text()


async def test_edit_course_fields(api: Api) -> None:
    _, headers = await teacher(api)
    course = await create(api, headers, title="Before", summary="Old", tags=["a", "b"])
    url = f"{COURSES}/{course['id']}"

    response = await api.client.patch(
        url,
        json={
            "title": " After ",
            "summary": "New summary",
            "description": "*new*",
            "level": "intermediate",
            "language": "fr",
            "tags": ["C", "b", "Web Dev"],
            "price_minor": 1500,
            "currency": "GBP",
        },
        headers=headers,
    )
    assert response.status == 200, await response.text()
    body = await response.json()
    assert body["title"] == "After"
    assert body["slug"] == course["slug"]  # a title change keeps the slug (links stay valid)
    assert (body["summary"], body["level"], body["language"]) == (
        "New summary",
        "intermediate",
        "fr",
    )
    assert body["tags"] == ["b", "c", "web-dev"]
    assert (body["price_minor"], body["currency"], body["is_free"]) == (1500, "GBP", False)
    assert body["description_html"] == "<p><em>new</em></p>\n"
    assert datetime.fromisoformat(body["updated_at"]) > datetime.fromisoformat(course["updated_at"])

    only_summary = await api.client.patch(url, json={"summary": None}, headers=headers)
    assert only_summary.status == 200
    cleared = await only_summary.json()
    assert cleared["summary"] == ""
    assert cleared["title"] == "After"
    assert cleared["tags"] == ["b", "c", "web-dev"]

    no_tags = await (await api.client.patch(url, json={"tags": []}, headers=headers)).json()
    assert no_tags["tags"] == []


async def test_cover_image_reference(api: Api) -> None:
    _, headers = await teacher(api)
    course = await create(api, headers, cover_file="covers/rivers.png")
    assert course["cover_file"] == "covers/rivers.png"
    url = f"{COURSES}/{course['id']}"
    changed = await api.client.patch(url, json={"cover_file": "covers/v2.png"}, headers=headers)
    assert (await changed.json())["cover_file"] == "covers/v2.png"
    for bad in ("../etc/passwd", "/abs/key.png", "a b.png", ""):
        refused = await api.client.patch(url, json={"cover_file": bad}, headers=headers)
        assert refused.status == 422, bad
    stored = await course_row(api, course["id"])
    assert stored is not None
    assert stored.cover_file == "covers/v2.png"
    cleared = await api.client.patch(url, json={"cover_file": None}, headers=headers)
    assert (await cleared.json())["cover_file"] is None


async def test_edit_refuses_empty_and_null_and_invalid(api: Api) -> None:
    _, headers = await teacher(api)
    course = await create(api, headers, title="Stable")
    url = f"{COURSES}/{course['id']}"
    for body in [
        {},
        {"title": None},
        {"tags": None},
        {"price_minor": None},
        {"level": None},
        {"slug": None},
        {"title": ""},
        {"language": "xx_YY"},
        {"unknown": 1},
        {"price_minor": -5},
    ]:
        response = await api.client.patch(url, json=body, headers=headers)
        assert await error_of(response) == (422, "validation_failed"), body
    row = await course_row(api, course["id"])
    assert row is not None
    assert row.title == "Stable"


async def test_changing_the_slug(api: Api) -> None:
    _, headers = await teacher(api)
    first = await create(api, headers, title="First")
    second = await create(api, headers, title="Second")
    url = f"{COURSES}/{second['id']}"

    taken = await api.client.patch(url, json={"slug": first["slug"]}, headers=headers)
    assert await error_of(taken) == (409, "slug_taken")
    same = await api.client.patch(url, json={"slug": second["slug"]}, headers=headers)
    assert same.status == 200
    bad = await api.client.patch(url, json={"slug": "Not A Slug"}, headers=headers)
    assert await error_of(bad) == (422, "validation_failed")
    moved = await api.client.patch(url, json={"slug": "second-edition"}, headers=headers)
    assert (await moved.json())["slug"] == "second-edition"
    # The old slug is free again.
    assert (await create(api, headers, title="Second"))["slug"] == "second"


async def test_object_level_checks_on_every_course_endpoint(api: Api) -> None:
    _, owner = await teacher(api)
    _, stranger = await teacher(api)
    _, student = await teacher(api, Role.STUDENT)
    course = await create(api, owner, title="Guarded", summary="s")
    await add_outline(api, course["id"], [{}])
    url = f"{COURSES}/{course['id']}"
    calls: list[tuple[str, str, Any]] = [
        ("GET", url, None),
        ("PATCH", url, {"title": "Taken over"}),
        ("DELETE", url, None),
        ("POST", f"{url}/publish", None),
        ("POST", f"{url}/archive", None),
    ]
    for method, path, body in calls:
        response = await api.client.request(method, path, json=body, headers=stranger)
        assert await error_of(response) == (403, "forbidden"), (method, path)
        response = await api.client.request(method, path, json=body, headers=student)
        assert await error_of(response) == (403, "forbidden"), (method, path)
        response = await api.client.request(method, path, json=body)
        assert await error_of(response) == (401, "unauthorized"), (method, path)
        unknown = path.replace(course["id"], str(uuid.uuid4()))
        response = await api.client.request(method, unknown, json=body, headers=owner)
        assert await error_of(response) == (404, "course_not_found"), (method, path)
        garbled = path.replace(course["id"], "not-a-uuid")
        response = await api.client.request(method, garbled, json=body, headers=owner)
        assert await error_of(response) == (422, "validation_failed"), (method, path)
    row = await course_row(api, course["id"])
    assert row is not None
    assert (row.title, row.status) == ("Guarded", "draft")


async def test_admin_may_edit_any_course(api: Api) -> None:
    _, owner = await teacher(api)
    _, admin = await teacher(api, Role.ADMIN)
    course = await create(api, owner, title="Owned")
    response = await api.client.patch(
        f"{COURSES}/{course['id']}", json={"title": "Edited by admin"}, headers=admin
    )
    assert response.status == 200
    assert (await response.json())["title"] == "Edited by admin"


async def test_list_my_courses(api: Api) -> None:
    me, headers = await teacher(api)
    other, other_headers = await teacher(api)
    _, admin = await teacher(api, Role.ADMIN)
    mine = [await create(api, headers, title=f"Mine {i}") for i in range(3)]
    theirs = await create(api, other_headers, title="Theirs, co-taught by me")
    await create(api, other_headers, title="Theirs only")
    shared = await api.client.put(
        f"{COURSES}/{theirs['id']}/instructors/{me.id}", headers=other_headers
    )
    assert shared.status == 200

    response = await api.client.get(COURSES, headers=headers)
    assert response.status == 200
    page = await response.json()
    assert page["total"] == 4
    assert {c["title"] for c in page["items"]} == {*(c["title"] for c in mine), theirs["title"]}
    assert page["items"][0]["title"] == theirs["title"]  # newest first
    co_taught = next(c for c in page["items"] if c["id"] == theirs["id"])
    assert co_taught["owner_id"] == str(other.id)
    assert [p["id"] for p in co_taught["instructors"]] == [str(other.id), str(me.id)]
    assert "sections" not in co_taught

    first = await (await api.client.get(COURSES, params={"limit": 2}, headers=headers)).json()
    rest = await (
        await api.client.get(COURSES, params={"limit": 2, "offset": 2}, headers=headers)
    ).json()
    ids = [c["id"] for c in first["items"] + rest["items"]]
    assert len(set(ids)) == 4
    assert first["total"] == rest["total"] == 4

    await add_outline(api, mine[0]["id"], [{}])
    await api.client.patch(f"{COURSES}/{mine[0]['id']}", json={"summary": "s"}, headers=headers)
    assert (
        await api.client.post(f"{COURSES}/{mine[0]['id']}/publish", headers=headers)
    ).status == 200
    published = await (
        await api.client.get(COURSES, params={"status": "published"}, headers=headers)
    ).json()
    assert [c["id"] for c in published["items"]] == [mine[0]["id"]]

    everything = await (await api.client.get(COURSES, headers=admin)).json()
    assert everything["total"] == 5

    _, student = await teacher(api, Role.STUDENT)
    assert await error_of(await api.client.get(COURSES, headers=student)) == (403, "forbidden")
    for params in [
        {"status": "gone"},
        {"limit": "0"},
        {"limit": "101"},
        {"offset": "-1"},
        {"offset": "10001"},
        {"limit": "ten"},
    ]:
        response = await api.client.get(COURSES, params=params, headers=headers)
        assert await error_of(response) == (422, "validation_failed"), params


# --------------------------------------------------------------------------- delete


async def test_a_draft_is_deleted_with_its_outline(api: Api) -> None:
    _, headers = await teacher(api)
    course = await create(api, headers, tags=["x"])
    await add_outline(api, course["id"], [{}, {}])
    response = await api.client.delete(f"{COURSES}/{course['id']}", headers=headers)
    assert response.status == 204
    assert await course_row(api, course["id"]) is None
    async with api.app[keys.DATABASE].sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Lesson)) == 0
        assert await session.scalar(select(func.count()).select_from(CourseTag)) == 0
    gone = await api.client.get(f"{COURSES}/{course['id']}", headers=headers)
    assert await error_of(gone) == (404, "course_not_found")
    again = await api.client.delete(f"{COURSES}/{course['id']}", headers=headers)
    assert await error_of(again) == (404, "course_not_found")


async def test_published_and_archived_courses_are_not_deleted(api: Api) -> None:
    _, headers = await teacher(api)
    course = await create(api, headers, summary="Ready")
    await add_outline(api, course["id"], [{}])
    url = f"{COURSES}/{course['id']}"
    assert (await api.client.post(f"{url}/publish", headers=headers)).status == 200
    assert await error_of(await api.client.delete(url, headers=headers)) == (
        409,
        "course_not_draft",
    )
    assert (await api.client.post(f"{url}/archive", headers=headers)).status == 200
    assert await error_of(await api.client.delete(url, headers=headers)) == (
        409,
        "course_not_draft",
    )
    assert await course_row(api, course["id"]) is not None


async def test_a_draft_with_any_enrollment_is_not_deleted(api: Api) -> None:
    _, headers = await teacher(api)
    student = await api.user(Role.STUDENT)
    course = await create(api, headers)
    async with api.app[keys.DATABASE].transaction() as session:
        session.add(
            Enrollment(
                user_id=student.id,
                course_id=uuid.UUID(course["id"]),
                status=EnrollmentStatus.CANCELLED.value,
            )
        )
    response = await api.client.delete(f"{COURSES}/{course['id']}", headers=headers)
    assert await error_of(response) == (409, "course_has_enrollments")
    assert await course_row(api, course["id"]) is not None


# --------------------------------------------------------------------------- publish, archive


async def test_publish_lists_every_problem_then_publishes(api: Api) -> None:
    _, headers = await teacher(api)
    course = await create(api, headers, title="Work in progress")
    url = f"{COURSES}/{course['id']}"

    empty = await api.client.post(f"{url}/publish", headers=headers)
    assert await error_of(empty) == (422, "course_incomplete")
    details = (await empty.json())["details"]
    assert {tuple(d["loc"]) for d in details} == {("summary",), ("lessons",)}
    assert all(d["type"] == "missing" and d["msg"] for d in details)

    [[video, quiz, file, _text]] = await add_outline(
        api,
        course["id"],
        [
            {"title": "Clip", "kind": "video", "body": ""},
            {"title": "Check", "kind": "quiz", "body": ""},
            {"title": "Slides", "kind": "file", "body": ""},
            {"title": "Notes"},
        ],
    )
    incomplete = await api.client.post(f"{url}/publish", headers=headers)
    assert await error_of(incomplete) == (422, "course_incomplete")
    locs = {tuple(d["loc"]) for d in (await incomplete.json())["details"]}
    assert locs == {
        ("summary",),
        ("lessons", str(video.id), "video_url"),
        ("lessons", str(video.id), "duration_seconds"),
        ("lessons", str(quiz.id), "quiz_id"),
        ("lessons", str(file.id), "file_ref"),
    }
    row = await course_row(api, course["id"])
    assert row is not None
    assert (row.status, row.published_at) == ("draft", None)

    async with api.app[keys.DATABASE].transaction() as session:
        for lesson in (video, quiz, file):
            lesson = await session.get_one(Lesson, lesson.id)
            lesson.video_url = "https://v.example/clip" if lesson.kind == "video" else None
            lesson.duration_seconds = 90 if lesson.kind == "video" else None
            lesson.quiz_id = uuid.uuid4() if lesson.kind == "quiz" else None
            lesson.file_ref = "files/slides.pdf" if lesson.kind == "file" else None
    await api.client.patch(url, json={"summary": "Finished"}, headers=headers)

    published = await api.client.post(f"{url}/publish", headers=headers)
    assert published.status == 200, await published.text()
    body = await published.json()
    assert body["status"] == "published"
    assert body["published_at"] is not None

    again = await api.client.post(f"{url}/publish", headers=headers)
    assert again.status == 200
    assert (await again.json())["published_at"] == body["published_at"]

    listed = await (await api.client.get("/api/v1/catalog")).json()
    assert [c["slug"] for c in listed["items"]] == [course["slug"]]


async def test_archive_and_publish_again(api: Api) -> None:
    _, headers = await teacher(api)
    course = await create(api, headers, summary="Ready")
    await add_outline(api, course["id"], [{}])
    url = f"{COURSES}/{course['id']}"

    draft = await api.client.post(f"{url}/archive", headers=headers)
    assert await error_of(draft) == (409, "course_not_published")

    first = await (await api.client.post(f"{url}/publish", headers=headers)).json()
    archived = await api.client.post(f"{url}/archive", headers=headers)
    assert archived.status == 200
    assert (await archived.json())["status"] == "archived"
    again = await api.client.post(f"{url}/archive", headers=headers)
    assert again.status == 200
    assert (await again.json())["status"] == "archived"

    catalog = await (await api.client.get("/api/v1/catalog")).json()
    assert catalog["total"] == 0
    hidden = await api.client.get(f"/api/v1/catalog/{course['slug']}")
    assert await error_of(hidden) == (404, "course_not_found")

    back = await (await api.client.post(f"{url}/publish", headers=headers)).json()
    assert back["status"] == "published"
    assert back["published_at"] == first["published_at"]  # the first publication counts


async def test_republishing_an_archived_course_checks_completeness_again(api: Api) -> None:
    _, headers = await teacher(api)
    course = await create(api, headers, summary="Ready")
    await add_outline(api, course["id"], [{}])
    url = f"{COURSES}/{course['id']}"
    assert (await api.client.post(f"{url}/publish", headers=headers)).status == 200
    assert (await api.client.post(f"{url}/archive", headers=headers)).status == 200
    await api.client.patch(url, json={"summary": ""}, headers=headers)
    refused = await api.client.post(f"{url}/publish", headers=headers)
    assert await error_of(refused) == (422, "course_incomplete")
    row = await course_row(api, course["id"])
    assert row is not None
    assert row.status == CourseStatus.ARCHIVED


# --------------------------------------------------------------------------- co-instructors


async def test_co_instructors(api: Api) -> None:
    owner, owner_h = await teacher(api)
    co, co_h = await teacher(api)
    other, other_h = await teacher(api)
    student, student_h = await teacher(api, Role.STUDENT)
    _, admin_h = await teacher(api, Role.ADMIN)
    course = await create(api, owner_h, title="Team course")
    url = f"{COURSES}/{course['id']}"

    before = await api.client.patch(url, json={"title": "Not yet"}, headers=co_h)
    assert await error_of(before) == (403, "forbidden")

    added = await api.client.put(f"{url}/instructors/{co.id}", headers=owner_h)
    assert added.status == 200
    expected = [
        {"id": str(owner.id), "full_name": owner.full_name},
        {"id": str(co.id), "full_name": co.full_name},
    ]
    assert (await added.json())["instructors"] == expected
    twice = await api.client.put(f"{url}/instructors/{co.id}", headers=owner_h)
    assert (await twice.json())["instructors"] == expected

    edited = await api.client.patch(url, json={"title": "Edited by co"}, headers=co_h)
    assert edited.status == 200
    assert (await edited.json())["instructors"] == expected

    # Only the owner (or an admin) manages the team.
    by_co = await api.client.put(f"{url}/instructors/{other.id}", headers=co_h)
    assert await error_of(by_co) == (403, "forbidden")
    by_other = await api.client.put(f"{url}/instructors/{other.id}", headers=other_h)
    assert await error_of(by_other) == (403, "forbidden")
    by_student = await api.client.put(f"{url}/instructors/{other.id}", headers=student_h)
    assert await error_of(by_student) == (403, "forbidden")
    anonymous = await api.client.put(f"{url}/instructors/{other.id}")
    assert await error_of(anonymous) == (401, "unauthorized")
    stranger_edit = await api.client.patch(url, json={"title": "Mine now"}, headers=other_h)
    assert await error_of(stranger_edit) == (403, "forbidden")

    not_teacher = await api.client.put(f"{url}/instructors/{student.id}", headers=owner_h)
    assert await error_of(not_teacher) == (422, "not_an_instructor")
    unknown = await api.client.put(f"{url}/instructors/{uuid.uuid4()}", headers=owner_h)
    assert await error_of(unknown) == (404, "user_not_found")
    itself = await api.client.put(f"{url}/instructors/{owner.id}", headers=owner_h)
    assert await error_of(itself) == (409, "owner_is_instructor")
    no_course = await api.client.put(
        f"{COURSES}/{uuid.uuid4()}/instructors/{co.id}", headers=owner_h
    )
    assert await error_of(no_course) == (404, "course_not_found")

    by_admin = await api.client.put(f"{url}/instructors/{other.id}", headers=admin_h)
    assert by_admin.status == 200
    assert len((await by_admin.json())["instructors"]) == 3

    removed = await api.client.delete(f"{url}/instructors/{other.id}", headers=owner_h)
    assert removed.status == 204
    co_removes = await api.client.delete(f"{url}/instructors/{co.id}", headers=co_h)
    assert await error_of(co_removes) == (403, "forbidden")
    removed = await api.client.delete(f"{url}/instructors/{co.id}", headers=owner_h)
    assert removed.status == 204
    missing = await api.client.delete(f"{url}/instructors/{co.id}", headers=owner_h)
    assert await error_of(missing) == (404, "co_instructor_not_found")
    owner_removed = await api.client.delete(f"{url}/instructors/{owner.id}", headers=owner_h)
    assert await error_of(owner_removed) == (404, "co_instructor_not_found")

    after = await api.client.patch(url, json={"title": "Too late"}, headers=co_h)
    assert await error_of(after) == (403, "forbidden")
    async with api.app[keys.DATABASE].sessions() as session:
        assert await session.scalar(select(func.count()).select_from(CourseInstructor)) == 0
        title = await session.scalar(
            select(Course.title).where(Course.id == uuid.UUID(course["id"]))
        )
    assert title == "Edited by co"


async def test_a_co_instructor_may_publish_and_archive(api: Api) -> None:
    _, owner_h = await teacher(api)
    co, co_h = await teacher(api)
    course = await create(api, owner_h, summary="Ready")
    await add_outline(api, course["id"], [{}])
    url = f"{COURSES}/{course['id']}"
    assert (await api.client.put(f"{url}/instructors/{co.id}", headers=owner_h)).status == 200
    assert (await api.client.get(url, headers=co_h)).status == 200
    assert (await api.client.post(f"{url}/publish", headers=co_h)).status == 200
    assert (await api.client.post(f"{url}/archive", headers=co_h)).status == 200
