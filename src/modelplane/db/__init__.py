"""Relational metadata store: engine, tables, the SQL unit of work, Alembic migrations."""
