"""Secret options never reach the catalog or anyone reading jobs: every secret option of every
processor and source is stripped, at any depth, from the job row and the job as read back;
the run that was given a secret still uses it (held in memory)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

import mediamill
from mediamill import ops
from mediamill.catalog.db import Catalog
from mediamill.catalog.models import Job
from mediamill.jobs import manager
from mediamill.processors import base as registry
from mediamill.sources import SECRET_OPTIONS
from mediamill.testing.vodserver import VodServer, make_catalog

SECRET = "s3cret-value-4711"  # noqa: S105 - a made-up secret to look for


def _every_secret_option() -> list[tuple[str, str]]:
    """``(processor, dotted option path)`` for every declared secret option."""
    found = [
        (name, path) for name in registry.available() for path in registry.get(name).secret_options
    ]
    found += [("probe", name) for names in SECRET_OPTIONS.values() for name in names]
    return found


def _nest(path: str, value: Any) -> dict[str, Any]:
    head, _, rest = path.partition(".")
    return {head: _nest(rest, value) if rest else value}


def test_the_processors_and_sources_declare_their_secrets() -> None:
    """The list below is not empty by accident: strm's media-server token and every
    source's credentials are declared."""
    assert ("strm", "refresh.token") in _every_secret_option()
    assert {p for _n, p in _every_secret_option()} >= {"username", "password", "token"}


@pytest.mark.parametrize(("processor", "path"), _every_secret_option())
def test_a_secret_option_is_stored_nowhere(catalog: Catalog, processor: str, path: str) -> None:
    options = {
        "workers": 2,
        **_nest(path, SECRET),
        "deeper": [{"nested": _nest(path, SECRET)}],  # one level deeper than declared
    }
    job_id = manager.create_job(
        catalog, processor, None, options=ops.job_options(options, processor)
    )
    with catalog.engine.connect() as conn:
        stored = conn.execute(select(Job.c.options).where(Job.c.id == job_id)).scalar_one()
    assert SECRET not in json.dumps(stored)
    assert stored["workers"] == 2, "the other options are kept"
    assert SECRET not in json.dumps(manager.get_job(catalog, job_id))
    raw_job = manager.create_job(catalog, processor, None, options=options)
    assert SECRET not in json.dumps(manager.get_job(catalog, raw_job)), "the manager strips too"


def test_a_row_written_before_stripping_is_read_without_its_secret(catalog: Catalog) -> None:
    job_id = manager.create_job(catalog, "strm", None)
    leaked = {"output": "/x", "refresh": {"kind": "jellyfin", "url": "u", "token": SECRET}}
    catalog.update_job(job_id, options=leaked)
    shown = manager.get_job(catalog, job_id)["options"]
    assert shown == {"output": "/x", "refresh": {"kind": "jellyfin", "url": "u"}}


def test_the_run_given_a_secret_uses_it_and_stores_it_nowhere(tmp_path: Path) -> None:
    """``mediamill run strm … --set refresh='{…"token"…}'`` (here from Python): the media
    server is refreshed with the token, and the job row holds no token."""
    db = f"sqlite:///{tmp_path / 'c.db'}"
    with VodServer(make_catalog(movies=3, series=1, episodes_per_series=2, seed=5)) as server:
        refresh = {"kind": "jellyfin", "url": server.url, "token": server.token}
        job = mediamill.run(
            "strm",
            server.xtream_spec,
            db=db,
            options={"output": str(tmp_path / "out"), "refresh": refresh, "request_rate": 0},
        )
        assert server.refreshes == ["jellyfin"]
    assert job["status"] == "completed"
    assert job["summary"]["finish"]["refresh"]["ok"] is True
    assert server.token not in json.dumps(job)
    catalog = Catalog.open(db)
    with catalog.engine.connect() as conn:
        rows = conn.execute(select(Job.c.options)).scalars().all()
    catalog.close()
    assert rows
    assert server.token not in json.dumps(rows)
