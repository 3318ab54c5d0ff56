"""Synthetic music with known tempo, key and loudness: ground truth for the audio processor.

A track is a drum pattern (kick on every beat, snare on 2 and 4, closed hats on eighths) over
a chord progression (I-IV-V-I in major, i-iv-v-i in minor) of harmonic-rich tones and a bass
line on the chord roots. It is scaled to a target integrated loudness measured with essentia's
own EBU R128 meter, then encoded with PyAV and tagged (artist/title/album).
"""

from __future__ import annotations

import functools
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    Signal = NDArray[np.float32]

SAMPLE_RATE = 44100
PITCH_CLASSES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
_SCALES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10)}
_PROGRESSION = (0, 3, 4, 0)  # scale degrees of I-IV-V-I (i-iv-v-i in minor)
#: format name -> (codec, container sample rate, file suffix)
FORMATS: dict[str, tuple[str, int | None, str]] = {
    "mp3": ("libmp3lame", None, ".mp3"),
    "flac": ("flac", None, ".flac"),
    "m4a": ("aac", None, ".m4a"),
    "ogg": ("vorbis", None, ".ogg"),
    "opus": ("libopus", 48000, ".opus"),
}
#: speed over quality: test tracks need to be made fast, and these settings still keep the
#: loudness within a few tenths of a LU of the source
_ENCODER_OPTIONS = {
    "vorbis": {"strict": "experimental"},  # FFmpeg's own Vorbis encoder is flagged experimental
    "aac": {"aac_coder": "fast"},
    "libmp3lame": {"compression_level": "7"},
}
#: peak ceiling after loudness scaling (-1 dBFS), so that no encoder input clips
_PEAK_CEILING = 10 ** (-1 / 20)


@dataclass(frozen=True, slots=True)
class TrackSpec:
    """What a synthetic track is known to be; ``reference_lufs`` is measured before encoding."""

    path: Path
    bpm: float
    key: str
    scale: str
    seconds: float
    loudness_lufs: float
    reference_lufs: float
    fmt: str
    artist: str
    title: str
    album: str


def measure_lufs(stereo: Signal, sample_rate: int = SAMPLE_RATE) -> float:
    """Integrated loudness (LUFS) of a float ``(n, 2)`` signal with essentia's EBU R128 meter."""
    import numpy as np

    _, _, integrated, _ = _meter(sample_rate)(np.ascontiguousarray(stereo, dtype=np.float32))
    return float(integrated)


@functools.cache
def _meter(sample_rate: int) -> Any:
    """One meter per rate for the process's lifetime: deleting an essentia network-backed
    algorithm makes the others print "No network created" warnings on every call."""
    import essentia.standard as es

    return es.LoudnessEBUR128(sampleRate=float(sample_rate))


def _tone(midi: float, n: int, sample_rate: int, harmonics: int) -> NDArray[np.float64]:
    """A sawtooth-like tone: ``harmonics`` partials with 1/k amplitudes, below Nyquist."""
    import numpy as np

    freq = 440.0 * 2 ** ((midi - 69) / 12)
    t = np.arange(n) / sample_rate
    out = np.zeros(n)
    for k in range(1, harmonics + 1):
        if k * freq < sample_rate / 2:
            out += np.sin(2 * np.pi * k * freq * t) / k
    return out


def _envelope(n: int, sample_rate: int, attack: float, release: float) -> NDArray[np.float64]:
    import numpy as np

    env = np.ones(n)
    a = min(n, int(attack * sample_rate))
    r = min(n, int(release * sample_rate))
    if a:
        env[:a] = np.linspace(0.0, 1.0, a)
    if r:
        env[n - r :] *= np.linspace(1.0, 0.0, r)
    return env


def _band_noise(
    n: int, low: float, high: float, sample_rate: int, rng: np.random.Generator
) -> NDArray[np.float64]:
    """White noise restricted to ``low``-``high`` Hz, unit RMS (lossy codecs keep this band)."""
    import numpy as np

    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / sample_rate)
    spectrum[(freqs < low) | (freqs > high)] = 0
    noise = np.fft.irfft(spectrum, n)
    return noise / (np.sqrt(np.mean(noise**2)) or 1.0)


