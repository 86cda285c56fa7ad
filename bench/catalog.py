"""Catalog benchmark: the public course catalog on a realistic data set.

Run by hand (`make bench-catalog`, or `.venv/bin/python bench/catalog.py --help`). It creates
PostgreSQL database `lms_bench_catalog` (dropped first), migrates it to head and seeds it with
asyncpg COPY (defaults: 200 instructors, 20,000 learners, 10,000 courses, each with 2-5
sections of 3-8 lessons, 100,000 enrollments), then VACUUM ANALYZE. The data set:

- courses: 90% published, the rest draft or archived; titles and summaries drawn from word
  lists (about a quarter of the titles start "Introduction to", so `q=introduction` finds
  thousands; the word `zeppelin` is planted in the summaries of a handful, so `q=zeppelin`
  finds a few); levels, languages en/fr/de/es, 0-4 of 50 tags (popular ones more often),
  30% paid, 15% with co-instructors;
- lessons: text, video (with a duration), file and quiz, the first of each course a preview;
- enrollments: in published or archived courses with Zipf-like popularity (a few courses hold
  thousands of learners), 75% active, 15% completed, 10% cancelled, random progress;
  `course.enrollment_count` is the number of active + completed enrollments, as the
  enrollments domain keeps it.

The data is drawn from a seeded generator (`--seed`); the parameters are stored in the
database's comment, so `--keep` can reuse a database seeded with the same ones.

One `python -m lms_live serve` process (ENVIRONMENT=production, rate limits at
100000000/minute, LOG_LEVEL=WARNING by default) runs on that database and Redis DB 12
(flushed before and after). Every case is first checked once (200 and the expected body shape;
the benchmark stops otherwise), then measured with wrk (`--connections`, 32 by default) for
`--warmup` seconds (discarded) and `--duration` seconds, counting the CPU the server process
and its PostgreSQL backends used per request (/proc), and then at 1 connection for
`--single-duration` seconds: at 32 connections a saturated server answers in about
connections / throughput, so the 1-connection p50 is what one request costs without queueing.
Cases of `GET /api/v1/catalog`: the
first page, `sort=popular`, a tag + level filter, full-text search for a common and a rare
word, a deep page (`offset=5000`), `limit=100`; and `GET /api/v1/catalog/{slug}` cycling
through 100 published courses (a wrk Lua script). Progress goes to stderr, the table
(Markdown) to stdout. wrk and the server share the machine's CPUs.
"""

from __future__ import annotations

import os
import sys

# `python bench/catalog.py` puts bench/ first on sys.path, where bench/http.py would shadow
# the standard library's `http` package. Import bench/http.py as `bench.http` from the
# repository root instead (appended, so nothing there shadows an installed package).
if os.path.abspath(sys.path[0] or os.curdir) == os.path.dirname(os.path.abspath(__file__)):
    sys.path.remove(sys.path[0])
