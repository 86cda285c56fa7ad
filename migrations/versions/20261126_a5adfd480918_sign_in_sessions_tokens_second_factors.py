"""Identity and access: sign-in sessions, refresh tokens, email links, MFA challenges and
recovery codes; MFA and password columns on user.

Revision ID: a5adfd480918
Revises: ee4f10bc1ae5
Create Date: 2026-11-26 06:31:10.075404+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import lms_live.core.db


revision: str = 'a5adfd480918'
down_revision: str | Sequence[str] | None = 'ee4f10bc1ae5'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('auth_session',
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('expires_at', lms_live.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_used_at', lms_live.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', lms_live.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('revoke_reason', sa.String(length=40), nullable=True),
    sa.Column('user_agent', sa.String(length=300), nullable=True),
    sa.Column('ip', sa.String(length=64), nullable=True),
    sa.Column('via', sa.String(length=20), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', lms_live.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', lms_live.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['user.id'], name=op.f('fk_auth_session_user_id_user'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_auth_session'))
    )
    with op.batch_alter_table('auth_session', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_auth_session_revoked_at'), ['revoked_at'], unique=False)
        batch_op.create_index('ix_auth_session_user_id_revoked_at', ['user_id', 'revoked_at'], unique=False)

    op.create_table('email_token',
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('purpose', sa.String(length=20), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', lms_live.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', lms_live.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('used_at', lms_live.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['user.id'], name=op.f('fk_email_token_user_id_user'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_email_token')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_email_token_token_hash'))
    )
    with op.batch_alter_table('email_token', schema=None) as batch_op:
        batch_op.create_index('ix_email_token_user_id_purpose', ['user_id', 'purpose'], unique=False)

    op.create_table('mfa_challenge',
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('purpose', sa.String(length=20), nullable=False),
    sa.Column('method', sa.String(length=10), nullable=False),
    sa.Column('code_hash', sa.String(length=64), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('created_at', lms_live.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', lms_live.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('used_at', lms_live.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('via', sa.String(length=20), nullable=False),
    sa.Column('user_agent', sa.String(length=300), nullable=True),
    sa.Column('ip', sa.String(length=64), nullable=True),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['user.id'], name=op.f('fk_mfa_challenge_user_id_user'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_mfa_challenge'))
    )
    with op.batch_alter_table('mfa_challenge', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_mfa_challenge_user_id'), ['user_id'], unique=False)

    op.create_table('recovery_code',
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('code_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', lms_live.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('used_at', lms_live.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['user.id'], name=op.f('fk_recovery_code_user_id_user'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_recovery_code'))
    )
    with op.batch_alter_table('recovery_code', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_recovery_code_user_id'), ['user_id'], unique=False)

    op.create_table('refresh_token',
    sa.Column('session_id', sa.Uuid(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('parent_id', sa.Uuid(), nullable=True),
    sa.Column('created_at', lms_live.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', lms_live.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('rotated_at', lms_live.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['session_id'], ['auth_session.id'], name=op.f('fk_refresh_token_session_id_auth_session'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_refresh_token')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_refresh_token_token_hash'))
    )
    with op.batch_alter_table('refresh_token', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_refresh_token_session_id'), ['session_id'], unique=False)

    with op.batch_alter_table('user', schema=None) as batch_op:
        batch_op.add_column(sa.Column('mfa_method', sa.String(length=10), nullable=True))
        batch_op.add_column(sa.Column('totp_secret', sa.String(length=300), nullable=True))
        batch_op.add_column(sa.Column('totp_pending_secret', sa.String(length=300), nullable=True))
        batch_op.add_column(sa.Column('totp_last_step', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('password_changed_at', lms_live.core.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('last_login_at', lms_live.core.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.create_check_constraint('mfa_method', "mfa_method IN ('email', 'totp')")



def downgrade() -> None:
    with op.batch_alter_table('user', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_user_mfa_method'), type_='check')
        batch_op.drop_column('last_login_at')
        batch_op.drop_column('password_changed_at')
        batch_op.drop_column('totp_last_step')
        batch_op.drop_column('totp_pending_secret')
        batch_op.drop_column('totp_secret')
        batch_op.drop_column('mfa_method')

    with op.batch_alter_table('refresh_token', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_refresh_token_session_id'))

    op.drop_table('refresh_token')
    with op.batch_alter_table('recovery_code', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_recovery_code_user_id'))

    op.drop_table('recovery_code')
    with op.batch_alter_table('mfa_challenge', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_mfa_challenge_user_id'))

    op.drop_table('mfa_challenge')
    with op.batch_alter_table('email_token', schema=None) as batch_op:
        batch_op.drop_index('ix_email_token_user_id_purpose')

    op.drop_table('email_token')
    with op.batch_alter_table('auth_session', schema=None) as batch_op:
        batch_op.drop_index('ix_auth_session_user_id_revoked_at')
        batch_op.drop_index(batch_op.f('ix_auth_session_revoked_at'))

    op.drop_table('auth_session')
