"""exchange peers, the organisations they serve, referral sync state

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-24 09:30:20
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('exchange_peers',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('base_url', sa.String(length=500), nullable=False),
    sa.Column('token_url', sa.String(length=500), nullable=False),
    sa.Column('client_id', sa.String(length=200), nullable=False),
    sa.Column('scope', sa.String(length=500), nullable=False),
    sa.Column('push', sa.Boolean(), nullable=False),
    sa.Column('poll', sa.Boolean(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('poll_cursor', sa.String(length=40), nullable=False),
    sa.Column('last_polled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_exchange_peers')),
    sa.UniqueConstraint('name', name=op.f('uq_exchange_peers_name'))
    )
    op.create_table('exchange_peer_organizations',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('peer_id', sa.Uuid(), nullable=False),
    sa.Column('organization_id', sa.Uuid(), nullable=False),
    sa.Column('remote_id', sa.String(length=64), nullable=True),
    sa.ForeignKeyConstraint(['organization_id'], ['organizations.id'], name=op.f('fk_exchange_peer_organizations_organization_id_organizations')),
    sa.ForeignKeyConstraint(['peer_id'], ['exchange_peers.id'], name=op.f('fk_exchange_peer_organizations_peer_id_exchange_peers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_exchange_peer_organizations')),
    sa.UniqueConstraint('peer_id', 'organization_id', name=op.f('uq_exchange_peer_organizations_peer_id'))
    )
    with op.batch_alter_table('exchange_peer_organizations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_exchange_peer_organizations_organization_id'), ['organization_id'], unique=False)

    op.create_table('exchange_links',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('peer_id', sa.Uuid(), nullable=False),
    sa.Column('referral_id', sa.Uuid(), nullable=False),
    sa.Column('remote_patient_id', sa.String(length=64), nullable=True),
    sa.Column('remote_request_id', sa.String(length=64), nullable=True),
    sa.Column('remote_task_id', sa.String(length=64), nullable=True),
    sa.Column('remote_version', sa.String(length=20), nullable=True),
    sa.Column('pushed_version', sa.Integer(), nullable=True),
    sa.Column('pushed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('pulled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=False),
    sa.Column('last_error_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['peer_id'], ['exchange_peers.id'], name=op.f('fk_exchange_links_peer_id_exchange_peers')),
    sa.ForeignKeyConstraint(['referral_id'], ['referrals.id'], name=op.f('fk_exchange_links_referral_id_referrals')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_exchange_links')),
    sa.UniqueConstraint('peer_id', 'referral_id', name=op.f('uq_exchange_links_peer_id'))
    )
    with op.batch_alter_table('exchange_links', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_exchange_links_referral_id'), ['referral_id'], unique=False)
        batch_op.create_index('ix_exchange_links_remote_task', ['peer_id', 'remote_task_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('exchange_links', schema=None) as batch_op:
        batch_op.drop_index('ix_exchange_links_remote_task')
        batch_op.drop_index(batch_op.f('ix_exchange_links_referral_id'))

    op.drop_table('exchange_links')
    with op.batch_alter_table('exchange_peer_organizations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_exchange_peer_organizations_organization_id'))

    op.drop_table('exchange_peer_organizations')
    op.drop_table('exchange_peers')
