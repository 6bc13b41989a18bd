"""workers that beat; one text in flight per number; a provider id belongs to one message

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07 23:42:05
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('workers',
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('stopped_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_workers'))
    )
    with op.batch_alter_table('workers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_workers_heartbeat_at'), ['heartbeat_at'], unique=False)

    # Before this version a look-up could give one provider id to two messages: the earliest
    # keeps it; the others lose it and say so (their delivery is not known).
    messages = sa.table(
        'messages',
        sa.column('id', sa.Uuid()),
        sa.column('provider_id', sa.String()),
        sa.column('created_at', sa.DateTime(timezone=True)),
        sa.column('error', sa.Text()),
    )
    conn = op.get_bind()
    shared = conn.execute(
        sa.select(messages.c.provider_id)
        .where(messages.c.provider_id.is_not(None))
        .group_by(messages.c.provider_id)
        .having(sa.func.count() > 1)
    ).scalars().all()
    for provider_id in shared:
        rows = conn.execute(
            sa.select(messages.c.id)
            .where(messages.c.provider_id == provider_id)
            .order_by(messages.c.created_at, messages.c.id)
        ).scalars().all()
        conn.execute(
            messages.update()
            .where(messages.c.id.in_(rows[1:]))
            .values(
                provider_id=None,
                error="Its provider id belonged to an earlier message: whether it was sent is "
                "not known.",
            )
        )

    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('handed_over_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('uncertain', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.drop_index(batch_op.f('ix_messages_provider_id'))
        batch_op.create_unique_constraint(batch_op.f('uq_messages_provider_id'), ['provider_id'])

    with op.batch_alter_table('sms_numbers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('sending_id', sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column('rest_until', sa.DateTime(timezone=True), nullable=True))

    # A message caught `sending` by the upgrade holds its number, as it would have from now on.
    numbers = sa.table('sms_numbers', sa.column('phone', sa.String()), sa.column('sending_id', sa.Uuid()))
    pending = sa.table(
        'messages',
        sa.column('id', sa.Uuid()),
        sa.column('to_phone', sa.String()),
        sa.column('status', sa.String()),
        sa.column('sending_at', sa.DateTime(timezone=True)),
        sa.column('handed_over_at', sa.DateTime(timezone=True)),
        sa.column('uncertain', sa.Boolean()),
    )
    conn.execute(
        pending.update()
        .where(pending.c.status == 'sending')
        .values(handed_over_at=pending.c.sending_at, uncertain=True)
    )
    for message_id, phone in conn.execute(
        sa.select(pending.c.id, pending.c.to_phone)
        .where(pending.c.status == 'sending', pending.c.to_phone.is_not(None))
        .order_by(pending.c.sending_at)
    ).all():
        conn.execute(
            numbers.update()
            .where(numbers.c.phone == phone, numbers.c.sending_id.is_(None))
            .values(sending_id=message_id)
        )


def downgrade() -> None:
    with op.batch_alter_table('sms_numbers', schema=None) as batch_op:
        batch_op.drop_column('rest_until')
        batch_op.drop_column('sending_id')

    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_messages_provider_id'), type_='unique')
        batch_op.create_index(batch_op.f('ix_messages_provider_id'), ['provider_id'], unique=False)
        batch_op.drop_column('uncertain')
        batch_op.drop_column('handed_over_at')

    with op.batch_alter_table('workers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_workers_heartbeat_at'))

    op.drop_table('workers')