if os.path.dirname(os.path.dirname(os.path.abspath(__file__))) not in sys.path:
    sys.path.append(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import argparse
import asyncio
import bisect
import itertools
import json
import platform
import random
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
import types
import uuid
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from string import Template
from typing import Any
from urllib.parse import urlencode, urlsplit

import aiohttp

from bench.http import (
    READY,
    BenchError,
    LoadResult,
    Progress,
    Server,
    _admin_sql,
    clean_env,
    cpu_description,
    flush_redis,
    free_port,
    http_get,
    lms_env,
    lms_server_argv,
    log_tail,
    parse_wrk,
    process_cpu_seconds,
    running,
    wrk_version,
)

CATALOG = "/api/v1/catalog"
BENCH_DATABASE = "lms_bench_catalog"
DATA_VERSION = 1  # bump when the generator changes, so --keep reseeds
EMAIL_DOMAIN = "lms-bench.example.com"
PASSWORD = "catalog-bench-password"  # noqa: S105 (every seeded account's; nobody signs in)
WRK_TIMEOUT = 30  # seconds: a slow query must show in the latencies, not as a socket error
DETAIL_SLUGS = 100
COPY_CHUNK = 5_000
RARE_WORD = "zeppelin"
RARE_COUNT = 6  # courses whose summary carries RARE_WORD (one of them a draft)
COMMON_WORD = "introduction"
ZIPF_EXPONENT = 0.9

# --------------------------------------------------------------------------------------------
# Word lists.
# --------------------------------------------------------------------------------------------


def _split(words: str) -> tuple[str, ...]:
    return tuple(words.split())


TOPICS = _split(
    "python javascript rust golang statistics algebra calculus geometry photography "
    "watercolor guitar piano singing cooking baking gardening astronomy chemistry biology "
    "genetics economics accounting marketing negotiation leadership writing poetry history "
    "philosophy psychology spanish french german japanese yoga nutrition running chess "
    "woodworking pottery drawing animation linux networking databases sql kubernetes "
    "security cryptography robotics electronics geology oceanography climate architecture "
    "typography filmmaking podcasting"
)
ADJECTIVES = _split(
    "practical modern hands-on complete essential advanced applied creative everyday "
    "professional quick gentle visual rigorous playful"
)
AUDIENCES = _split("beginners professionals kids teams scientists artists managers parents")
VOCABULARY = _split(
    "learn build understand practice explore master create design improve discover apply "
    "projects skills ideas methods tools examples exercises fundamentals techniques habits "
    "patterns problems solutions concepts principles stories questions answers mistakes "
    "confidence clarity rhythm structure balance detail focus progress feedback results "
    "weekly daily simple clear solid real useful honest careful patient curious friendly "
    "small large long short deep wide fast slow quiet bright warm fresh local global "
    "your the a with through from into across beyond without every each many several "
    "home work studio kitchen garden classroom workshop field lab office city coast river "
    "mountain forest village market library museum theatre stage camera notebook keyboard "
    "paper colour light sound water stone wood metal glass clay thread data code model "
    "network signal chart map story voice hand mind body breath team friend teacher "
    "mentor community world history future tomorrow morning evening season journey step "
    "habit routine plan goal challenge game puzzle experiment review summary checklist "
    "template sketch draft version release deploy measure compare explain describe "
    "analyse organise schedule balance negotiate present publish record edit mix tune "
    "paint carve bake brew plant harvest observe calculate estimate predict verify test"
)
TAGS = _split(
    "programming data-science web design business languages music art photography "
    "cooking health fitness mathematics science history writing career productivity "
    "finance marketing leadership security cloud devops mobile games ai robotics "
    "electronics crafts gardening travel parenting psychology philosophy economics law "
    "education engineering architecture film literature poetry chess yoga nutrition "
    "sustainability astronomy biology chemistry"
)
FIRST_NAMES = _split(
    "Ada Alan Grace Linus Margaret Edsger Barbara Donald Frances Ken Radia Tim Sophie Hedy "
    "Katherine Dennis Anita John Mary Guido Yukihiro Bjarne Leslie Shafi Juan Chiara Ingrid "
    "Amara Kofi Mei Ravi Olga Pierre Lucia Tomasz Aiko Nadia Emeka Freya Mateo"
)
LAST_NAMES = _split(
    "Lovelace Turing Hopper Torvalds Hamilton Dijkstra Liskov Knuth Allen Thompson Perlman "
    "Berners-Lee Wilson Lamarr Johnson Ritchie Borg McCarthy Shaw Rossum Matsumoto "
    "Stroustrup Lamport Goldwasser Garcia Rossi Berg Okafor Mensah Chen Patel Ivanova "
    "Dubois Fernandez Nowak Tanaka Haddad Eze Larsen Silva"
)
LEVELS = ("beginner", "intermediate", "advanced")
LEVEL_WEIGHTS = (50, 35, 15)
LANGUAGES = ("en", "fr", "de", "es")
LANGUAGE_WEIGHTS = (55, 15, 15, 15)
LESSON_KINDS = ("text", "video", "file", "quiz")
LESSON_KIND_WEIGHTS = (45, 35, 10, 10)
SECTION_TITLES = (
    "Getting started",
    "First steps",
    "Core ideas",
    "Going further",
    "In practice",
    "Projects",
    "Common mistakes",
    "Putting it together",
    "Next steps",
    "Review",
)

# --------------------------------------------------------------------------------------------
# The data set.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sizes:
    """What to seed; stored in the database's comment so --keep knows what it holds."""

    instructors: int
    learners: int
    courses: int
    enrollments: int
    seed: int

    @property
    def marker(self) -> str:
        return (
            f"lms_live catalog bench v{DATA_VERSION}: instructors={self.instructors} "
            f"learners={self.learners} courses={self.courses} "
            f"enrollments={self.enrollments} seed={self.seed}"
        )


USER_COLUMNS = (
    "id",
    "created_at",
    "updated_at",
    "email",
    "full_name",
    "password_hash",
    "role",
    "is_active",
    "email_verified_at",
)
COURSE_COLUMNS = (
    "id",
    "created_at",
    "updated_at",
    "slug",
    "title",
    "summary",
    "description",
    "level",
    "language",
    "price_minor",
    "currency",
    "status",
    "published_at",
    "owner_id",
    "enrollment_count",
)
SECTION_COLUMNS = ("id", "created_at", "updated_at", "course_id", "title", "position")
LESSON_COLUMNS = (
    "id",
    "created_at",
    "updated_at",
    "section_id",
    "course_id",
    "title",
    "kind",
    "position",
    "body",
    "video_url",
    "duration_seconds",
    "file_ref",
    "is_preview",
    "is_required",
)
ENROLLMENT_COLUMNS = (
    "id",
    "created_at",
    "updated_at",
    "user_id",
    "course_id",
    "status",
    "enrolled_at",
    "completed_at",
    "cancelled_at",
    "progress_percent",
    "last_activity_at",
    "last_lesson_id",
)


@dataclass
class Table:
    """Rows for one table, in COPY order (parents before children)."""

    name: str
    columns: Sequence[str]
    rows: list[tuple[Any, ...]] = field(default_factory=list)


class Generator:
    """Builds every row of the data set in memory from one seeded random generator."""

    def __init__(self, sizes: Sizes, password_hash: str) -> None:
        self.sizes = sizes
        self.rng = random.Random(sizes.seed)
        self.password_hash = password_hash
        self.now = datetime.now(UTC).replace(microsecond=0)
        self.vocabulary_weights = _zipf_cumulative(len(VOCABULARY), 1.0)
        self.tag_weights = _zipf_cumulative(len(TAGS), 0.8)

    def new_id(self) -> uuid.UUID:
        """A UUID4 drawn from the seeded generator (the same data set on every run)."""
        return uuid.UUID(int=self.rng.getrandbits(128), version=4)

    def moment(self, after: datetime, before: datetime | None = None) -> datetime:
        """A random instant between `after` and `before` (default now), to the second."""
        end = before or self.now
        span = max(0, int((end - after).total_seconds()))
        return after + timedelta(seconds=self.rng.randint(0, span))

    def words(self, count: int) -> list[str]:
        return self.rng.choices(VOCABULARY, cum_weights=self.vocabulary_weights, k=count)

    def sentence(self, low: int, high: int) -> str:
        text = " ".join(self.words(self.rng.randint(low, high)))
        return text[0].upper() + text[1:] + "."

    def title(self, topic: str) -> str:
        rng = self.rng
        shape = rng.randrange(12)
        name = topic.capitalize()
        if shape < 3:
            return f"Introduction to {name}"
        if shape < 6:
            return f"{rng.choice(ADJECTIVES).capitalize()} {name}"
        if shape < 8:
            return f"{name} for {rng.choice(AUDIENCES)}"
        if shape < 9:
            return f"Mastering {name}"
        if shape < 10:
            return f"{name} in {rng.randint(2, 12)} weeks"
        first, second = self.words(2)
        return f"{rng.choice(ADJECTIVES).capitalize()} {name}: from {first} to {second}"

    def build(self) -> list[Table]:
        sizes, rng = self.sizes, self.rng
        started = self.now - timedelta(days=3 * 365)
        users = Table("user", USER_COLUMNS)
        instructors: list[uuid.UUID] = []
        learners: list[uuid.UUID] = []
        for role, count, ids, prefix, digits in (
            ("instructor", sizes.instructors, instructors, "instructor", 3),
            ("student", sizes.learners, learners, "learner", 5),
        ):
            for number in range(1, count + 1):
                user_id = self.new_id()
                created = self.moment(started)
                name = f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
                email = f"{prefix}{number:0{digits}d}@{EMAIL_DOMAIN}"
                users.rows.append(
                    (
                        user_id,
                        created,
                        created,
                        email,
                        name,
                        self.password_hash,
                        role,
                        True,
                        created,
                    )
                )
                ids.append(user_id)

        # Courses: attributes first; enrollment_count is filled once enrollments are drawn.
        courses: list[list[Any]] = []
        rare = set(rng.sample(range(sizes.courses), min(RARE_COUNT, sizes.courses)))
        rare_draft = min(rare) if rare else -1
        for index in range(sizes.courses):
            course_id = self.new_id()
            created = self.moment(started)
            status = "published"
            draw = rng.random()
            if index == rare_draft:
                status = "draft"
            elif draw >= 0.9:
                status = "draft" if draw < 0.96 else "archived"
            topic = rng.choice(TOPICS)
            title = self.title(topic)
            summary = (
                f"{rng.choice(['Learn', 'Discover', 'Practise', 'Explore'])} {topic} "
                + " ".join(self.words(rng.randint(8, 18)))
                + (f" aboard a {RARE_WORD}" if index in rare else "")
                + "."
            )
            description = "\n\n".join(self.sentence(12, 30) for _ in range(rng.randint(2, 4)))
            published = self.moment(created) if status != "draft" else None
            updated = self.moment(published or created)
            paid = rng.random() < 0.3
            slug = _slug(title)[:100] + f"-{index:05d}"
            courses.append(
                [
                    course_id,
                    created,
                    updated,
                    slug,
                    title,
                    summary[:500],
                    description,
                    rng.choices(LEVELS, LEVEL_WEIGHTS)[0],
                    rng.choices(LANGUAGES, LANGUAGE_WEIGHTS)[0],
                    rng.choice([990, 1990, 2990, 4990, 9990, 14990]) if paid else 0,
                    "EUR",
                    status,
                    published,
                    rng.choice(instructors),
                    0,
                ]
            )

        tags = Table("course_tag", ("course_id", "tag"))
        co_instructors = Table("course_instructor", ("course_id", "user_id"))
        for course in courses:
            chosen: set[str] = set()
            for _ in range(rng.choice([0, 1, 1, 2, 2, 2, 3, 3, 4])):
                pick = bisect.bisect(self.tag_weights, rng.random() * self.tag_weights[-1])
                chosen.add(TAGS[min(pick, len(TAGS) - 1)])
            tags.rows.extend((course[0], tag) for tag in sorted(chosen))
            if rng.random() < 0.15:
                others = [i for i in rng.sample(instructors, 3) if i != course[13]]
                co_instructors.rows.extend((course[0], i) for i in others[: rng.randint(1, 2)])

        sections = Table("section", SECTION_COLUMNS)
        lessons = Table("lesson", LESSON_COLUMNS)
        lessons_of: dict[uuid.UUID, list[uuid.UUID]] = {}
        for course in courses:
            course_id, created = course[0], course[1]
            course_lessons: list[uuid.UUID] = []
            titles = rng.sample(SECTION_TITLES, rng.randint(2, 5))
            for position, section_title in enumerate(titles):
                section_id = self.new_id()
                sections.rows.append(
                    (section_id, created, created, course_id, section_title, position)
                )
                for lesson_position in range(rng.randint(3, 8)):
                    kind = rng.choices(LESSON_KINDS, LESSON_KIND_WEIGHTS)[0]
                    lesson_id = self.new_id()
                    body = (
                        "\n\n".join(self.sentence(10, 25) for _ in range(rng.randint(2, 5)))
                        if kind == "text"
                        else ""
                    )
                    lessons.rows.append(
                        (
                            lesson_id,
                            created,
                            created,
                            section_id,
                            course_id,
                            " ".join(self.words(rng.randint(2, 6))).capitalize(),
                            kind,
                            lesson_position,
                            body,
                            f"https://video.{EMAIL_DOMAIN}/{lesson_id}.mp4"
                            if kind == "video"
                            else None,
                            rng.randint(120, 1800) if kind == "video" else None,
                            f"lessons/{lesson_id}.pdf" if kind == "file" else None,
                            not course_lessons,  # the first lesson of a course is a preview
                            rng.random() < 0.9,
                        )
                    )
                    course_lessons.append(lesson_id)
            lessons_of[course_id] = course_lessons

        enrollments = Table("enrollment", ENROLLMENT_COLUMNS)
        self.enroll(courses, learners, lessons_of, enrollments)
        course_table = Table("course", COURSE_COLUMNS, [tuple(course) for course in courses])
        return [users, course_table, tags, co_instructors, sections, lessons, enrollments]

    def enroll(
        self,
        courses: list[list[Any]],
        learners: list[uuid.UUID],
        lessons_of: dict[uuid.UUID, list[uuid.UUID]],
        table: Table,
    ) -> None:
        """Enrollments with Zipf-like course popularity; counts active + completed per course."""
        rng = self.rng
        open_courses = [course for course in courses if course[11] != "draft"]
        if not open_courses or not learners:
            return
        rng.shuffle(open_courses)  # popularity does not follow creation order
        weights = _zipf_cumulative(len(open_courses), ZIPF_EXPONENT)
        seen: set[tuple[int, int]] = set()
        taken = [0] * len(open_courses)
        target = min(self.sizes.enrollments, len(open_courses) * len(learners))
        while len(table.rows) < target:
            pick = bisect.bisect(weights, rng.random() * weights[-1])
            pick = min(pick, len(open_courses) - 1)
            if taken[pick] >= len(learners):
                continue
            learner = rng.randrange(len(learners))
            if (learner, pick) in seen:
                continue
            seen.add((learner, pick))
            taken[pick] += 1
            course = open_courses[pick]
            enrolled = self.moment(course[12])
            draw = rng.random()
            status = "active" if draw < 0.75 else "completed" if draw < 0.9 else "cancelled"
            progress = 100.0 if status == "completed" else round(rng.uniform(0, 99.9), 1)
            activity = self.moment(enrolled) if progress > 0 else None
            completed = activity if status == "completed" else None
            cancelled = self.moment(activity or enrolled) if status == "cancelled" else None
            course_lessons = lessons_of[course[0]]
            last_lesson = rng.choice(course_lessons) if activity and course_lessons else None
            updated = cancelled or activity or enrolled
            table.rows.append(
                (
                    self.new_id(),
                    enrolled,
                    updated,
                    learners[learner],
                    course[0],
                    status,
                    enrolled,
                    completed,
                    cancelled,
                    progress,
                    activity,
                    last_lesson,
                )
            )
            if status != "cancelled":
                course[14] += 1


def _zipf_cumulative(count: int, exponent: float) -> list[float]:
    """Cumulative weights 1/rank^exponent for ranks 1..count (for bisect or rng.choices)."""
    total = 0.0
    cumulative = []
    for rank in range(1, count + 1):
        total += rank**-exponent
        cumulative.append(total)
    return cumulative


def _slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


# --------------------------------------------------------------------------------------------
# The database.
# --------------------------------------------------------------------------------------------


def _connect_args(pg_base: str, database: str) -> dict[str, Any]:
    parts = urlsplit(pg_base.replace("postgresql+asyncpg://", "postgresql://", 1))
    return {
        "host": parts.hostname or "127.0.0.1",
        "port": parts.port or 5432,
        "user": parts.username or "postgres",
        "password": parts.password,
        "database": database,
        "timeout": 10,
    }


async def _fetch(pg_base: str, database: str, query: str, *params: Any) -> list[Any]:
    """The rows of one query."""
    import asyncpg

    conn = await asyncpg.connect(**_connect_args(pg_base, database))
    try:
        return list(await conn.fetch(query, *params))
    finally:
        await conn.close()


async def _seeded_with(pg_base: str) -> str | None:
    """The marker of an existing bench database whose counts match it; else None."""
    rows = await _fetch(
        pg_base,
        "postgres",
        "SELECT shobj_description(oid, 'pg_database') AS marker FROM pg_database "
        "WHERE datname = $1",
        BENCH_DATABASE,
    )
    if not rows or not rows[0]["marker"]:
        return None
    marker: str = rows[0]["marker"]
    found = dict(re.findall(r"(\w+)=(\d+)", marker))
    try:
        counts = (
            await _fetch(
                pg_base,
                BENCH_DATABASE,
                "SELECT (SELECT count(*) FROM \"user\" WHERE role = 'instructor') AS instructors,"
                " (SELECT count(*) FROM \"user\" WHERE role = 'student') AS learners,"
                " (SELECT count(*) FROM course) AS courses,"
                " (SELECT count(*) FROM enrollment) AS enrollments",
            )
        )[0]
    except Exception:  # a half-made or foreign database: seed it again
        return None
    for name in ("instructors", "learners", "courses", "enrollments"):
        if str(counts[name]) != found.get(name):
            return None
    return marker


async def _seed(pg_base: str, tables: list[Table], marker: str, say: Progress) -> None:
    """COPY every table in one transaction, with a progress line at most once a second."""
    import asyncpg

    total = sum(len(table.rows) for table in tables)
    conn = await asyncpg.connect(**_connect_args(pg_base, BENCH_DATABASE))
    try:
        started = last = time.perf_counter()
        done = 0
        async with conn.transaction():
            for table in tables:
                for start in range(0, len(table.rows), COPY_CHUNK):
                    chunk = table.rows[start : start + COPY_CHUNK]
                    await conn.copy_records_to_table(
                        table.name, records=chunk, columns=list(table.columns)
                    )
                    done += len(chunk)
                    now = time.perf_counter()
                    if now - last >= 1.0 or done == total:
                        last = now
                        rate = done / max(now - started, 1e-9)
                        eta = (total - done) / rate if rate else 0.0
                        say(
                            f"seeding: {table.name} {done:,}/{total:,} rows "
                            f"({100 * done / total:.0f}%), {rate:,.0f} rows/s, ETA {eta:.0f}s"
                        )
        say("VACUUM ANALYZE")
        await conn.execute("VACUUM (ANALYZE)")
        await conn.execute(f"COMMENT ON DATABASE \"{BENCH_DATABASE}\" IS '{marker}'")
    finally:
        await conn.close()


def migrate(env: dict[str, str], workdir: Path, say: Progress) -> None:
    """`lms_live migrate upgrade` on the bench database, with a clean environment."""
    say(f"migrating {BENCH_DATABASE} to head")
    done = subprocess.run(
        [sys.executable, "-m", "lms_live", "migrate", "upgrade"],
        cwd=workdir,
        env=clean_env(env),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        raise BenchError(f"migrating {BENCH_DATABASE} failed:\n{done.stdout}{done.stderr}")


def prepare_database(
    args: argparse.Namespace, sizes: Sizes, env: dict[str, str], workdir: Path, say: Progress
) -> float | None:
    """A migrated, seeded bench database; the seconds seeding took (None: reused, --keep)."""
    drop = f'DROP DATABASE IF EXISTS "{BENCH_DATABASE}" WITH (FORCE)'
    try:
        marker = asyncio.run(_seeded_with(args.postgres)) if args.keep else None
    except Exception as exc:
        raise BenchError(
            f"PostgreSQL ({args.postgres}) is unavailable: {exc}. Start it (`bash .ci/bootstrap`)."
        ) from exc
    if marker == sizes.marker:
        say(f"--keep: reusing {BENCH_DATABASE} ({marker})")
        migrate(env, workdir, say)
        return None
    asyncio.run(_admin_sql(args.postgres, drop, f'CREATE DATABASE "{BENCH_DATABASE}"'))
    migrate(env, workdir, say)
    started = time.perf_counter()
    from lms_live.core.security import hash_password

    password_hash = asyncio.run(hash_password(PASSWORD, rounds=12))
    say(
        f"generating {sizes.instructors:,} instructors, {sizes.learners:,} learners, "
        f"{sizes.courses:,} courses, {sizes.enrollments:,} enrollments (seed {sizes.seed})"
    )
    tables = Generator(sizes, password_hash).build()
    say(
        f"generated in {time.perf_counter() - started:.1f}s: "
        + ", ".join(f"{table.name} {len(table.rows):,}" for table in tables)
    )
    asyncio.run(_seed(args.postgres, tables, sizes.marker, say))
    seconds = time.perf_counter() - started
    say(f"seeded in {seconds:.1f}s")
    return seconds


@dataclass(frozen=True)
class Facts:
    """What the seeded database holds, read back from it: row counts and query targets."""

    rows: dict[str, int]
    published: int
    biggest_course: int
    tag: str
    tag_level_total: int
    common_total: int
    rare_total: int
    slugs: list[str]


FACTS_SQL = """
SELECT
    (SELECT count(*) FROM "user") AS "user",
    (SELECT count(*) FROM course) AS course,
    (SELECT count(*) FROM course_tag) AS course_tag,
    (SELECT count(*) FROM course_instructor) AS course_instructor,
    (SELECT count(*) FROM section) AS section,
    (SELECT count(*) FROM lesson) AS lesson,
    (SELECT count(*) FROM enrollment) AS enrollment,
    (SELECT count(*) FROM course WHERE status = 'published') AS published,
    (SELECT coalesce(max(enrollment_count), 0) FROM course) AS biggest,
    (SELECT t.tag FROM course_tag t JOIN course c ON c.id = t.course_id
     WHERE c.status = 'published' GROUP BY t.tag ORDER BY count(*) DESC, t.tag LIMIT 1) AS tag
"""
TAG_LEVEL_SQL = """
SELECT count(*) AS n FROM course c
WHERE c.status = 'published' AND c.level = 'beginner'
  AND EXISTS (SELECT 1 FROM course_tag t WHERE t.course_id = c.id AND t.tag = $1)
"""
# The migration's GIN index is on to_tsvector('simple', title || ' ' || summary).
WORD_SQL = """
SELECT count(*) AS n FROM course
WHERE status = 'published'
  AND to_tsvector('simple', title || ' ' || summary) @@ plainto_tsquery('simple', $1)
"""
SLUGS_SQL = "SELECT slug FROM course WHERE status = 'published' ORDER BY md5(slug) LIMIT $1"
TABLES = ("user", "course", "course_tag", "course_instructor", "section", "lesson", "enrollment")


async def _facts(pg_base: str) -> Facts:
    import asyncpg

    conn = await asyncpg.connect(**_connect_args(pg_base, BENCH_DATABASE))
    try:
        row = await conn.fetchrow(FACTS_SQL)
        tag = str(row["tag"] or TAGS[0])
        tag_level = await conn.fetchval(TAG_LEVEL_SQL, tag)
        common = await conn.fetchval(WORD_SQL, COMMON_WORD)
        rare = await conn.fetchval(WORD_SQL, RARE_WORD)
        slugs = await conn.fetch(SLUGS_SQL, DETAIL_SLUGS)
    finally:
        await conn.close()
    return Facts(
        rows={name: int(row[name]) for name in TABLES},
        published=int(row["published"]),
        biggest_course=int(row["biggest"]),
        tag=tag,
        tag_level_total=int(tag_level),
        common_total=int(common),
        rare_total=int(rare),
        slugs=[str(row["slug"]) for row in slugs],
    )


# --------------------------------------------------------------------------------------------
# Cases: checked once, then measured with wrk.
# --------------------------------------------------------------------------------------------

DETAIL_LUA = Template(
    """-- GET $prefix<slug> for $count published courses, in turn.
local slugs = {$slugs}
local threads = 0
local index = 0

function setup(thread)
  thread:set("first", threads * 37)
  threads = threads + 1
end

function init(args)
  index = first or 0
end

function request()
  index = index % #slugs + 1
  return wrk.format("GET", "$prefix" .. slugs[index])
end
"""
)


@dataclass(frozen=True)
class Case:
    key: str
    label: str
    request: str  # what the table shows
    params: dict[str, str] = field(default_factory=dict)  # list cases: the query
    expected_total: int | None = None  # from SQL over the seeded data; a mismatch is noted
    detail: bool = False

    @property
    def path(self) -> str:
        return f"{CATALOG}?{urlencode(self.params)}" if self.params else CATALOG


def make_cases(facts: Facts) -> list[Case]:
    """The measured requests, with the totals the seeded data predicts."""

    def listing(key: str, label: str, expected: int | None, **params: str) -> Case:
        shown = f"`GET {CATALOG}?{urlencode(params)}`"
        return Case(key, label, shown, params, expected)

    return [
        listing("first", "first page, default sort", facts.published, limit="20"),
        listing("popular", "most popular", facts.published, sort="popular", limit="20"),
        listing(
            "tag_level",
            "tag + level filter",
            facts.tag_level_total,
            tag=facts.tag,
            level="beginner",
            limit="20",
        ),
        listing("q_common", "search, common word", facts.common_total, q=COMMON_WORD, limit="20"),
        listing("q_rare", "search, rare word", facts.rare_total, q=RARE_WORD, limit="20"),
        listing("deep", "deep page", facts.published, offset="5000", limit="20"),
        listing("limit100", "100 per page", facts.published, limit="100"),
        Case(
            "detail",
            f"course detail, {len(facts.slugs)} slugs in turn",
            f"`GET {CATALOG}/{{slug}}`",
            detail=True,
        ),
    ]


def _get_json(server: Server, path: str) -> tuple[int, Any, int]:
    status, body = http_get(server.base + path, timeout=30.0)
    try:
        decoded = json.loads(body)
    except ValueError:
        decoded = body[:300]
    return status, decoded, len(body)


def _ordered(items: list[dict[str, Any]], name: str) -> bool:
    """Whether `name` never increases down the page (items lacking it are not judged)."""
    values = [item[name] for item in items if item.get(name) is not None]
    return all(a >= b for a, b in itertools.pairwise(values))


def check_listing(server: Server, case: Case) -> tuple[int, int, list[str]]:
    """(total, body bytes, notes) of one request; BenchError unless 200 with the right shape."""
    status, body, size = _get_json(server, case.path)
    where = f"{case.label} (GET {case.path})"
    if status != 200:
        raise BenchError(f"{where} answered {status}: {body!r:.300}")
    if not isinstance(body, dict) or not {"items", "total", "limit", "offset"} <= body.keys():
        raise BenchError(f"{where}: expected {{items, total, limit, offset}}, got {body!r:.300}")
    items, total = body["items"], body["total"]
    limit, offset = int(case.params.get("limit", 20)), int(case.params.get("offset", 0))
    if not isinstance(total, int) or not isinstance(items, list):
        raise BenchError(f"{where}: total must be an integer and items a list: {body!r:.300}")
    if body["limit"] != limit or body["offset"] != offset:
        raise BenchError(
            f"{where}: answered limit={body['limit']} offset={body['offset']}, "
            f"asked {limit}/{offset}"
        )
    if len(items) != max(0, min(limit, total - offset)):
        raise BenchError(f"{where}: {len(items)} items for total {total}, offset {offset}")
    if not all(isinstance(item, dict) and isinstance(item.get("slug"), str) for item in items):
        raise BenchError(f"{where}: every item must be an object with a slug: {items[:1]!r:.300}")
    notes = []
    if case.expected_total is not None and total != case.expected_total:
        notes.append(
            f"{case.label}: total {total:,}, the seeded data says {case.expected_total:,} "
            "(published courses matching the filter; full text: plainto_tsquery('simple'))"
        )
    if not items:
        notes.append(f"{case.label}: an empty page (total {total:,}, offset {offset:,})")
    sort = case.params.get("sort")
    if sort == "popular" and not _ordered(items, "enrollment_count"):
        raise BenchError(f"{where}: items are not ordered by enrollment_count")
    if sort is None and not case.params.get("q") and not _ordered(items, "published_at"):
        notes.append(f"{case.label}: items are not ordered by published_at (newest first)")
    return total, size, notes


def check_detail(server: Server, slugs: list[str]) -> int:
    """Every slug answers 200 with its course; the median body size."""
    sizes = []
    for slug in slugs:
        status, body, size = _get_json(server, f"{CATALOG}/{slug}")
        if status != 200:
            raise BenchError(f"GET {CATALOG}/{slug} answered {status}: {body!r:.300}")
        course = body.get("course", body) if isinstance(body, dict) else None
        if not isinstance(course, dict) or course.get("slug") != slug:
            raise BenchError(f"GET {CATALOG}/{slug}: not that course: {body!r:.300}")
        sizes.append(size)
    sizes.sort()
    return sizes[len(sizes) // 2] if sizes else 0


def wrk_argv(
    url: str, connections: int, threads: int, duration: int, script: Path | None
) -> list[str]:
    argv = [
        "wrk",
        f"-t{min(threads, connections)}",
        f"-c{connections}",
        f"-d{duration}s",
        f"--timeout={WRK_TIMEOUT}s",
        "--latency",
    ]
    if script is not None:
        argv += ["-s", str(script)]
    return [*argv, url]


def run_load(argv: list[str], duration: int) -> LoadResult:
    """Run wrk and parse its report."""
    done = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 90, check=False)
    if done.returncode != 0:
        raise BenchError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    return parse_wrk(done.stdout)


@dataclass
class Measured:
    case: Case
    total: int | None
    body_bytes: int
    result: LoadResult | None = None  # at --connections
    single: LoadResult | None = None  # at 1 connection: latency without queueing
    cpu_us: float | None = None  # the server process's CPU per request
    db_cpu_us: float | None = None  # the PostgreSQL backends' CPU per request


BACKENDS_SQL = (
    "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid() "
    "AND backend_type = 'client backend'"
)


def backend_cpu(pg_base: str) -> dict[int, float]:
    """CPU seconds so far of each PostgreSQL backend serving the bench database (the server's
    pooled connections; PostgreSQL runs on this machine)."""
    rows = asyncio.run(_fetch(pg_base, "postgres", BACKENDS_SQL, BENCH_DATABASE))
    found = {}
    for row in rows:
        seconds = process_cpu_seconds(int(row["pid"]))
        if seconds is not None:
            found[int(row["pid"])] = seconds
    return found


def measure(
    server: Server, measured: Measured, args: argparse.Namespace, script: Path, say: Progress
) -> None:
    """Warm-up, the load at --connections (with server and database CPU), then 1 connection."""
    case = measured.case
    url = server.base + (CATALOG if case.detail else case.path)
    chosen = script if case.detail else None
    if args.warmup:
        run_load(wrk_argv(url, args.connections, args.threads, args.warmup, chosen), args.warmup)
    db_before = backend_cpu(args.postgres)
    before = process_cpu_seconds(server.process.pid)
    argv = wrk_argv(url, args.connections, args.threads, args.duration, chosen)
    result = run_load(argv, args.duration)
    after = process_cpu_seconds(server.process.pid)
    db_after = backend_cpu(args.postgres)
    if server.process.poll() is not None:
        raise BenchError("the server died during the run:\n" + log_tail(server.log_path))
    if result.requests == 0:
        raise BenchError(f"{case.label}: no request completed in {args.duration}s")
    measured.result = result
    if before is not None and after is not None:
        measured.cpu_us = (after - before) / result.requests * 1e6
    if db_after:
        used = sum(cpu - db_before.get(pid, 0.0) for pid, cpu in db_after.items())
        measured.db_cpu_us = used / result.requests * 1e6
    say(
        f"{case.label}: {result.rps:,.1f} req/s, p50 {result.p50_ms:.2f} ms, p99 "
        f"{result.p99_ms:.2f} ms, non-2xx {result.bad_status}, socket errors "
        f"{result.socket_errors} ({result.requests:,} requests)"
    )
    if args.single_duration:
        single = run_load(wrk_argv(url, 1, 1, args.single_duration, chosen), args.single_duration)
        measured.single = single
        say(f"{case.label}, 1 connection: p50 {single.p50_ms:.2f} ms, p99 {single.p99_ms:.2f} ms")


# --------------------------------------------------------------------------------------------
# The server.
# --------------------------------------------------------------------------------------------


def start_server(
    stack: ExitStack, args: argparse.Namespace, env: dict[str, str], workdir: Path, say: Progress
) -> Server:
    """One production-like `lms_live serve` on the bench database, ready; `stack` stops it."""
    extra = {**env, "ENVIRONMENT": "production"}
    server_env = lms_env(secrets.token_urlsafe(48), args.log_level, "json", extra)
    port = free_port()
    server = stack.enter_context(
        running("lms_live", lms_server_argv(port), cwd=workdir, env=server_env, port=port)
    )
    waited = server.wait_for(READY)
    say(f"lms_live serve: ready on port {port} ({waited:.1f}s)")
    return server


@contextmanager
def redis_db(url: str, say: Progress) -> Iterator[None]:
    """The Redis DB, flushed before and after."""
    try:
        flush_redis(url)
    except Exception as exc:
        raise BenchError(f"Redis ({url}) is unavailable: {exc}") from exc
    try:
        yield
    finally:
        try:
            flush_redis(url)
        except Exception as exc:
            say(f"flushing {url} failed: {exc}")


# --------------------------------------------------------------------------------------------
# Report.
# --------------------------------------------------------------------------------------------


def _ms(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.2f}"


def report(
    args: argparse.Namespace,
    facts: Facts,
    results: list[Measured],
    seeded: float | None,
    notes: list[str],
    load_before: float,
) -> str:
    """The Markdown report: machine, data set, server, load, then one row per case."""
    rows = facts.rows
    seeding = f"seeded in {seeded:.1f}s" if seeded is not None else "reused (--keep)"
    lines = [
        f"lms_live catalog benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"machine: {cpu_description()}; Python {platform.python_version()}, aiohttp "
        f"{aiohttp.__version__}, {wrk_version()}; wrk, the server and PostgreSQL share these "
        f"CPUs; 1-min load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after",
        f"data ({seeding}, seed {args.seed}): {rows['user']:,} users ({args.instructors} "
        f"instructors), {rows['course']:,} courses ({facts.published:,} published), "
        f"{rows['course_tag']:,} course tags, {rows['course_instructor']:,} co-instructors, "
        f"{rows['section']:,} sections, {rows['lesson']:,} lessons, {rows['enrollment']:,} "
        f"enrollments (biggest course: {facts.biggest_course:,} learners)",
        f"server: one `lms_live serve`, ENVIRONMENT=production, PostgreSQL + Redis "
        f"({args.redis}), LOG_LEVEL={args.log_level}, rate limits 100000000/minute",
        f"load: wrk, {args.connections} connections, {args.threads} thread(s), "
        f"{args.warmup}s warm-up then {args.duration}s per case; then "
        f"{args.single_duration}s at 1 connection (latency without queueing)",
        "",
        "| case | request | total | body B | req/s | p50 ms | p99 ms | non-2xx "
        "| socket errors | server CPU µs/req | PostgreSQL CPU µs/req | p50 ms, 1 conn |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for measured in results:
        result = measured.result
        if result is None:
            continue
        total = f"{measured.total:,}" if measured.total is not None else "-"
        cpu = f"{measured.cpu_us:,.0f}" if measured.cpu_us is not None else "-"
        db_cpu = f"{measured.db_cpu_us:,.0f}" if measured.db_cpu_us is not None else "-"
        single = _ms(measured.single.p50_ms) if measured.single is not None else "-"
        lines.append(
            f"| {measured.case.label} | {measured.case.request} | {total} | "
            f"{measured.body_bytes:,} | {result.rps:,.0f} | {_ms(result.p50_ms)} | "
            f"{_ms(result.p99_ms)} | {result.bad_status:,} | {result.socket_errors:,} | {cpu} "
            f"| {db_cpu} | {single} |"
        )
    lines.append("")
    lines.append(
        f"tag filter: `{facts.tag}` (the most used tag); words: `{COMMON_WORD}` "
        f"(common), `{RARE_WORD}` (rare); detail: {len(facts.slugs)} published courses"
    )
    lines += [f"note: {note}" for note in notes]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Main.
# --------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark lms_live's public course catalog on a seeded PostgreSQL data set."
    )
    parser.add_argument("--duration", type=int, default=10, help="seconds per case (10)")
    parser.add_argument("--warmup", type=int, default=2, help="warm-up seconds per case (2)")
    parser.add_argument("--connections", type=int, default=32, help="open connections (32)")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (1)")
    parser.add_argument(
        "--single-duration",
        type=int,
        default=3,
        help="seconds per case at 1 connection, after the main load (3; 0 skips)",
    )
    parser.add_argument("--courses", type=int, default=10_000, help="courses (10000)")
    parser.add_argument("--enrollments", type=int, default=100_000, help="enrollments (100000)")
    parser.add_argument("--learners", type=int, default=20_000, help="learners (20000)")
    parser.add_argument("--instructors", type=int, default=200, help="instructors (200)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the data generator (1)")
    parser.add_argument(
        "--keep",
        action="store_true",
        help=f"keep {BENCH_DATABASE} afterwards, and reuse it when it holds this data set",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="1,000 courses, 2,000 learners, 10,000 enrollments; 3 s per case, 1 s warm-up",
    )
    parser.add_argument("--log-level", default="WARNING", help="LOG_LEVEL of lms_live (WARNING)")
    parser.add_argument(
        "--postgres",
        default="postgresql+asyncpg://postgres@127.0.0.1:5432",
        help=f"PostgreSQL server; database {BENCH_DATABASE} is created there (and dropped)",
    )
    parser.add_argument(
        "--redis", default="redis://127.0.0.1:6379/12", help="Redis DB (flushed before and after)"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.courses, args.learners, args.enrollments = 1_000, 2_000, 10_000
        args.duration, args.warmup, args.single_duration = 3, 1, 2
    if min(args.duration, args.connections, args.threads, args.courses) < 1:
        parser.error("--duration, --connections, --threads and --courses must be >= 1")
    if (
        min(args.instructors, args.learners) < 1
        or min(args.warmup, args.enrollments, args.single_duration) < 0
    ):
        parser.error(
            "--instructors and --learners must be >= 1; --warmup, --enrollments and "
            "--single-duration >= 0"
        )
    if args.instructors > 999 or args.learners > 99_999:
        parser.error("at most 999 instructors and 99,999 learners (their addresses are numbered)")
    if args.enrollments > args.learners * args.courses // 4:
        parser.error("--enrollments must be at most a quarter of learners x courses")
    return args


def _terminate(signum: int, frame: types.FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through the `finally` blocks that stop the server


def run(args: argparse.Namespace) -> int:
    """Seed (or reuse), start the server, check every case, measure, print the report."""
    say = Progress()
    if shutil.which("wrk") is None:
        raise BenchError("wrk is not installed: `apt-get install -y wrk` (Debian/Ubuntu)")
    load_before = os.getloadavg()[0]
    sizes = Sizes(args.instructors, args.learners, args.courses, args.enrollments, args.seed)
    env = {
        "DATABASE_URL": f"{args.postgres.rstrip('/')}/{BENCH_DATABASE}",
        "REDIS_URL": args.redis,
    }
    say(f"{cpu_description()}; wrk, the server and PostgreSQL share them")
    with tempfile.TemporaryDirectory(prefix="lms-bench-catalog-") as tmp, ExitStack() as stack:
        root = Path(tmp)
        if not args.keep:
            drop = f'DROP DATABASE IF EXISTS "{BENCH_DATABASE}" WITH (FORCE)'
            stack.callback(lambda: asyncio.run(_admin_sql(args.postgres, drop)))
            stack.callback(say, f"dropping {BENCH_DATABASE}")
        seeded = prepare_database(args, sizes, env, root, say)
        facts = asyncio.run(_facts(args.postgres))
        stack.enter_context(redis_db(args.redis, say))
        server = start_server(stack, args, env, root, say)
        cases = make_cases(facts)
        script = root / "detail.lua"
        script.write_text(
            DETAIL_LUA.substitute(
                prefix=f"{CATALOG}/",
                count=len(facts.slugs),
                slugs=", ".join(json.dumps(slug) for slug in facts.slugs),
            )
        )
        say("checking every case once (200 and the expected shape)")
        notes: list[str] = []
        results = []
        for case in cases:
            if case.detail:
                if not facts.slugs:
                    raise BenchError("no published course to ask for")
                results.append(Measured(case, None, check_detail(server, facts.slugs)))
                continue
            total, size, found = check_listing(server, case)
            notes += found
            results.append(Measured(case, total, size))
        for note in notes:
            say(f"note: {note}")
        for measured in results:
            measure(server, measured, args, script, say)
        say("stopping the server")
    say("done")
    print(report(args, facts, results, seeded, notes, load_before))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    try:
        return run(args)
    except BenchError as exc:
        print(f"bench/catalog.py: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
