"""The Python API: :class:`Client`, and the module-level shortcuts ``log_model``/``load_model``.

Every write goes through the message bus as a command (the same path as the CLI and the REST
API), every read through the registry's views. ``Client()`` with no arguments uses the settings
from the environment and ``modelplane.toml``; the shortcuts share one such client, built on first
use.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelplane.errors import InvalidInput, UntrustedArtifact
from modelplane.registry import commands as rc
from modelplane.registry.model import (
    Lineage,
    ModelVersion,
    RegisteredModel,
    check_user_tags,
    validate_alias,
    validate_name,
    validate_tags,
)

if TYPE_CHECKING:
    import numpy as np

    from modelplane.auth.handlers import CreatedToken
    from modelplane.auth.model import Token
    from modelplane.bootstrap import Platform
    from modelplane.config import Settings
    from modelplane.core.pagination import Page
    from modelplane.core.signature import Signature
    from modelplane.events.views import EventRecord
    from modelplane.runtimes import Runtime
    from modelplane.traffic.deployment import Deployment
    from modelplane.traffic.experiment import Experiment
    from modelplane.traffic.rollout import Rollout

__all__ = ["Client", "LoadedModel", "default_client", "load_model", "log_model"]


@dataclass
class LoadedModel:
    """A model version ready to predict. Input is checked against its signature first."""

    version: ModelVersion
    runtime: Runtime
    signature: Signature | None

    @property
    def name(self) -> str:
        return self.version.model

    @property
    def flavor(self) -> str:
        return self.version.flavor

    def predict(self, batch: Any) -> np.ndarray[Any, Any]:
        return self.runtime.predict(self._check(batch))

    def predict_proba(self, batch: Any) -> np.ndarray[Any, Any]:
        return self.runtime.predict_proba(self._check(batch))

    def _check(self, batch: Any) -> Any:
        return self.signature.validate(batch) if self.signature is not None else batch

    def __repr__(self) -> str:
        return f"<LoadedModel {self.version.model}/{self.version.version} ({self.flavor})>"


def _signature_dict(signature: Any) -> dict[str, Any] | None:
    if signature is None:
        return None
    from modelplane.core.signature import Signature

    if isinstance(signature, Signature):
        return signature.to_dict()
    if isinstance(signature, Mapping):
        return Signature.from_dict(signature).to_dict()
    raise InvalidInput("signature must be a Signature or its dict form", field="signature")


def _aliases(alias: str | list[str] | None) -> tuple[str, ...]:
    return (alias,) if isinstance(alias, str) else tuple(alias or ())


def _precheck(name: str, alias: str | list[str] | None, tags: Mapping[str, str] | None) -> None:
    """Refuse a bad name, alias or tag before an artifact is written anywhere."""
    validate_name(name)
    check_user_tags(dict(tags or {}))
    for a in _aliases(alias):
        validate_alias(a)
    validate_tags(dict(tags or {}))


def _declared_signature(path: Path) -> dict[str, Any] | None:
    """An ONNX graph declares its inputs and outputs: use them when no signature was given."""
    from modelplane.runtimes.onnx import signature_of

    try:
        return _signature_dict(signature_of(path))
    except InvalidInput:  # e.g. a declared dtype modelplane signatures do not have
        return None


def _lineage(lineage: Lineage | Mapping[str, Any] | None) -> Lineage:
    if lineage is None:
        return Lineage()
    if isinstance(lineage, Lineage):
        return lineage
    return Lineage.from_dict(dict(lineage))


class Client:
    """One connection to a modelplane registry (database + artifact store)."""

    def __init__(self, settings: Settings | None = None, *, platform: Platform | None = None):
        if platform is None:
            from modelplane.bootstrap import bootstrap

            platform = bootstrap(settings)
        self.platform = platform

    def close(self) -> None:
        self.platform.close()

    # -- writes (commands) -----------------------------------------------------------------
    def register_model(
        self, name: str, *, description: str = "", tags: Mapping[str, str] | None = None
    ) -> RegisteredModel:
        model: RegisteredModel = self.platform.bus.handle(
            rc.RegisterModel(name=name, description=description, tags=dict(tags or {}))
        )
        return model

    def log_model(
        self,
        model: Any,
        *,
        name: str,
        signature: Signature | Mapping[str, Any] | None = None,
        input_example: Any = None,
        metrics: Mapping[str, float] | None = None,
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, str] | None = None,
        lineage: Lineage | Mapping[str, Any] | None = None,
        alias: str | list[str] | None = None,
        description: str = "",
        flavor: str | None = None,
        trust: bool = False,
        trusted_by: str | None = None,
    ) -> ModelVersion:
        """Save ``model`` in its flavor's safe format, store it, register a new version.

        ``trust``: let the version hold code outside the allowlist (a Python function, a
        scikit-learn pipeline with a function of your own): recorded on the version with who
        granted it (``trusted_by``, default ``local:<user>``) and when; see docs/security.md.
        """
        from modelplane.runtimes import detect_flavor, load_runtime, save_model

        _precheck(name, alias, tags)
        lineage_value = _lineage(lineage)
        flavor = flavor or detect_flavor(model)
        if flavor == "pyfunc" and not trust:
            raise _pyfunc_untrusted(name)
        if signature is None and input_example is not None:
            from modelplane.core.signature import infer_signature

            signature = infer_signature(input_example)
        with self.platform.artifacts.scratch() as tmp:  # under the store's tmp/: gc finds it
            saved = save_model(model, tmp, flavor=flavor, input_example=input_example)
            if not trust and saved.flavor == "sklearn":  # refused now, not at every later load
                load_runtime(saved.flavor, saved.path, trust=False)
            if signature is None and saved.flavor == "onnx":
                signature = _declared_signature(saved.path)
            stored = self.platform.artifacts.put(saved.path)
        return self._register(
            name,
            flavor=saved.flavor,
            digest=stored.digest,
            size=stored.size,
            artifact_name=stored.name,
            signature=_signature_dict(signature),
            metrics=metrics,
            params=params,
            tags=tags,
            lineage=lineage_value,
            alias=alias,
            description=description,
            trusted_by=_trusted_by(trust, trusted_by),
        )

    def register_file(
        self,
        name: str,
        path: str | Path,
        *,
        flavor: str | None = None,
        signature: Signature | Mapping[str, Any] | None = None,
        metrics: Mapping[str, float] | None = None,
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, str] | None = None,
        lineage: Lineage | Mapping[str, Any] | None = None,
        alias: str | list[str] | None = None,
        description: str = "",
        trust: bool = False,
        create_model: bool = True,
        trusted_by: str | None = None,
    ) -> ModelVersion:
        """Register a model file saved earlier (``.skops``, ``.onnx``, ``.ubj``…).

        The file is loaded once first, so a file that is not a model of its flavor, or one
        holding code outside the allowlist without ``trust``, is refused before anything is
        stored. ``trust`` is recorded on the version (see :meth:`log_model`).
        """
        from modelplane.runtimes import guess_flavor, load_runtime

        _precheck(name, alias, tags)
        lineage_value = _lineage(lineage)
        signature_value = _signature_dict(signature)
        source = Path(path)
        if not source.exists():
            raise InvalidInput(f"{source} does not exist", field="path")
        flavor = flavor or guess_flavor(source)
        if flavor == "pyfunc" and not trust:
            raise _pyfunc_untrusted(source.name)
        try:
            load_runtime(flavor, source, trust=trust)
        except UntrustedArtifact:
            raise
        except InvalidInput:
            raise
        except Exception as exc:  # the engine's own error: say it plainly, as bad input
            raise InvalidInput(
                f"{source.name} could not be loaded as a {flavor} model: {exc}", field="path"
            ) from exc
        if signature_value is None and flavor == "onnx":
            signature_value = _declared_signature(source)
        stored = self.platform.artifacts.put(source)
        return self._register(
            name,
            flavor=flavor,
            digest=stored.digest,
            size=stored.size,
            artifact_name=stored.name,
            signature=signature_value,
            metrics=metrics,
            params=params,
            tags=tags,
            lineage=lineage_value,
            alias=alias,
            description=description,
            create_model=create_model,
            trusted_by=_trusted_by(trust, trusted_by),
        )

    def _register(
        self,
        name: str,
        *,
        flavor: str,
        digest: str,
        size: int,
        artifact_name: str,
        signature: dict[str, Any] | None,
        metrics: Mapping[str, float] | None,
        params: Mapping[str, Any] | None,
        tags: Mapping[str, str] | None,
        lineage: Lineage,
        alias: str | list[str] | None,
        description: str,
        create_model: bool = True,
        trusted_by: str | None = None,
    ) -> ModelVersion:
        aliases = _aliases(alias)
        version: ModelVersion = self.platform.bus.handle(
            rc.RegisterVersion(
                model=name,
                flavor=flavor,
                digest=digest,
                size=size,
                artifact_name=artifact_name,
                signature=signature,
                params={k: str(v) for k, v in (params or {}).items()},
                metrics=dict(metrics or {}),
                tags=dict(tags or {}),
                lineage=lineage,
                description=description,
                aliases=aliases,
                create_model=create_model,
                trusted_by=trusted_by,
            )
        )
        return version

    def set_alias(self, name: str, alias: str, version: int) -> ModelVersion:
        result: ModelVersion = self.platform.bus.handle(
            rc.SetAlias(model=name, alias=alias, version=version)
        )
        return result

    def remove_alias(self, name: str, alias: str) -> int:
        number: int = self.platform.bus.handle(rc.RemoveAlias(model=name, alias=alias))
        return number

    def archive_version(self, name: str, version: int) -> ModelVersion:
        result: ModelVersion = self.platform.bus.handle(
            rc.ArchiveVersion(model=name, version=version)
        )
        return result

    def restore_version(self, name: str, version: int) -> ModelVersion:
        result: ModelVersion = self.platform.bus.handle(
            rc.RestoreVersion(model=name, version=version)
        )
        return result

    def set_tag(self, name: str, key: str, value: str, *, version: int | None = None) -> None:
        self.platform.bus.handle(rc.SetTag(model=name, key=key, value=value, version=version))

    def delete_tag(self, name: str, key: str, *, version: int | None = None) -> None:
        self.platform.bus.handle(rc.DeleteTag(model=name, key=key, version=version))

    def record_gate_result(
        self,
        name: str,
        version: int,
        *,
        passed: bool,
        checks: Mapping[str, bool] | None = None,
        forced: bool = False,
    ) -> ModelVersion:
        result: ModelVersion = self.platform.bus.handle(
            rc.RecordGateResult(
                model=name,
                version=version,
                passed=passed,
                checks=dict(checks or {}),
                forced=forced,
            )
        )
        return result

    # -- delivery: experiments, rollouts, deploys (modelplane.traffic) -----------------------
    def create_experiment(
        self,
        name: str,
        model: str,
        variants: Mapping[str, tuple[int, float]],
        **options: Any,
    ) -> Experiment:
        """An A/B/n test: ``variants`` maps arm name → (version, percentage).

        Options: ``metric`` ("accuracy" or "reward"), ``mde``, ``alpha``, ``power``,
        ``bandit``; or ``kind="shadow"`` with one variant and ``shadow_percent``.
        """
        from modelplane.traffic.commands import CreateExperiment

        arms = tuple((n, int(v), float(w)) for n, (v, w) in variants.items())
        result: Experiment = self.platform.bus.handle(
            CreateExperiment(name=name, model=model, variants=arms, **options)
        )
        return result

    def experiment_action(self, name: str, action: str) -> Experiment:
        """``start``, ``pause`` or ``stop`` an experiment."""
        from modelplane.traffic import commands as tc

        command = {
            "start": tc.StartExperiment,
            "pause": tc.PauseExperiment,
            "stop": tc.StopExperiment,
        }.get(action)
        if command is None:
            raise InvalidInput(f"unknown action {action!r}: start, pause or stop", field="action")
        result: Experiment = self.platform.bus.handle(command(name=name))
        return result

    def start_rollout(self, model: str, candidate: int, **options: Any) -> Rollout:
        """A canary of ``model/candidate`` against its champion (see ``StartRollout``)."""
        from modelplane.traffic.commands import StartRollout

        if "steps" in options:
            options["steps"] = tuple(options["steps"])
        result: Rollout = self.platform.bus.handle(
            StartRollout(model=model, candidate=candidate, **options)
        )
        return result

    def decide_rollout(
        self,
        model: str,
        decision: str,
        *,
        reason: str,
        evidence: Mapping[str, Any] | None = None,
        expected_step: int | None = None,
        manual: bool = False,
    ) -> Rollout:
        """``advance``, ``promote`` or ``rollback`` the model's running rollout."""
        from modelplane.traffic.commands import DecideRollout

        if decision not in ("advance", "promote", "rollback"):
            raise InvalidInput(
                f"unknown decision {decision!r}: advance, promote or rollback", field="decision"
            )
        result: Rollout = self.platform.bus.handle(
            DecideRollout(
                model=model,
                decision=decision,  # type: ignore[arg-type]
                reason=reason,
                evidence=dict(evidence or {}),
                expected_step=expected_step,
                manual=manual,
            )
        )
        return result

    def abort_rollout(self, model: str, reason: str = "aborted by hand") -> Rollout:
        from modelplane.traffic.commands import AbortRollout

        result: Rollout = self.platform.bus.handle(AbortRollout(model=model, reason=reason))
        return result

    def deploy(
        self, model: str, version: int, *, keep_blue_s: float = 600.0, force: bool = False
    ) -> Deployment:
        """Blue-green: point ``champion`` at ``version`` at once (its gates must have passed)."""
        from modelplane.traffic.commands import Deploy

        result: Deployment = self.platform.bus.handle(
            Deploy(model=model, version=version, keep_blue_s=keep_blue_s, force=force)
        )
        return result

    def rollback_deploy(self, model: str) -> Deployment:
        from modelplane.traffic.commands import RollbackDeploy

        result: Deployment = self.platform.bus.handle(RollbackDeploy(model=model))
        return result

    def create_token(self, name: str, scope: str = "read") -> CreatedToken:
        """A new API token; its secret is in the result and nowhere else, ever."""
        from modelplane.auth.commands import CreateToken

        created: CreatedToken = self.platform.bus.handle(CreateToken(name=name, scope=scope))
        return created

    def revoke_token(self, token_id: str) -> Token:
        from modelplane.auth.commands import RevokeToken

        token: Token = self.platform.bus.handle(RevokeToken(token_id=token_id))
        return token

    def list_tokens(self, *, include_revoked: bool = False) -> list[Token]:
        return self.platform.tokens.list_tokens(include_revoked=include_revoked)

    def collect_garbage(self, *, older_than_s: float = 3600, dry_run: bool = False) -> list[str]:
        """Delete stored artifacts no version points at (left by failed registrations).

        Only objects older than ``older_than_s`` go, so one stored by a registration still in
        flight is never taken. Returns the digests removed (or that would be, with dry_run).
        """
        import time

        referenced = self.platform.registry.referenced_digests()
        cutoff = time.time() - older_than_s
        orphans = [
            digest
            for digest, written in self.platform.artifacts.objects()
            if digest not in referenced and (written is None or written < cutoff)
        ]
        if not dry_run:
            for digest in orphans:
                self.platform.artifacts.delete(digest)
        return orphans

    # -- reads (views) ---------------------------------------------------------------------
    def get_model(self, name: str) -> RegisteredModel:
        return self.platform.registry.get_model(name)

    def list_models(self, **filters: Any) -> Page[RegisteredModel]:
        return self.platform.registry.list_models(**filters)

    def get_version(self, name: str, version: int) -> ModelVersion:
        return self.platform.registry.get_version(name, version)

    def list_versions(self, name: str, **filters: Any) -> Page[ModelVersion]:
        return self.platform.registry.list_versions(name, **filters)

    def resolve(self, ref: str) -> ModelVersion:
        return self.platform.registry.resolve(ref)

    def list_events(self, **filters: Any) -> Page[EventRecord]:
        return self.platform.events.list_events(**filters)

    def load_model(self, ref: str, *, trust: bool | None = None) -> LoadedModel:
        """Load ``models:/name@alias`` (or ``name``, ``name/3``…), verified and ready.

        ``trust``: None (the default) honours what the version records — content outside the
        allowlist loads only if an admin trusted the version; True trusts it here and now
        (your own files); False refuses it even when the version is trusted.
        """
        from modelplane.core.signature import Signature
        from modelplane.runtimes import load_runtime

        version = self.platform.registry.resolve(ref)
        path = self.platform.artifacts.fetch(
            version.digest,
            name=version.artifact_name,
            owner=f"{version.model}/{version.version}",
        )
        runtime = load_runtime(
            version.flavor, path, trust=version.trusted if trust is None else trust
        )
        signature = Signature.from_dict(version.signature) if version.signature else None
        return LoadedModel(version=version, runtime=runtime, signature=signature)


