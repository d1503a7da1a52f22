"""feedback: a second outcome for a request is an explicit, recorded overwrite

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07 16:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("feedback", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("revision", sa.Integer(), nullable=False, server_default=sa.text("1"))
        )
        batch_op.add_column(sa.Column("previous_label", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("previous_reward", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("overwritten_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("feedback", schema=None) as batch_op:
        batch_op.drop_column("overwritten_at")
        batch_op.drop_column("previous_reward")
        batch_op.drop_column("previous_label")
        batch_op.drop_column("revision")
