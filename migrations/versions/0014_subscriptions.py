"""fhir subscriptions: partners told of referral changes (Subscriptions Backport)

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-24 09:44:02
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('fhir_subscriptions',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('organization_id', sa.Uuid(), nullable=False),
    sa.Column('api_client_id', sa.Uuid(), nullable=False),
    sa.Column('topic', sa.String(length=200), nullable=False),
    sa.Column('filters', sa.JSON(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('endpoint', sa.String(length=500), nullable=False),
    sa.Column('content', sa.String(length=16), nullable=False),
    sa.Column('headers', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('error', sa.Text(), nullable=False),
    sa.Column('events', sa.Integer(), nullable=False),
    sa.Column('end', sa.DateTime(timezone=True), nullable=True),
    sa.Column('handshake_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['api_client_id'], ['api_clients.id'], name=op.f('fk_fhir_subscriptions_api_client_id_api_clients')),
    sa.ForeignKeyConstraint(['organization_id'], ['organizations.id'], name=op.f('fk_fhir_subscriptions_organization_id_organizations')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_fhir_subscriptions'))
    )
    with op.batch_alter_table('fhir_subscriptions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_fhir_subscriptions_api_client_id'), ['api_client_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_fhir_subscriptions_organization_id'), ['organization_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('fhir_subscriptions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_fhir_subscriptions_organization_id'))
        batch_op.drop_index(batch_op.f('ix_fhir_subscriptions_api_client_id'))

    op.drop_table('fhir_subscriptions')
