"""`mediamill run comic` and `mediamill comic undo` as a user runs them: a real process, real
archives (Pillow pages; a committed RAR), a real SQLite catalog."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
from pathlib import Path

from mediamill.comic import archive as arc
from mediamill.comic import comicinfo as ci
from mediamill.testing.comics import write_comic
from tests.helpers.cli import mediamill_in as mediamill

DATA = Path(__file__).parent.parent / "data" / "comic"
RENAME = ("--set", "rename={series} #{issue:03}")
REAL_TITLE = "<ComicInfo><Title>The Real Title</Title><Number>2</Number></ComicInfo>"


def make_library(root: Path) -> None:
    write_comic(root / "Saga" / "Saga 001 (2012).cbz", pages=3, seed=1)
    write_comic(root / "Saga" / "Saga 002 (2012).cbz", pages=3, seed=2, comicinfo=REAL_TITLE)
    write_comic(root / "Berserk" / "Berserk Vol. 03 Ch. 012.cb7", pages=2, seed=3)
    (root / "Old").mkdir()
    shutil.copy(DATA / "rar5.cbr", root / "Old" / "Old 005.cbr")
    (root / "broken.cbz").write_text("not an archive")


def assert_no_change(scan: str) -> None:
    for count_ in ("0 new", "0 changed", "0 missing"):
        assert count_ in scan, scan


def snapshot(root: Path) -> dict[str, tuple[str, int]]:
    """``path -> (content digest, mtime_ns)`` of every file."""
    found = {}
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            path = Path(dirpath, name)
            digest = hashlib.blake2b(path.read_bytes(), digest_size=8).hexdigest()
            found[path.relative_to(root).as_posix()] = (digest, path.stat().st_mtime_ns)
    return found


def tags(path: Path) -> dict[str, str] | None:
    with arc.ComicArchive(path) as archive:
        raw = archive.comicinfo()
    return None if raw is None else ci.parse(raw).fields


def count(tmp: Path, table: str) -> int:
    with sqlite3.connect(tmp / "c.db") as conn:
        return int(conn.execute(f"select count(*) from {table}").fetchone()[0])  # noqa: S608


def last_comic_job(tmp: Path) -> str:
    with sqlite3.connect(tmp / "c.db") as conn:
        row = conn.execute(
            "select id from jobs where processor = 'comic' order by created_at desc limit 1"
        ).fetchone()
    return str(row[0])


def test_dry_run_prints_the_plan_and_changes_nothing_catalog_included(tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    make_library(lib)
    before = snapshot(lib)
    out = mediamill(tmp_path, "run", "comic", str(lib), "--dry-run", *RENAME).stdout
    assert "Saga/Saga 001 (2012).cbz: tag+rename: Series: (none) → Saga" in out
    assert "rename → Saga/Saga #001.cbz" in out
    assert "Number: (none) → 12" in out  # Berserk's chapter
    assert "never written" in out  # the RAR is not converted unless asked
    assert snapshot(lib) == before
    assert count(tmp_path, "results") == 0
    assert count(tmp_path, "item_changes") == 0


def test_tag_rename_rescan_rerun_export_and_undo(tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    make_library(lib)
    before = snapshot(lib)
    proc = mediamill(tmp_path, "run", "comic", str(lib), *RENAME, "-q")
    assert "4 ok" in proc.stdout, proc.stdout
    assert "1 failed" in proc.stdout, proc.stdout
    assert "not a zip, rar, 7z or tar archive" in proc.stdout
    assert tags(lib / "Saga" / "Saga #001.cbz") == {"Series": "Saga", "Number": "1", "Year": "2012"}
    # a real title and number are kept; only what is missing is added
    assert tags(lib / "Saga" / "Saga #002.cbz") == {
        "Title": "The Real Title",
        "Number": "2",
        "Series": "Saga",
        "Year": "2012",
    }
    assert tags(lib / "Berserk" / "Berserk #012.cb7") == {
        "Series": "Berserk",
        "Number": "12",
        "Volume": "3",
    }
    assert (lib / "Old" / "Old #005.cbr").exists()  # renamed, never written
    assert tags(lib / "Old" / "Old #005.cbr") is None

    # the catalog follows the files: a rescan sees no change, a re-run touches nothing
    scan = mediamill(tmp_path, "scan", str(lib)).stdout
    assert_no_change(scan)
    after = snapshot(lib)
    rerun = mediamill(tmp_path, "run", "comic", str(lib), *RENAME, "-q").stdout
    assert "already up to date" in rerun, rerun
    assert snapshot(lib) == after

    rows = [
        json.loads(line)
        for line in mediamill(tmp_path, "export", "comic", str(lib), "--format", "jsonl")
        .stdout.strip()
        .splitlines()
    ]
    by_path = {row["path"]: row for row in rows}
    assert by_path["Saga/Saga #002.cbz"]["data"]["comicinfo"]["Title"] == "The Real Title"
    assert by_path["Saga/Saga #002.cbz"]["data"]["comicinfo"]["Year"] == 2012

    job = last_comic_job(tmp_path)
    first_job = _first_comic_job(tmp_path)
    assert job != first_job
    preview = mediamill(tmp_path, "comic", "undo", first_job, "--dry-run").stdout
    assert "would undo 4 of 4" in preview, preview
    assert snapshot(lib) == after
    undone = mediamill(tmp_path, "comic", "undo", first_job).stdout
    assert "undid 4 of 4" in undone, undone
    assert snapshot(lib).keys() == before.keys()
    restored = snapshot(lib)
    for path in ("Saga/Saga 001 (2012).cbz", "Berserk/Berserk Vol. 03 Ch. 012.cb7"):
        assert tags(lib / path) is None, path  # they had no ComicInfo.xml
    assert tags(lib / "Saga/Saga 002 (2012).cbz") == {"Title": "The Real Title", "Number": "2"}
    for path in ("Old/Old 005.cbr", "broken.cbz"):
        assert restored[path][0] == before[path][0], path
    scan = mediamill(tmp_path, "scan", str(lib)).stdout
    assert_no_change(scan)


def _first_comic_job(tmp: Path) -> str:
    with sqlite3.connect(tmp / "c.db") as conn:
        row = conn.execute(
            "select id from jobs where processor = 'comic' order by created_at limit 1"
        ).fetchone()
    return str(row[0])
