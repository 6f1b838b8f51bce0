"""the invite mail budget: when each block was written, its refreshes, the calendar's wake time

``occurrences.block_written_at`` and ``occurrences.refreshes`` let the engine
rewrite an Outlook invite (every write mails the attendees) only on the
occasions ``syncd.budget`` allows; ``calendars.wake_at`` is when a deferred
refresh falls due, so the scheduler wakes the calendar then however long
its poll interval is.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("occurrences", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("block_written_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("refreshes", sa.Integer(), nullable=False, server_default="0")
        )
    with op.batch_alter_table("calendars", schema=None) as batch_op:
        batch_op.add_column(sa.Column("wake_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("calendars", schema=None) as batch_op:
        batch_op.drop_column("wake_at")
    with op.batch_alter_table("occurrences", schema=None) as batch_op:
        batch_op.drop_column("refreshes")
        batch_op.drop_column("block_written_at")
