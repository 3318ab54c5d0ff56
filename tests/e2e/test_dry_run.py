"""A dry run changes nothing, the catalog included, whichever way it is asked for (the CLI
on a folder or a source, the HTTP API, ``import mediamill``), and says what it would do.

Each test takes the catalog as a user left it after a real run, then compares the catalog
file's bytes and every row of every table before and after the dry run."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from mediamill.testing.vodserver import VodServer, make_catalog
from tests.conftest import make_files
from tests.helpers.cli import mediamill
from tests.helpers.server import Server

RENAMER = "tests.helpers.processors:Renamer"


def catalog_state(db_file: Path) -> tuple[bytes, dict[str, list[tuple[Any, ...]]]]:
    """The catalog file's bytes (and its write-ahead log's) and every row of every table."""
    files = b"".join(
        p.read_bytes() for p in (db_file, db_file.with_name(db_file.name + "-wal")) if p.exists()
    )
    with sqlite3.connect(f"file:{db_file}?mode=ro", uri=True) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        # table names from the catalog's own schema, never from input
        rows = {t: conn.execute(f'SELECT * FROM "{t}" ORDER BY rowid').fetchall() for t in tables}  # noqa: S608
    conn.close()
    return files, rows


def assert_unchanged(db_file: Path, before: tuple[bytes, dict[str, list[Any]]]) -> None:
    after = catalog_state(db_file)
    assert after[1] == before[1], "every table has the very same rows"
    assert after[0] == before[0], "the catalog file is byte for byte the same"
    assert sum(len(rows) for rows in before[1].values()) > 0, "the catalog was not empty"


@pytest.fixture
def music(tmp_path: Path) -> Path:
    root = tmp_path / "music"
    make_files(root, [f"album/track{i}.mp3" for i in range(3)])
    return root


def test_the_cli_on_a_known_folder_lists_the_new_file_and_writes_nothing(
    tmp_path: Path, music: Path
) -> None:
    db_file = tmp_path / "catalog.db"
    db = f"sqlite:///{db_file}"
    mediamill("run", "probe", str(music), "-q", db=db)
    (music / "album" / "late.mp3").write_bytes(b"not really audio")
    before = catalog_state(db_file)
    out = mediamill("run", "probe", str(music), "--dry-run", db=db).stdout
    assert "Dry run: nothing was changed. music (the catalog): 4 files, 1 new" in out
    assert "Would run probe on 1 item(s)." in out
    assert "album/late.mp3" in out
    assert_unchanged(db_file, before)


def test_the_cli_with_a_processor_that_plans_its_changes_writes_nothing(
    tmp_path: Path, music: Path
) -> None:
    """A processor that says what it would change (as comic does) runs on a scratch copy:
    its plan is printed, and neither the files nor the catalog change."""
    db_file = tmp_path / "catalog.db"
    db = f"sqlite:///{db_file}"
    mediamill("run", "probe", str(music), "-q", db=db)
    before = catalog_state(db_file)
    names = sorted(p.name for p in music.rglob("*"))
    out = mediamill("run", RENAMER, str(music), "--dry-run", db=db).stdout
    assert "Dry run: nothing was changed. music (the catalog):" in out
    assert f"Would run {RENAMER} on 3 item(s)." in out
    assert "album/track0.mp3: rename" in out
    assert sorted(p.name for p in music.rglob("*")) == names
    assert_unchanged(db_file, before)


def test_the_cli_on_a_source_reads_it_but_syncs_nothing_into_the_catalog(tmp_path: Path) -> None:
    """A dry run of strm on a provider (a real HTTP server): the first run is recorded; after
    the provider adds entries, a dry run says what it would export and leaves the catalog,
    source items included, exactly as it was, and the output folder too."""
    db_file = tmp_path / "catalog.db"
    db = f"sqlite:///{db_file}"
    out_dir = tmp_path / "vod"
    with VodServer(make_catalog(4, 1, 2)) as provider:
        mediamill("run", "strm", provider.xtream_spec, "--output", str(out_dir), "-q", db=db)
        files = sorted(str(p.relative_to(out_dir)) for p in out_dir.rglob("*"))
        provider.catalog = make_catalog(6, 1, 2)
        before = catalog_state(db_file)
        args = ("run", "strm", provider.xtream_spec, "--output", str(out_dir), "--dry-run")
        printed = mediamill(*args, db=db).stdout
        plan = json.loads(mediamill(*args, "--json", db=db).stdout)
    assert "Dry run: nothing was changed." in printed
    assert "2 new" in printed
    assert "would_create" in printed
    assert plan["scan"]["new"] == 2
    assert plan["actions"].get("would_create") == 2
    assert plan["new_library"] is False
    assert sorted(str(p.relative_to(out_dir)) for p in out_dir.rglob("*")) == files
    assert_unchanged(db_file, before)


def test_the_api_answers_with_the_plan_and_makes_no_job(tmp_path: Path, music: Path) -> None:
    """``POST /api/jobs`` with ``"dry_run": true`` answers 200 with what the job would do,
    for a processor that lists (probe) and one that plans its changes; no job is made."""
    db_file = tmp_path / "catalog.db"
    server = Server(f"sqlite:///{db_file}", tmp_path / "home").start()
    try:
        with server.client() as client:
            assert client.post("/api/libraries", json={"path": str(music)}).status_code == 201
            job = client.post("/api/jobs", json={"processor": "probe", "library": "music"})
            server.wait_job(job.json()["job_id"], {"completed"})
            (music / "album" / "late.mp3").write_bytes(b"not really audio")
            before = catalog_state(db_file)
            listed = client.post(
                "/api/jobs",
                json={"processor": "probe", "library": "music", "options": {"dry_run": True}},
            )
            planned = client.post(
                "/api/jobs",
                json={"processor": RENAMER, "library": "music", "options": {"dry_run": True}},
            )
            jobs = client.get("/api/jobs").json()
    finally:
        server.stop()
    assert listed.status_code == 200, listed.text
    plan = listed.json()
    assert plan["dry_run"] is True
    assert "job_id" not in plan
    assert (plan["would_process"], plan["sample"]) == (1, ["album/late.mp3"])
    assert plan["scan"]["new"] == 1
    assert planned.status_code == 200, planned.text
    assert planned.json()["would_process"] == 4
    assert planned.json()["actions"] == {"rename": 4}
    assert "album/late.mp3: rename" in planned.json()["plans"]
    assert jobs["total"] == 1, "only the real job"
    assert_unchanged(db_file, before)


def test_python_run_with_dry_run_returns_the_plan_and_writes_nothing(
    tmp_path: Path, music: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mediamill as mm

    db_file = tmp_path / "catalog.db"
    db = f"sqlite:///{db_file}"
    mm.run("probe", str(music), db=db)
    (music / "album" / "late.mp3").write_bytes(b"not really audio")
    before = catalog_state(db_file)
    listed = mm.run("probe", str(music), db=db, options={"dry_run": True})
    planned = mm.run(RENAMER, str(music), db=db, options={"dry_run": True})
    with VodServer(make_catalog(3, 1, 1)) as provider:
        source = mm.run(
            "strm",
            provider.xtream_spec,
            db=db,
            options={"dry_run": True, "output": str(tmp_path / "vod")},
        )
    assert (listed["dry_run"], listed["would_process"]) == (True, 1)
    assert listed["sample"] == ["album/late.mp3"]
    assert planned["actions"] == {"rename": 4}
    assert source["new_library"] is True
    assert source["actions"].get("would_create") == source["would_process"] > 0
    assert not (tmp_path / "vod").exists()
    assert_unchanged(db_file, before)
