"""``modelplane models …``: list, show, register, versions, version, archive, restore, tag.

Writes go through :class:`modelplane.client.Client` (commands on the bus), reads through its
views. Every option is parsed and checked before the first write, so a bad ``--metric`` or name
stores nothing.
"""

from __future__ import annotations

import json
import re
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from modelplane.cli.context import (
    CursorOpt,
    JsonOpt,
    LimitOpt,
    TagOpt,
    parse_metrics,
    parse_pairs,
    state,
)
from modelplane.cli.output import (
    fmt_mapping,
    fmt_metrics,
    fmt_time,
    print_fields,
    print_json,
    print_table,
    progress,
    say,
)
from modelplane.errors import InvalidInput

if TYPE_CHECKING:
    from modelplane.registry.model import DataSource, ModelVersion, RegisteredModel

__all__ = ["app"]

app = typer.Typer(no_args_is_help=True, help="Registered models and their versions.")

NameArg = Annotated[str, typer.Argument(help="Model name.", show_default=False)]
VersionArg = Annotated[int, typer.Argument(help="Version number.", min=1, show_default=False)]
_DIGEST_RE = re.compile(r"(sha256:)?[0-9a-fA-F]{64}", re.IGNORECASE)


class Status(StrEnum):
    ready = "ready"
    archived = "archived"


class Order(StrEnum):
    asc = "asc"
    desc = "desc"


