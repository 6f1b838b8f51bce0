"""talking_points.done_at and closed_in_id: where a carried-over point was checked off

An unchecked talking point of an ended meeting is shown in the pair's next
meeting (``agenda.carried_points``); checked off there, it is done
everywhere, and the meeting it was covered in keeps saying so. Existing rows
have neither: they were never carried.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("talking_points", schema=None) as batch_op:
        batch_op.add_column(sa.Column("done_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("closed_in_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            "fk_talking_points_closed_in", "meetings", ["closed_in_id"], ["id"]
        )
        batch_op.create_index("ix_talking_points_closed_in_id", ["closed_in_id"])


def downgrade() -> None:
    with op.batch_alter_table("talking_points", schema=None) as batch_op:
        batch_op.drop_index("ix_talking_points_closed_in_id")
        batch_op.drop_constraint("fk_talking_points_closed_in", type_="foreignkey")
        batch_op.drop_column("closed_in_id")
        batch_op.drop_column("done_at")
