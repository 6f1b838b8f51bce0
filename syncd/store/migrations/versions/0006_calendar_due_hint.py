"""calendars.due_hint: the earliest a calendar can next be due, so a claim reads only those

Without it every claim evaluated every calendar of an account (poll
interval, push channels, meeting ends), so an idle claim grew with the
organization. The hint is a lower bound the scheduler keeps: NULL means
"not known, look at it". Every existing row starts unknown.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("calendars", schema=None) as batch_op:
        batch_op.add_column(sa.Column("due_hint", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index("ix_calendars_account_due_hint", ["account", "due_hint"])
        batch_op.create_index("ix_calendars_account_next_sync_at", ["account", "next_sync_at"])


def downgrade() -> None:
    with op.batch_alter_table("calendars", schema=None) as batch_op:
        batch_op.drop_index("ix_calendars_account_next_sync_at")
        batch_op.drop_index("ix_calendars_account_due_hint")
        batch_op.drop_column("due_hint")
