"""One exception hierarchy for modelplane.

Every error knows its HTTP status, its CLI exit code and a stable machine-readable code, so the
edges (REST API, CLI) translate any error the same way and domain code never imports HTTP::

    ModelplaneError                      500  exit 1  internal
    ├── InvalidInput                     422  exit 2  invalid_input
    │   ├── InvalidName                  422  exit 2  invalid_name
    │   ├── SignatureMismatch            422  exit 2  signature_mismatch
    │   ├── ModelRejectedInput           422  exit 2  model_rejected_input
    │   ├── UnsafePath                   422  exit 2  unsafe_path
    │   └── UntrustedArtifact            422  exit 2  untrusted_artifact
    ├── MalformedRequest                 400  exit 2  malformed_request
    ├── Unauthorized                     401  exit 2  unauthorized
    ├── Forbidden                        403  exit 2  forbidden
    ├── NotFound                         404  exit 2  not_found
    │   ├── ModelNotFound                404  exit 2  model_not_found
    │   ├── VersionNotFound              404  exit 2  version_not_found
    │   ├── AliasNotFound                404  exit 2  alias_not_found
    │   └── TokenNotFound                404  exit 2  token_not_found
    ├── Conflict                         409  exit 2  conflict
    │   ├── ModelAlreadyExists           409  exit 2  model_exists
    │   └── VersionInUse                 409  exit 2  version_in_use
    ├── ArtifactError                    500  exit 1  artifact_error
    │   ├── ArtifactMissing              500  exit 1  artifact_missing
    │   └── ArtifactCorrupted            500  exit 1  artifact_corrupted
    ├── PayloadTooLarge                  413  exit 2  payload_too_large
    ├── PredictionFailed                 500  exit 1  prediction_failed (the model raised)
    ├── DependencyMissing                501  exit 1  dependency_missing
    ├── Unavailable                      503  exit 1  unavailable
    │   ├── Overloaded                   503  exit 1  overloaded        (bulkhead full)
    │   ├── CircuitOpen                  503  exit 1  circuit_open      (no fallback)
    │   └── NotReady                     503  exit 1  not_ready         (loading, draining)
    └── DeadlineExceeded                 504  exit 1  deadline_exceeded
"""

from __future__ import annotations

__all__ = [
    "AliasNotFound",
    "ArtifactCorrupted",
    "ArtifactError",
    "ArtifactMissing",
    "CircuitOpen",
    "Conflict",
    "DeadlineExceeded",
    "DependencyMissing",
    "ExperimentNotFound",
    "Forbidden",
    "GateBlocked",
    "InvalidInput",
    "InvalidName",
    "MalformedRequest",
    "ModelAlreadyExists",
    "ModelNotFound",
    "ModelRejectedInput",
    "ModelplaneError",
    "NotFound",
    "NotReady",
    "Overloaded",
    "PayloadTooLarge",
    "PredictionFailed",
    "RolloutNotFound",
    "SignatureMismatch",
    "TokenNotFound",
    "Unauthorized",
    "Unavailable",
    "UnsafePath",
    "UntrustedArtifact",
    "VersionInUse",
    "VersionNotFound",
]


class ModelplaneError(Exception):
    """Root of every error modelplane raises on purpose."""

    status: int = 500
    exit_code: int = 1
    code: str = "internal"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def to_dict(self) -> dict[str, str | None]:
        """The JSON body of this error: ``{"code", "message", "field"}``."""
        return {"code": self.code, "message": self.message, "field": self.field}


class InvalidInput(ModelplaneError):
    """A value that is well-formed but not acceptable (a bad name, a wrong column)."""

    status = 422
    exit_code = 2
    code = "invalid_input"


class InvalidName(InvalidInput):
    code = "invalid_name"


class SignatureMismatch(InvalidInput):
    """Input that does not match a model version's signature."""

    code = "signature_mismatch"


class UnsafePath(InvalidInput):
    """A name or path that would escape its folder."""

    code = "unsafe_path"


class UntrustedArtifact(InvalidInput):
    """A pickle-based artifact loaded without an explicit ``trust=True``."""

    code = "untrusted_artifact"


class MalformedRequest(ModelplaneError):
    status = 400
    exit_code = 2
    code = "malformed_request"


class Unauthorized(ModelplaneError):
    status = 401
    exit_code = 2
    code = "unauthorized"


class Forbidden(ModelplaneError):
    status = 403
    exit_code = 2
    code = "forbidden"


class NotFound(ModelplaneError):
    status = 404
    exit_code = 2
    code = "not_found"


class ModelNotFound(NotFound):
    code = "model_not_found"


class VersionNotFound(NotFound):
    code = "version_not_found"


class AliasNotFound(NotFound):
    code = "alias_not_found"


class TokenNotFound(NotFound):
    code = "token_not_found"


class ExperimentNotFound(NotFound):
    code = "experiment_not_found"


class RolloutNotFound(NotFound):
    code = "rollout_not_found"


class Conflict(ModelplaneError):
    status = 409
    exit_code = 2
    code = "conflict"


class GateBlocked(Conflict):
    """A version whose release gates failed (or never ran) may not take live traffic."""

    code = "gate_blocked"


class ModelAlreadyExists(Conflict):
    code = "model_exists"


class VersionInUse(Conflict):
    code = "version_in_use"


class ArtifactError(ModelplaneError):
    status = 500
    exit_code = 1
    code = "artifact_error"


class ArtifactMissing(ArtifactError):
    code = "artifact_missing"


class ArtifactCorrupted(ArtifactError):
    code = "artifact_corrupted"


class DependencyMissing(ModelplaneError):
    """A flavor's engine (torch, xgboost…) is not installed: install the named extra."""

    status = 501
    exit_code = 1
    code = "dependency_missing"


class Unavailable(ModelplaneError):
    status = 503
    exit_code = 1
    code = "unavailable"


class Overloaded(Unavailable):
    """A model's bulkhead (concurrency limit and queue) is full: retry after ``retry_after``."""

    code = "overloaded"

    def __init__(self, message: str, *, retry_after: float = 1.0, field: str | None = None):
        super().__init__(message, field=field)
        self.retry_after = retry_after


class CircuitOpen(Unavailable):
    code = "circuit_open"


class NotReady(Unavailable):
    code = "not_ready"


class PayloadTooLarge(ModelplaneError):
    status = 413
    exit_code = 2
    code = "payload_too_large"


class DeadlineExceeded(ModelplaneError):
    status = 504
    exit_code = 1
    code = "deadline_exceeded"


class PredictionFailed(ModelplaneError):
    """The model itself raised on input that passed its signature."""

    code = "prediction_failed"


class ModelRejectedInput(InvalidInput):
    """The model raised ValueError/TypeError on input that passed its signature (e.g. NaN)."""

    code = "model_rejected_input"
