"""The audio processor on synthetic tracks of known tempo, key and loudness, in every format."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mediamill.processors.audio import AudioProcessor, pin_threads, sharp_key
from mediamill.processors.base import ItemRef, Skip
from mediamill.testing.music import TrackSpec, encode, make_track, scale_to_lufs, synthesize

SECONDS = 15.0  # long enough for tempo and key, short enough for a fast suite
FORMATS = ("mp3", "flac", "m4a", "ogg", "opus")


@dataclass(frozen=True)
class Case:
    bpm: float
    key: str
    scale: str
    lufs: float

    @property
    def id(self) -> str:
        return f"{self.bpm:g}bpm-{self.key}-{self.scale}-{self.lufs:g}LUFS"


CASES = (
    Case(90, "C", "major", -14),
    Case(120, "A", "minor", -23),
    Case(128, "F#", "major", -14),
    Case(140, "D#", "minor", -23),  # essentia spells this key "Eb"
)
MATRIX = [pytest.param(c, f, id=f"{c.id}-{f}") for c in CASES for f in FORMATS]


def item_for(path: Path) -> ItemRef:
    return ItemRef(id=1, path=path.name, kind="audio", abspath=str(path))


@pytest.fixture(scope="session")
def processor() -> Iterator[AudioProcessor]:
    proc = AudioProcessor()
    proc.setup()
    yield proc
    proc.teardown()


@pytest.fixture(scope="session")
def library(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[Case, str], TrackSpec]:
    root = tmp_path_factory.mktemp("music")
    specs: dict[tuple[Case, str], TrackSpec] = {}
    for i, case in enumerate(CASES):
        for fmt in FORMATS:
            specs[case, fmt] = make_track(
                root / f"{case.id}.{fmt}",
                bpm=case.bpm,
                key=case.key,
                scale=case.scale,
                seconds=SECONDS,
                loudness_lufs=case.lufs,
                artist="Synthé Artist",
                title=case.id,
                album="Ground Truth",
                seed=i,
            )
    return specs


@pytest.fixture(scope="session")
def analysed(
    library: dict[tuple[Case, str], TrackSpec], processor: AudioProcessor
) -> dict[tuple[Case, str], dict[str, Any]]:
    return {k: processor.process(item_for(spec.path)) for k, spec in library.items()}


def tempo_error(measured: float, expected: float) -> float:
    return abs(measured - expected) / expected


def write_wav(signal: np.ndarray[Any, Any], path: Path) -> None:
    """``signal`` (n, channels) as 32-bit float WAV: packed samples, so a converter reads it."""
    import av

    layout = "mono" if signal.shape[1] == 1 else "stereo"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("pcm_f32le", rate=44100, layout=layout)
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(signal, dtype=np.float32).reshape(1, -1),
            format="flt",
            layout=layout,
        )
        frame.sample_rate = 44100
        out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


@pytest.mark.parametrize(("case", "fmt"), MATRIX)
def test_tempo_is_within_4_percent(
    case: Case, fmt: str, analysed: dict[tuple[Case, str], dict[str, Any]]
) -> None:
    bpm = analysed[case, fmt]["bpm"]
    octave = next((f for f in (0.5, 2.0) if tempo_error(bpm, case.bpm * f) <= 0.04), None)
    hint = f" (an octave error: {octave:g}x the tempo)" if octave else ""
    assert tempo_error(bpm, case.bpm) <= 0.04, f"{fmt}: {bpm} BPM, expected {case.bpm}{hint}"


@pytest.mark.parametrize(("case", "fmt"), MATRIX)
def test_tempo_is_right_up_to_an_octave(
    case: Case, fmt: str, analysed: dict[tuple[Case, str], dict[str, Any]]
) -> None:
    bpm = analysed[case, fmt]["bpm"]
    best = min(tempo_error(bpm, case.bpm * f) for f in (1.0, 0.5, 2.0))
    assert best <= 0.04, f"{fmt}: {bpm} BPM is not {case.bpm} nor half or double of it"


@pytest.mark.parametrize(("case", "fmt"), MATRIX)
def test_key_and_scale_are_found(
    case: Case, fmt: str, analysed: dict[tuple[Case, str], dict[str, Any]]
) -> None:
    data = analysed[case, fmt]
    found = (data["key"], data["scale"])
    assert found == (case.key, case.scale), f"{fmt}: {found}, strength {data['key_strength']}"


@pytest.mark.parametrize(("case", "fmt"), MATRIX)
def test_loudness_matches_the_source_within_half_a_lu(
    case: Case,
    fmt: str,
    analysed: dict[tuple[Case, str], dict[str, Any]],
    library: dict[tuple[Case, str], TrackSpec],
) -> None:
    data = analysed[case, fmt]
    reference = library[case, fmt].reference_lufs
    assert abs(data["loudness"] - reference) <= 0.5, f"{fmt}: {data['loudness']} vs {reference}"
    assert data["replaygain_db"] == pytest.approx(-18 - data["loudness"], abs=1e-3)
    assert data["loudness_range"] >= 0


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_descriptor_is_present_with_tags_and_duration(
    fmt: str, analysed: dict[tuple[Case, str], dict[str, Any]]
) -> None:
    data = analysed[CASES[0], fmt]
    for name in (
        "bpm_confidence",
        "beats_count",
        "key_strength",
        "energy",
        "danceability",
        "dynamic_complexity",
        "spectral_centroid",
        "zero_crossing_rate",
    ):
        assert isinstance(data[name], int | float), name
    assert 0 <= data["bpm_confidence"] <= 1
    assert data["beats_count"] == pytest.approx(SECONDS * CASES[0].bpm / 60, abs=3)
    assert len(data["mfcc"]) == 13
    assert all(isinstance(v, float) for v in data["mfcc"])
    assert data["duration"] == pytest.approx(SECONDS, abs=0.1)
    assert data["analysed_seconds"] == pytest.approx(SECONDS, abs=0.1)
    assert data["tags"] == {
        "artist": "Synthé Artist",
        "title": CASES[0].id,
        "album": "Ground Truth",
    }


def test_loudness_uses_the_tracks_own_rate(
    analysed: dict[tuple[Case, str], dict[str, Any]],
) -> None:
    """Opus decodes at 48 kHz: the meter runs at that rate, not at the 44.1 kHz analysis rate."""
    assert analysed[CASES[0], "opus"]["sample_rate"] == 48000
    assert analysed[CASES[0], "flac"]["sample_rate"] == 44100


def test_the_same_track_analysed_twice_gives_identical_data(
    library: dict[tuple[Case, str], TrackSpec], analysed: dict[tuple[Case, str], dict[str, Any]]
) -> None:
    spec = library[CASES[1], "mp3"]
    fresh = AudioProcessor()
    fresh.setup()
    try:
        assert fresh.process(item_for(spec.path)) == analysed[CASES[1], "mp3"]
        assert fresh.process(item_for(spec.path)) == analysed[CASES[1], "mp3"]
    finally:
        fresh.teardown()


def test_long_tracks_are_analysed_on_a_bounded_excerpt(
    library: dict[tuple[Case, str], TrackSpec],
) -> None:
    spec = library[CASES[2], "flac"]
    proc = AudioProcessor({"max_seconds": 8})
    proc.setup()
    data = proc.process(item_for(spec.path))
    proc.teardown()
    assert data["analysed_seconds"] == pytest.approx(8, abs=0.05)
    assert data["duration"] == pytest.approx(SECONDS, abs=0.1)
    assert tempo_error(data["bpm"], CASES[2].bpm) <= 0.04


def test_a_track_longer_than_its_container_says_is_analysed_in_full(
    tmp_path: Path, library: dict[tuple[Case, str], TrackSpec], processor: AudioProcessor
) -> None:
    """A chained Ogg (two streams back to back, as radio dumps are) reports the first
    stream's duration; decoding goes on to the end of the second."""
    spec = library[CASES[0], "ogg"]
    chained = tmp_path / "chained.ogg"
    chained.write_bytes(spec.path.read_bytes() * 2)
    data = processor.process(item_for(chained))
    assert data["analysed_seconds"] == pytest.approx(2 * SECONDS, abs=0.1)
    assert data["duration"] == data["analysed_seconds"]
    assert tempo_error(data["bpm"], CASES[0].bpm) <= 0.04


