"""the audit trail's keyed chain: each entry says how it was hashed; the entries hashed before
are sealed by a keyed entry that follows them

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-08 09:12:31

The entries already written were hashed with plain SHA-256 over some of their columns. They
cannot be re-hashed here: that would bless whatever they hold now, edited or not. They keep
their hash (scheme 1) and are checked as before; one entry written under AUDIT_KEY follows
them (scheme 2, action `audit.keyed`, the number of entries it seals), so that none of them can
be changed, removed or added to later without the check failing. Every later entry is keyed.
This needs AUDIT_KEY when there are entries to seal: run it with `flask --app app db-upgrade`.
"""
from __future__ import annotations

import os

import sqlalchemy as sa
from alembic import op


revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def _audit_key() -> str:
    """AUDIT_KEY as the app has it (`flask db-upgrade`), else from the environment."""
    from flask import current_app, has_app_context

    if has_app_context():
        return current_app.config["SETTINGS"].audit_key
    return os.environ.get("AUDIT_KEY", "")


def _seal_existing_entries() -> None:
    from referrals.audit import seal
    from referrals.db import utcnow

    events = sa.table(
        'audit_events',
        sa.column('id', sa.BigInteger()),
        sa.column('scheme', sa.Integer()),
        sa.column('at', sa.DateTime(timezone=True)),
        sa.column('actor_user_id', sa.Uuid()),
        sa.column('actor_name', sa.String()),
        sa.column('org_id', sa.Uuid()),
        sa.column('org_name', sa.String()),
        sa.column('action', sa.String()),
        sa.column('target_type', sa.String()),
        sa.column('target_id', sa.String()),
        sa.column('patient_id', sa.Uuid()),
        sa.column('ip', sa.String()),
        sa.column('outcome', sa.String()),
        sa.column('detail', sa.JSON()),
        sa.column('prev_hash', sa.String()),
        sa.column('hash', sa.String()),
    )
    conn = op.get_bind()
    head = conn.execute(
        sa.select(events.c.id, events.c.hash).order_by(events.c.id.desc()).limit(1)
    ).first()
    if head is None:
        return  # nothing written yet: the trail starts keyed
    key = _audit_key()
    if not key:
        raise RuntimeError(
            "The audit trail's entries must be sealed under AUDIT_KEY by this upgrade: set "
            "AUDIT_KEY (the key the app runs with) and run flask --app app db-upgrade."
        )
    entries = conn.execute(sa.select(sa.func.count()).select_from(events)).scalar_one()
    conn.execute(sa.insert(events).values(**seal(head.id, head.hash, entries, key, utcnow())))


def upgrade() -> None:
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('scheme', sa.Integer(), server_default='1', nullable=False))
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.alter_column('scheme', server_default=None)
    _seal_existing_entries()


def downgrade() -> None:
    # The keyed entries stay, and the previous release's check will not accept them.
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_column('scheme')
