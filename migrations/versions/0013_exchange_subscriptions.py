"""subscribing to exchange peers

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-24 09:41:07
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('exchange_peers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('subscribe', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column('topic', sa.String(length=500), server_default='', nullable=False))
        batch_op.add_column(sa.Column('subscription_id', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('subscription_status', sa.String(length=20), server_default='', nullable=False))
        batch_op.add_column(sa.Column('notify_secret_hash', sa.String(length=64), server_default='', nullable=False))
        batch_op.add_column(sa.Column('last_event_number', sa.Integer(), server_default='0', nullable=False))



def downgrade() -> None:
    with op.batch_alter_table('exchange_peers', schema=None) as batch_op:
        batch_op.drop_column('last_event_number')
        batch_op.drop_column('notify_secret_hash')
        batch_op.drop_column('subscription_status')
        batch_op.drop_column('subscription_id')
        batch_op.drop_column('topic')
        batch_op.drop_column('subscribe')

