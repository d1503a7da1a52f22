"""The event store: the append-only ``events`` table that every command writes to (outbox)."""