@app.command("list")
def list_models(
    ctx: typer.Context,
    prefix: Annotated[str | None, typer.Option(help="Only names starting with this.")] = None,
    tag: TagOpt = None,
    limit: LimitOpt = 100,
    cursor: CursorOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """List registered models, by name.

    Example: modelplane models list --prefix fraud --tag team=risk
    """
    st = state(ctx)
    tags = parse_pairs(tag, "--tag")
    page = st.client().list_models(name_prefix=prefix, tags=tags, limit=limit, cursor=cursor)
    if st.wants_json(json_out):
        print_json({"models": [m.to_dict() for m in page.items], "next_cursor": page.next_cursor})
        return
    print_table(
        ("name", "latest", "aliases", "tags", "updated (UTC)"),
        (
            (
                m.name,
                str(m.latest_version),
                fmt_mapping(m.aliases, "→"),
                fmt_mapping(m.tags),
                fmt_time(m.updated_at),
            )
            for m in page.items
        ),
        wrap=("aliases", "tags"),
        next_cursor=page.next_cursor,
        empty="no models",
    )


@app.command("show")
def show_model(ctx: typer.Context, name: NameArg, json_out: JsonOpt = False) -> None:
    """Show one model: description, latest version, aliases, tags.

    Example: modelplane models show fraud
    """
    st = state(ctx)
    model = st.client().get_model(name)
    if st.wants_json(json_out):
        print_json(model.to_dict())
        return
    _print_model(model)


@app.command("register")
def register(
    ctx: typer.Context,
    name: NameArg,
    path: Annotated[Path, typer.Argument(help="Saved model file (or folder).", show_default=False)],
    flavor: Annotated[
        str | None,
        typer.Option(metavar="FLAVOR", help="sklearn, onnx, xgboost, lightgbm, torch, pyfunc."),
    ] = None,
    alias: Annotated[
        list[str] | None,
        typer.Option("--alias", metavar="ALIAS", help="Point this alias at it (repeatable)."),
    ] = None,
    metric: Annotated[
        list[str] | None, typer.Option("--metric", metavar="KEY=NUMBER", help="A metric.")
    ] = None,
    param: Annotated[
        list[str] | None, typer.Option("--param", metavar="KEY=VALUE", help="A parameter.")
    ] = None,
    tag: Annotated[
        list[str] | None, typer.Option("--tag", metavar="KEY=VALUE", help="A version tag.")
    ] = None,
    description: Annotated[str, typer.Option(help="What this version is.")] = "",
    data_source: Annotated[
        list[str] | None,
        typer.Option("--data-source", metavar="URI[#SHA256]", help="Training data (lineage)."),
    ] = None,
    run_id: Annotated[str | None, typer.Option(help="Training run id (lineage).")] = None,
    parent_version: Annotated[
        int | None, typer.Option(min=1, help="Version this one derives from (lineage).")
    ] = None,
    code_commit: Annotated[str | None, typer.Option(help="Code commit (lineage).")] = None,
    signature: Annotated[
        Path | None, typer.Option(metavar="FILE.json", help="Input/output schema as JSON.")
    ] = None,
    trust: Annotated[
        bool,
        typer.Option(
            "--trust",
            help="Allow code outside the allowlist (a pickle, a pyfunc file, a pipeline with "
            "your own function); recorded on the version. Only for files you made.",
        ),
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Register a saved model file as a new version (the model is created if new).

    Example: modelplane models register fraud model.skops --metric auc=0.93 --alias champion
    """
    from modelplane.registry.model import Lineage, validate_alias, validate_name, validate_tags

    st = state(ctx)
    validate_name(name)
    aliases = [validate_alias(a) for a in alias or ()]
    metrics = parse_metrics(metric, "--metric")
    params = parse_pairs(param, "--param")
    tags = validate_tags(parse_pairs(tag, "--tag"), field="--tag")
    lineage = Lineage(
        data_sources=tuple(_data_source(text) for text in data_source or ()),
        parent_version=parent_version,
        run_id=run_id,
        code_commit=code_commit,
    )
    schema = _read_signature(signature) if signature is not None else None
    client = st.client()
    with progress(f"Registering {path.name}…"):
        version = client.register_file(
            name,
            path,
            flavor=flavor,
            signature=schema,
            metrics=metrics,
            params=params,
            tags=tags,
            lineage=lineage,
            alias=aliases,
            description=description,
            trust=trust,
        )
    if st.wants_json(json_out):
        print_json(version.to_dict())
        return
    held = f" ({', '.join(version.aliases)})" if version.aliases else ""
    say(f"registered {version.model}/{version.version}{held} {version.flavor} {version.digest}")


@app.command("versions")
def list_versions(
    ctx: typer.Context,
    name: NameArg,
    status: Annotated[Status | None, typer.Option(help="Only this status.")] = None,
    tag: TagOpt = None,
    metric: Annotated[
        list[str] | None,
        typer.Option("--metric", metavar="'KEY>=NUMBER'", help="Metric filter, e.g. 'auc>=0.9'."),
    ] = None,
    limit: LimitOpt = 100,
    cursor: CursorOpt = None,
    order: Annotated[Order, typer.Option(help="Newest (desc) or oldest (asc) first.")] = Order.desc,
    json_out: JsonOpt = False,
) -> None:
    """List a model's versions, newest first, with filters.

    Example: modelplane models versions fraud --status ready --metric 'auc>=0.9'
    """
    from modelplane.registry.views import MetricFilter

    st = state(ctx)
    tags = parse_pairs(tag, "--tag")
    filters = []
    for text in metric or ():
        try:
            filters.append(MetricFilter.parse(text))
        except InvalidInput as exc:
            raise InvalidInput(f"--metric: {exc.message}", field="--metric") from None
    page = st.client().list_versions(
        name,
        status=status.value if status else None,
        tags=tags,
        metrics=filters,
        limit=limit,
        cursor=cursor,
        order=order.value,
    )
    if st.wants_json(json_out):
        print_json(
            {
                "name": name,
                "versions": [v.to_dict() for v in page.items],
                "next_cursor": page.next_cursor,
            }
        )
        return
    print_table(
        ("version", "status", "flavor", "aliases", "metrics", "created (UTC)", "digest"),
        (
            (
                str(v.version),
                v.status,
                v.flavor,
                ", ".join(v.aliases),
                fmt_metrics(v.metrics),
                fmt_time(v.created_at),
                v.digest.removeprefix("sha256:")[:12],
            )
            for v in page.items
        ),
        wrap=("aliases", "metrics"),
        next_cursor=page.next_cursor,
        empty=f"no versions of {name} match",
    )


@app.command("version")
def show_version(
    ctx: typer.Context, name: NameArg, version: VersionArg, json_out: JsonOpt = False
) -> None:
    """Show one version: flavor, digest, metrics, params, tags, lineage, signature.

    Example: modelplane models version fraud 3
    """
    st = state(ctx)
    found = st.client().get_version(name, version)
    if st.wants_json(json_out):
        print_json(found.to_dict())
        return
    _print_version(found)


@app.command("archive")
def archive(
    ctx: typer.Context, name: NameArg, version: VersionArg, json_out: JsonOpt = False
) -> None:
    """Archive a version (refused while an alias points at it).

    Example: modelplane models archive fraud 1
    """
    st = state(ctx)
    result = st.client().archive_version(name, version)
    _done(st.wants_json(json_out), result, f"archived {result.model}/{result.version}")


@app.command("restore")
def restore(
    ctx: typer.Context, name: NameArg, version: VersionArg, json_out: JsonOpt = False
) -> None:
    """Make an archived version ready again (a ready one: exit 2, nothing changes).

    Example: modelplane models restore fraud 1
    """
    st = state(ctx)
    result = st.client().restore_version(name, version)
    _done(st.wants_json(json_out), result, f"restored {result.model}/{result.version}")


@app.command("tag")
def tag_model(
    ctx: typer.Context,
    name: NameArg,
    key: Annotated[str, typer.Argument(help="Tag key.", show_default=False)],
    value: Annotated[str, typer.Argument(help="Tag value.", show_default=False)],
    version: Annotated[
        int | None, typer.Option(min=1, help="Tag this version instead of the model.")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Set a tag on a model, or on one of its versions with --version.

    Example: modelplane models tag fraud team risk --version 3
    """
    st = state(ctx)
    st.client().set_tag(name, key, value, version=version)
    if st.wants_json(json_out):
        print_json({"name": name, "version": version, "key": key, "value": value})
        return
    target = f"{name}/{version}" if version is not None else name
    say(f"tagged {target} {key}={value}")


@app.command("untag")
def untag_model(
    ctx: typer.Context,
    name: NameArg,
    key: Annotated[str, typer.Argument(help="Tag key.", show_default=False)],
    version: Annotated[
        int | None, typer.Option(min=1, help="Untag this version instead of the model.")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Remove a tag from a model, or from one of its versions with --version.

    Example: modelplane models untag fraud team --version 3
    """
    st = state(ctx)
    st.client().delete_tag(name, key, version=version)
    if st.wants_json(json_out):
        print_json({"name": name, "version": version, "key": key, "deleted": True})
        return
    target = f"{name}/{version}" if version is not None else name
    say(f"removed tag {key} from {target}")


# -- helpers -------------------------------------------------------------------------------
def _data_source(text: str) -> DataSource:
    from modelplane.registry.model import DataSource

    uri, sep, digest = text.rpartition("#")
    if not sep:
        uri, digest = text, ""
    elif not _DIGEST_RE.fullmatch(digest):
        raise InvalidInput(
            f"invalid --data-source {text!r}: after '#' comes the data's sha256 (64 hex digits)",
            field="--data-source",
        )
    if not uri:
        raise InvalidInput(
            f"invalid --data-source {text!r}: the URI is empty", field="--data-source"
        )
    # One form in the lineage whatever was typed: "sha256:<hex>", as log_model users write it.
    hex_digest = digest.lower().removeprefix("sha256:")
    return DataSource(uri=uri, hash=f"sha256:{hex_digest}" if hex_digest else None)


def _read_signature(path: Path) -> dict[str, Any]:
    from modelplane.core.signature import Signature

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InvalidInput(f"--signature {path}: {exc.strerror}", field="--signature") from None
    except ValueError as exc:
        raise InvalidInput(
            f"--signature {path} is not valid JSON: {exc}", field="--signature"
        ) from None
    if not isinstance(data, dict):
        raise InvalidInput(f"--signature {path} must hold a JSON object", field="--signature")
    try:
        return Signature.from_dict(data).to_dict()
    except InvalidInput as exc:
        raise InvalidInput(f"--signature {path}: {exc.message}", field="--signature") from None


def _done(as_json: bool, version: ModelVersion, message: str) -> None:
    if as_json:
        print_json(version.to_dict())
    else:
        say(message)


def _print_model(model: RegisteredModel) -> None:
    print_fields(
        [
            ("name", model.name),
            ("description", model.description or "-"),
            ("latest version", str(model.latest_version)),
            ("aliases", fmt_mapping(model.aliases, "→") or "-"),
            ("tags", fmt_mapping(model.tags) or "-"),
            ("created (UTC)", fmt_time(model.created_at)),
            ("updated (UTC)", fmt_time(model.updated_at)),
        ]
    )


def _print_version(v: ModelVersion) -> None:
    lineage = v.lineage
    sources = ", ".join(f"{d.uri}#{d.hash}" if d.hash else d.uri for d in lineage.data_sources)
    print_fields(
        [
            ("uri", v.uri),
            ("status", v.status),
            ("flavor", v.flavor),
            ("aliases", ", ".join(v.aliases) or "-"),
            ("digest", v.digest),
            ("size", f"{v.size:,} bytes"),
            ("artifact", v.artifact_name),
            ("created (UTC)", fmt_time(v.created_at)),
            ("trusted", _trust(v)),
            ("description", v.description or "-"),
            ("metrics", fmt_metrics(v.metrics) or "-"),
            ("params", fmt_mapping(v.params) or "-"),
            ("tags", fmt_mapping(v.tags) or "-"),
            ("data sources", sources or "-"),
            ("parent version", str(lineage.parent_version or "-")),
            ("run id", lineage.run_id or "-"),
            ("code commit", lineage.code_commit or "-"),
            ("inputs", _specs(v.signature, "inputs")),
            ("outputs", _specs(v.signature, "outputs")),
        ],
        title=f"{v.model}/{v.version}",
    )


def _trust(v: ModelVersion) -> str:
    if v.trusted_at is None:
        return "no (allowlisted content only)"
    return f"yes, by {v.trusted_by} at {fmt_time(v.trusted_at)} UTC"


def _specs(signature: dict[str, Any] | None, side: str) -> str:
    specs = (signature or {}).get(side) or []
    return ", ".join(f"{s['name']} {s['dtype']} {s['shape']}" for s in specs) or "-"
