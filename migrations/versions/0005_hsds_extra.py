"""HSDS fields kept verbatim: hsds_extra on services, organizations, locations and
service_at_locations

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24 06:00:00.000000

The HSDS content we have no column for (funding, required documents, accessibility,
deprecated fields…) is kept as JSON on the record it belongs to, so that an export gives back
what an import read. Existing rows start with an empty object.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TABLES = ("organizations", "services", "locations", "service_at_locations")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("hsds_extra", sa.JSON(), nullable=True))
        op.execute(sa.text(f"UPDATE {table} SET hsds_extra = '{{}}'"))
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column("hsds_extra", existing_type=sa.JSON(), nullable=False)


def downgrade() -> None:
    for table in reversed(TABLES):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("hsds_extra")
