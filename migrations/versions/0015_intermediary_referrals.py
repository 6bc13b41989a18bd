"""an intermediary referral: basedOn and partOf

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-24 09:47:54
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('referrals', schema=None) as batch_op:
        batch_op.add_column(sa.Column('based_on', sa.String(length=500), server_default='', nullable=False))

    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('part_of', sa.String(length=500), server_default='', nullable=False))



def downgrade() -> None:
    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.drop_column('part_of')

    with op.batch_alter_table('referrals', schema=None) as batch_op:
        batch_op.drop_column('based_on')

