"""Playlists over analysed tracks: tempo filter, Camelot order, energy ramp, similarity, M3U8."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
import typer
from typer.testing import CliRunner

from mediamill.cli import playlist as playlist_cli
from mediamill.cli.playlist import register
from mediamill.playlists import (
    PITCH_CLASSES,
    Camelot,
    EnergyRamp,
    Track,
    build_playlist,
    camelot,
    camelot_compatible,
    filter_bpm,
    order_by_energy,
    order_by_key,
    similar_to,
    write_m3u8,
)


def make_tracks(n: int, seed: int = 0) -> list[Track]:
    rng = random.Random(seed)
    return [
        Track(
            path=f"Artist {i % 5}/Album/{i:03d} Track.mp3",
            duration=180 + rng.random() * 120,
            artist=f"Artist {i % 5}",
            title=f"Track {i:03d}",
            bpm=round(rng.uniform(60, 180), 2),
            key=rng.choice(PITCH_CLASSES),
            scale=rng.choice(("major", "minor")),
            loudness=rng.uniform(-20, -6),
            energy=rng.random(),
            danceability=rng.uniform(0.5, 3),
            mfcc=tuple(rng.gauss(0, 20) for _ in range(13)),
        )
        for i in range(n)
    ]


@pytest.mark.parametrize(
    ("key", "scale", "code"),
    [("C", "major", "8B"), ("A", "minor", "8A"), ("G", "major", "9B"), ("E", "minor", "9A"),
     ("F", "major", "7B"), ("B", "major", "1B"), ("G#", "minor", "1A"), ("F#", "major", "2B"),
     ("D", "minor", "7A"), ("C#", "minor", "12A")],
)  # fmt: skip
def test_keys_map_onto_the_camelot_wheel(key: str, scale: str, code: str) -> None:
    assert str(camelot(key, scale)) == code


def test_camelot_neighbours_are_same_number_or_one_step_on_the_same_ring() -> None:
    assert camelot_compatible(Camelot(8, "B"), Camelot(8, "A"))  # relative minor
    assert camelot_compatible(Camelot(12, "B"), Camelot(1, "B"))  # the wheel wraps
    assert camelot_compatible(Camelot(5, "A"), Camelot(4, "A"))
    assert not camelot_compatible(Camelot(8, "B"), Camelot(9, "A"))
    assert not camelot_compatible(Camelot(8, "B"), Camelot(10, "B"))


def test_the_tempo_filter_keeps_only_tracks_in_range() -> None:
    tracks = make_tracks(200)
    kept = filter_bpm(tracks, 120, 130)
    assert kept
    assert all(t.bpm is not None and 120 <= t.bpm <= 130 for t in kept)
    assert len(kept) == sum(1 for t in tracks if t.bpm is not None and 120 <= t.bpm <= 130)


def test_the_tempo_filter_can_accept_half_and_double_tempo() -> None:
    tracks = [Track("a.mp3", bpm=62.5), Track("b.mp3", bpm=250), Track("c.mp3", bpm=100)]
    assert [t.path for t in filter_bpm(tracks, 120, 130)] == []
    assert [t.path for t in filter_bpm(tracks, 120, 130, octave=True)] == ["a.mp3", "b.mp3"]


def test_key_order_makes_every_step_camelot_compatible() -> None:
    tracks = make_tracks(60, seed=3)
    result = order_by_key(tracks)
    assert sorted(t.path for t in result.tracks) == sorted(t.path for t in tracks)
    assert result.notes == []
    for a, b in zip(result.tracks, result.tracks[1:], strict=False):
        assert a.camelot is not None
        assert b.camelot is not None
        assert camelot_compatible(a.camelot, b.camelot), f"{a.camelot} -> {b.camelot}"


def test_key_order_says_so_when_no_compatible_order_exists() -> None:
    tracks = [
        Track("a.mp3", key="C", scale="major"),  # 8B
        Track("b.mp3", key="G", scale="major"),  # 9B
        Track("c.mp3", key="F#", scale="major"),  # 2B: far from both
        Track("d.mp3"),  # no key
    ]
    result = order_by_key(tracks)
    assert len(result.tracks) == 4
    assert result.tracks[-1].path == "d.mp3"
    assert any("no key-compatible step" in note for note in result.notes)
    assert any("without a key" in note for note in result.notes)


@pytest.mark.parametrize("ramp", ["up", "down", "updown"])
def test_the_energy_ramp_is_monotonic(ramp: EnergyRamp) -> None:
    energies = [t.energy or 0.0 for t in order_by_energy(make_tracks(31), ramp)]
    peak = energies.index(max(energies))
    if ramp == "up":
        assert energies == sorted(energies)
    elif ramp == "down":
        assert energies == sorted(energies, reverse=True)
    else:
        assert 0 < peak < len(energies) - 1
        assert energies[: peak + 1] == sorted(energies[: peak + 1])
        assert energies[peak:] == sorted(energies[peak:], reverse=True)


def test_similar_to_returns_the_nearest_tracks_first_and_never_the_seed() -> None:
    base = make_tracks(1)[0]
    seed = replace(base, path="seed.mp3")
    # same everything except a growing tempo difference: the order of nearness is known
    others = [replace(base, path=f"t{i}.mp3", bpm=(base.bpm or 0) + 3 * i) for i in range(1, 9)]
    noise = make_tracks(20, seed=9)
    tracks = [seed, *reversed(others), *noise]
    nearest = similar_to(tracks, "seed.mp3", n=5)
    assert [t.path for t in nearest] == ["t1.mp3", "t2.mp3", "t3.mp3", "t4.mp3", "t5.mp3"]
    assert all(t.path != "seed.mp3" for t in similar_to(tracks, "seed.mp3", n=len(tracks)))
    with pytest.raises(LookupError):
        similar_to(tracks, "missing.mp3")


def test_a_playlist_combines_filter_size_and_order() -> None:
    result = build_playlist(make_tracks(300), bpm=(100, 140), energy="up", size=10)
    assert len(result.tracks) == 10
    assert all(t.bpm is not None and 100 <= t.bpm <= 140 for t in result.tracks)
    energies = [t.energy or 0.0 for t in result.tracks]
    assert energies == sorted(energies)
    with pytest.raises(ValueError, match="choose one ordering"):
        build_playlist([], key_order=True, energy="up")


def read_m3u8(path: Path) -> list[tuple[int, str, str]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "#EXTM3U"
    entries = []
    for info, target in zip(lines[1::2], lines[2::2], strict=True):
        assert info.startswith("#EXTINF:")
        seconds, _, title = info.removeprefix("#EXTINF:").partition(",")
        entries.append((int(seconds), title, target))
    return entries


def test_the_m3u8_lists_tracks_relative_to_the_playlist_with_extinf(tmp_path: Path) -> None:
    library = tmp_path / "music"
    tracks = [
        Track("Björk/Début/01 Human Behaviour.flac", 252.4, "Björk", "Human Behaviour"),
        Track("Various/02 untitled.mp3", 61.6),
    ]
    for t in tracks:
        (library / t.path).parent.mkdir(parents=True, exist_ok=True)
        (library / t.path).touch()
    out = write_m3u8(tracks, tmp_path / "lists" / "mix.m3u8", library)
    entries = read_m3u8(out)
    assert entries == [
        (252, "Björk - Human Behaviour", "../music/Björk/Début/01 Human Behaviour.flac"),
        (62, "02 untitled", "../music/Various/02 untitled.mp3"),
    ]
    for _, _, target in entries:
        assert "\\" not in target
        assert (out.parent / target).resolve().is_file()


def test_a_line_break_in_a_file_name_cannot_add_an_entry(tmp_path: Path) -> None:
    library = tmp_path / "music"
    library.mkdir()
    hostile = "evil\n#EXTINF:1,injected\nelsewhere.mp3\r.mp3"
    (library / hostile).touch()
    (library / "fine.mp3").touch()
    out = write_m3u8(
        [Track(hostile, 10, "A", "B"), Track("fine.mp3", 20)], tmp_path / "mix.m3u8", library
    )
    lines = out.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "#EXTM3U"
    assert [line for line in lines if line.startswith("#EXTINF")] == [
        "#EXTINF:10,A - B",
        "#EXTINF:20,fine",
    ]
    entries = [line for line in lines if not line.startswith("#")]
    assert len(entries) == 2, lines
    assert entries[1] == "music/fine.mp3"
    # the hostile name is one file URI that still leads to the file
    assert entries[0].startswith("file:///")
    assert Path(unquote(urlsplit(entries[0]).path)) == (library / hostile).resolve()


@dataclass
class FakeLibrary:
    id: int
    root: str


class FakeCatalog:
    """The slice of the catalog the command uses: libraries by root and audio results."""

    def __init__(self, root: Path, results: list[tuple[str, str, dict[str, Any]]]) -> None:
        self.root = root
        self.results = results
        self.closed = False

    def library_by_root(self, path: str | Path) -> FakeLibrary | None:
        return FakeLibrary(7, str(self.root)) if Path(path).resolve() == self.root else None

    def iter_results(
        self, library_id: int, processor: str
    ) -> Iterator[tuple[str, str, dict[str, Any]]]:
        assert (library_id, processor) == (7, "audio")
        return iter(self.results)

    def close(self) -> None:
        self.closed = True


def test_the_playlist_command_writes_what_the_catalog_holds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "lib"
    data = [
        ("a.mp3", "ok", {"bpm": 124.0, "key": "C", "scale": "major", "energy": 0.3,
                           "duration": 200.2, "tags": {"artist": "A", "title": "One"}}),
        ("b.mp3", "ok", {"bpm": 90.0, "key": "G", "scale": "major", "energy": 0.2,
                           "duration": 100, "tags": {"artist": "B", "title": "Two"}}),
        ("c.mp3", "ok", {"bpm": 128.0, "key": "A", "scale": "minor", "energy": 0.1,
                           "duration": 150, "tags": {}}),
        ("d.mp3", "failed", {}),
    ]  # fmt: skip
    fake = FakeCatalog(root.resolve(), data)
    monkeypatch.setattr(playlist_cli, "open_catalog", lambda db: fake)
    app = typer.Typer()
    register(app)
    app.command("noop")(lambda: None)  # with two commands typer keeps the command's name
    out = tmp_path / "mix.m3u8"
    args = ["playlist", str(root), "--out", str(out), "--bpm", "120-130", "--energy", "up"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert [e[2] for e in read_m3u8(out)] == ["lib/c.mp3", "lib/a.mp3"]
    assert read_m3u8(out)[1][:2] == (200, "A - One")

    assert fake.closed

    missing = CliRunner().invoke(app, ["playlist", str(tmp_path), "--out", str(out)])
    assert missing.exit_code == 2
    assert "not a library in the catalog" in " ".join(missing.output.split())
