"""Seeding from the command line: the first admin and the demo data set."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from lms_live.auth import service as accounts
from lms_live.auth.models import Role, User
from lms_live.core.db import Database, make_engine, utcnow
from lms_live.courses.models import Course, CourseStatus, CourseTag, Lesson, LessonKind, Section
from lms_live.enrollments.models import Enrollment, LessonCompletion
from lms_live.enrollments.progress import recompute_enrollment
from lms_live.quizzes.models import Question, QuestionTag, QuestionVersion, Quiz, QuizSlot
from lms_live.quizzes.spec import (
    AcceptedText,
    Choice,
    NumericAnswer,
    NumericSpec,
    QuestionSpec,
    ShortTextSpec,
    SingleChoiceSpec,
    TrueFalseSpec,
)
from lms_live.settings import Settings

DEMO_DOMAIN = "demo.example.org"  # RFC 2606: never a real mailbox, and accepted at sign-in


async def create_admin(
    settings: Settings, *, email: str, full_name: str, password: str
) -> uuid.UUID:
    """Create an administrator account (verified)."""
    engine = make_engine(settings)
    try:
        async with Database.from_engine(engine).transaction() as session:
            user = await accounts.create_user(
                session,
                email=email,
                full_name=full_name,
                password=password,
                role=Role.ADMIN,
                verified=True,
                bcrypt_rounds=settings.bcrypt_rounds,
            )
            return user.id
    finally:
        await engine.dispose()


DEMO_COURSE = "demo-rivers-of-the-world"
# The demo course's outline: (section title, [(lesson title, kind, preview)]).
DEMO_OUTLINE: list[tuple[str, list[tuple[str, LessonKind, bool]]]] = [
    (
        "Where rivers begin",
        [
            ("Springs, glaciers and rain", LessonKind.TEXT, True),
            ("A source in the Alps (video)", LessonKind.VIDEO, False),
            ("Watersheds", LessonKind.TEXT, False),
        ],
    ),
    (
        "The long way down",
        [
            ("Meanders and oxbow lakes", LessonKind.TEXT, False),
            ("Floods, then and now (video)", LessonKind.VIDEO, False),
            ("Deltas and estuaries", LessonKind.TEXT, False),
        ],
    ),
    (
        "Rivers and people",
        [
            ("Mills, dams and locks", LessonKind.TEXT, False),
            ("Living with a river", LessonKind.TEXT, False),
        ],
    ),
]


@dataclass(frozen=True, slots=True)
class DemoSummary:
    instructor: str
    first_learner: str
    learners: int
    created: int
    existing: int
    course: str


async def seed_demo(
    settings: Settings, *, learners: int, password: str, progress: Callable[[int], object]
) -> DemoSummary:
    """Create the demo instructor and learners, skipping those already present, then the demo
    course (published, eight lessons) with every demo learner enrolled at varied progress."""
    engine = make_engine(settings)
    db = Database.from_engine(engine)
    people = [("instructor@" + DEMO_DOMAIN, "Ada Instructor", Role.INSTRUCTOR)] + [
        (f"learner{n:03d}@{DEMO_DOMAIN}", f"Learner {n:03d}", Role.STUDENT)
        for n in range(1, learners + 1)
    ]
    created = existing = 0
    try:
        for email, name, role in people:
            async with db.transaction() as session:
                if await accounts.get_by_email(session, email=email) is not None:
                    existing += 1
                else:
                    await accounts.create_user(
                        session,
                        email=email,
                        full_name=name,
                        password=password,
                        role=role,
                        verified=True,
                        bcrypt_rounds=settings.bcrypt_rounds,
                    )
                    created += 1
            progress(1)
        async with db.transaction() as session:
            await _demo_course(session, instructor=people[0][0], learners=people[1:])
        progress(1)
    finally:
        await engine.dispose()
    return DemoSummary(
        people[0][0], people[min(1, len(people) - 1)][0], learners, created, existing, DEMO_COURSE
    )


async def _demo_course(
    session: AsyncSession, *, instructor: str, learners: list[tuple[str, str, Role]]
) -> None:
    """The demo course, its quiz and its enrollments (skipped when the course exists). Learner
    n has completed the first n mod 9 of the eight required lessons: some have not started,
    some are done. The quiz is an optional ninth lesson (it does not change the percents)."""
    if await session.scalar(select(func.count()).where(Course.slug == DEMO_COURSE)):
        return
    owner = await accounts.get_by_email(session, email=instructor)
    assert owner is not None
    course = Course(
        slug=DEMO_COURSE,
        title="Rivers of the world",
        summary="From the first spring to the delta: how rivers shape the land and our lives.",
        description="A short demo course.\n\n- eight lessons in three sections\n"
        "- the first lesson is a free preview\n- an optional quiz to close",
        level="beginner",
        owner_id=owner.id,
        status=CourseStatus.PUBLISHED.value,
        published_at=utcnow(),
    )
    session.add(course)
    await session.flush()
    session.add_all([CourseTag(course_id=course.id, tag=t) for t in ("geography", "nature")])
    lessons: list[Lesson] = []
    for s_pos, (title, items) in enumerate(DEMO_OUTLINE):
        section = Section(course_id=course.id, title=title, position=s_pos)
        session.add(section)
        await session.flush()
        for l_pos, (l_title, kind, preview) in enumerate(items):
            video = kind == LessonKind.VIDEO
            lesson = Lesson(
                section_id=section.id,
                course_id=course.id,
                title=l_title,
                kind=kind.value,
                position=l_pos,
                body="" if video else f"# {l_title}\n\nDemo text of this lesson.",
                video_url="https://videos.example.org/rivers.mp4" if video else None,
                duration_seconds=300 if video else None,
                is_preview=preview,
            )
            session.add(lesson)
            lessons.append(lesson)
    await session.flush()
    await _demo_quiz(session, course=course, section_id=lessons[-1].section_id, owner_id=owner.id)
    emails = [email for email, _, _ in learners]
    users = list(await session.scalars(select(User).where(User.email.in_(emails))))
    users.sort(key=lambda u: u.email)
    for n, user in enumerate(users, start=1):
        enrollment = Enrollment(user_id=user.id, course_id=course.id)
        session.add(enrollment)
        await session.flush()
        done = lessons[: n % (len(lessons) + 1)]
        session.add_all(
            [LessonCompletion(enrollment_id=enrollment.id, lesson_id=x.id) for x in done]
        )
        if done:
            enrollment.last_lesson_id = done[-1].id
            enrollment.last_activity_at = utcnow()
        await session.flush()
        await recompute_enrollment(session, enrollment=enrollment)
    course.enrollment_count = len(users)


# The demo quiz: (prompt, spec) in the bank, tagged "rivers", all fixed slots.
DEMO_QUESTIONS: list[tuple[str, QuestionSpec]] = [
    (
        "Which is the longest river in Europe?",
        SingleChoiceSpec(
            options=[
                Choice(id="a", text="The Volga", correct=True),
                Choice(id="b", text="The Danube"),
                Choice(id="c", text="The Rhine"),
            ]
        ),
    ),
    ("An oxbow lake forms from a cut-off meander.", TrueFalseSpec(answer=True)),
    (
        "Name the place where a river meets the sea and fans out into branches.",
        ShortTextSpec(accepted=[AcceptedText(text="delta")]),
    ),
    (
        "About how many kilometres long is the Nile (to the nearest 100)?",
        NumericSpec(answers=[NumericAnswer(value=6650, tolerance=100)]),
    ),
]


async def _demo_quiz(
    session: AsyncSession, *, course: Course, section_id: uuid.UUID, owner_id: uuid.UUID
) -> None:
    """A published 10-minute quiz of four questions behind an optional quiz lesson."""
    quiz = Quiz(
        course_id=course.id,
        title="Rivers check",
        instructions="Four questions, ten minutes. Your answers are saved as you go.",
        published=True,
        time_limit_seconds=600,
        max_attempts=3,
        pass_percent=75.0,
        shuffle_options=True,
        review_policy={},
    )
    session.add(quiz)
    await session.flush()
    for position, (prompt, spec) in enumerate(DEMO_QUESTIONS):
        question = Question(course_id=course.id, title=prompt[:80], created_by=owner_id)
        session.add(question)
        await session.flush()
        session.add_all(
            [
                QuestionVersion(
                    question_id=question.id,
                    version=1,
                    type=spec.type.value,
                    prompt=prompt,
                    points=1.0,
                    body=spec.model_dump(mode="json"),
                ),
                QuestionTag(question_id=question.id, tag="rivers"),
                QuizSlot(quiz_id=quiz.id, position=position, question_id=question.id),
            ]
        )
    count = await session.scalar(select(func.count()).where(Lesson.section_id == section_id))
    session.add(
        Lesson(
            section_id=section_id,
            course_id=course.id,
            title="Rivers check (quiz)",
            kind=LessonKind.QUIZ.value,
            position=int(count or 0),
            quiz_id=quiz.id,
            is_required=False,
        )
    )
    await session.flush()
