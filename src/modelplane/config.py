"""Settings: ``MODELPLANE_*`` environment variables over an optional ``modelplane.toml``.

Precedence, highest first: keyword arguments, environment variables, the TOML file
(``$MODELPLANE_CONFIG`` or ``./modelplane.toml``; keys are the field names, at top level or under
a ``[modelplane]`` table), then defaults. Only :mod:`modelplane.bootstrap` reads settings; every
other module receives what it needs as arguments.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

__all__ = ["Settings"]


class _TomlSource(PydanticBaseSettingsSource):
    """Reads ``modelplane.toml`` (or ``$MODELPLANE_CONFIG``) when present."""

    def _load(self) -> dict[str, Any]:
        explicit = os.environ.get("MODELPLANE_CONFIG")
        path = Path(explicit) if explicit else Path("modelplane.toml")
        if not path.is_file():
            if explicit:
                raise FileNotFoundError(f"MODELPLANE_CONFIG names {path}, which does not exist")
            return {}
        from modelplane.errors import InvalidInput

        try:
            with path.open("rb") as fh:
                data = tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            raise InvalidInput(f"{path} is not valid TOML: {exc}", field="config") from None
        section = data.get("modelplane", data)
        if isinstance(section, dict):
            unknown = sorted(set(section) - set(self.settings_cls.model_fields))
            if unknown:
                raise InvalidInput(
                    f"{path}: unknown setting(s) {', '.join(unknown)}; known: "
                    f"{', '.join(sorted(self.settings_cls.model_fields))}",
                    field="config",
                )
        section = data.get("modelplane", data)
        return dict(section) if isinstance(section, dict) else {}

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self._load().get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        fields = set(self.settings_cls.model_fields)
        return {k: v for k, v in self._load().items() if k in fields}


class Settings(BaseSettings):
    """Everything modelplane can be configured with. Defaults need no server at all."""

    model_config = SettingsConfigDict(env_prefix="MODELPLANE_", extra="ignore")

    home: Path = Field(
        default=Path(".modelplane"), description="Folder for the embedded database and artifacts."
    )
    db_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the metadata database (default: SQLite file in home).",
    )
    artifacts: str | None = Field(
        default=None,
        description="Artifact store: a local folder or any fsspec URL (default: home/artifacts).",
    )
    require_auth: bool = Field(
        default=False,
        description="Require a bearer token on read routes too (MODELPLANE_REQUIRE_AUTH): the "
        "registry's read routes, and over REST and gRPC alike model metadata, readiness, "
        "inference, /predict and /feedback. Health and server metadata stay open.",
    )
    metrics_auth: bool = Field(
        default=False,
        description="Require a read token on /metrics (MODELPLANE_METRICS_AUTH). False (the "
        "default): /metrics is open, as Prometheus scrapers expect; true: it needs a bearer "
        "token of scope read or more, whatever require_auth says, since the metrics name "
        "models and versions.",
    )
    max_body_bytes: int = Field(
        default=16 << 20, description="Largest request body the server accepts (413 above)."
    )
    max_upload_bytes: int = Field(
        default=2 << 30,
        description="Largest model file POST /api/v1/models/{name}/versions accepts (413 above).",
    )
    cache_url: str | None = Field(
        default=None,
        description="Redis URL of the shared (L2) prediction cache, e.g. redis://host:6379/0.",
    )
    otlp_endpoint: str | None = Field(
        default=None, description="OTLP gRPC endpoint for traces, e.g. http://collector:4317."
    )
    prediction_log: str | None = Field(
        default=None,
        description="Where the prediction log is written: folder or fsspec URL "
        "(default: home/predictions).",
    )
    cache_dir: str | None = Field(
        default=None,
        description="Local cache for artifacts fetched from a remote store (default: home/cache).",
    )

    @field_validator("home", mode="before")
    @classmethod
    def _expand_home(cls, value: Any) -> Any:
        return Path(value).expanduser() if isinstance(value, str | Path) else value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _TomlSource(settings_cls))

    @property
    def resolved_db_url(self) -> str:
        """The database URL in force: the configured one, or a SQLite file in home."""
        if self.db_url:
            return self.db_url
        return f"sqlite:///{(self.home / 'modelplane.db').absolute()}"

    @property
    def resolved_artifacts(self) -> str:
        """The artifact store location in force: configured, or ``home/artifacts``."""
        return self.artifacts or str((self.home / "artifacts").absolute())

    @property
    def resolved_prediction_log(self) -> str:
        return self.prediction_log or str((self.home / "predictions").absolute())

    @property
    def resolved_cache_dir(self) -> Path:
        return Path(self.cache_dir) if self.cache_dir else (self.home / "cache").absolute()
