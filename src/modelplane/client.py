"""The Python API: :class:`Client`, and the module-level shortcuts ``log_model``/``load_model``.

A façade: each method hands its call to the capability that owns it — a registry use case
(:mod:`modelplane.registry.usecases`), a command on the message bus, or a view — so the CLI and
the REST API, which call those same pieces, can never disagree with it. ``Client()`` with no
arguments uses the settings from the environment and ``modelplane.toml``; the shortcuts share
one such client, built on first use.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from modelplane.errors import InvalidInput
from modelplane.registry import commands as rc
from modelplane.registry import usecases
from modelplane.registry.model import Lineage, ModelVersion, RegisteredModel
from modelplane.registry.usecases import LoadedModel

if TYPE_CHECKING:
    from modelplane.auth.handlers import CreatedToken
    from modelplane.auth.model import Token
    from modelplane.bootstrap import Platform
    from modelplane.config import Settings
    from modelplane.core.messages import Command
    from modelplane.core.pagination import Page
    from modelplane.core.signature import Signature
    from modelplane.events.views import EventRecord
    from modelplane.traffic.deployment import Deployment
    from modelplane.traffic.experiment import Experiment
    from modelplane.traffic.gating import GatePorts
    from modelplane.traffic.rollout import Rollout

__all__ = ["Client", "LoadedModel", "default_client", "load_model", "log_model"]


class Client:
    """One connection to a modelplane registry (database + artifact store)."""

    def __init__(self, settings: Settings | None = None, *, platform: Platform | None = None):
        if platform is None:
            from modelplane.bootstrap import bootstrap

            platform = bootstrap(settings)
        self.platform = platform

    def close(self) -> None:
        self.platform.close()

    def _handle(self, command: Command) -> Any:
        return self.platform.bus.handle(command)

    # -- registry writes (use cases, commands) ---------------------------------------------
    def register_model(
        self, name: str, *, description: str = "", tags: Mapping[str, str] | None = None
    ) -> RegisteredModel:
        return usecases.register_model(self._handle, name, description=description, tags=tags)

    def log_model(
        self, model: Any, *, name: str, signature: Signature | Mapping[str, Any] | None = None,
        input_example: Any = None, metrics: Mapping[str, float] | None = None,
        params: Mapping[str, Any] | None = None, tags: Mapping[str, str] | None = None,
        lineage: Lineage | Mapping[str, Any] | None = None, alias: str | list[str] | None = None,
        description: str = "", flavor: str | None = None, trust: bool = False,
        trusted_by: str | None = None,
    ) -> ModelVersion:  # fmt: skip
        """Save ``model`` in its flavor's safe format, store it, register a new version.

        ``trust``: let the version hold code outside the allowlist (a Python function, a
        scikit-learn pipeline with a function of your own): recorded on the version with who
        granted it (``trusted_by``, default ``local:<user>``) and when; see docs/security.md.
        """
        return usecases.log_model(
            self._handle, self.platform.artifacts, model, name=name, signature=signature,
            input_example=input_example, metrics=metrics, params=params, tags=tags,
            lineage=lineage, alias=alias, description=description, flavor=flavor, trust=trust,
            trusted_by=trusted_by,
        )  # fmt: skip

    def register_file(
        self, name: str, path: str | Path, *, flavor: str | None = None,
        signature: Signature | Mapping[str, Any] | None = None,
        metrics: Mapping[str, float] | None = None, params: Mapping[str, Any] | None = None,
        tags: Mapping[str, str] | None = None, lineage: Lineage | Mapping[str, Any] | None = None,
        alias: str | list[str] | None = None, description: str = "", trust: bool = False,
        create_model: bool = True, trusted_by: str | None = None,
    ) -> ModelVersion:  # fmt: skip
        """Register a model file saved earlier (``.skops``, ``.onnx``, ``.ubj``…).

        The file is loaded once first, so a file that is not a model of its flavor, or one
        holding code outside the allowlist without ``trust``, is refused before anything is
        stored. ``trust`` is recorded on the version (see :meth:`log_model`).
        """
        return usecases.register_file(
            self._handle, self.platform.artifacts, name, path, flavor=flavor, signature=signature,
            metrics=metrics, params=params, tags=tags, lineage=lineage, alias=alias,
            description=description, trust=trust, create_model=create_model,
            trusted_by=trusted_by,
        )  # fmt: skip

    def set_alias(self, name: str, alias: str, version: int) -> ModelVersion:
        command = rc.SetAlias(model=name, alias=alias, version=version)
        return cast(ModelVersion, self._handle(command))

    def remove_alias(self, name: str, alias: str) -> int:
        return cast(int, self._handle(rc.RemoveAlias(model=name, alias=alias)))

    def archive_version(self, name: str, version: int) -> ModelVersion:
        return cast(ModelVersion, self._handle(rc.ArchiveVersion(model=name, version=version)))

    def restore_version(self, name: str, version: int) -> ModelVersion:
        return cast(ModelVersion, self._handle(rc.RestoreVersion(model=name, version=version)))

    def set_tag(self, name: str, key: str, value: str, *, version: int | None = None) -> None:
        self._handle(rc.SetTag(model=name, key=key, value=value, version=version))

    def delete_tag(self, name: str, key: str, *, version: int | None = None) -> None:
        self._handle(rc.DeleteTag(model=name, key=key, version=version))

    def record_gate_result(
        self, name: str, version: int, *, passed: bool, checks: Mapping[str, bool] | None = None,
        forced: bool = False,
    ) -> ModelVersion:  # fmt: skip
        command = rc.RecordGateResult(
            model=name, version=version, passed=passed, checks=dict(checks or {}), forced=forced
        )
        return cast(ModelVersion, self._handle(command))

    def collect_garbage(self, *, older_than_s: float = 3600, dry_run: bool = False) -> list[str]:
        """Delete stored artifacts no version points at (left by failed registrations).

        Only objects older than ``older_than_s`` go, so one stored by a registration still in
        flight is never taken. Returns the digests removed (or that would be, with dry_run).
        """
        return usecases.collect_garbage(
            self.platform.registry, self.platform.artifacts, older_than_s=older_than_s,
            dry_run=dry_run,
        )  # fmt: skip

    # -- delivery: experiments, rollouts, deploys (modelplane.traffic) -----------------------
    def create_experiment(
        self, name: str, model: str, variants: Mapping[str, tuple[int, float]], **options: Any
    ) -> Experiment:
        """An A/B/n test: ``variants`` maps arm name → (version, percentage).

        Options: ``metric`` ("accuracy" or "reward"), ``mde``, ``alpha``, ``power``,
        ``bandit``; or ``kind="shadow"`` with one variant and ``shadow_percent``.
        """
        from modelplane.traffic.commands import CreateExperiment

        arms = tuple((n, int(v), float(w)) for n, (v, w) in variants.items())
        command = CreateExperiment(name=name, model=model, variants=arms, **options)
        return cast("Experiment", self._handle(command))

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
        return cast("Experiment", self._handle(command(name=name)))

    def start_rollout(self, model: str, candidate: int, **options: Any) -> Rollout:
        """A canary of ``model/candidate`` against its champion (see ``StartRollout``)."""
        from modelplane.traffic.commands import StartRollout

        if "steps" in options:
            options["steps"] = tuple(options["steps"])
        command = StartRollout(model=model, candidate=candidate, **options)
        return cast("Rollout", self._handle(command))

    def decide_rollout(
        self, model: str, decision: str, *, reason: str, evidence: Mapping[str, Any] | None = None,
        expected_step: int | None = None, manual: bool = False,
    ) -> Rollout:  # fmt: skip
        """``advance``, ``promote`` or ``rollback`` the model's running rollout."""
        from modelplane.traffic.commands import DecideRollout

        if decision not in ("advance", "promote", "rollback"):
            raise InvalidInput(
                f"unknown decision {decision!r}: advance, promote or rollback", field="decision"
            )
        command = DecideRollout(
            model=model, decision=decision, reason=reason,  # type: ignore[arg-type]
            evidence=dict(evidence or {}), expected_step=expected_step, manual=manual,
        )  # fmt: skip
        return cast("Rollout", self._handle(command))

    def abort_rollout(self, model: str, reason: str = "aborted by hand") -> Rollout:
        from modelplane.traffic.commands import AbortRollout

        return cast("Rollout", self._handle(AbortRollout(model=model, reason=reason)))

    def deploy(
        self, model: str, version: int, *, keep_blue_s: float = 600.0, force: bool = False
    ) -> Deployment:
        """Blue-green: point ``champion`` at ``version`` at once (its gates must have passed)."""
        from modelplane.traffic.commands import Deploy

        command = Deploy(model=model, version=version, keep_blue_s=keep_blue_s, force=force)
        return cast("Deployment", self._handle(command))

    def rollback_deploy(self, model: str) -> Deployment:
        from modelplane.traffic.commands import RollbackDeploy

        return cast("Deployment", self._handle(RollbackDeploy(model=model)))

    def gate_ports(self) -> GatePorts:
        """What the release gates (``traffic.gating.evaluate_gates``) need
        (:func:`modelplane.bootstrap.gate_ports`)."""
        from modelplane.bootstrap import gate_ports

        return gate_ports(self.platform)

    # -- tokens (modelplane.auth) ------------------------------------------------------------
    def create_token(self, name: str, scope: str = "read") -> CreatedToken:
        """A new API token; its secret is in the result and nowhere else, ever."""
        from modelplane.auth.commands import CreateToken

        return cast("CreatedToken", self._handle(CreateToken(name=name, scope=scope)))

    def revoke_token(self, token_id: str) -> Token:
        from modelplane.auth.commands import RevokeToken

        return cast("Token", self._handle(RevokeToken(token_id=token_id)))

    def list_tokens(self, *, include_revoked: bool = False) -> list[Token]:
        return self.platform.tokens.list_tokens(include_revoked=include_revoked)

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
        return usecases.load_model(
            self.platform.registry, self.platform.artifacts, ref, trust=trust
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
