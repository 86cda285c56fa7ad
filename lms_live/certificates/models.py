"""Certificates of completion.

Invariants:
- at most one certificate per enrollment (`enrollment_id` unique) and every `number` unique
  (`LMS-<year>-XXXX-XXXX`, Crockford base32; a colliding draw is retried);
- the printed values (learner, course, instructor, completion date) are a snapshot taken when
  the certificate is rendered, so later renames do not change an issued certificate;
- a certificate counts as issued once its PDF is stored: `storage_key`, `sha256` (of the
  stored bytes), `size_bytes` and `issued_at` are set together, in one transaction after the
  upload; until then the row only reserves the number, and nothing public shows it;
- a reissue keeps the number, the status and `completed_at`, stores a new PDF under a new key
  (so the row always names a complete file) and sets `reissued_at`;
- revoking keeps the row and its PDF: the public check then says "revoked" (never why).
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from lms_live.core.db import Base, IdMixin, TimestampMixin


class CertificateStatus(enum.StrEnum):
    ISSUED = "issued"
    REVOKED = "revoked"


class Certificate(IdMixin, TimestampMixin, Base):
    __tablename__ = "certificate"
    __table_args__ = (
        CheckConstraint("status IN ('issued', 'revoked')", name="status"),
        CheckConstraint("size_bytes IS NULL OR size_bytes > 0", name="size_bytes"),
    )

    number: Mapped[str] = mapped_column(String(32), unique=True)
    enrollment_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("enrollment.id", ondelete="CASCADE"), unique=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("user.id", ondelete="CASCADE"), index=True
    )
    course_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("course.id", ondelete="CASCADE"), index=True
    )
    learner_name: Mapped[str] = mapped_column(String(200))
    course_title: Mapped[str] = mapped_column(String(200))
    instructor_name: Mapped[str] = mapped_column(String(200))
    completed_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(20), default=CertificateStatus.ISSUED.value)
    revoked_at: Mapped[datetime | None]
    revoked_reason: Mapped[str | None] = mapped_column(String(500))
    storage_key: Mapped[str | None] = mapped_column(String(300))
    sha256: Mapped[str | None] = mapped_column(String(64))
    size_bytes: Mapped[int | None]
    issued_at: Mapped[datetime | None]
    reissued_at: Mapped[datetime | None]
    # When the learner was told (socket event sent, email queued); None while a telling is
    # owed: a retried task tells again rather than never (at least once).
    notified_at: Mapped[datetime | None]
