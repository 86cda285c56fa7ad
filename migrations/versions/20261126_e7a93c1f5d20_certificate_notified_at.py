"""certificate.notified_at: when the learner was told, so a task that stored the PDF but
failed to tell them tells them on its retry (at least once).

Revision ID: e7a93c1f5d20
Revises: c41d7e2b9a05
Create Date: 2026-11-26 10:15:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import lms_live.core.db

revision: str = "e7a93c1f5d20"
down_revision: str | Sequence[str] | None = "c41d7e2b9a05"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("certificate", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("notified_at", lms_live.core.db.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("certificate", schema=None) as batch_op:
        batch_op.drop_column("notified_at")
