"""Fixtures of the end-to-end tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.server import Server


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    """A real `mediamill serve` with its own SQLite catalog and data dir."""
    srv = Server(f"sqlite:///{tmp_path / 'catalog.db'}", tmp_path / "home").start()
    yield srv
    srv.stop()
