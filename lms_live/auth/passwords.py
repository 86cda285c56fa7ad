"""Password policy (NIST SP 800-63B / ASVS 5 chapter 6): length, not common, not the email.

No composition rules. 8 to 128 characters (Unicode code points, NFKC-normalised), never
truncated: hashing pre-hashes with HMAC-SHA256 so bcrypt's 72-byte limit never applies. The
30,000 most common passwords (zxcvbn's list) are refused, compared case-insensitively.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache

from lms_live.core.errors import ValidationFailed

MIN_LENGTH = 8
MAX_LENGTH = 128


@lru_cache(maxsize=1)
def _common() -> frozenset[str]:
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(p.lower() for p in FREQUENCY_LISTS["passwords"])


def normalise(password: str) -> str:
    """The form passwords are hashed and compared in (NFKC, as NIST recommends)."""
    return unicodedata.normalize("NFKC", password)


def problems(password: str, *, email: str | None = None) -> list[str]:
    """Why this password is refused (empty when it is acceptable)."""
    password = normalise(password)
    found = []
    if len(password) < MIN_LENGTH:
        found.append(f"at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        found.append(f"at most {MAX_LENGTH} characters")
    if password.lower() in _common():
        found.append("not one of the most common passwords")
    if email:
        local = email.split("@", 1)[0].lower()
        if password.lower() in {email.lower(), local}:
            found.append("not your email address")
    return found


def check(password: str, *, email: str | None = None, field: str = "password") -> None:
    """Raise a 422 naming every rule the password breaks."""
    broken = problems(password, email=email)
    if broken:
        raise ValidationFailed(
            "The password must be " + ", ".join(broken) + ".",
            details=[
                {"loc": ["body", field], "msg": rule, "type": "password_policy"} for rule in broken
            ],
        )
