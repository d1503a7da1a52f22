"""Delivery use cases: the only code that changes experiments, rollouts and deployments, and
that writes the live counters and outcomes serving replicas send in.

Each delivery handler locks the model it routes first (so two commands on one model are serialised:
two rollouts cannot both start), checks the rules, changes one aggregate and commits once —
state and events together. Promotion, deploy and rollback move the ``champion`` alias in the
same transaction as their own event. Counters and feedback lock nothing and record no event
(one command per replica per flush, one per outcome): their SQL is safe under concurrency as
it stands (``x = x + delta`` upserts; one statement decides a request's first outcome).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

from modelplane.core.bus import CommandHandler
from modelplane.core.messages import Command
from modelplane.errors import (
    Conflict,
    ExperimentNotFound,
    GateBlocked,
    InvalidInput,
    RolloutNotFound,
)
from modelplane.traffic import commands as c
from modelplane.traffic.deployment import Deployment
from modelplane.traffic.experiment import Experiment
from modelplane.traffic.model import CHAMPION, MAX_SECONDS, Arm
from modelplane.traffic.repository import TrafficUnitOfWork, VersionState
from modelplane.traffic.rollout import Rollout

__all__ = ["COMMAND_HANDLERS", "check_gate"]


def check_gate(state: VersionState, *, force: bool) -> bool:
    """A version takes live traffic only when its gates passed, or a failure was forced —
    by ``modelplane gate --force`` (tag ``forced``) or by this command's ``force``.

    Returns whether it goes through *forced* (its gates did not pass), which the rollout or
    deployment records.
    """
    if state.gate == "passed":
        return False
    if state.gate == "forced" or force:
        return True
    ref = f"{state.model}/{state.version}"
    if state.gate == "failed":
        raise GateBlocked(
            f"{ref} failed its release gates; fix it, or pass --force (the force is recorded)",
            field="version",
        )
    raise GateBlocked(
        f"{ref} has not been gated; run `modelplane gate {ref}` first, or pass --force "
        "(the force is recorded)",
        field="version",
    )


def _ready(state: VersionState) -> None:
    if state.status != "ready":
        raise Conflict(
            f"{state.model}/{state.version} is {state.status}; only a ready version takes traffic",
            field="version",
        )


def _experiment(uow: TrafficUnitOfWork, name: str) -> Experiment:
    experiment = uow.experiments.get(name)
    if experiment is None:
        raise ExperimentNotFound(f"experiment {name!r} does not exist", field="name")
    return experiment


def _no_router(uow: TrafficUnitOfWork, model: str, *, besides: str | None = None) -> None:
    """One thing decides where a model's bare-name traffic goes: a split or a rollout."""
    rollout = uow.rollouts.running(model)
    if rollout is not None:
        raise Conflict(
            f"a rollout of {model}/{rollout.candidate} is running on {model!r}; finish or abort "
            "it first",
            field="model",
        )
    for other in uow.experiments.active_for(model, "split"):
        if other.name != besides:
            raise Conflict(
                f"experiment {other.name!r} already routes {model!r}; stop it first",
                field="model",
            )


def create_experiment(cmd: c.CreateExperiment, uow: TrafficUnitOfWork) -> Experiment:
    with uow:
        uow.model_port.lock(cmd.model)
        arms = tuple(
            Arm(name, int(version), float(weight)) for name, version, weight in cmd.variants
        )
        for arm in arms:
            _ready(uow.model_port.version(cmd.model, arm.version))
        experiment = Experiment.create(
            cmd.name,
            cmd.model,
            kind=cmd.kind,
            arms=arms,
            metric=cmd.metric,
            mde=cmd.mde,
            alpha=cmd.alpha,
            power=cmd.power,
            bandit=cmd.bandit,
            shadow_percent=cmd.shadow_percent,
            now=uow.clock(),
        )
        if not uow.experiments.add(experiment):
            raise Conflict(f"experiment {cmd.name!r} already exists", field="name")
        uow.commit()
    return experiment


