"""A new user's first hour with the command line: config mistakes, help, piped output, re-runs,
hints, and file names that are not UTF-8, each as real `mediamill` processes."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mediamill.testing.media import make_library
from tests.helpers.cli import cli_env, mediamill, mediamill_in

#: a name written by an old Latin-1 system: not valid UTF-8
ODD = b"caf\xe9 latin1.flac"


@pytest.fixture(scope="module")
def probed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """The demo library (with three broken files) after one `mediamill run probe`:
    (root, catalog url, the run's stdout)."""
    root = tmp_path_factory.mktemp("media")
    make_library(root)
    db = f"sqlite:///{tmp_path_factory.mktemp('db') / 'catalog.db'}"
    first = mediamill("run", "probe", str(root), "-q", db=db)
    return root, db, first.stdout


def _piped(
    *args: str, db: str, cwd: Path | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    """`mediamill ARGS` with stdout a pipe and no COLUMNS: what a script or `| less` gets."""
    full = cli_env(db, **env)
    full.pop("COLUMNS", None)
    return subprocess.run(
        [sys.executable, "-m", "mediamill", *args],
        capture_output=True,
        text=True,
        env=full,
        cwd=cwd,
        timeout=300,
        check=False,
    )


def test_the_demo_makes_a_library_and_probes_it(tmp_path: Path) -> None:
    """`make demo`, the README's first command: `mediamill demo` in a data dir of its own."""
    done = mediamill_in(tmp_path, "demo")
    folder = tmp_path / "home" / "demo-library"
    made = [p for p in folder.rglob("*") if p.is_file()]
    assert f"Made {len(made)} media files in {folder}" in done.stdout
    assert f"completed: {len(made)}/{len(made)} items" in done.stdout
    assert f"mediamill export probe {folder}" in done.stdout


# ---------------------------------------------------------------- config (point 2)


def test_a_bad_config_value_is_one_line_naming_the_file_line_and_key(tmp_path: Path) -> None:
    (tmp_path / "mediamill.toml").write_text('workers = 2\nbatch_size = "lots"\n')
    proc = _piped("jobs", "list", db=f"sqlite:///{tmp_path / 'c.db'}", cwd=tmp_path)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert str(tmp_path / "mediamill.toml") in lines[0]
    assert "line 2" in lines[0]
    assert "batch_size = 'lots'" in lines[0]


def test_malformed_toml_names_the_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "mediamill.toml").write_text('workers = 2\nexecutor = "threads\n')
    proc = _piped("jobs", "list", db=f"sqlite:///{tmp_path / 'c.db'}", cwd=tmp_path)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert f"{tmp_path / 'mediamill.toml'}: not valid TOML" in proc.stderr
    assert "line 2" in proc.stderr


def test_a_misspelled_key_warns_with_a_suggestion_and_the_command_runs(tmp_path: Path) -> None:
    (tmp_path / "mediamill.toml").write_text("wokers = 3\n")
    proc = _piped("jobs", "list", db=f"sqlite:///{tmp_path / 'c.db'}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "unknown setting 'wokers' ignored (did you mean 'workers'?)" in proc.stderr
    assert "line 1" in proc.stderr


def test_a_bad_environment_value_names_the_variable(tmp_path: Path) -> None:
    proc = _piped("jobs", "list", db=f"sqlite:///{tmp_path / 'c.db'}", MEDIAMILL_WORKERS="many")
    assert proc.returncode == 2
    assert "environment MEDIAMILL_WORKERS: workers = 'many'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_config_says_where_each_setting_comes_from_and_hides_secrets(tmp_path: Path) -> None:
    (tmp_path / "mediamill.toml").write_text(
        '\n\nbatch_size = 7\n[executors.mine]\nendpoint = "https://u:pw-in-table@h/x"\n'
        'api_token = "tok-in-table"\n'
    )
    db = "postgresql://mill:hunter2@127.0.0.1/catalog"
    proc = _piped(
        "config",
        "--json",
        db=db,
        cwd=tmp_path,
        MEDIAMILL_HOME=str(tmp_path / "home"),
        MEDIAMILL_WORKERS="3",
        MEDIAMILL_API_TOKEN="s3cret-token",  # noqa: S106 - a test token
        MEDIAMILL_BROKER_URL="redis://:broker-pw@nas:6379/0",
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["config_file"] == str(tmp_path / "mediamill.toml")
    assert report["data_dir"] == str(tmp_path / "home")
    assert report["log_file"] == str(tmp_path / "home" / "logs" / "mediamill.log")
    settings = report["settings"]
    assert settings["batch_size"] == {"value": 7, "from": f"{tmp_path / 'mediamill.toml'} line 3"}
    assert settings["workers"] == {"value": 3, "from": "environment MEDIAMILL_WORKERS"}
    assert settings["executor"] == {"value": "auto", "from": "default"}
    assert settings["api_token"]["value"] == "(set)"
    for secret in ("hunter2", "s3cret-token", "broker-pw", "pw-in-table", "tok-in-table"):
        assert secret not in proc.stdout, secret
    assert settings["executors"]["value"]["celery"]["broker_url"] == "redis://:***@nas:6379/0"
    assert settings["executors"]["value"]["mine"]["api_token"] == "(set)"  # noqa: S105
    assert report["catalog"] == "postgresql://mill:***@127.0.0.1/catalog"
    table = _piped("config", db=db, cwd=tmp_path, MEDIAMILL_HOME=str(tmp_path / "home"))
    assert f"data dir:    {tmp_path / 'home'}" in table.stdout
    assert "hunter2" not in table.stdout


def test_version() -> None:
    proc = _piped("--version", db="sqlite://")
    assert proc.returncode == 0
    assert proc.stdout.strip().startswith("mediamill ")


# ---------------------------------------------------------------- help (point 6)


def test_help_keeps_defaults_and_names_arguments_plainly() -> None:
    text = mediamill("run", "--help", db="sqlite://").stdout
    assert "mediamill run [OPTIONS] PROCESSOR TARGET" in text
    assert "[default: cores]" in text
    assert "<bool>" not in text
    assert "{processor}" not in text
    assert "<bool>" not in mediamill("--help", db="sqlite://").stdout


# ---------------------------------------------------------------- pipes and --json (point 7)


def test_piped_output_has_whole_lines_and_whole_job_ids(probed: tuple[Path, str, str]) -> None:
    root, db, _ = probed
    listing = _piped("jobs", "list", db=db)
    assert listing.returncode == 0, listing.stderr
    jobs = json.loads(_piped("jobs", "list", "--json", db=db).stdout)["jobs"]
    assert jobs[0]["job_id"] in listing.stdout, "a pipe gets ids it can use"
    assert "processor" in listing.stdout
    assert "proce…" not in listing.stdout
    long_name = "A very long folder name that a terminal would wrap " * 3
    (root.parent / "wide").mkdir(exist_ok=True)
    (root.parent / "wide" / f"{long_name}.mp3").write_bytes(b"")
    wide = _piped("run", "probe", str(root.parent / "wide"), db=db)
    assert f"{long_name}.mp3" in wide.stdout, "no line is wrapped at 80 columns"


def test_json_for_scripts(probed: tuple[Path, str, str]) -> None:
    root, db, _ = probed
    run = _piped("run", "probe", str(root), "--json", db=db)
    assert run.returncode == 0, run.stderr
    job = json.loads(run.stdout)  # stdout is the JSON alone
    assert job["status"] == "completed"
    assert job["total_items"] == 24
    scan = json.loads(_piped("scan", str(root), "--json", db=db).stdout)
    assert (scan["library"], scan["unchanged"], scan["new"]) == (root.name, 24, 0)
    shown = json.loads(_piped("jobs", "show", job["job_id"][:8], "--json", db=db).stdout)
    assert shown["job_id"] == job["job_id"]


# ---------------------------------------------------------------- re-runs (point 5)


def test_a_rerun_says_which_items_are_still_failed_and_groups_causes(
    probed: tuple[Path, str, str],
) -> None:
    root, db, first = probed
    assert "causes: 2 x not a readable media file, 1 x empty file (0 bytes)" in first
    again = mediamill("run", "probe", str(root), db=db).stdout
    assert "0 failed" in again
    assert "3 still failed from an earlier run (use --failed to retry)" in again


# ---------------------------------------------------------------- hints (point 11)


def test_hints_say_what_to_do_next(probed: tuple[Path, str, str], tmp_path: Path) -> None:
    root, db, _ = probed
    playlist = mediamill(
        "playlist",
        str(root),
        "--out",
        str(tmp_path / "p.m3u8"),
        "--bpm",
        "120-130",
        db=db,
        check=False,
    )
    assert playlist.returncode == 1
    assert f"run `mediamill run audio {root}` first" in playlist.stderr
    assert "no track matches" not in playlist.stderr
    newcomer = root / "Music" / "new since the scan.mp3"
    newcomer.parent.mkdir(exist_ok=True)
    newcomer.write_bytes(b"ID3")
    try:
        show = mediamill("show", str(newcomer), db=db, check=False)
    finally:
        newcomer.unlink()
    assert show.returncode == 2
    assert "not in the catalog yet" in show.stderr
    assert f"mediamill scan {root}" in show.stderr
    assert "not in any scanned library" not in show.stderr


# ---------------------------------------------------------------- names not UTF-8 (point 1)


@pytest.mark.slow
def test_a_name_that_is_not_utf8_round_trips_through_show_export_and_playlist(
    tmp_path: Path,
) -> None:
    """Given a track whose name is Latin-1 bytes, when it is analysed, then `show` finds it by
    its real path, the export carries its bytes, and the playlist opens the real file; the
    analysis prints no essentia chatter."""
    from mediamill.testing.music import make_track

    root = tmp_path / "music"
    root.mkdir()
    make_track(root / "plain.flac", bpm=124, key="A", scale="minor", seconds=6)
    make_track(root / "odd.flac", bpm=126, key="C", scale="major", seconds=6, seed=1)
    real = os.path.join(os.fsencode(root), ODD)
    os.rename(os.fsencode(root / "odd.flac"), real)
    db = f"sqlite:///{tmp_path / 'catalog.db'}"
    run = mediamill("run", "audio", str(root), "--workers", "2", db=db)
    assert "2 ok" in run.stdout, run.stdout
    assert "MusicExtractorSVM" not in run.stderr + run.stdout

    shown = mediamill("show", os.fsdecode(real), db=db)
    item = json.loads(shown.stdout)
    assert item["path"] == "caf\\xe9 latin1.flac"
    assert item["results"]["audio"]["status"] == "ok"

    rows = [
        json.loads(line)
        for line in mediamill("export", "audio", str(root), db=db).stdout.splitlines()
    ]
    odd = next(r for r in rows if r["path"] == "caf\\xe9 latin1.flac")
    assert base64.b64decode(odd["path_bytes"]) == ODD
    plain = next(r for r in rows if r["path"] == "plain.flac")
    assert "path_bytes" not in plain
    csv_text = mediamill("export", "audio", str(root), "--format", "csv", db=db).stdout
    assert base64.b64encode(ODD).decode() in csv_text

    out = tmp_path / "list.m3u8"
    mediamill("playlist", str(root), "--out", str(out), "--bpm", "118-132", db=db)
    entries = [line for line in out.read_bytes().splitlines() if not line.startswith(b"#")]
    assert sorted(entries) == sorted([b"music/" + ODD, b"music/plain.flac"])
    for entry in entries:
        assert os.path.isfile(os.path.join(os.fsencode(tmp_path), entry)), entry


def test_finish_summaries_read_as_lines() -> None:
    from mediamill.cli.run import finish_lines

    lines = finish_lines(
        {
            "cleanup": "preview",
            "removed": [],
            "would_remove": ["Movies/Old (1999)/Old (1999).strm", "Movies/Gone.strm"],
            "removed_dirs": 0,
            "would_remove_dirs": 1,
        }
    )
    assert lines == [
        "cleanup: preview",
        "would remove: 2",
        "  Movies/Old (1999)/Old (1999).strm",
        "  Movies/Gone.strm",
        "would remove dirs: 1",
    ]


# ---------------------------------------------------------------- dry run (point 4)


def test_a_dry_run_changes_nothing_not_even_the_catalog(tmp_path: Path) -> None:
    """Given a folder never seen, a dry run says what it would scan and process and leaves
    no library, item or job behind; after a real run, it names only the new file."""
    from mediamill.catalog.db import Catalog

    root = tmp_path / "media"
    make_library(root)
    db = f"sqlite:///{tmp_path / 'catalog.db'}"
    dry = mediamill("run", "probe", str(root), "--dry-run", db=db).stdout
    assert "Dry run: nothing was changed. media (a new library): 24 files, 24 new" in dry
    assert "Would run probe on 24 item(s)." in dry
    catalog = Catalog.open(db)
    try:
        assert catalog.libraries() == []
    finally:
        catalog.close()
    assert json.loads(mediamill("jobs", "list", "--json", db=db).stdout)["total"] == 0
    mediamill("run", "probe", str(root), "-q", db=db)
    (root / "Music" / "late.mp3").parent.mkdir(exist_ok=True)
    (root / "Music" / "late.mp3").write_bytes((root / "Broken" / "empty.mp3").read_bytes())
    plan = json.loads(mediamill("run", "probe", str(root), "--dry-run", "--json", db=db).stdout)
    assert (plan["new"], plan["changed"], plan["missing"]) == (1, 0, 0)
    assert plan["sample"] == ["Music/late.mp3"]
    assert plan["would_process"] == 1
    assert json.loads(mediamill("jobs", "list", "--json", db=db).stdout)["total"] == 1
