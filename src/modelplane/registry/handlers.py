"""Registry use cases: the only code that changes the registry's state.

Each handler takes its command and a unit of work, loads what it needs, raises a domain error if
something is missing, calls one method on the aggregate and commits once: the state change and
its events land together or not at all.
"""

from __future__ import annotations

from collections.abc import Mapping

from modelplane.core.bus import CommandHandler
from modelplane.core.messages import Command
from modelplane.errors import ModelAlreadyExists, ModelNotFound, VersionNotFound
from modelplane.registry import commands as c
from modelplane.registry.model import ModelVersion, RegisteredModel, validate_name
from modelplane.registry.repository import RegistryUnitOfWork

__all__ = ["COMMAND_HANDLERS"]


def _load(uow: RegistryUnitOfWork, name: str) -> RegisteredModel:
    validate_name(name)
    model = uow.models.get(name)
    if model is None:
        raise ModelNotFound(f"model {name!r} does not exist", field="name")
    return model


def _version(uow: RegistryUnitOfWork, model: RegisteredModel, number: int) -> ModelVersion:
    version = uow.models.get_version(model, number)
    if version is None:
        raise VersionNotFound(f"model {model.name!r} has no version {number}", field="version")
    return version


def register_model(cmd: c.RegisterModel, uow: RegistryUnitOfWork) -> RegisteredModel:
    with uow:
        model = RegisteredModel.create(
            cmd.name, description=cmd.description, tags=dict(cmd.tags), now=uow.clock()
        )
        if not uow.models.add(model):
            raise ModelAlreadyExists(f"model {cmd.name!r} already exists", field="name")
        uow.commit()
    return model


def register_version(cmd: c.RegisterVersion, uow: RegistryUnitOfWork) -> ModelVersion:
    with uow:
        now = uow.clock()
        validate_name(cmd.model)
        model = uow.models.get(cmd.model)
        if model is None and cmd.create_model:
            fresh = RegisteredModel.create(cmd.model, description="", tags={}, now=now)
            # Another writer may create it first; either way we then lock and load it.
            if uow.models.add(fresh):
                model = fresh
            else:
                model = uow.models.get(cmd.model)
        if model is None:
            raise ModelNotFound(f"model {cmd.model!r} does not exist", field="name")
        version = model.add_version(
            flavor=cmd.flavor,
            digest=cmd.digest,
            size=cmd.size,
            artifact_name=cmd.artifact_name,
            signature=cmd.signature,
            params=dict(cmd.params),
            metrics=dict(cmd.metrics),
            tags=dict(cmd.tags),
            lineage=cmd.lineage,
            description=cmd.description,
            now=now,
            trusted_by=cmd.trusted_by,
        )
        for alias in cmd.aliases:
            model.set_alias(alias, version, now=now)
        uow.models.add_version(model, version)
        uow.models.save(model)
        uow.commit()
    version.aliases = tuple(sorted(a for a, v in model.aliases.items() if v == version.version))
    return version


def set_alias(cmd: c.SetAlias, uow: RegistryUnitOfWork) -> ModelVersion:
    with uow:
        model = _load(uow, cmd.model)
        version = _version(uow, model, cmd.version)
        model.set_alias(cmd.alias, version, now=uow.clock())
        uow.models.save(model)
        uow.commit()
    return version


def remove_alias(cmd: c.RemoveAlias, uow: RegistryUnitOfWork) -> int:
    with uow:
        model = _load(uow, cmd.model)
        number = model.remove_alias(cmd.alias, now=uow.clock())
        uow.models.save(model)
        uow.commit()
    return number


def archive_version(cmd: c.ArchiveVersion, uow: RegistryUnitOfWork) -> ModelVersion:
    with uow:
        model = _load(uow, cmd.model)
        version = _version(uow, model, cmd.version)
        model.archive(version, now=uow.clock())
        uow.models.save_version(model, version)
        uow.models.save(model)
        uow.commit()
    return version


def restore_version(cmd: c.RestoreVersion, uow: RegistryUnitOfWork) -> ModelVersion:
    with uow:
        model = _load(uow, cmd.model)
        version = _version(uow, model, cmd.version)
        model.restore(version, now=uow.clock())
        uow.models.save_version(model, version)
        uow.models.save(model)
        uow.commit()
    return version


def set_tag(cmd: c.SetTag, uow: RegistryUnitOfWork) -> None:
    with uow:
        model = _load(uow, cmd.model)
        version = _version(uow, model, cmd.version) if cmd.version is not None else None
        model.set_tag(cmd.key, cmd.value, version=version, now=uow.clock())
        if version is not None:
            uow.models.save_version(model, version)
        uow.models.save(model)
        uow.commit()


def delete_tag(cmd: c.DeleteTag, uow: RegistryUnitOfWork) -> None:
    with uow:
        model = _load(uow, cmd.model)
        version = _version(uow, model, cmd.version) if cmd.version is not None else None
        model.delete_tag(cmd.key, version=version, now=uow.clock())
        if version is not None:
            uow.models.save_version(model, version)
        uow.models.save(model)
        uow.commit()


def record_gate_result(cmd: c.RecordGateResult, uow: RegistryUnitOfWork) -> ModelVersion:
    with uow:
        model = _load(uow, cmd.model)
        version = _version(uow, model, cmd.version)
        model.record_gate(
            version,
            passed=cmd.passed,
            checks=dict(cmd.checks),
            forced=cmd.forced,
            now=uow.clock(),
        )
        uow.models.save_version(model, version)
        uow.models.save(model)
        uow.commit()
    return version


COMMAND_HANDLERS: Mapping[type[Command], CommandHandler] = {
    c.RegisterModel: register_model,
    c.RegisterVersion: register_version,
    c.SetAlias: set_alias,
    c.RemoveAlias: remove_alias,
    c.ArchiveVersion: archive_version,
    c.RestoreVersion: restore_version,
    c.SetTag: set_tag,
    c.DeleteTag: delete_tag,
    c.RecordGateResult: record_gate_result,
}
