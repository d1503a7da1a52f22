"""Release gates as a use case: one call that both doors (the CLI, the REST API) make.

::

    report = evaluate_gates(gate_ports(platform), "fraud", 4,
                            {"holdout": "/data/holdout.csv", "label": "is_fraud"}, save=True)
    report_json(report, forced=False)      # what `modelplane gate --json` and the API return

:func:`evaluate_gates`, in order: the version must exist (404) and be ready (409 when
archived); the model's saved settings (tag ``gate.config``) with the given ones over them make
the :class:`~modelplane.traffic.gates.GateConfig` (422 naming the setting); ``save`` keeps it on
the model; the candidate and the champion (none when the version is the champion itself) are
loaded and :func:`~modelplane.traffic.gates.run_gates` runs; the result is recorded on the
version (``RecordGateResult``: tag ``modelplane.gate`` and a ``GateEvaluated`` event), forced
through with ``force``. A failed gate is a report, never an error.

The registry is reached through :class:`GatePorts`, a port declared here, so delivery imports no
other capability: ``modelplane.bootstrap.gate_ports(platform)`` builds the adapter that fits it (the
registry's ``RegistryAccess``), the one way both doors build it. Blocking: it loads models and
times predictions.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Protocol

from modelplane.errors import Conflict, InvalidInput
from modelplane.traffic.gates import GateConfig, GateModel, GateReport, run_gates
from modelplane.traffic.model import CHAMPION

__all__ = ["CHAMPION", "CONFIG_TAG", "GatePorts", "evaluate_gates", "gate_config", "report_json"]

#: The model tag holding its gate settings as JSON (``modelplane gate --save``).
CONFIG_TAG = "gate.config"
#: The alias whose version the candidate is compared with.


class _Model(Protocol):
    @property
    def tags(self) -> Mapping[str, str]: ...
    @property
    def aliases(self) -> Mapping[str, int]: ...


class _Version(Protocol):
    @property
    def status(self) -> str: ...


class GatePorts(Protocol):
    """What the use case needs of the registry (``modelplane.bootstrap.gate_ports`` builds it)."""

    def get_model(self, name: str) -> _Model: ...
    def get_version(self, name: str, version: int) -> _Version: ...
    def load_model(self, ref: str) -> GateModel: ...
    def set_tag(self, name: str, key: str, value: str) -> None: ...
    def record_gate_result(
        self, name: str, version: int, *, passed: bool, checks: Mapping[str, bool], forced: bool
    ) -> object: ...


def gate_config(saved: str | None, given: Mapping[str, Any] | None = None) -> GateConfig:
    """The settings in force: ``saved`` (the ``gate.config`` tag's JSON) with every ``given``
    setting that is not None over it. InvalidInput names the offending setting."""
    stored: Any = {}
    if saved:
        try:
            stored = json.loads(saved)
        except ValueError as exc:
            raise InvalidInput(
                f"the model's {CONFIG_TAG} tag is not JSON: {exc}", field=CONFIG_TAG
            ) from None
        if not isinstance(stored, dict):
            raise InvalidInput(f"the model's {CONFIG_TAG} tag is not an object", field=CONFIG_TAG)
    overrides = {k: v for k, v in (given or {}).items() if v is not None}
    return GateConfig.from_dict(stored | overrides)


def evaluate_gates(
    ports: GatePorts,
    name: str,
    version: int,
    given: Mapping[str, Any] | None = None,
    *,
    save: bool = False,
    force: bool = False,
) -> GateReport:
    """Run ``name/version``'s release gates against its champion and record the result.

    ``given``: settings over the saved ones (``holdout``, ``label``, ``metric``, ``margin``,
    ``latency_budget_ms``, ``smoke``; None means "not given"). Raises VersionNotFound /
    ModelNotFound, Conflict for an archived version and InvalidInput for bad settings — all
    before anything is written.
    """
    if ports.get_version(name, version).status == "archived":
        raise Conflict(
            f"{name}/{version} is archived: restore it before gating it", field="version"
        )
    model = ports.get_model(name)
    config = gate_config(model.tags.get(CONFIG_TAG), given)
    if save:
        ports.set_tag(name, CONFIG_TAG, json.dumps(config.to_dict(), separators=(",", ":")))
    champion_version = model.aliases.get(CHAMPION)
    champion = None
    if champion_version is not None and champion_version != version:
        champion = ports.load_model(f"{name}/{champion_version}")
    report = run_gates(ports.load_model(f"{name}/{version}"), champion, config)
    ports.record_gate_result(
        name,
        version,
        passed=report.passed,
        checks={c.name: c.passed for c in report.checks},
        forced=force,
    )
    return report


def report_json(report: GateReport, *, forced: bool) -> dict[str, Any]:
    """The report as ``modelplane gate --json`` prints it and the API returns it: ``forced``
    is true only when a failed version was let through."""
    return report.to_dict() | {"forced": forced and not report.passed}
