"""Audio analysis and playlists as a user gets them: `mediamill run audio`, `export`, `playlist`
as real processes over synthesised tracks whose tempo, key and loudness are known."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from mediamill.testing.music import TrackSpec, make_track
from tests.helpers.cli import mediamill

SECONDS = 12.0
#: (file name, bpm, key, scale, loudness); the keys form one Camelot chain 8A-8B-9B-10B-10A
TRACKS = (
    ("Kit/Ana - Slow D.flac", 100, "D", "major", -14),
    ("Kit/Bo - Low A minor.mp3", 122, "A", "minor", -18),
    ("Kit/Cy - Mid C.m4a", 125, "C", "major", -11),
    ("Set/Di - High G.ogg", 128, "G", "major", -14),
    ("Set/Ed - Fast B minor.flac", 145, "B", "minor", -23),
)
#: the Camelot wheel for the keys above, written out as a DJ would read it
CAMELOT = {
    ("A", "minor"): (8, "A"),
    ("C", "major"): (8, "B"),
    ("G", "major"): (9, "B"),
    ("D", "major"): (10, "B"),
    ("B", "minor"): (10, "A"),
}
BPM_RANGE = (118, 132)


def compatible(a: tuple[int, str], b: tuple[int, str]) -> bool:
    """Same number (same key or its relative), or one step round the wheel in the same letter."""
    steps = abs(a[0] - b[0]) % 12
    return a[0] == b[0] or (a[1] == b[1] and min(steps, 12 - steps) == 1)


def read_m3u8(playlist: Path) -> list[tuple[str, Path]]:
    """``(#EXTINF line, the entry's resolved file)`` per entry; the header is checked too."""
    lines = playlist.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "#EXTM3U"
    entries = list(zip(lines[1::2], lines[2::2], strict=True))
    for _info, entry in entries:
        assert not Path(entry).is_absolute(), "entries are relative to the playlist"
    return [(info, (playlist.parent / entry).resolve()) for info, entry in entries]


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> dict[str, TrackSpec]:
    root = tmp_path_factory.mktemp("music")
    return {
        name: make_track(
            root / name,
            bpm=bpm,
            key=key,
            scale=scale,
            seconds=SECONDS,
            loudness_lufs=lufs,
            artist=name.split("/")[1].split(" - ")[0],
            title=name.split(" - ")[1].rsplit(".", 1)[0],
            seed=i,
        )
        for i, (name, bpm, key, scale, lufs) in enumerate(TRACKS)
    }


@pytest.fixture(scope="module")
def analysed(library: dict[str, TrackSpec], tmp_path_factory: pytest.TempPathFactory) -> tuple:
    """The library after one `mediamill run audio DIR -q`: (root, db url, run's stdout)."""
    root = next(iter(library.values())).path.parents[1]
    db = f"sqlite:///{tmp_path_factory.mktemp('db') / 'catalog.db'}"
    run = mediamill("run", "audio", str(root), "-q", db=db)
    return root, db, run.stdout


def test_run_then_export_gives_the_synthesised_tempo_key_and_loudness(
    analysed: tuple, library: dict[str, TrackSpec]
) -> None:
    root, db, stdout = analysed
    assert f"completed: {len(TRACKS)}/{len(TRACKS)} items, {len(TRACKS)} ok" in stdout
    out = mediamill("export", "audio", str(root), "--format", "jsonl", db=db)
    rows = {row["path"]: row for row in map(json.loads, out.stdout.splitlines())}
    assert set(rows) == set(library)
    for path, spec in library.items():
        row = rows[path]
        assert (row["kind"], row["status"], row["error"]) == ("audio", "ok", None)
        data = row["data"]
        assert data["bpm"] == pytest.approx(spec.bpm, rel=0.04), path
        assert (data["key"], data["scale"]) == (spec.key, spec.scale), path
        assert data["loudness"] == pytest.approx(spec.loudness_lufs, abs=0.5), path
        assert data["tags"] == {"artist": spec.artist, "title": spec.title, "album": spec.album}


def test_a_second_run_has_nothing_to_do(analysed: tuple) -> None:
    root, db, _ = analysed
    again = mediamill("run", "audio", str(root), "-q", db=db)
    n = len(TRACKS)
    assert f"0 ok, 0 failed, {n} skipped ({n} already up to date)" in again.stdout


def test_a_tempo_playlist_holds_exactly_the_tracks_in_range(
    analysed: tuple, library: dict[str, TrackSpec], tmp_path: Path
) -> None:
    root, db, _ = analysed
    out = tmp_path / "lists" / "p.m3u8"
    low, high = BPM_RANGE
    done = mediamill("playlist", str(root), "--out", str(out), "--bpm", f"{low}-{high}", db=db)
    in_range = {s.path.resolve(): s for s in library.values() if low <= s.bpm <= high}
    assert f"wrote {len(in_range)} tracks" in done.stdout
    entries = read_m3u8(out)
    assert {path for _info, path in entries} == set(in_range)
    for info, path in entries:
        spec = in_range[path]
        assert info == f"#EXTINF:{round(SECONDS)},{spec.artist} - {spec.title}"


def test_similar_to_lists_the_other_tracks_never_the_seed(
    analysed: tuple, library: dict[str, TrackSpec], tmp_path: Path
) -> None:
    root, db, _ = analysed
    seed = TRACKS[2][0]
    out = tmp_path / "similar.m3u8"
    mediamill("playlist", str(root), "--out", str(out), "--similar-to", seed, db=db)
    found = [path for _info, path in read_m3u8(out)]
    assert sorted(found) == sorted(s.path.resolve() for n, s in library.items() if n != seed)


def test_key_order_steps_only_to_camelot_compatible_keys(
    analysed: tuple, library: dict[str, TrackSpec], tmp_path: Path
) -> None:
    root, db, _ = analysed
    out = tmp_path / "keys.m3u8"
    mediamill("playlist", str(root), "--out", str(out), "--key-order", db=db)
    by_path = {s.path.resolve(): s for s in library.values()}
    codes = [CAMELOT[by_path[p].key, by_path[p].scale] for _info, p in read_m3u8(out)]
    assert sorted(codes) == sorted(CAMELOT.values())
    for a, b in itertools.pairwise(codes):
        assert compatible(a, b), f"{a} -> {b} in {codes}"
