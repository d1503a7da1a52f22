"""The events capability's own Alembic revisions (branch ``events``)."""
