"""directory search rows and opening hours

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 05:30:00.000000

Tables the directory search reads (referrals/directory/search.py). They are derived from the
HSDS tables: after upgrading a database that holds services, run `flask reindex-directory`.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('directory_search_rows',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('service_id', sa.Uuid(), nullable=False),
    sa.Column('location_id', sa.Uuid(), nullable=True),
    sa.Column('category', sa.String(length=64), nullable=False),
    sa.Column('latitude', sa.Float(), nullable=True),
    sa.Column('longitude', sa.Float(), nullable=True),
    sa.Column('languages', sa.String(length=400), nullable=False),
    sa.Column('minimum_age', sa.Integer(), nullable=True),
    sa.Column('maximum_age', sa.Integer(), nullable=True),
    sa.Column('accepting', sa.Boolean(), nullable=False),
    sa.Column('free', sa.Boolean(), nullable=False),
    sa.Column('sort_name', sa.String(length=300), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['location_id'], ['locations.id'], name=op.f('fk_directory_search_rows_location_id_locations'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['service_id'], ['services.id'], name=op.f('fk_directory_search_rows_service_id_services'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_directory_search_rows'))
    )
    with op.batch_alter_table('directory_search_rows', schema=None) as batch_op:
        batch_op.create_index('ix_directory_search_rows_place', ['category', 'latitude', 'longitude'], unique=False)
        batch_op.create_index('ix_directory_search_rows_point', ['latitude', 'longitude'], unique=False)
        batch_op.create_index(batch_op.f('ix_directory_search_rows_service_id'), ['service_id'], unique=False)

    op.create_table('directory_search_hours',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('service_id', sa.Uuid(), nullable=False),
    sa.Column('weekday', sa.Integer(), nullable=False),
    sa.Column('opens', sa.Integer(), nullable=False),
    sa.Column('closes', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['service_id'], ['services.id'], name=op.f('fk_directory_search_hours_service_id_services'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_directory_search_hours'))
    )
    with op.batch_alter_table('directory_search_hours', schema=None) as batch_op:
        batch_op.create_index('ix_directory_search_hours_open', ['service_id', 'weekday', 'opens', 'closes'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('directory_search_hours', schema=None) as batch_op:
        batch_op.drop_index('ix_directory_search_hours_open')
    op.drop_table('directory_search_hours')
    with op.batch_alter_table('directory_search_rows', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_directory_search_rows_service_id'))
        batch_op.drop_index('ix_directory_search_rows_point')
        batch_op.drop_index('ix_directory_search_rows_place')
    op.drop_table('directory_search_rows')
