"""task polling indexes

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-24 08:05:00
"""
from __future__ import annotations

from alembic import op


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.create_index('ix_tasks_owner_updated', ['owner_org_id', 'updated_at'], unique=False)
        batch_op.create_index('ix_tasks_requester_updated', ['requester_org_id', 'updated_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.drop_index('ix_tasks_requester_updated')
        batch_op.drop_index('ix_tasks_owner_updated')