def start_experiment(cmd: c.StartExperiment, uow: TrafficUnitOfWork) -> Experiment:
    with uow:
        experiment = _experiment(uow, cmd.name)
        uow.model_port.lock(experiment.model)
        experiment = _experiment(uow, cmd.name)  # re-read under the model's lock
        if experiment.status != "running":
            if experiment.kind == "split":
                _no_router(uow, experiment.model, besides=experiment.name)
            else:
                for other in uow.experiments.active_for(experiment.model, "shadow"):
                    if other.name != experiment.name:
                        raise Conflict(
                            f"shadow {other.name!r} already mirrors {experiment.model!r}; "
                            "stop it first",
                            field="model",
                        )
            for arm in experiment.arms:
                _ready(uow.model_port.version(experiment.model, arm.version))
        experiment.start(now=uow.clock())
        uow.experiments.save(experiment)
        uow.commit()
    return experiment


def pause_experiment(cmd: c.PauseExperiment, uow: TrafficUnitOfWork) -> Experiment:
    with uow:
        experiment = _experiment(uow, cmd.name)
        experiment.pause(now=uow.clock())
        uow.experiments.save(experiment)
        uow.commit()
    return experiment


def stop_experiment(cmd: c.StopExperiment, uow: TrafficUnitOfWork) -> Experiment:
    with uow:
        experiment = _experiment(uow, cmd.name)
        experiment.stop(now=uow.clock())
        uow.experiments.save(experiment)
        uow.commit()
    return experiment


def start_rollout(cmd: c.StartRollout, uow: TrafficUnitOfWork) -> Rollout:
    with uow:
        aliases = uow.model_port.lock(cmd.model)
        baseline = aliases.get(CHAMPION)
        if baseline is None:
            raise Conflict(
                f"model {cmd.model!r} has no champion to compare with; set one first "
                f"(modelplane alias set {cmd.model} champion N) or deploy",
                field="model",
            )
        state = uow.model_port.version(cmd.model, cmd.candidate)
        if baseline == cmd.candidate:
            raise InvalidInput(
                f"{cmd.model}/{cmd.candidate} is already the champion; nothing to roll out",
                field="candidate",
            )
        _ready(state)
        forced = check_gate(state, force=cmd.force)
        _no_router(uow, cmd.model)
        rollout = Rollout.create(
            cmd.model,
            baseline=baseline,
            candidate=cmd.candidate,
            steps=tuple(cmd.steps),
            step_duration_s=cmd.step_duration_s,
            min_requests=cmd.min_requests,
            max_error_rate=cmd.max_error_rate,
            max_latency_ratio=cmd.max_latency_ratio,
            alpha=cmd.alpha,
            forced=forced,
            now=uow.clock(),
        )
        uow.rollouts.add(rollout)
        rollout.started()
        uow.rollouts.save(rollout)
        uow.commit()
    return rollout


def _running(uow: TrafficUnitOfWork, model: str) -> Rollout:
    rollout = uow.rollouts.running(model)
    if rollout is None:
        raise RolloutNotFound(f"no rollout is running on {model!r}", field="model")
    return rollout


def decide_rollout(cmd: c.DecideRollout, uow: TrafficUnitOfWork) -> Rollout:
    with uow:
        uow.model_port.lock(cmd.model)
        rollout = _running(uow, cmd.model)
        now = uow.clock()
        evidence = dict(cmd.evidence)
        if cmd.decision == "advance":
            rollout.advance(
                reason=cmd.reason, evidence=evidence, now=now, expected_step=cmd.expected_step
            )
        elif cmd.decision == "promote":
            rollout.promote(
                reason=cmd.reason,
                evidence=evidence,
                now=now,
                expected_step=cmd.expected_step,
                manual=cmd.manual,
            )
            _ready(uow.model_port.version(rollout.model, rollout.candidate))
            uow.model_port.move_alias(rollout.model, CHAMPION, rollout.candidate)
        elif cmd.decision == "rollback":
            rollout.roll_back(
                reason=cmd.reason, evidence=evidence, now=now, expected_step=cmd.expected_step
            )
        else:
            raise Conflict(f"unknown decision {cmd.decision!r}", field="decision")
        uow.rollouts.save(rollout)
        uow.commit()
    return rollout


