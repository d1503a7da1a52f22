"""The tokens table: an id, a name, a scope and the hash of the secret (never the secret).
Created by the shared migration 0001 in ``modelplane/db/migrations``.
"""

from __future__ import annotations

from sqlalchemy import (
    Column,
    String,
    Table,
)

from modelplane.db.tables import Timestamp, metadata

__all__ = ["TABLES", "tokens"]

tokens = Table(
    "tokens",
    metadata,
    Column("id", String(16), primary_key=True),
    Column("name", String(128), nullable=False),
    Column("scope", String(16), nullable=False),
    Column("hash", String(64), nullable=False, unique=True),
    Column("created_at", Timestamp, nullable=False),
    Column("revoked_at", Timestamp, nullable=True),
)

TABLES = (tokens,)
