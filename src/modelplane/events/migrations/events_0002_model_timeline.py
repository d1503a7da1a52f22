"""events: the model timeline projection

Revision ID: events_0002
Revises: events_0001
Create Date: 2026-12-08 01:25:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "events_0002"
down_revision = "events_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "model_timeline",
        sa.Column("event_id", sa.String(36), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("model", sa.String(255), nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("subject", sa.String(300), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_model_timeline")),
    )
    op.create_index(
        "ix_model_timeline_model_position", "model_timeline", ["model", "position"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_model_timeline_model_position", table_name="model_timeline")
    op.drop_table("model_timeline")