def test_a_mono_file_is_metered_as_one_channel(tmp_path: Path, processor: AudioProcessor) -> None:
    """EBU R128 counts a mono file once: 3 LU below the same signal on both channels, with
    every other descriptor the same."""
    signal, _ = scale_to_lufs(synthesize(bpm=100, key="E", scale="minor", seconds=10), -20)
    left = signal[:, :1]
    write_wav(left, tmp_path / "mono.wav")
    write_wav(np.hstack([left, left]), tmp_path / "dual.wav")
    mono = processor.process(item_for(tmp_path / "mono.wav"))
    dual = processor.process(item_for(tmp_path / "dual.wav"))
    assert (mono["channels"], dual["channels"]) == (1, 2)
    assert mono["loudness"] == pytest.approx(dual["loudness"] - 3.01, abs=0.02)
    for name in ("bpm", "key", "scale", "energy", "mfcc", "spectral_centroid"):
        assert mono[name] == dual[name], name


def test_multifeature_rhythm_finds_the_tempo_with_a_confidence(
    library: dict[tuple[Case, str], TrackSpec],
) -> None:
    proc = AudioProcessor({"rhythm": "multifeature"})
    proc.setup()
    data = proc.process(item_for(library[CASES[1], "flac"].path))
    proc.teardown()
    assert data["rhythm_method"] == "multifeature"
    assert tempo_error(data["bpm"], CASES[1].bpm) <= 0.04
    assert 0 < data["bpm_confidence"] <= 1


