"""trust: who let a version hold code outside the allowlist, and when

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07 16:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("versions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("trusted_by", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("trusted_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("versions", schema=None) as batch_op:
        batch_op.drop_column("trusted_at")
        batch_op.drop_column("trusted_by")
