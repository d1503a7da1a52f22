"""Fixtures shared by every tier.

``settings``/``platform``/``client`` give each test its own home folder with an embedded SQLite
database. ``any_db_url`` is parametrised over SQLite and the real PostgreSQL server of this
machine; each PostgreSQL test gets its own schema, dropped afterwards, so tests running in
parallel never share state. With ``CI=true`` a missing server fails the test instead of
skipping it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelplane.bootstrap import Platform, bootstrap
from modelplane.client import Client
from modelplane.config import Settings

PG_SERVER = os.environ.get(
    "MODELPLANE_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _server_missing(what: str, exc: Exception) -> None:
    message = f"{what} is not reachable ({exc}); start it or run without it"
    if IN_CI:
        pytest.fail(f"CI=true: {message}")
    pytest.skip(message)


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    """Every async test on asyncio. Session-scoped so that broader-scoped async fixtures are
    possible: anyio closes its loop between tests unless such a fixture holds it, which the
    grpc.aio tests do (tests/integration/test_grpc_server.py: ``one_loop``)."""
    return "asyncio"


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A PostgreSQL URL whose ``search_path`` is a fresh schema of this test alone."""
    import sqlalchemy as sa

    schema = f"mp_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_SERVER, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    except sa.exc.OperationalError as exc:
        admin.dispose()
        _server_missing("PostgreSQL on 127.0.0.1:5432", exc)
    sep = "&" if "?" in PG_SERVER else "?"
    try:
        yield f"{PG_SERVER}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The metadata database under test: SQLite, then the real PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'modelplane.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture
def settings(home: Path) -> Settings:
    return Settings(home=home)


@pytest.fixture
def platform(settings: Settings) -> Iterator[Platform]:
    p = bootstrap(settings, raise_on_event_error=True)
    yield p
    p.close()


@pytest.fixture
def client(platform: Platform) -> Client:
    return Client(platform=platform)


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test reads the developer's MODELPLANE_* variables or a stray modelplane.toml."""
    for key in list(os.environ):
        if key.startswith("MODELPLANE_") and key != "MODELPLANE_TEST_PG":
            monkeypatch.delenv(key, raising=False)
    monkeypatch.chdir(tmp_path)
    import modelplane.client as client_module

    monkeypatch.setattr(client_module, "_default", None)


REDIS_URL = os.environ.get("MODELPLANE_TEST_REDIS", "redis://127.0.0.1:6379/0")


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A Redis key prefix of this test alone (the server at ``REDIS_URL``); its keys are deleted
    afterwards. A missing server skips the test, or fails it under ``CI=true``."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        client.close()
        _server_missing(f"Redis at {REDIS_URL}", exc)
    name = f"mp:test:{uuid.uuid4().hex}:"
    try:
        yield name
    finally:
        keys = list(client.scan_iter(match=f"{name}*"))
        if keys:
            client.delete(*keys)
        client.close()
