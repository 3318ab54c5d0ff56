"""Shared fixtures: a catalog on every database (SQLite always; PostgreSQL when reachable, and
required when CI=true), and small real media libraries."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from mediamill.catalog.db import Catalog

PG_URL = os.environ.get("MEDIAMILL_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI") == "true"


@pytest.fixture(autouse=True)
def _own_data_dir(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every test has its own data dir (API token, source credentials, caches), never the
    user's: a test that sets ``MEDIAMILL_HOME`` itself overrides it."""
    monkeypatch.setenv("MEDIAMILL_HOME", str(tmp_path_factory.mktemp("home")))


def _pg_reachable() -> str | None:
    try:
        engine = create_engine(
            PG_URL.replace("postgresql://", "postgresql+psycopg://"),
            connect_args={"connect_timeout": 3},
        )
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as exc:  # noqa: BLE001 - any failure means: no server here
        return f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
    return None


def require_server(name: str, problem: str | None) -> None:
    """Skip when a server is absent on a user's machine; fail when CI=true."""
    if problem is None:
        return
    if IN_CI:
        pytest.fail(f"{name} is required in CI but unreachable: {problem}")
    pytest.skip(f"{name} unreachable ({problem})")


def reset_postgres(url: str = PG_URL) -> None:
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'catalog.db'}"
    require_server("PostgreSQL", _pg_reachable())
    reset_postgres()
    return PG_URL


@pytest.fixture
def catalog(db_url: str) -> Iterator[Catalog]:
    cat = Catalog.open(db_url)
    yield cat
    cat.close()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'catalog.db'}"


@pytest.fixture(scope="session")
def media_library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small mixed library of real media (every common format) plus broken files."""
    from mediamill.testing.media import make_library

    root = tmp_path_factory.mktemp("media")
    make_library(root)
    return root


def make_files(root: Path, names: list[str], content: bytes = b"x" * 64) -> list[Path]:
    paths = []
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        paths.append(path)
    return paths