def _trusted_by(trust: bool, who: str | None) -> str | None:
    """Who trusts the content: given by the REST edge (``token:<name>``), else the local user
    (the Python API and the CLI run with the database's own credentials: an admin's)."""
    if not trust:
        return None
    if who:
        return who
    import getpass

    try:
        return f"local:{getpass.getuser()}"
    except (KeyError, OSError):  # no passwd entry (a container's arbitrary uid)
        import os

        return f"local:uid {os.getuid()}"


def _pyfunc_untrusted(what: str) -> UntrustedArtifact:
    return UntrustedArtifact(
        f"{what}: a pyfunc model is Python code run with request data; it needs trust=True / "
        "--trust (granted by an admin and recorded on the version)",
        field="trust",
    )


_default: Client | None = None
_lock = threading.Lock()


def default_client() -> Client:
    """The process-wide client the module-level functions use, built on first use."""
    global _default
    with _lock:
        if _default is None:
            _default = Client()
        return _default


def log_model(model: Any, *, name: str, **kwargs: Any) -> ModelVersion:
    """Save, store and register ``model`` as a new version of ``name`` (see Client.log_model)."""
    return default_client().log_model(model, name=name, **kwargs)


def load_model(ref: str, *, trust: bool | None = None) -> LoadedModel:
    """Load a registered model: ``modelplane.load_model("models:/fraud@champion")``."""
    return default_client().load_model(ref, trust=trust)
