"""What ``modelplane serve`` is told: limits, batching, cache, ports, delivery — one frozen object.

Per-model overrides live with the model in the registry, as tags on the model (or on one
version, which wins for that version), so they travel with it:
``serving.max_batch_size``, ``serving.max_wait_ms``, ``serving.cache`` (true/false),
``serving.timeout_ms``, ``serving.max_concurrency``, ``serving.max_queue`` and
``serving.fallback`` (a reference answering while the breaker is open, e.g. ``fraud/3``).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from modelplane.errors import InvalidInput

__all__ = ["ModelOptions", "ServeOptions"]


@dataclass(frozen=True)
class ModelOptions:
    """Serving settings of one model: the server's defaults, overridden by its tags."""

    max_batch_size: int = 256
    max_wait_ms: float = 2.0
    cache: bool = False
    timeout_ms: float = 10_000.0
    max_concurrency: int = 64
    max_queue: int = 1024
    fallback: str | None = None

    def with_tags(self, tags: dict[str, str]) -> ModelOptions:
        """These options with any ``serving.*`` tags of the model applied."""
        changes: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            raw = tags.get(f"serving.{f.name}")
            if raw is None:
                continue
            try:
                if f.name == "cache":
                    changes[f.name] = raw.strip().lower() in ("1", "true", "yes", "on")
                elif f.name == "fallback":
                    changes[f.name] = raw.strip() or None
                elif f.name in ("max_wait_ms", "timeout_ms"):
                    changes[f.name] = float(raw)
                else:
                    changes[f.name] = int(raw)
            except ValueError:
                raise InvalidInput(
                    f"model tag serving.{f.name}={raw!r} is not a valid value", field=f.name
                ) from None
        return dataclasses.replace(self, **changes) if changes else self


@dataclass(frozen=True)
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 8000
    grpc_port: int | None = 8001
    workers: int = 1
    models: tuple[str, ...] = ()
    defaults: ModelOptions = field(default_factory=ModelOptions)
    #: memory the in-process (L1) prediction cache may hold, entries' real size; 0: no L1
    #: (``serve --cache-max-bytes``)
    cache_bytes: int = 64 << 20
    cache_ttl_s: float = 300.0
    max_models: int = 16
    max_model_bytes: int = 4 << 30
    poll_interval_s: float = 2.0
    executor_threads: int | None = None
    process_pool: bool = False
    prediction_log: bool = True
    access_log: bool = True
    drain_s: float = 10.0
    #: run the canary controller (every running rollout judged and moved) in this server
    controller: bool = True
    controller_interval_s: float = 1.0
    #: live counters of routed traffic go to the database this often
    stats_flush_s: float = 1.0
    #: shadow calls waiting for the candidate (more are dropped and counted), and their workers
    shadow_queue: int = 1000
    shadow_workers: int = 2

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ServeOptions:
        data = json.loads(text)
        data["models"] = tuple(data.get("models", ()))
        data["defaults"] = ModelOptions(**data.get("defaults", {}))
        return cls(**data)
