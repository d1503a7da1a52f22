"""Settings: defaults, MODELPLANE_* variables, modelplane.toml, precedence."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelplane.config import Settings


class TestSettings:
    def test_defaults_need_no_server(self) -> None:
        s = Settings()
        assert s.home == Path(".modelplane")
        assert s.resolved_db_url.startswith("sqlite:///")
        assert s.resolved_db_url.endswith(".modelplane/modelplane.db")
        assert s.resolved_artifacts.endswith(".modelplane/artifacts")

    def test_environment_variables_are_read(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        monkeypatch.setenv("MODELPLANE_HOME", str(tmp_path / "h"))
        monkeypatch.setenv("MODELPLANE_DB_URL", "postgresql+psycopg://u@h/db")
        monkeypatch.setenv("MODELPLANE_ARTIFACTS", "s3://bucket/models")
        s = Settings()
        assert s.home == tmp_path / "h"
        assert s.resolved_db_url == "postgresql+psycopg://u@h/db"
        assert s.resolved_artifacts == "s3://bucket/models"

    def test_toml_file_is_read_from_the_working_folder(self, tmp_path: Path) -> None:
        (tmp_path / "modelplane.toml").write_text('home = "/srv/mp"\nrequire_auth = true\n')
        s = Settings()
        assert s.home == Path("/srv/mp")
        assert s.require_auth is True

    def test_toml_modelplane_table_is_read(self, tmp_path: Path) -> None:
        (tmp_path / "modelplane.toml").write_text('[modelplane]\nartifacts = "memory://x"\n')
        assert Settings().resolved_artifacts == "memory://x"

    def test_environment_beats_toml(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
        (tmp_path / "modelplane.toml").write_text('home = "/from/toml"\n')
        monkeypatch.setenv("MODELPLANE_HOME", "/from/env")
        assert Settings().home == Path("/from/env")

    def test_explicit_config_file_must_exist(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        monkeypatch.setenv("MODELPLANE_CONFIG", str(tmp_path / "missing.toml"))
        with pytest.raises(FileNotFoundError):
            Settings()


class TestBadConfiguration:
    def test_malformed_toml_is_invalid_input(self, tmp_path: Path) -> None:
        from modelplane.errors import InvalidInput

        (tmp_path / "modelplane.toml").write_text("home =\n")
        with pytest.raises(InvalidInput, match="not valid TOML"):
            Settings()

    def test_unknown_toml_key_is_named(self, tmp_path: Path) -> None:
        from modelplane.errors import InvalidInput

        (tmp_path / "modelplane.toml").write_text('hom = "x"\n')
        with pytest.raises(InvalidInput, match="hom"):
            Settings()

    def test_unusable_database_url_is_invalid_input(self, tmp_path: Path) -> None:
        from modelplane.bootstrap import bootstrap
        from modelplane.errors import InvalidInput

        with pytest.raises(InvalidInput) as info:
            bootstrap(Settings(home=tmp_path, db_url="foo://x"))
        assert info.value.field == "db_url"

    def test_artifact_scheme_without_its_package_is_a_missing_dependency(
        self, tmp_path: Path
    ) -> None:
        from modelplane.bootstrap import bootstrap
        from modelplane.errors import DependencyMissing

        with pytest.raises(DependencyMissing, match="s3"):
            bootstrap(Settings(home=tmp_path, artifacts="s3://bucket/models"))
