"""Account rules used so far: creating users (the admin bootstrap and the demo seed)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from lms_live.auth.models import Role, User
from lms_live.core.db import utcnow
from lms_live.core.errors import Conflict, ValidationFailed
from lms_live.core.security import hash_password

MIN_PASSWORD = 8
MAX_PASSWORD = 128


def normalise_email(email: str) -> str:
    """The stored form of an email address: trimmed and lower-case."""
    return email.strip().lower()


def check_password(password: str) -> None:
    """Raise ValidationFailed unless the password's length is within policy."""
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise ValidationFailed(
            f"Passwords must be {MIN_PASSWORD} to {MAX_PASSWORD} characters long.",
            details=[
                {"loc": ["password"], "msg": "length out of range", "type": "password_length"}
            ],
        )


async def get_by_email(session: AsyncSession, *, email: str) -> User | None:
    """The user with this email, if any."""
    found: User | None = await session.scalar(
        select(User).where(User.email == normalise_email(email))
    )
    return found


async def create_user(
    session: AsyncSession,
    *,
    email: str,
    full_name: str,
    password: str,
    role: Role = Role.STUDENT,
    verified: bool = False,
    bcrypt_rounds: int = 12,
) -> User:
    """Create an account; Conflict if the email is taken."""
    check_password(password)
    if await get_by_email(session, email=email) is not None:
        raise Conflict("An account with this email already exists.")
    user = User(
        email=normalise_email(email),
        full_name=full_name.strip(),
        password_hash=await hash_password(password, rounds=bcrypt_rounds),
        role=role.value,
        email_verified_at=utcnow() if verified else None,
    )
    session.add(user)
    await session.flush()
    return user