def test_random_bytes_fail_with_the_decoders_cause(
    tmp_path: Path, processor: AudioProcessor
) -> None:
    bad = tmp_path / "noise.mp3"
    bad.write_bytes(bytes(range(256)) * 200)
    with pytest.raises(ValueError, match=r"^cannot decode audio: Invalid data found"):
        processor.process(item_for(bad))


def zero_bytes(source: Path, dest: Path, start: float, end: float) -> Path:
    """A copy of ``source`` with the bytes between two fractions of its size zeroed."""
    data = bytearray(source.read_bytes())
    first, last = int(len(data) * start), int(len(data) * end)
    data[first:last] = bytes(last - first)
    dest.write_bytes(data)
    return dest


def test_damaged_packets_are_skipped_and_the_rest_analysed(
    tmp_path: Path, library: dict[tuple[Case, str], TrackSpec], processor: AudioProcessor
) -> None:
    """400 zeroed bytes in the middle of an mp3 cost a few packets, not the track: ffmpeg
    decodes the rest, and so do we, saying how many packets were skipped."""
    source = library[CASES[2], "mp3"].path
    size = source.stat().st_size
    damaged = zero_bytes(source, tmp_path / "damaged.mp3", 0.5, 0.5 + 400 / size)

    data = processor.process(item_for(damaged))

    assert data["damaged_packets"] >= 1
    assert SECONDS - 0.2 < data["analysed_seconds"] < SECONDS
    assert tempo_error(data["bpm"], CASES[2].bpm) <= 0.04
    assert processor.process(item_for(source))["damaged_packets"] == 0


def test_a_track_mostly_damaged_fails_saying_how_much_decoded(
    tmp_path: Path, library: dict[tuple[Case, str], TrackSpec], processor: AudioProcessor
) -> None:
    source = library[CASES[2], "mp3"].path
    damaged = zero_bytes(source, tmp_path / "wrecked.mp3", 0.2, 0.9)

    with pytest.raises(
        ValueError,
        match=r"^cannot decode audio: .+ \(only \d+\.\d\d s of 15\.00 s decoded, \d+ damaged pac",
    ):
        processor.process(item_for(damaged))


