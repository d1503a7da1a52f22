"""Serving: OIP v2 over REST and gRPC, the model pool, batching, cache and resilience."""
