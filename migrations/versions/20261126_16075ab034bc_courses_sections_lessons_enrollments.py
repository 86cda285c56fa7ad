"""Learning: courses (tags, co-instructors), sections, lessons, enrollments and lesson
completions; a full-text index over course titles and summaries on PostgreSQL.

Revision ID: 16075ab034bc
Revises: a5adfd480918
Create Date: 2026-11-26 07:58:10.079821+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import lms_live.core.db


revision: str = '16075ab034bc'
down_revision: str | Sequence[str] | None = 'a5adfd480918'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('course',
    sa.Column('slug', sa.String(length=120), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('summary', sa.String(length=500), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('level', sa.String(length=20), nullable=False),
    sa.Column('language', sa.String(length=16), nullable=False),
    sa.Column('price_minor', sa.Integer(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('published_at', lms_live.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('owner_id', sa.Uuid(), nullable=False),
    sa.Column('cover_file', sa.String(length=300), nullable=True),
    sa.Column('enrollment_count', sa.Integer(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', lms_live.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', lms_live.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("level IN ('beginner', 'intermediate', 'advanced')", name=op.f('ck_course_level')),
    sa.CheckConstraint("status IN ('draft', 'published', 'archived')", name=op.f('ck_course_status')),
    sa.CheckConstraint('enrollment_count >= 0', name=op.f('ck_course_enrollment_count')),
    sa.CheckConstraint('price_minor >= 0', name=op.f('ck_course_price_minor')),
    sa.ForeignKeyConstraint(['owner_id'], ['user.id'], name=op.f('fk_course_owner_id_user')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_course')),
    sa.UniqueConstraint('slug', name=op.f('uq_course_slug'))
    )
    with op.batch_alter_table('course', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_course_owner_id'), ['owner_id'], unique=False)
        batch_op.create_index('ix_course_status_published_at', ['status', 'published_at'], unique=False)

    op.create_table('course_instructor',
    sa.Column('course_id', sa.Uuid(), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['course_id'], ['course.id'], name=op.f('fk_course_instructor_course_id_course'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['user.id'], name=op.f('fk_course_instructor_user_id_user'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('course_id', 'user_id', name=op.f('pk_course_instructor'))
    )
    with op.batch_alter_table('course_instructor', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_course_instructor_user_id'), ['user_id'], unique=False)

    op.create_table('course_tag',
    sa.Column('course_id', sa.Uuid(), nullable=False),
    sa.Column('tag', sa.String(length=40), nullable=False),
    sa.ForeignKeyConstraint(['course_id'], ['course.id'], name=op.f('fk_course_tag_course_id_course'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('course_id', 'tag', name=op.f('pk_course_tag'))
    )
    with op.batch_alter_table('course_tag', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_course_tag_tag'), ['tag'], unique=False)

    op.create_table('section',
    sa.Column('course_id', sa.Uuid(), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', lms_live.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', lms_live.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['course_id'], ['course.id'], name=op.f('fk_section_course_id_course'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_section'))
    )
    with op.batch_alter_table('section', schema=None) as batch_op:
        batch_op.create_index('ix_section_course_id_position', ['course_id', 'position'], unique=False)

    op.create_table('lesson',
    sa.Column('section_id', sa.Uuid(), nullable=False),
    sa.Column('course_id', sa.Uuid(), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('video_url', sa.String(length=1000), nullable=True),
    sa.Column('duration_seconds', sa.Integer(), nullable=True),
    sa.Column('file_ref', sa.String(length=300), nullable=True),
    sa.Column('quiz_id', sa.Uuid(), nullable=True),
    sa.Column('is_preview', sa.Boolean(), nullable=False),
    sa.Column('is_required', sa.Boolean(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', lms_live.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', lms_live.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("kind IN ('text', 'video', 'file', 'quiz')", name=op.f('ck_lesson_kind')),
    sa.ForeignKeyConstraint(['course_id'], ['course.id'], name=op.f('fk_lesson_course_id_course'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['section_id'], ['section.id'], name=op.f('fk_lesson_section_id_section'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_lesson'))
    )
    with op.batch_alter_table('lesson', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_lesson_course_id'), ['course_id'], unique=False)
        batch_op.create_index('ix_lesson_section_id_position', ['section_id', 'position'], unique=False)

    op.create_table('enrollment',
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('course_id', sa.Uuid(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('enrolled_at', lms_live.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('completed_at', lms_live.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('cancelled_at', lms_live.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('progress_percent', sa.Double(), nullable=False),
    sa.Column('last_activity_at', lms_live.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_lesson_id', sa.Uuid(), nullable=True),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', lms_live.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', lms_live.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status IN ('active', 'completed', 'cancelled')", name=op.f('ck_enrollment_status')),
    sa.CheckConstraint('progress_percent >= 0 AND progress_percent <= 100', name=op.f('ck_enrollment_progress')),
    sa.ForeignKeyConstraint(['course_id'], ['course.id'], name=op.f('fk_enrollment_course_id_course'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['last_lesson_id'], ['lesson.id'], name=op.f('fk_enrollment_last_lesson_id_lesson'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['user_id'], ['user.id'], name=op.f('fk_enrollment_user_id_user'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_enrollment')),
    sa.UniqueConstraint('user_id', 'course_id', name=op.f('uq_enrollment_user_id_course_id'))
    )
    with op.batch_alter_table('enrollment', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_enrollment_course_id'), ['course_id'], unique=False)

    op.create_table('lesson_completion',
    sa.Column('enrollment_id', sa.Uuid(), nullable=False),
    sa.Column('lesson_id', sa.Uuid(), nullable=False),
    sa.Column('completed_at', lms_live.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['enrollment_id'], ['enrollment.id'], name=op.f('fk_lesson_completion_enrollment_id_enrollment'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['lesson_id'], ['lesson.id'], name=op.f('fk_lesson_completion_lesson_id_lesson'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('enrollment_id', 'lesson_id', name=op.f('pk_lesson_completion'))
    )
    with op.batch_alter_table('lesson_completion', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_lesson_completion_lesson_id'), ['lesson_id'], unique=False)


    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE INDEX ix_course_search ON course USING gin "
            "(to_tsvector('simple', title || ' ' || summary))"
        )

def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_course_search")
    with op.batch_alter_table('lesson_completion', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_lesson_completion_lesson_id'))

    op.drop_table('lesson_completion')
    with op.batch_alter_table('enrollment', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_enrollment_course_id'))

    op.drop_table('enrollment')
    with op.batch_alter_table('lesson', schema=None) as batch_op:
        batch_op.drop_index('ix_lesson_section_id_position')
        batch_op.drop_index(batch_op.f('ix_lesson_course_id'))

    op.drop_table('lesson')
    with op.batch_alter_table('section', schema=None) as batch_op:
        batch_op.drop_index('ix_section_course_id_position')

    op.drop_table('section')
    with op.batch_alter_table('course_tag', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_course_tag_tag'))

    op.drop_table('course_tag')
    with op.batch_alter_table('course_instructor', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_course_instructor_user_id'))

    op.drop_table('course_instructor')
    with op.batch_alter_table('course', schema=None) as batch_op:
        batch_op.drop_index('ix_course_status_published_at')
        batch_op.drop_index(batch_op.f('ix_course_owner_id'))

    op.drop_table('course')
