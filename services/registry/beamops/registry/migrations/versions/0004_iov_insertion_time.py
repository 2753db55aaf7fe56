"""Intervals of validity keep every insertion: a tag may hold several entries with one since (a
correction; the one inserted last counts), so the unique (tag_id, since) goes. Two indexes take
its place: (tag_id, since, create_us) for resolving a point (now or at a snapshot time) and
(tag_id, create_us) for the tag's last insertion time. Existing rows are kept as they are.

The downgrade restores the unique constraint, which fails if a tag has corrections by then.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 10:00:00.000000
"""
from alembic import op


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # SQLite: batch mode copies the table without the constraint (migrate() turns foreign keys off
    # for it). PostgreSQL: a plain ALTER TABLE; the table and its 0003 trigger stay.
    with op.batch_alter_table('iov_entries', schema=None) as batch_op:
        batch_op.drop_constraint('uq_iov_since', type_='unique')
        batch_op.create_index('ix_iov_entries_tag_since', ['tag_id', 'since', 'create_us'], unique=False)
        batch_op.create_index('ix_iov_entries_tag_insertion', ['tag_id', 'create_us'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('iov_entries', schema=None) as batch_op:
        batch_op.drop_index('ix_iov_entries_tag_insertion')
        batch_op.drop_index('ix_iov_entries_tag_since')
        batch_op.create_unique_constraint('uq_iov_since', ['tag_id', 'since'])
