"""Imports every domain's models so `Base.metadata` is complete (migrations, tests)."""

from __future__ import annotations


def load_models() -> None:
    """Register every mapped table on `Base.metadata`."""
    import lms_live.auth.models
    import lms_live.certificates.models
    import lms_live.courses.models
    import lms_live.enrollments.models
    import lms_live.live.models
    import lms_live.quizzes.models  # noqa: F401
