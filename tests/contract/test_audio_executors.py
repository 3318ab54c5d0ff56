"""The audio processor under every local executor: worker processes give exactly the results
of the serial run, and a file that cannot be analysed fails alone, with its cause."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from mediamill.catalog.db import Catalog
from mediamill.testing.music import make_track
from tests.helpers.run import results, run_folder

EXECUTORS = ("serial", "processes")
#: (file name, bpm, key, scale, loudness): short tracks in every common format
TRACKS = (
    ("a/090 C major.mp3", 90, "C", "major", -14),
    ("a/120 A minor.flac", 120, "A", "minor", -18),
    ("a/128 F# major.m4a", 128, "F#", "major", -11),
    ("b/140 D# minor.ogg", 140, "D#", "minor", -23),
    ("b/100 G major.opus", 100, "G", "major", -14),
    ("b/174 E minor.flac", 174, "E", "minor", -8),
)
SECONDS = 12.0
UNDECODABLE = "broken/noise.mp3"
EMPTY = "broken/empty.flac"

Results = dict[str, tuple[str, Any, Any]]


@pytest.fixture(scope="module")
def music(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six synthesised tracks, random bytes named .mp3 and a zero-byte .flac."""
    root = tmp_path_factory.mktemp("audio-contract")
    for i, (name, bpm, key, scale, lufs) in enumerate(TRACKS):
        make_track(
            root / name, bpm=bpm, key=key, scale=scale, seconds=SECONDS, loudness_lufs=lufs, seed=i
        )
    (root / UNDECODABLE).parent.mkdir(parents=True, exist_ok=True)
    (root / UNDECODABLE).write_bytes(random.Random(7).randbytes(64 * 1024))
    (root / EMPTY).write_bytes(b"")
    return root


@pytest.fixture(scope="module")
def runs(music: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[dict, Results]]:
    """Each executor's finished job and results, each in its own fresh catalog."""
    out: dict[str, tuple[dict, Results]] = {}
    db_dir = tmp_path_factory.mktemp("audio-contract-db")
    for executor in EXECUTORS:
        catalog = Catalog.open(f"sqlite:///{db_dir / executor}.db")
        try:
            job = run_folder(catalog, music, "audio", executor=executor, workers=2)
            out[executor] = (job, results(catalog, music, "audio"))
        finally:
            catalog.close()
    return out


def test_processes_give_identical_results_to_serial(runs: dict[str, tuple[dict, Results]]) -> None:
    """Given the same tracks, when analysed serially and in two worker processes, every item's
    status, data and error are equal, value for value."""
    serial = runs["serial"][1]
    assert len(serial) == len(TRACKS) + 2
    analysed = {path: row for path, row in serial.items() if row[0] == "ok"}
    assert set(analysed) == {name for name, *_ in TRACKS}
    assert all(data["bpm"] and data["mfcc"] for _status, data, _error in analysed.values())
    assert runs["processes"][1] == serial


@pytest.mark.parametrize("executor", EXECUTORS)
def test_broken_files_fail_with_their_cause_and_the_job_completes(
    executor: str, runs: dict[str, tuple[dict, Results]]
) -> None:
    """An undecodable .mp3 and an empty .flac are failed with why; the rest are analysed."""
    job, found = runs[executor]
    assert job["status"] == "completed", job
    assert (job["total_items"], job["succeeded"], job["failed"]) == (len(TRACKS) + 2, 6, 2)
    status, data, error = found[UNDECODABLE]
    assert (status, data) == ("failed", None)
    assert error.startswith("cannot decode audio"), error
    status, data, error = found[EMPTY]
    assert (status, data) == ("failed", None)
    assert "empty file (0 bytes)" in error
