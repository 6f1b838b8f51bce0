"""occurrences (calendar_id, end): the scheduler's "a 1:1 ended since the last sync" probe

Every idle claim asks this of every calendar; without the index each probe
reads all of a calendar's mirrored events (bench/scheduler.py: the idle
claim over 2000 calendars went from about 12 to 6 ms on PostgreSQL and from
20 to 3 ms on SQLite).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("occurrences", schema=None) as batch_op:
        batch_op.create_index("ix_occurrences_calendar_end", ["calendar_id", "end"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("occurrences", schema=None) as batch_op:
        batch_op.drop_index("ix_occurrences_calendar_end")