def test_an_empty_file_fails_as_empty(tmp_path: Path, processor: AudioProcessor) -> None:
    empty = tmp_path / "empty.flac"
    empty.touch()
    with pytest.raises(ValueError, match=r"^empty file \(0 bytes\)$"):
        processor.process(item_for(empty))


def test_a_model_path_needs_an_essentia_build_with_tensorflow(tmp_path: Path) -> None:
    import essentia.standard as es

    if hasattr(es, "TensorflowPredictEffnetDiscogs"):
        pytest.skip("this essentia build has TensorFlow")
    proc = AudioProcessor({"model_path": str(tmp_path / "model.pb")})
    with pytest.raises(RuntimeError, match="model_path is set but this essentia build"):
        proc.setup()


def test_bad_options_are_refused_when_the_processor_is_built() -> None:
    with pytest.raises(ValueError, match="rhythm must be one of"):
        AudioProcessor({"rhythm": "fast"})
    with pytest.raises(ValueError, match="max_seconds must be a positive number"):
        AudioProcessor({"max_seconds": 0})


def test_pin_threads_limits_blas_and_openmp_to_one_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    pin_threads()
    assert os.environ["OMP_NUM_THREADS"] == os.environ["OPENBLAS_NUM_THREADS"] == "1"
    assert os.environ["MKL_NUM_THREADS"] == "1"


@pytest.mark.parametrize(
    ("essentia_key", "expected"),
    [("Eb", "D#"), ("Bb", "A#"), ("Ab", "G#"), ("C#", "C#"), ("E", "E")],
)
def test_keys_are_spelled_with_sharps(essentia_key: str, expected: str) -> None:
    assert sharp_key(essentia_key) == expected


def test_synthesis_hits_the_loudness_target() -> None:
    signal = synthesize(bpm=100, key="G", scale="major", seconds=6)
    scaled, measured = scale_to_lufs(signal, -20)
    assert measured == pytest.approx(-20, abs=0.05)
    assert float(abs(scaled).max()) < 1.0


def test_a_silent_track_is_skipped(tmp_path: Path, processor: AudioProcessor) -> None:
    silent = tmp_path / "silence.flac"
    encode(np.zeros((44100 * 3, 2), dtype=np.float32), silent, fmt="flac")
    with pytest.raises(Skip, match="silent"):
        processor.process(item_for(silent))


def test_process_before_setup_is_a_clear_error(library: dict[tuple[Case, str], TrackSpec]) -> None:
    with pytest.raises(RuntimeError, match=r"setup\(\) must run before process\(\)"):
        AudioProcessor().process(item_for(library[CASES[0], "flac"].path))


@pytest.mark.parametrize("rate", [96000, 176400, 22050])
def test_hi_res_and_low_rate_files_are_metered_like_the_same_music_at_44_1_khz(
    tmp_path: Path, processor: AudioProcessor, rate: int
) -> None:
    """essentia's meter reads a 96 kHz track as silence and 176.4 kHz as +12 LUFS or more: the
    processor meters such rates at 48 kHz, so a hi-res file is neither skipped as silent nor
    far louder than its CD copy."""
    import av

    signal, _ = scale_to_lufs(synthesize(bpm=120, key="A", scale="minor", seconds=10), -16)
    write_wav(signal, tmp_path / "cd.wav")
    with (
        av.open(str(tmp_path / "cd.wav")) as src,
        av.open(str(tmp_path / "other.flac"), "w") as out,
    ):
        stream = out.add_stream("flac", rate=rate, layout="stereo")
        resampler = av.AudioResampler(format="s32", layout="stereo", rate=rate)
        for frame in [*src.decode(audio=0), None]:
            for converted in resampler.resample(frame):
                out.mux(stream.encode(converted))
        out.mux(stream.encode(None))
    cd = processor.process(item_for(tmp_path / "cd.wav"))
    other = processor.process(item_for(tmp_path / "other.flac"))
    assert other["sample_rate"] == rate
    assert other["loudness"] == pytest.approx(cd["loudness"], abs=0.3)
