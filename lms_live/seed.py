"""Seeding from the command line: the first admin and the demo data set."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass

from lms_live.auth import service as accounts
from lms_live.auth.models import Role
from lms_live.core.db import Database, make_engine
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


@dataclass(frozen=True, slots=True)
class DemoSummary:
    instructor: str
    first_learner: str
    learners: int
    created: int
    existing: int


async def seed_demo(
    settings: Settings, *, learners: int, password: str, progress: Callable[[int], object]
) -> DemoSummary:
    """Create the demo instructor and learners, skipping those already present."""
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
    finally:
        await engine.dispose()
    return DemoSummary(
        people[0][0], people[min(1, len(people) - 1)][0], learners, created, existing
    )
