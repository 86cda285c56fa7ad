"""Certificates of completion: one per enrollment, a unique human-readable number, the printed
snapshot, revocation, and the stored PDF (key, SHA-256, size).

Revision ID: a8ec80d00f12
Revises: 16075ab034bc
Create Date: 2026-11-26 08:56:30.329445+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import lms_live.core.db


revision: str = 'a8ec80d00f12'
down_revision: str | Sequence[str] | None = '16075ab034bc'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('certificate',
    sa.Column('number', sa.String(length=32), nullable=False),
    sa.Column('enrollment_id', sa.Uuid(), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('course_id', sa.Uuid(), nullable=False),
    sa.Column('learner_name', sa.String(length=200), nullable=False),
    sa.Column('course_title', sa.String(length=200), nullable=False),
    sa.Column('instructor_name', sa.String(length=200), nullable=False),
    sa.Column('completed_at', lms_live.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('revoked_at', lms_live.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('revoked_reason', sa.String(length=500), nullable=True),
    sa.Column('storage_key', sa.String(length=300), nullable=True),
    sa.Column('sha256', sa.String(length=64), nullable=True),
    sa.Column('size_bytes', sa.Integer(), nullable=True),
    sa.Column('issued_at', lms_live.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('reissued_at', lms_live.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', lms_live.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', lms_live.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status IN ('issued', 'revoked')", name=op.f('ck_certificate_status')),
    sa.CheckConstraint('size_bytes IS NULL OR size_bytes > 0', name=op.f('ck_certificate_size_bytes')),
    sa.ForeignKeyConstraint(['course_id'], ['course.id'], name=op.f('fk_certificate_course_id_course'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['enrollment_id'], ['enrollment.id'], name=op.f('fk_certificate_enrollment_id_enrollment'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['user.id'], name=op.f('fk_certificate_user_id_user'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_certificate')),
    sa.UniqueConstraint('enrollment_id', name=op.f('uq_certificate_enrollment_id')),
    sa.UniqueConstraint('number', name=op.f('uq_certificate_number'))
    )
    with op.batch_alter_table('certificate', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_certificate_course_id'), ['course_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_certificate_user_id'), ['user_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('certificate', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_certificate_user_id'))
        batch_op.drop_index(batch_op.f('ix_certificate_course_id'))

    op.drop_table('certificate')
