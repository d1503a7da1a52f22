"""API tokens: created once (only a hash is kept), scoped read < write < admin, revocable."""
