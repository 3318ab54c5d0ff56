"""The folder walk: a listing spooled with its digest, and the walk a command starts ahead."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from mediamill import walk
from tests.conftest import make_files


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "lib"
    make_files(root, ["a/1.mp3", "a/b/2.flac", "c.mkv", "日本/曲.ogg", ".hidden.mp3"])
    os.symlink(root / "nowhere.mp3", root / "broken.mp3")
    raw = os.path.join(os.fsencode(root), b"latin1-\xe9.mp3")
    with open(raw, "wb") as fh:
        fh.write(b"x")
    return root


@pytest.fixture(autouse=True)
def _no_walk_left_behind() -> object:
    yield
    walk.discard()


def _listing(root: Path) -> tuple[int, str, list[tuple[str, str]], list[walk.Record]]:
    with walk.list_folder(str(root)) as listing:
        return listing.count, listing.digest, listing.problems, list(listing)


def test_a_listing_holds_every_file_in_path_order_with_its_problems(tree: Path) -> None:
    with walk.list_folder(str(tree)) as listing:
        files = list(listing)
        assert all(os.path.exists(listing.path(f)) for f in files), "each keeps its real path"
        count, problems = listing.count, listing.problems
    assert [f[0] for f in files] == [
        "a/1.mp3",
        "a/b/2.flac",
        "c.mkv",
        "latin1-\\xe9.mp3",
        "日本/曲.ogg",
    ]
    assert [f[0] for f in files if f[3] is not None] == ["latin1-\\xe9.mp3"], "raw name kept"
    assert count == 5
    assert problems == [("broken.mp3", "broken symlink")]


def test_the_digest_changes_with_a_file_and_only_then(tree: Path) -> None:
    first = _listing(tree)[1]
    assert _listing(tree)[1] == first
    os.utime(tree / "c.mkv", ns=(1, 1))
    touched = _listing(tree)[1]
    assert touched != first
    (tree / "a" / "new.mp3").write_bytes(b"x")
    assert _listing(tree)[1] not in (first, touched)


def test_a_walk_started_ahead_gives_the_listing_of_a_walk_in_line(tree: Path) -> None:
    walk.start_ahead(["run", "probe", str(tree)])
    ahead = walk.take_ahead(str(tree))
    assert ahead is not None
    with ahead:
        assert (ahead.count, ahead.digest, ahead.problems, list(ahead)) == _listing(tree)
    assert walk.take_ahead(str(tree)) is None, "a walk is taken once"


def test_a_walk_ahead_of_another_folder_is_stopped_not_used(tree: Path, tmp_path: Path) -> None:
    walk.start_ahead(["scan", str(tree)])
    pid = walk._started["walk"].pid
    other = tmp_path / "other"
    other.mkdir()
    assert walk.take_ahead(str(other)) is None
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # reaped: no child is left walking


def test_a_root_that_vanished_before_the_walk_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "gone"
    root.mkdir()
    real_walk = walk._walk_into

    def vanish_then_walk(folder: str, *args: Any) -> Any:
        # in the child, between the command's check and the walk: the order is then fixed,
        # where an rmdir in the parent raced the child (which could finish its walk first)
        os.rmdir(folder)
        return real_walk(folder, *args)

    monkeypatch.setattr(walk, "_walk_into", vanish_then_walk)
    walk.discard()  # a walk another test left untaken would keep this one from starting
    walk.start_ahead(["scan", str(root)])
    assert "walk" in walk._started
    with pytest.raises(walk.ScanError, match=r"cannot read library root .*gone"):
        walk.take_ahead(str(root))


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["run", "probe", "{d}"], "{d}"),
        (["-v", "run", "-w", "2", "--set", "x=1", "probe", "{d}", "-q"], "{d}"),
        (["scan", "--db", "sqlite:///c.db", "{d}"], "{d}"),
        (["run", "probe", "--", "{d}"], "{d}"),
        (["run", "strm", "m3u+file:///x.m3u", "-o", "{d}"], None),
        (["run", "probe", "{d}", "--help"], None),
        (["export", "probe", "{d}"], None),
        (["run", "probe", "{d}/not-there"], None),
        (["run", "probe"], None),
        ([], None),
    ],
)
def test_the_folder_a_command_line_scans(
    argv: list[str], expected: str | None, tmp_path: Path
) -> None:
    line = [a.format(d=tmp_path) for a in argv]
    assert walk.folder_argument(line) == (expected.format(d=tmp_path) if expected else None)


def test_every_option_of_run_and_scan_that_takes_a_value_is_known_to_the_walk() -> None:
    """Otherwise an option's value could be taken for the folder (or the folder missed)."""
    import typer.main

    from mediamill.cli import app

    group: Any = typer.main.get_command(app)
    params = [*group.params, *group.commands["run"].params, *group.commands["scan"].params]
    # options have ``is_flag``; arguments do not; a counting option (-vv) takes no value
    taking = {
        opt
        for p in params
        if getattr(p, "is_flag", None) is False and not getattr(p, "count", False)
        for opt in p.opts
    }
    assert "--workers" in taking, "the options were read"
    assert taking <= walk.VALUE_OPTIONS


def test_a_listing_that_cannot_be_spooled_is_a_clear_error(tree: Path) -> None:
    """When the temp file cannot grow (a full disk; here a file size limit), the scan stops
    with an error that says where the listing goes, not a bare errno."""
    import subprocess
    import sys

    make_files(
        tree, [f"many/{n:04d} a rather long file name to fill the spool.mp3" for n in range(300)]
    )
    script = (
        "import resource, signal, sys\n"
        "from mediamill import walk\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.RLIM_INFINITY))\n"
        "try:\n"
        "    walk.list_folder(sys.argv[1])\n"
        "except walk.ScanError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(tree)], capture_output=True, text=True, check=True
    )
    assert "cannot keep the listing of" in out.stdout
    assert "TMPDIR" in out.stdout


@pytest.mark.parametrize("ahead", [False, True], ids=["in line", "ahead"])
def test_a_long_walk_reports_how_many_files_it_has_found_as_it_goes(
    ahead: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the command's spinner shows while a big share is walked (minutes on a NAS)."""
    from mediamill.catalog.db import Catalog
    from mediamill.sources.folder import library_for_folder, scan_folder

    monkeypatch.setattr(walk, "CHUNK", 10)  # the forked walker inherits these
    monkeypatch.setattr(walk, "PROGRESS_EVERY", 20)
    root = tmp_path / "lib"
    make_files(root, [f"d{i % 3}/{i:03}.mp3" for i in range(65)])
    catalog = Catalog.open(f"sqlite:///{tmp_path / 'catalog.db'}")
    library = library_for_folder(catalog, root)
    if ahead:
        walk.start_ahead(["scan", str(root)])
    seen: list[tuple[int, int]] = []
    scan_folder(catalog, library, on_progress=lambda r: seen.append((r.found, r.new)))
    catalog.close()
    assert seen[:3] == [(20, 0), (40, 0), (60, 0)], "counts while walking"
    assert seen[-1] == (65, 65), "then the new files, as they are written"
