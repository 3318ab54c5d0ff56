"""Playlists from analysed tracks: tempo filter, Camelot key order, energy ramp, similarity.

Everything here is a pure function over :class:`Track` values (built from the ``audio``
processor's data); :func:`write_m3u8` is the only one that touches the disk.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Literal

PITCH_CLASSES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
EnergyRamp = Literal["up", "down", "updown"]
ENERGY_RAMPS: tuple[EnergyRamp, ...] = ("up", "down", "updown")
#: how many orderings the key search may try before settling for the closest one
_SEARCH_BUDGET = 20_000


@dataclass(frozen=True, slots=True)
class Track:
    """One analysed track; ``path`` is relative to the library root (POSIX separators)."""

    path: str
    duration: float = 0.0
    artist: str | None = None
    title: str | None = None
    bpm: float | None = None
    key: str | None = None
    scale: str | None = None
    loudness: float | None = None
    energy: float | None = None
    danceability: float | None = None
    mfcc: tuple[float, ...] = ()

    @classmethod
    def from_data(cls, path: str, data: Mapping[str, Any]) -> Track:
        """A track from the ``audio`` processor's ``data`` for the item at ``path``."""
        tags = data.get("tags") or {}
        return cls(
            path=path,
            duration=float(data.get("duration") or 0.0),
            artist=tags.get("artist"),
            title=tags.get("title"),
            bpm=_opt_float(data.get("bpm")),
            key=data.get("key"),
            scale=data.get("scale"),
            loudness=_opt_float(data.get("loudness")),
            energy=_opt_float(data.get("energy")),
            danceability=_opt_float(data.get("danceability")),
            mfcc=tuple(float(v) for v in data.get("mfcc") or ()),
        )

    @property
    def camelot(self) -> Camelot | None:
        if self.key is None or self.scale is None:
            return None
        return camelot(self.key, self.scale)


@dataclass(frozen=True, slots=True, order=True)
class Camelot:
    """A position on the Camelot wheel: ``number`` 1-12 and ``letter`` A (minor) or B (major)."""

    number: int
    letter: str

    def __str__(self) -> str:
        return f"{self.number}{self.letter}"


@dataclass(slots=True)
class Playlist:
    """Ordered tracks plus notes for the user (e.g. where no key-compatible step existed)."""

    tracks: list[Track]
    notes: list[str] = field(default_factory=list)


def camelot(key: str, scale: str) -> Camelot:
    """The Camelot code of a key: C major is 8B, A minor is 8A, G major 9B, E minor 9A."""
    if key not in PITCH_CLASSES:
        raise ValueError(f"unknown key {key!r}; expected one of {', '.join(PITCH_CLASSES)}")
    pc = PITCH_CLASSES.index(key)
    if scale == "major":
        letter = "B"
    elif scale == "minor":
        letter, pc = "A", (pc + 3) % 12  # a minor key sits with its relative major
    else:
        raise ValueError(f"unknown scale {scale!r}; expected major or minor")
    return Camelot((8 + 7 * pc - 1) % 12 + 1, letter)


def camelot_compatible(a: Camelot, b: Camelot) -> bool:
    """Harmonic mixing rule: same code, its relative (same number), or one step (same letter)."""
    if a.number == b.number:
        return True
    return a.letter == b.letter and _wheel_steps(a.number, b.number) == 1


def camelot_distance(a: Camelot, b: Camelot) -> int:
    """Steps around the wheel, plus one to change letter: 0 same key, 1 compatible neighbour."""
    return _wheel_steps(a.number, b.number) + (a.letter != b.letter)


def _wheel_steps(a: int, b: int) -> int:
    d = abs(a - b) % 12
    return min(d, 12 - d)


def filter_bpm(
    tracks: Iterable[Track], low: float, high: float, *, octave: bool = False
) -> list[Track]:
    """Tracks with ``low <= bpm <= high``; with ``octave``, half or double tempo also counts."""
    if low > high:
        raise ValueError(f"empty tempo range {low}-{high}")
    factors = (1.0, 0.5, 2.0) if octave else (1.0,)
    return [
        t for t in tracks if t.bpm is not None and any(low <= t.bpm * f <= high for f in factors)
    ]


def order_by_energy(tracks: Iterable[Track], ramp: EnergyRamp = "up") -> list[Track]:
    """Tracks by energy: ``up`` ascending, ``down`` descending, ``updown`` rising to a peak
    and falling again (both sides monotonic). Tracks without energy go last."""
    tracks = list(tracks)
    known = sorted((t for t in tracks if t.energy is not None), key=_energy_key)
    unknown = [t for t in tracks if t.energy is None]
    if ramp == "up":
        ordered = known
    elif ramp == "down":
        ordered = known[::-1]
    elif ramp == "updown":
        ordered = known[0::2] + known[1::2][::-1]
    else:
        raise ValueError(f"unknown energy ramp {ramp!r}; expected one of {ENERGY_RAMPS}")
    return ordered + unknown


