"""The `mediamill` command as a user runs it: real processes, real files, real catalog."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import func, select

from mediamill.catalog.db import Catalog
from mediamill.catalog.models import Result
from tests.conftest import make_files
from tests.helpers.cli import cli_env, mediamill


def test_run_probe_then_export_jsonl(media_library: Path, sqlite_url: str) -> None:
    run = mediamill("run", "probe", str(media_library), db=sqlite_url)
    assert "completed" in run.stdout
    assert "failed" in run.stdout, "broken files are counted as failed, the exit code is still 0"
    out = mediamill("export", "probe", str(media_library), "--format", "jsonl", db=sqlite_url)
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    by_path = {row["path"]: row for row in rows}
    assert set(rows[0]) == {"path", "kind", "status", "error", "data"}
    flac = next(r for p, r in by_path.items() if p.endswith(".flac") and r["status"] == "ok")
    assert flac["kind"] == "audio"
    assert flac["data"]["streams"][0]["codec"] == "flac"
    empty = [r for r in rows if r["error"] and "empty file" in r["error"]]
    assert empty, "a zero-byte file is failed with its cause"
    assert all(not p.startswith("/") for p in by_path), "paths are relative to the library root"


def test_export_csv_and_json_and_show(media_library: Path, sqlite_url: str, tmp_path: Path) -> None:
    mediamill("run", "probe", str(media_library), "-q", db=sqlite_url)
    as_json = json.loads(
        mediamill("export", "probe", str(media_library), "--format", "json", db=sqlite_url).stdout
    )
    csv_out = tmp_path / "out.csv"
    mediamill(
        "export", "probe", str(media_library), "--format", "csv", "-o", str(csv_out), db=sqlite_url
    )
    assert len(csv_out.read_text().splitlines()) >= len(as_json) + 1
    first_ok = next(r for r in as_json if r["status"] == "ok")
    shown = json.loads(
        mediamill("show", str(media_library / first_ok["path"]), db=sqlite_url).stdout
    )
    assert shown["results"]["probe"]["status"] == "ok"


def test_dry_run_and_unknown_processor(media_library: Path, sqlite_url: str) -> None:
    dry = mediamill("run", "probe", str(media_library), "--dry-run", db=sqlite_url)
    assert "Dry run" in dry.stdout
    out = mediamill("export", "probe", str(media_library), db=sqlite_url, check=False)
    assert out.returncode == 2, "a dry run adds nothing to the catalog, not even the library"
    assert "not a library in the catalog" in out.stderr
    bad = mediamill("run", "nosuch", str(media_library), db=sqlite_url, check=False)
    assert bad.returncode == 2
    assert "unknown processor 'nosuch'" in bad.stderr


def test_a_run_killed_with_sigkill_resumes_without_duplicates_or_losses(
    tmp_path: Path, sqlite_url: str
) -> None:
    """kill -9 in the middle of a run; the same command again finishes the job: every item
    has exactly one result, and what was done before the kill is not done again."""
    root = tmp_path / "lib"
    make_files(root, [f"d{i % 7}/f{i:04}.bin" for i in range(400)])
    log = tmp_path / "processed.log"
    args = (
        "run",
        "tests.helpers.processors:Echo",
        str(root),
        "-q",
        "--workers",
        "2",
        "--batch-size",
        "5",
        "--executor",
        "threads",
        "--set",
        "delay=0.01",
        "--set",
        f"process_log={log}",
    )
    env = cli_env(sqlite_url)
    proc = subprocess.Popen(
        [sys.executable, "-m", "mediamill", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    catalog = Catalog.open(sqlite_url)

    def stored() -> int:
        with catalog.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(Result)).scalar_one())

    deadline = time.monotonic() + 60
    while stored() < 100 and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = stored()
    assert 100 <= before < 400, "killed mid-run"
    resumed = mediamill(*args, db=sqlite_url)
    assert "Resuming interrupted job" in resumed.stdout
    assert stored() == 400
    with catalog.engine.connect() as conn:
        per_item = conn.execute(
            select(Result.c.item_id, func.count())
            .group_by(Result.c.item_id)
            .having(func.count() > 1)
        ).all()
    assert per_item == []
    processed = log.read_text().splitlines()
    assert set(processed) == {f"d{i % 7}/f{i:04}.bin" for i in range(400)}
    redone = len(processed) - 400
    assert redone <= 2 * 2 * 5 + 1000 // 10, f"{redone} items redone after the kill"
    catalog.close()
    jobs = json.loads(mediamill("jobs", "list", "--json", db=sqlite_url).stdout)["jobs"]
    assert [(j["status"], j["succeeded"]) for j in jobs] == [("completed", 400)], (
        "the interrupted job itself was resumed and completed"
    )


def test_ctrl_c_stops_cleanly_and_the_same_command_resumes(tmp_path: Path, sqlite_url: str) -> None:
    root = tmp_path / "lib"
    make_files(root, [f"f{i:03}.bin" for i in range(200)])
    args = (
        "run",
        "tests.helpers.processors:Echo",
        str(root),
        "-q",
        "--workers",
        "2",
        "--batch-size",
        "2",
        "--executor",
        "threads",
        "--set",
        "delay=0.02",
    )
    env = cli_env(sqlite_url)
    proc = subprocess.Popen(
        [sys.executable, "-m", "mediamill", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    catalog = Catalog.open(sqlite_url)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with catalog.engine.connect() as conn:
            if conn.execute(select(func.count()).select_from(Result)).scalar_one() >= 20:
                break
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, out + err
    assert "run the same command to resume" in err
    job = json.loads(mediamill("jobs", "list", "--json", db=sqlite_url).stdout)["jobs"][0]
    assert job["status"] == "paused"
    assert 20 <= job["processed_items"] < 200
    resumed = mediamill(*args, db=sqlite_url)
    assert "Resuming interrupted job" in resumed.stdout
    final = json.loads(mediamill("jobs", "show", job["job_id"], db=sqlite_url).stdout)
    assert (final["status"], final["succeeded"]) == ("completed", 200)
    catalog.close()


def test_process_workers_of_the_mediamill_command_do_not_load_the_command_line(
    tmp_path: Path, sqlite_url: str
) -> None:
    """multiprocessing re-imports the console script in each worker: the script must be light,
    or every worker pays the command line's start-up (0.6 CPU s, 35 MB) for nothing."""
    script = Path(sys.executable).parent / "mediamill"
    assert script.exists(), f"the console script is not installed next to {sys.executable}"
    root = tmp_path / "lib"
    make_files(root, ["a.bin", "b.bin"])
    processor = "tests.helpers.processors:WorkerModules"
    run = subprocess.run(
        [str(script), "run", processor, str(root), "-e", "processes", "-w", "1", "-q"],
        capture_output=True,
        text=True,
        env=cli_env(sqlite_url),
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    rows = [
        json.loads(line)
        for line in mediamill("export", processor, str(root), db=sqlite_url).stdout.splitlines()
    ]
    assert [row["status"] for row in rows] == ["ok", "ok"]
    assert [row["data"]["cli_loaded"] for row in rows] == [False, False]


def test_a_rescan_from_the_command_line_sees_every_new_changed_and_missing_file(
    tmp_path: Path, sqlite_url: str
) -> None:
    """The command walks the folder while it loads; the counts are the scan's all the same."""
    root = tmp_path / "lib"
    files = make_files(root, ["a/1.mp3", "a/2.mp3", "b/3.flac", "4.mkv"])
    first = mediamill("scan", str(root), db=sqlite_url)
    assert "4 new, 0 changed, 0 unchanged, 0 missing" in first.stdout
    again = mediamill("scan", str(root), db=sqlite_url)
    assert "0 new, 0 changed, 4 unchanged, 0 missing" in again.stdout
    files[0].write_bytes(b"edited in place by a tagger")
    files[3].unlink()
    make_files(root, ["c/5.ogg"])
    third = mediamill("run", "probe", str(root), "-q", db=sqlite_url)
    assert "1 new, 1 changed, 2 unchanged, 1 missing" in third.stdout


def test_scanning_a_folder_that_is_now_empty_is_refused_unless_forced(
    tmp_path: Path, sqlite_url: str
) -> None:
    root = tmp_path / "share"
    make_files(root, ["a.mp3", "b.mp3"])
    mediamill("scan", str(root), db=sqlite_url)
    for name in ("a.mp3", "b.mp3"):
        (root / name).unlink()
    refused = mediamill("scan", str(root), db=sqlite_url, check=False)
    assert refused.returncode == 2
    assert "Is the drive or share mounted?" in refused.stderr
    assert "2 unchanged" not in refused.stdout
    run = mediamill("run", "probe", str(root), db=sqlite_url, check=False)
    assert run.returncode == 2, "run scans first and is refused the same way"
    forced = mediamill("scan", str(root), "--force", db=sqlite_url)
    assert "0 new, 0 changed, 0 unchanged, 2 missing" in forced.stdout
