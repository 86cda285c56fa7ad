"""The public catalog: filters, full-text search, sorts, stable pages, course pages and who
may see drafts; plus one run on the embedded SQLite default (the LIKE search fallback)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncConnection

from lms_live import keys, migrations
from lms_live.app import create_app
from lms_live.auth import service as auth
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
from lms_live.enrollments.models import Enrollment
from tests.authkit import Api
from tests.conftest import bearer, make_settings
from tests.test_courses_authoring import error_of, teacher

CATALOG = "/api/v1/catalog"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


# --------------------------------------------------------------------------- helpers


async def course(
    app: web.Application,
    owner: User,
    title: str,
    *,
    status: CourseStatus = CourseStatus.PUBLISHED,
    published_at: datetime | None = T0,
    tags: Sequence[str] = (),
    lessons: Sequence[dict[str, Any]] = (),
    co_instructors: Sequence[User] = (),
    **fields: Any,
) -> Course:
    """A course written straight into the database, published by default."""
    async with app[keys.DATABASE].transaction() as session:
        row = Course(
            slug=fields.pop("slug", None) or f"c-{uuid.uuid4().hex[:12]}",
            title=title,
            owner_id=owner.id,
            status=status.value,
            published_at=published_at if status != CourseStatus.DRAFT else None,
            **fields,
        )
        session.add(row)
        await session.flush()
        session.add_all([CourseTag(course_id=row.id, tag=tag) for tag in tags])
        session.add_all([CourseInstructor(course_id=row.id, user_id=u.id) for u in co_instructors])
        if lessons:
            section = Section(course_id=row.id, title="Only section", position=0)
            session.add(section)
            await session.flush()
            for position, values in enumerate(lessons):
                data: dict[str, Any] = {"kind": LessonKind.TEXT.value, "title": f"L{position}"}
                data.update(values)
                session.add(
                    Lesson(section_id=section.id, course_id=row.id, position=position, **data)
                )
    return row


async def listing(api: Api, **params: Any) -> dict[str, Any]:
    response = await api.client.get(CATALOG, params={k: str(v) for k, v in params.items()})
    assert response.status == 200, await response.text()
    body: dict[str, Any] = await response.json()
    return body


async def titles(api: Api, **params: Any) -> list[str]:
    return [item["title"] for item in (await listing(api, **params))["items"]]


@contextmanager
def statements(app: web.Application) -> Iterator[list[tuple[str, Any]]]:
    """Every SQL statement the app sends meanwhile, with its parameters."""
    seen: list[tuple[str, Any]] = []
    bind = app[keys.DATABASE].sessions.kw.get("bind")
    target: Any = (
        bind.sync_connection
        if isinstance(bind, AsyncConnection)
        else app[keys.DATABASE].engine.sync_engine
    )

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if not statement.startswith(("SAVEPOINT", "RELEASE", "ROLLBACK TO")):  # test harness
            seen.append((statement, parameters))

    event.listen(target, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(target, "before_cursor_execute", record)


# --------------------------------------------------------------------------- listing


async def test_catalog_lists_published_courses_as_cards(api: Api) -> None:
    owner = await api.user(Role.INSTRUCTOR)
    shown = await course(
        api.app,
        owner,
        "Shown",
        summary="A fine course",
        tags=["zeta", "alpha"],
        level="intermediate",
        language="de",
        price_minor=1200,
        currency="CHF",
        enrollment_count=7,
        cover_file="covers/shown.png",
        lessons=[
            {"kind": "video", "video_url": "https://v.example/1", "duration_seconds": 100},
            {"kind": "video", "video_url": "https://v.example/2", "duration_seconds": 50},
            {"kind": "text", "duration_seconds": 999},
            {"kind": "quiz", "quiz_id": uuid.uuid4()},
        ],
    )
    await course(api.app, owner, "Draft", status=CourseStatus.DRAFT)
    await course(api.app, owner, "Archived", status=CourseStatus.ARCHIVED)

    page = await listing(api)
    assert (page["total"], page["limit"], page["offset"]) == (1, 20, 0)
    assert page["items"] == [
        {
            "id": str(shown.id),
            "slug": shown.slug,
            "title": "Shown",
            "summary": "A fine course",
            "level": "intermediate",
            "language": "de",
            "tags": ["alpha", "zeta"],
            "price_minor": 1200,
            "currency": "CHF",
            "is_free": False,
            "owner": {"id": str(owner.id), "full_name": owner.full_name},
            "published_at": "2026-01-01T00:00:00Z",
            "enrollment_count": 7,
            "lesson_count": 4,
            "total_duration_seconds": 150,
            "cover_file": "covers/shown.png",
        }
    ]


async def test_filter_by_instructor_owner_or_co_instructor(api: Api) -> None:
    ada = await api.user(Role.INSTRUCTOR)
    bob = await api.user(Role.INSTRUCTOR)
    await course(api.app, ada, "Ada alone")
    await course(api.app, bob, "Bob with Ada", co_instructors=[ada])
    await course(api.app, bob, "Bob alone")
    assert sorted(await titles(api, instructor=ada.id)) == ["Ada alone", "Bob with Ada"]
    assert sorted(await titles(api, instructor=bob.id)) == ["Bob alone", "Bob with Ada"]
    assert await titles(api, instructor=uuid.uuid4()) == []


async def test_filters_level_language_tag_price(api: Api) -> None:
    owner = await api.user(Role.INSTRUCTOR)
    await course(api.app, owner, "Free beginner en", tags=["data-science", "python"])
    await course(
        api.app, owner, "Paid advanced fr", level="advanced", language="fr", price_minor=999
    )
    await course(
        api.app, owner, "Paid beginner pt-BR", language="pt-BR", price_minor=1, tags=["python"]
    )

    assert await titles(api, level="advanced") == ["Paid advanced fr"]
    assert await titles(api, language="fr") == ["Paid advanced fr"]
    assert await titles(api, language="pt-BR") == ["Paid beginner pt-BR"]
    assert await titles(api, tag="Data Science") == ["Free beginner en"]  # normalised
    assert sorted(await titles(api, tag="python")) == ["Free beginner en", "Paid beginner pt-BR"]
    assert await titles(api, tag="nothing") == []
    assert await titles(api, price="free") == ["Free beginner en"]
    assert sorted(await titles(api, price="paid")) == ["Paid advanced fr", "Paid beginner pt-BR"]
    both = await listing(api, price="paid", level="beginner", tag="python")
    assert (both["total"], [i["title"] for i in both["items"]]) == (1, ["Paid beginner pt-BR"])


@pytest.mark.parametrize(
    "params",
    [
        {"q": "x" * 201},
        {"q": "nul\x00byte"},
        {"instructor": "ada"},
        {"level": "expert"},
        {"language": "english"},
        {"tag": "!!!"},
        {"tag": "t" * 41},
        {"price": "cheap"},
        {"sort": "random"},
        {"limit": "0"},
        {"limit": "101"},
        {"limit": "many"},
        {"offset": "-1"},
        {"offset": "10001"},
    ],
)
async def test_invalid_catalog_queries_are_422(api: Api, params: dict[str, str]) -> None:
    response = await api.client.get(CATALOG, params=params)
    assert await error_of(response) == (422, "validation_failed")
    [name] = params
    assert any(d["loc"][:2] == ["query", name] for d in (await response.json())["details"])


# --------------------------------------------------------------------------- search


async def test_full_text_search_on_postgresql(api: Api) -> None:
    owner = await api.user(Role.INSTRUCTOR)
    await course(api.app, owner, "Rivers of the world", summary="From spring to delta.")
    await course(api.app, owner, "Mountains", summary="Glaciers feed the rivers below.")
    await course(api.app, owner, "Deserts", summary="Sand, wind and very little water.")
    await course(api.app, owner, "Hidden rivers", summary="Draft only", status=CourseStatus.DRAFT)

    assert sorted(await titles(api, q="rivers")) == ["Mountains", "Rivers of the world"]
    assert await titles(api, q="GLACIERS") == ["Mountains"]  # a word of the summary, any case
    assert await titles(api, q="delta spring") == ["Rivers of the world"]  # every word
    assert await titles(api, q="rivers -glaciers") == ["Rivers of the world"]  # websearch syntax
    assert await titles(api, q='"little water"') == ["Deserts"]
    assert await titles(api, q='"water little"') == []
    assert await titles(api, q="rivers OR sand", sort="title") == [
        "Deserts",
        "Mountains",
        "Rivers of the world",
    ]
    assert await titles(api, q="ocean") == []
    # Odd input is a query like any other, never an error.
    for odd in ["!!!", "' OR 1=1 --", "a & | ! :* <->", '"', "%_\\", "   "]:
        response = await api.client.get(CATALOG, params={"q": odd})
        assert response.status == 200, odd
    assert (await listing(api, q="   "))["total"] == 3  # blank: no search


async def test_search_ranks_best_matches_first_unless_a_sort_is_given(api: Api) -> None:
    owner = await api.user(Role.INSTRUCTOR)
    await course(api.app, owner, "A passing mention", summary="one python", published_at=T0)
    await course(
        api.app,
        owner,
        "Z python python",
        summary="python all the way down with python",
        published_at=T0 - timedelta(days=30),
    )
    assert await titles(api, q="python") == ["Z python python", "A passing mention"]
    assert await titles(api, q="python", sort="title") == ["A passing mention", "Z python python"]
    assert await titles(api, q="python", sort="newest") == ["A passing mention", "Z python python"]


async def test_search_uses_the_gin_index(api: Api) -> None:
    """The statement sent is the one the expression index `ix_course_search` serves."""
    owner = await api.user(Role.INSTRUCTOR)
    await course(api.app, owner, "Indexed", summary="words")
    with statements(api.app) as seen:
        await listing(api, q="words", sort="title")
    [(sql, params)] = [(s, p) for s, p in seen if "websearch_to_tsquery" in s and "LIMIT" in s]
    assert "to_tsvector('simple', course.title || ' ' || course.summary)" in sql
    async with api.app[keys.DATABASE].sessions() as session, session.begin():
        # Within the test's rolled-back transaction: with a handful of rows the planner would
        # rather scan the table or a status index; take those options away.
        conn = await session.connection()
        await conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
        await conn.exec_driver_sql("DROP INDEX ix_course_status_published_at")
        await conn.exec_driver_sql("DROP INDEX ix_course_status_popular")
        plan = "\n".join(
            row[0] for row in await conn.exec_driver_sql("EXPLAIN " + sql, tuple(params))
        )
    assert "ix_course_search" in plan, plan


# --------------------------------------------------------------------------- sorts, pages


async def test_sorts(api: Api) -> None:
    owner = await api.user(Role.INSTRUCTOR)
    await course(api.app, owner, "banana", published_at=T0, enrollment_count=5)
    await course(api.app, owner, "Apple", published_at=T0 + timedelta(days=2), enrollment_count=1)
    await course(api.app, owner, "cherry", published_at=T0 + timedelta(days=1), enrollment_count=9)

    assert await titles(api) == ["Apple", "cherry", "banana"]  # newest by default
    assert await titles(api, sort="newest") == ["Apple", "cherry", "banana"]
    assert await titles(api, sort="title") == ["Apple", "banana", "cherry"]  # any case
    assert await titles(api, sort="popular") == ["cherry", "banana", "Apple"]


@pytest.mark.parametrize("sort", ["newest", "title", "popular"])
async def test_pages_are_stable_even_when_every_sort_key_ties(api: Api, sort: str) -> None:
    owner = await api.user(Role.INSTRUCTOR)
    created = [await course(api.app, owner, "Same title") for _ in range(23)]
    ids: list[str] = []
    for offset in range(0, 30, 7):
        page = await listing(api, sort=sort, limit=7, offset=offset)
        assert page["total"] == 23
        assert (page["limit"], page["offset"]) == (7, offset)
        ids += [item["id"] for item in page["items"]]
    assert len(ids) == 23
    assert sorted(ids) == sorted(str(c.id) for c in created)
    # Ties resolve by id, so the order is the same on every call.
    assert ids == sorted(ids)
    assert (await listing(api, offset=10_000))["items"] == []


async def test_a_page_costs_the_same_few_queries_whatever_its_size(api: Api) -> None:
    owner = await api.user(Role.INSTRUCTOR)
    co = await api.user(Role.INSTRUCTOR)
    for i in range(30):
        await course(
            api.app,
            owner,
            f"Course {i}",
            tags=["a", "b"],
            lessons=[{"kind": "video", "video_url": "https://v.example", "duration_seconds": 5}],
            co_instructors=[co],
        )
    counts = []
    for limit in (1, 30):
        with statements(api.app) as seen:
            page = await listing(api, limit=limit)
        assert len(page["items"]) == limit
        assert all(i["lesson_count"] == 1 and i["tags"] == ["a", "b"] for i in page["items"])
        counts.append(len(seen))
    assert counts[0] == counts[1] <= 4, counts

    _, headers = await teacher(api, Role.ADMIN)
    await api.client.get("/api/v1/courses", headers=headers)  # warms the revocation cache
    mine = []
    for limit in (1, 30):
        with statements(api.app) as seen:
            response = await api.client.get(
                "/api/v1/courses", params={"limit": str(limit)}, headers=headers
            )
        assert len((await response.json())["items"]) == limit
        mine.append(len(seen))
    assert mine[0] == mine[1] <= 5, mine


# --------------------------------------------------------------------------- course page


async def test_course_page_of_a_published_course(api: Api) -> None:
    owner = await api.user(Role.INSTRUCTOR)
    co = await api.user(Role.INSTRUCTOR)
    published = await course(
        api.app,
        owner,
        "Open course",
        summary="Everything you need",
        description="**Bold** <script>alert('x')</script> [x](javascript:alert(1))",
        tags=["b", "a"],
        co_instructors=[co],
        lessons=[
            {
                "title": "Watch",
                "kind": "video",
                "video_url": "https://v.example/secret",
                "duration_seconds": 60,
                "is_preview": True,
            },
            {"title": "Read", "body": "SECRET BODY", "is_required": False},
            {"title": "Download", "kind": "file", "file_ref": "files/secret.pdf"},
        ],
    )
    response = await api.client.get(f"{CATALOG}/{published.slug}")
    assert response.status == 200
    body = await response.json()
    text = await response.text()
    for secret in ("SECRET BODY", "v.example/secret", "files/secret.pdf"):
        assert secret not in text
    assert body["viewer"] is None
    assert body["status"] == "published"
    assert body["tags"] == ["a", "b"]
    assert (body["lesson_count"], body["total_duration_seconds"]) == (3, 60)
    assert body["instructors"] == [
        {"id": str(owner.id), "full_name": owner.full_name},
        {"id": str(co.id), "full_name": co.full_name},
    ]
    assert body["description"].startswith("**Bold**")
    html = body["description_html"]
    assert "<strong>Bold</strong>" in html
    assert "<script>" not in html
    assert "&lt;script&gt;" in html
    assert "javascript:" not in html.replace("[x](javascript:alert(1))", "")
    [section] = body["sections"]
    assert section["title"] == "Only section"
    assert [lesson["title"] for lesson in section["lessons"]] == ["Watch", "Read", "Download"]
    assert section["lessons"][0] == {
        "id": section["lessons"][0]["id"],
        "title": "Watch",
        "kind": "video",
        "position": 0,
        "is_preview": True,
        "is_required": True,
        "duration_seconds": 60,
    }
    assert section["lessons"][1]["is_required"] is False
    card = (await listing(api))["items"][0]
    assert {k: body[k] for k in card} == card  # the page repeats the card


async def test_course_page_tells_a_signed_in_viewer_what_they_are(api: Api) -> None:
    owner, owner_h = await teacher(api)
    co = await api.user(Role.INSTRUCTOR)
    student, student_h = await teacher(api, Role.STUDENT)
    _, other_h = await teacher(api, Role.STUDENT)
    _, admin_h = await teacher(api, Role.ADMIN)
    published = await course(api.app, owner, "Viewed", co_instructors=[co])
    async with api.app[keys.DATABASE].transaction() as session:
        session.add(Enrollment(user_id=student.id, course_id=published.id))
    co_tokens = await api.login(co.email)
    co_h = {"Authorization": f"Bearer {co_tokens['access_token']}"}
    url = f"{CATALOG}/{published.slug}"

    async def viewer(headers: dict[str, str]) -> Any:
        response = await api.client.get(url, headers=headers)
        assert response.status == 200
        return (await response.json())["viewer"]

    assert await viewer(student_h) == {"enrolled": True, "teaches": False}
    assert await viewer(other_h) == {"enrolled": False, "teaches": False}
    assert await viewer(owner_h) == {"enrolled": False, "teaches": True}
    assert await viewer(co_h) == {"enrolled": False, "teaches": True}
    assert await viewer(admin_h) == {"enrolled": False, "teaches": False}
    # A bad token on a public page is simply anonymous.
    assert await viewer({"Authorization": "Bearer nonsense"}) is None


@pytest.mark.parametrize("status", [CourseStatus.DRAFT, CourseStatus.ARCHIVED])
async def test_unpublished_course_pages_exist_only_for_their_teachers(
    api: Api, status: CourseStatus
) -> None:
    owner, owner_h = await teacher(api)
    co = await api.user(Role.INSTRUCTOR)
    co_h = {"Authorization": f"Bearer {(await api.login(co.email))['access_token']}"}
    _, other_h = await teacher(api)
    _, student_h = await teacher(api, Role.STUDENT)
    _, admin_h = await teacher(api, Role.ADMIN)
    hidden = await course(api.app, owner, "Not public", status=status, co_instructors=[co])
    url = f"{CATALOG}/{hidden.slug}"

    for headers in ({}, student_h, other_h):
        response = await api.client.get(url, headers=headers)
        assert await error_of(response) == (404, "course_not_found")
    for headers in (owner_h, co_h, admin_h):
        response = await api.client.get(url, headers=headers)
        assert response.status == 200
        assert (await response.json())["status"] == status.value
    assert (await listing(api))["total"] == 0


async def test_unknown_and_odd_slugs_are_404(api: Api) -> None:
    for slug in ["no-such-course", "Upper-Case", "with%20space", "a--b", "x" * 150]:
        response = await api.client.get(f"{CATALOG}/{slug}")
        assert await error_of(response) == (404, "course_not_found"), slug
    response = await api.client.get(f"{CATALOG}/{'x' * 201}")
    assert response.status == 422


# --------------------------------------------------------------------------- embedded SQLite


async def test_catalog_on_the_embedded_sqlite_default(
    aiohttp_client: Any, tmp_path: Path, worker_id: str
) -> None:
    settings = make_settings(tmp_path, worker_id, pg_url=None, redis_url=None)
    await asyncio.to_thread(migrations.upgrade, "head", url=settings.effective_database_url)
    app = create_app(settings)
    client = await aiohttp_client(app)
    assert app[keys.DATABASE].engine.dialect.name == "sqlite"
    async with app[keys.DATABASE].transaction() as session:
        owner = await auth.create_user(
            session,
            email="owner@example.org",
            full_name="Owner",
            password="correct horse battery staple",
            role=Role.INSTRUCTOR,
            verified=True,
            bcrypt_rounds=4,
        )
    await course(app, owner, "Fifty off", summary="Now 50% OFF for everyone", tags=["sale"])
    await course(app, owner, "Five hundred", summary="500 offers", published_at=T0 + timedelta(1))
    await course(app, owner, "snake_case explained", summary="Python naming")
    await course(app, owner, "Draft python", status=CourseStatus.DRAFT)

    async def found(**params: str) -> list[str]:
        response = await client.get(CATALOG, params=params)
        assert response.status == 200, await response.text()
        return [item["title"] for item in (await response.json())["items"]]

    assert await found(q="50%") == ["Fifty off"]  # % is a character, not a wildcard
    assert await found(q="e_c") == ["snake_case explained"]  # so is _
    assert await found(q="PYTHON") == ["snake_case explained"]  # any case, drafts hidden
    assert await found(q="off") == ["Five hundred", "Fifty off"]
    assert await found(q="zzz") == []
    assert await found(sort="title") == ["Fifty off", "Five hundred", "snake_case explained"]
    assert await found(tag="sale", price="free") == ["Fifty off"]
    assert await found(q="off", sort="newest", limit="1", offset="1") == ["Fifty off"]

    slug = (await (await client.get(CATALOG, params={"q": "50%"})).json())["items"][0]["slug"]
    detail = await client.get(f"{CATALOG}/{slug}")
    assert detail.status == 200
    assert (await detail.json())["title"] == "Fifty off"

    # Authoring works there too.
    headers = bearer(app, role="instructor", user_id=owner.id)
    created = await client.post("/api/v1/courses", json={"title": "Fifty off"}, headers=headers)
    assert created.status == 201, await created.text()
    assert (await created.json())["slug"] != slug