def _energy_key(track: Track) -> tuple[float, str]:
    return (track.energy if track.energy is not None else 0.0, track.path)


def order_by_key(tracks: Sequence[Track], start: Track | None = None) -> Playlist:
    """Order tracks so that each next one is Camelot-compatible with the one before.

    Tracks sharing a key play together (by tempo). When no fully compatible order exists (or
    none is found within a bounded search), the closest next key is taken and a note names
    each jump. Tracks without a key go last, with a note.
    """
    keyed = [t for t in tracks if t.camelot is not None]
    unkeyed = [t for t in tracks if t.camelot is None]
    groups: dict[Camelot, list[Track]] = {}
    for t in sorted(keyed, key=lambda t: (t.bpm or 0.0, t.path)):
        groups.setdefault(_code(t), []).append(t)
    notes: list[str] = []
    if groups:
        first = _code(start) if start is not None and start.camelot is not None else None
        path = _compatible_walk(list(groups), first) or _closest_walk(list(groups), first)
        ordered = [t for code in path for t in groups[code]]
        for a, b in itertools.pairwise(path):
            if not camelot_compatible(a, b):
                notes.append(f"no key-compatible step from {a} to {b}: took the closest key")
    else:
        ordered = []
    if unkeyed:
        notes.append(f"{len(unkeyed)} track(s) without a key were put at the end")
    return Playlist(ordered + unkeyed, notes)


def _code(track: Track) -> Camelot:
    code = track.camelot
    assert code is not None
    return code


def _compatible_walk(codes: list[Camelot], first: Camelot | None) -> list[Camelot] | None:
    """A path through every code with compatible steps (depth-first, bounded), or None."""
    budget = [_SEARCH_BUDGET]
    starts = [first] if first is not None and first in codes else sorted(codes)

    def extend(path: list[Camelot], left: set[Camelot]) -> list[Camelot] | None:
        if not left:
            return path
        budget[0] -= 1
        if budget[0] < 0:
            return None
        here = path[-1]
        # neighbours with fewest onward options first (Warnsdorff): finds paths quickly
        options = sorted(
            (c for c in left if camelot_compatible(here, c)),
            key=lambda c: (sum(camelot_compatible(c, o) for o in left if o != c), c),
        )
        for code in options:
            found = extend([*path, code], left - {code})
            if found is not None:
                return found
        return None

    for code in starts:
        found = extend([code], set(codes) - {code})
        if found is not None:
            return found
    return None


def _closest_walk(codes: list[Camelot], first: Camelot | None) -> list[Camelot]:
    """Greedy nearest-key walks from every start; the one with the fewest and smallest jumps."""
    starts = [first] if first is not None and first in codes else sorted(codes)
    best: tuple[tuple[int, int], list[Camelot]] | None = None
    for start in starts:
        left = set(codes) - {start}
        path = [start]
        while left:
            here = path[-1]
            path.append(min(left, key=lambda c: (camelot_distance(here, c), c)))
            left.discard(path[-1])
        steps = list(itertools.pairwise(path))
        cost = (
            sum(not camelot_compatible(a, b) for a, b in steps),
            sum(camelot_distance(a, b) for a, b in steps),
        )
        if best is None or cost < best[0]:
            best = (cost, path)
    assert best is not None
    return best[1]


def feature_vector(track: Track) -> list[float]:
    """The raw features for similarity: tempo, key on the wheel (cos, sin, major/minor),
    loudness, energy, danceability, then the MFCC means. Missing values are NaN."""
    nan = math.nan
    code = track.camelot
    if code is not None:
        angle = 2 * math.pi * (code.number - 1) / 12
        key_part = [math.cos(angle), math.sin(angle), 1.0 if code.letter == "B" else 0.0]
    else:
        key_part = [nan, nan, nan]
    scalars = [track.bpm, track.loudness, track.energy, track.danceability]
    head = [nan if v is None else float(v) for v in scalars[:1]]
    tail = [nan if v is None else float(v) for v in scalars[1:]]
    return head + key_part + tail + list(track.mfcc)


def _group_weights(n_mfcc: int) -> list[float]:
    """Each feature group counts once: key (3 values) and MFCC (n values) share one weight."""
    key_w = 1 / math.sqrt(3)
    mfcc_w = 1 / math.sqrt(n_mfcc) if n_mfcc else 0.0
    return [1.0, key_w, key_w, key_w, 1.0, 1.0, 1.0] + [mfcc_w] * n_mfcc


