"""channel health: when each push channel was last heard from, and when it missed a change

``channels.heard_at`` is set by every genuine notification; ``channels.missed_at``
by a poll that found a change no notification announced. A live channel that
has not missed one since it was last heard from stretches its calendar's poll
to ``[sync] push_poll_seconds``; one that has falls back to ``max_poll_seconds``.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("channels", schema=None) as batch_op:
        batch_op.add_column(sa.Column("heard_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("missed_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("channels", schema=None) as batch_op:
        batch_op.drop_column("missed_at")
        batch_op.drop_column("heard_at")
