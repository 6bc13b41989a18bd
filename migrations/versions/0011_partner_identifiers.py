"""partner identifiers; referrals and consents sent by a partner system

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-24 09:01:11
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('partner_identifiers',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('organization_id', sa.Uuid(), nullable=False),
    sa.Column('resource_type', sa.String(length=32), nullable=False),
    sa.Column('resource_id', sa.Uuid(), nullable=False),
    sa.Column('system', sa.String(length=255), nullable=False),
    sa.Column('value', sa.String(length=255), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['organization_id'], ['organizations.id'], name=op.f('fk_partner_identifiers_organization_id_organizations')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_partner_identifiers'))
    )
    with op.batch_alter_table('partner_identifiers', schema=None) as batch_op:
        batch_op.create_index('ix_partner_identifiers_resource', ['resource_type', 'resource_id'], unique=False)
        batch_op.create_index('uq_partner_identifiers', ['organization_id', 'resource_type', 'system', 'value'], unique=True)

    with op.batch_alter_table('consents', schema=None) as batch_op:
        batch_op.alter_column('recorded_by_id',
               existing_type=sa.Uuid(),
               nullable=True)

    with op.batch_alter_table('referrals', schema=None) as batch_op:
        batch_op.add_column(sa.Column('requester_name', sa.String(length=200), server_default='', nullable=False))
        batch_op.alter_column('requester_user_id',
               existing_type=sa.Uuid(),
               nullable=True)

    with op.batch_alter_table('screenings', schema=None) as batch_op:
        batch_op.alter_column('recorded_by_id',
               existing_type=sa.Uuid(),
               nullable=True)



def downgrade() -> None:
    with op.batch_alter_table('screenings', schema=None) as batch_op:
        batch_op.alter_column('recorded_by_id',
               existing_type=sa.Uuid(),
               nullable=False)

    with op.batch_alter_table('referrals', schema=None) as batch_op:
        batch_op.alter_column('requester_user_id',
               existing_type=sa.Uuid(),
               nullable=False)
        batch_op.drop_column('requester_name')

    with op.batch_alter_table('consents', schema=None) as batch_op:
        batch_op.alter_column('recorded_by_id',
               existing_type=sa.Uuid(),
               nullable=False)

    with op.batch_alter_table('partner_identifiers', schema=None) as batch_op:
        batch_op.drop_index('uq_partner_identifiers')
        batch_op.drop_index('ix_partner_identifiers_resource')

    op.drop_table('partner_identifiers')