def similar_to(tracks: Sequence[Track], seed: Track | str, n: int = 20) -> list[Track]:
    """The ``n`` tracks nearest to ``seed``, nearest first, never the seed itself.

    Features are z-score normalised over ``tracks``; a feature missing on either side is left
    out of that distance. Ties are broken by path, so the result is stable.
    """
    seed_path = seed if isinstance(seed, str) else seed.path
    seed_track = next((t for t in tracks if t.path == seed_path), None)
    if seed_track is None:
        if isinstance(seed, str):
            raise LookupError(f"{seed_path!r} is not among the analysed tracks")
        seed_track = seed
    n_mfcc = min((len(t.mfcc) for t in tracks), default=0)
    n_mfcc = min(n_mfcc, len(seed_track.mfcc))

    def vec(t: Track) -> list[float]:
        return feature_vector(t)[: 7 + n_mfcc]

    rows = [vec(t) for t in tracks]
    columns = list(zip(*rows, strict=True)) if rows else []
    stats = [_mean_std(col) for col in columns]
    weights = _group_weights(n_mfcc)
    target = vec(seed_track)

    def distance(row: list[float]) -> float:
        total = 0.0
        for x, y, (_, std), w in zip(row, target, stats, weights, strict=True):
            if math.isnan(x) or math.isnan(y) or std == 0:
                continue
            total += (w * (x - y) / std) ** 2
        return math.sqrt(total)

    scored = [
        (distance(row), t.path, t)
        for row, t in zip(rows, tracks, strict=True)
        if t.path != seed_path
    ]
    scored.sort(key=lambda s: (s[0], s[1]))
    return [t for _, _, t in scored[:n]]


def _mean_std(values: Iterable[float]) -> tuple[float, float]:
    known = [v for v in values if not math.isnan(v)]
    if len(known) < 2:
        return (known[0] if known else 0.0, 0.0)
    mean = sum(known) / len(known)
    return mean, math.sqrt(sum((v - mean) ** 2 for v in known) / len(known))


def build_playlist(
    tracks: Iterable[Track],
    *,
    bpm: tuple[float, float] | None = None,
    octave: bool = False,
    similar: str | None = None,
    key_order: bool = False,
    energy: EnergyRamp | None = None,
    size: int | None = None,
) -> Playlist:
    """Select then order: tempo filter, ``similar`` (the N nearest to that path), ``size``
    cap, then key order or energy ramp (one ordering at a time). Default order is by path."""
    if key_order and energy is not None:
        raise ValueError("choose one ordering: key order or energy ramp")
    pool = sorted(tracks, key=lambda t: t.path)
    if bpm is not None:
        seed_track = next((t for t in pool if t.path == similar), None)
        pool = filter_bpm(pool, *bpm, octave=octave)
        if seed_track is not None and seed_track not in pool:
            pool.append(seed_track)  # the seed anchors similarity even outside the range
    if similar is not None:
        pool = similar_to(pool, similar, n=size if size is not None else len(pool))
    elif size is not None:
        pool = pool[:size]
    if key_order:
        return order_by_key(pool)
    if energy is not None:
        pool = order_by_energy(pool, energy)
    return Playlist(pool)


def write_m3u8(tracks: Iterable[Track], out: str | Path, library_root: str | Path) -> Path:
    """Write an extended M3U playlist (UTF-8) with paths relative to the playlist's folder.

    Each entry is ``#EXTINF:<whole seconds>,Artist - Title`` then the path, with POSIX
    separators. Returns the playlist's path.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    text = m3u8_text(tracks, out.resolve().parent, library_root)
    # a name that is not UTF-8 is written with its real bytes: the player must open the file
    out.write_bytes(text.encode("utf-8", "surrogateescape"))
    return out


def m3u8_text(tracks: Iterable[Track], base: str | Path, library_root: str | Path) -> str:
    """The M3U8 text of a playlist that will live in the folder ``base``."""
    root, base = Path(library_root), Path(base)
    lines = ["#EXTM3U"]
    for t in tracks:
        lines.append(f"#EXTINF:{round(t.duration)},{_display(t)}")
        lines.append(_entry_path(root / t.path, base))
    return "\n".join(lines) + "\n"


def _display(track: Track) -> str:
    title = track.title or PurePosixPath(track.path).stem
    text = f"{track.artist} - {title}" if track.artist else title
    return " ".join(text.split())  # no line breaks inside an #EXTINF line


def _entry_path(target: Path, base: Path) -> str:
    target = target.resolve()
    if any(c in str(target) for c in "\r\n"):
        # a line break in a file name would end the entry and start another (injecting a
        # line into the playlist): such a path goes as a file URI, its breaks percent-encoded
        return target.as_uri()
    try:
        rel = os.path.relpath(target, base)
    except ValueError:  # another drive on Windows: only an absolute path can reach it
        return target.as_posix()
    return PurePosixPath(*Path(rel).parts).as_posix()


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


def parse_bpm_range(text: str) -> tuple[float, float]:
    """``"120-130"`` -> ``(120.0, 130.0)``; a single number means that tempo +/- 2 %."""
    low, sep, high = text.partition("-")
    try:
        if not sep:
            bpm = float(low)
            return bpm * 0.98, bpm * 1.02
        return float(low), float(high)
    except ValueError:
        raise ValueError(f"expected a tempo range like 120-130, not {text!r}") from None