def _drum_hits(sample_rate: int, rng: np.random.Generator) -> dict[str, NDArray[np.float64]]:
    import numpy as np

    def decay(seconds: float, tau: float) -> NDArray[np.float64]:
        return np.exp(-np.arange(int(seconds * sample_rate)) / (tau * sample_rate))

    t = np.arange(int(0.35 * sample_rate)) / sample_rate
    sweep = 50 + 110 * np.exp(-t / 0.03)  # pitch drops from 160 to 50 Hz
    kick = np.sin(2 * np.pi * np.cumsum(sweep) / sample_rate) * decay(0.35, 0.12)

    n_snare = int(0.25 * sample_rate)
    body = np.sin(2 * np.pi * 190 * np.arange(n_snare) / sample_rate)
    rattle = _band_noise(n_snare, 1000, 8000, sample_rate, rng)
    snare = (0.4 * rattle + 0.8 * body) * decay(0.25, 0.06)

    n_hat = int(0.06 * sample_rate)
    hat = 0.25 * _band_noise(n_hat, 6000, 12000, sample_rate, rng) * decay(0.06, 0.012)
    return {"kick": kick, "snare": snare, "hat": hat}


def _add(dst: NDArray[np.float64], src: NDArray[np.float64], start: int) -> None:
    end = min(dst.shape[0], start + src.shape[0])
    if end > start:
        dst[start:end] += src[: end - start]


