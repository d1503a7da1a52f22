"""Serving: Open Inference Protocol v2 over REST and gRPC, model pool, batching, cache, resilience."""
