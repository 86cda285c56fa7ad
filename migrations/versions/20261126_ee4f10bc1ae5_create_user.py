"""Accounts: the user table.

Revision ID: ee4f10bc1ae5
Revises: 
Create Date: 2026-11-26 04:57:49.757489+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import lms_live.core.db


revision: str = 'ee4f10bc1ae5'
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('user',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('full_name', sa.String(length=200), nullable=False),
    sa.Column('password_hash', sa.String(length=100), nullable=False),
    sa.Column('role', sa.String(length=20), nullable=False),
    sa.Column('is_active', sa.Boolean(), nullable=False),
    sa.Column('email_verified_at', lms_live.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', lms_live.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', lms_live.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("role IN ('admin', 'instructor', 'student')", name=op.f('ck_user_role')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_user')),
    sa.UniqueConstraint('email', name=op.f('uq_user_email'))
    )


def downgrade() -> None:
    op.drop_table('user')