def abort_rollout(cmd: c.AbortRollout, uow: TrafficUnitOfWork) -> Rollout:
    with uow:
        uow.model_port.lock(cmd.model)
        rollout = _running(uow, cmd.model)
        rollout.abort(reason=cmd.reason, now=uow.clock())
        uow.rollouts.save(rollout)
        uow.commit()
    return rollout


def deploy(cmd: c.Deploy, uow: TrafficUnitOfWork) -> Deployment:
    with uow:
        aliases = uow.model_port.lock(cmd.model)
        blue = aliases.get(CHAMPION)
        state = uow.model_port.version(cmd.model, cmd.version)
        _ready(state)
        if blue == cmd.version:
            raise Conflict(f"{cmd.model}/{cmd.version} is already the champion", field="version")
        forced = check_gate(state, force=cmd.force)
        _no_router(uow, cmd.model)
        if not 0 <= cmd.keep_blue_s <= MAX_SECONDS:
            raise InvalidInput(
                f"keep-blue must be between 0 seconds and 30 days, got {cmd.keep_blue_s!r}",
                field="keep_blue",
            )
        now = uow.clock()
        deployment = Deployment(
            model=cmd.model,
            blue=blue,
            green=cmd.version,
            keep_until=now + timedelta(seconds=cmd.keep_blue_s),
            created_at=now,
            updated_at=now,
            forced=forced,
        )
        uow.model_port.move_alias(cmd.model, CHAMPION, cmd.version)
        uow.deployments.add(deployment)
        deployment.switched()
        uow.deployments.save(deployment)
        uow.commit()
    return deployment


def rollback_deploy(cmd: c.RollbackDeploy, uow: TrafficUnitOfWork) -> Deployment:
    with uow:
        aliases = uow.model_port.lock(cmd.model)
        deployment = uow.deployments.last(cmd.model)
        if deployment is None or deployment.status != "switched":
            raise Conflict(f"no deployment of {cmd.model!r} to roll back", field="model")
        if aliases.get(CHAMPION) != deployment.green:
            raise Conflict(
                f"the champion of {cmd.model!r} moved since deployment {deployment.key} "
                f"(it is {aliases.get(CHAMPION)}, not {deployment.green}); not rolling back",
                field="model",
            )
        blue = deployment.roll_back(now=uow.clock())
        uow.model_port.move_alias(cmd.model, CHAMPION, blue)
        uow.deployments.save(deployment)
        uow.commit()
    return deployment


def record_traffic_counters(cmd: c.RecordTrafficCounters, uow: TrafficUnitOfWork) -> None:
    with uow:
        uow.ledger.add_counters(cmd.deltas)
        uow.commit()


def record_feedback(cmd: c.RecordFeedback, uow: TrafficUnitOfWork) -> int:
    """The stored revision (1 for the first outcome); Conflict on a second without overwrite."""
    with uow:
        revision = uow.ledger.add_feedback(
            cmd.request_id,
            label=cmd.label,
            reward=cmd.reward,
            subject=cmd.subject,
            variant=cmd.variant,
            overwrite=cmd.overwrite,
        )
        uow.commit()
    return revision


COMMAND_HANDLERS: Mapping[type[Command], CommandHandler] = {
    c.CreateExperiment: create_experiment,
    c.StartExperiment: start_experiment,
    c.PauseExperiment: pause_experiment,
    c.StopExperiment: stop_experiment,
    c.StartRollout: start_rollout,
    c.DecideRollout: decide_rollout,
    c.AbortRollout: abort_rollout,
    c.Deploy: deploy,
    c.RollbackDeploy: rollback_deploy,
    c.RecordTrafficCounters: record_traffic_counters,
    c.RecordFeedback: record_feedback,
}