def synthesize(
    *,
    bpm: float,
    key: str,
    scale: str,
    seconds: float = 30.0,
    sample_rate: int = SAMPLE_RATE,
    seed: int = 0,
) -> Signal:
    """An unscaled stereo ``(n, 2)`` float32 track with the given tempo, key and scale."""
    import numpy as np

    if key not in PITCH_CLASSES:
        raise ValueError(f"key must be one of {', '.join(PITCH_CLASSES)} (sharps), not {key!r}")
    if scale not in _SCALES:
        raise ValueError(f"scale must be major or minor, not {scale!r}")
    rng = np.random.default_rng(seed)
    n = int(seconds * sample_rate)
    left = np.zeros(n)
    right = np.zeros(n)

    beat = 60.0 / bpm
    beats = int(seconds / beat) + 1
    hits = _drum_hits(sample_rate, rng)
    for b in range(beats):
        start = round(b * beat * sample_rate)
        for channel in (left, right):
            _add(channel, hits["kick"], start)
            if b % 4 in (1, 3):
                _add(channel, hits["snare"], start)
        _add(left, 0.7 * hits["hat"], start)
        _add(right, hits["hat"], round((b + 0.5) * beat * sample_rate))
        _add(left, hits["hat"], round((b + 0.5) * beat * sample_rate))
        _add(right, 0.7 * hits["hat"], start)

    tonic = PITCH_CLASSES.index(key)
    steps = _SCALES[scale]
    bar = 4 * beat
    bar_n = round(bar * sample_rate)
    beat_n = round(beat * sample_rate)
    tones: dict[int, NDArray[np.float64]] = {}  # one rendering per distinct pitch
    env = _envelope(bar_n, sample_rate, 0.02, 0.05)
    bass_env = _envelope(beat_n, sample_rate, 0.005, 0.08) * np.exp(
        -np.arange(beat_n) / (0.4 * sample_rate)
    )
    chords: list[tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]] = []
    for degree in _PROGRESSION:
        notes = [tonic + steps[(degree + i) % 7] + 12 * ((degree + i) // 7) for i in (0, 2, 4)]
        for pitch in notes:
            if pitch not in tones:
                tones[pitch] = _tone(60 + pitch, bar_n, sample_rate, 8) * env
        root, third, fifth = (tones[p] for p in notes)
        pad_l = root + 0.6 * third + 0.8 * fifth  # a slightly different balance per side
        pad_r = root + 0.8 * third + 0.6 * fifth
        bass = _tone(36 + notes[0] % 12, beat_n, sample_rate, 6) * bass_env
        chords.append((pad_l, pad_r, bass))
    for b in range(int(seconds / bar) + 1):
        pad_l, pad_r, bass = chords[b % len(chords)]
        start = round(b * bar * sample_rate)
        _add(left, 0.18 * pad_l, start)
        _add(right, 0.18 * pad_r, start)
        for i in range(4):
            bass_start = round((b * 4 + i) * beat * sample_rate)
            _add(left, 0.5 * bass, bass_start)
            _add(right, 0.5 * bass, bass_start)
    return np.stack([left, right], axis=1).astype(np.float32)


def scale_to_lufs(
    stereo: Signal, target_lufs: float, sample_rate: int = SAMPLE_RATE
) -> tuple[Signal, float]:
    """Scale ``stereo`` to ``target_lufs``; returns the signal and its measured loudness.

    Peaks above -1 dBFS are soft-limited and the gain re-measured, so that the result is within
    a few hundredths of a LU of the target without clipping in any encoder.
    """
    import numpy as np

    out = stereo.astype(np.float64)
    measured = measure_lufs(stereo, sample_rate)
    for _ in range(6):
        out *= 10 ** ((target_lufs - measured) / 20)
        if np.max(np.abs(out)) > _PEAK_CEILING:
            out = _PEAK_CEILING * np.tanh(out / _PEAK_CEILING)
        measured = measure_lufs(out.astype(np.float32), sample_rate)
        if abs(measured - target_lufs) < 0.02:
            break
    return out.astype(np.float32), measured


def encode(
    stereo: Signal,
    path: Path,
    *,
    fmt: str,
    sample_rate: int = SAMPLE_RATE,
    tags: dict[str, str] | None = None,
) -> None:
    """Encode a float ``(n, 2)`` signal to ``path`` as ``fmt`` (see :data:`FORMATS`), tagged."""
    import av
    import numpy as np

    codec, rate, _ = FORMATS[fmt]
    options = _ENCODER_OPTIONS.get(codec, {})
    with av.open(str(path), "w") as out:
        out.metadata.update(tags or {})
        stream = out.add_stream(codec, rate=rate or sample_rate, options=options)
        assert isinstance(stream, av.AudioStream)
        stream.layout = "stereo"
        if codec in ("libmp3lame", "aac", "vorbis"):
            stream.bit_rate = 192_000
        planar = np.ascontiguousarray(stereo.T, dtype=np.float32)
        chunk = 4096
        for start in range(0, planar.shape[1], chunk):
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(planar[:, start : start + chunk]),
                format="fltp",
                layout="stereo",
            )
            frame.sample_rate = sample_rate
            frame.pts = start
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


@functools.lru_cache(maxsize=4)
def _render(
    bpm: float, key: str, scale: str, seconds: float, lufs: float, seed: int
) -> tuple[Signal, float]:
    """Synthesise and scale once for the several formats a test encodes the same track in."""
    signal, measured = scale_to_lufs(
        synthesize(bpm=bpm, key=key, scale=scale, seconds=seconds, seed=seed), lufs
    )
    signal.setflags(write=False)
    return signal, measured


def make_track(
    path: str | Path,
    *,
    bpm: float,
    key: str,
    scale: str,
    seconds: float = 30.0,
    loudness_lufs: float = -14.0,
    fmt: str | None = None,
    artist: str = "Mediamill Synth",
    title: str | None = None,
    album: str = "Ground Truth",
    seed: int = 0,
) -> TrackSpec:
    """Synthesise, scale, encode and tag one track; ``fmt`` defaults to the path's suffix."""
    path = Path(path)
    fmt = fmt or path.suffix.lstrip(".").lower()
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")
    title = title or f"{key} {scale} at {bpm:g} BPM"
    signal, reference = _render(bpm, key, scale, seconds, loudness_lufs, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    encode(signal, path, fmt=fmt, tags={"artist": artist, "title": title, "album": album})
    return TrackSpec(
        path=path,
        bpm=bpm,
        key=key,
        scale=scale,
        seconds=seconds,
        loudness_lufs=loudness_lufs,
        reference_lufs=reference,
        fmt=fmt,
        artist=artist,
        title=title,
        album=album,
    )


def make_music_library(
    root: str | Path,
    n: int = 40,
    seed: int = 0,
    *,
    seconds: float = 30.0,
    formats: Sequence[str] = ("mp3", "flac", "m4a", "ogg"),
) -> list[TrackSpec]:
    """Write ``n`` tracks of random tempo/key/loudness under ``root/<artist>/<album>/``.

    The same ``seed`` gives the same library; the specs are the ground truth of each file.
    """
    root = Path(root)
    rng = random.Random(seed)
    specs: list[TrackSpec] = []
    for i in range(n):
        artist = f"Artist {i % 7:02d}"
        album = f"Album {i % 3}"
        fmt = formats[i % len(formats)]
        bpm = float(rng.randrange(80, 161))
        key = rng.choice(PITCH_CLASSES)
        scale = rng.choice(("major", "minor"))
        lufs = float(rng.choice((-8, -11, -14, -18, -23)))
        title = f"Track {i:03d} {key} {scale}"
        path = root / artist / album / f"{i:03d} - {title}{FORMATS[fmt][2]}"
        specs.append(
            make_track(
                path,
                bpm=bpm,
                key=key,
                scale=scale,
                seconds=seconds,
                loudness_lufs=lufs,
                fmt=fmt,
                artist=artist,
                title=title,
                album=album,
                seed=seed * 1_000_003 + i,
            )
        )
    return specs


def as_json(spec: TrackSpec) -> dict[str, Any]:
    """A JSON-able view of a spec (benchmarks store it next to the library)."""
    return {
        "path": str(spec.path),
        "bpm": spec.bpm,
        "key": spec.key,
        "scale": spec.scale,
        "seconds": spec.seconds,
        "loudness_lufs": spec.loudness_lufs,
        "reference_lufs": round(spec.reference_lufs, 3),
        "fmt": spec.fmt,
        "tags": {"artist": spec.artist, "title": spec.title, "album": spec.album},
    }
