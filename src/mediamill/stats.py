"""Library statistics and failure causes, as the CLI, the API and the page show them.

Everything is aggregated in SQL (a handful of GROUP BY queries); only the small groups come
back to Python, so a library of 100,000 items answers in a fraction of a second."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from sqlalchemy import case, func, select, text

from mediamill.catalog.models import Item, Result
from mediamill.playlists import camelot

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from mediamill.catalog.db import Catalog


def cause_of(error: str | None) -> str:
    """The cause of a failure without its particulars: ``"not a readable media file: moov atom
    not found"`` -> ``"not a readable media file"``; causes are grouped by it."""
    if not error:
        return "failed (no cause recorded)"
    head = error.split(":", 1)[0].strip()
    return head or error.strip()


def group_causes(errors: Iterable[tuple[str | None, int]]) -> list[tuple[str, int]]:
    """``(error, count)`` pairs -> ``(cause, count)``, the most common cause first."""
    counts: Counter[str] = Counter()
    for error, n in errors:
        counts[cause_of(error)] += n
    return counts.most_common()


def causes_line(causes: list[tuple[str, int]], limit: int = 5) -> str:
    """``"12 x not a media file, 3 x truncated"`` (and ``"+ 2 more causes"``)."""
    text = ", ".join(f"{n} x {cause}" for cause, n in causes[:limit])
    if len(causes) > limit:
        text += f", + {len(causes) - limit} more causes"
    return text


#: FFmpeg's container names as people say them
CONTAINERS = {
    "mov,mp4,m4a,3gp,3g2,mj2": "MP4",
    "matroska,webm": "Matroska",
    "mp3": "MP3",
    "flac": "FLAC",
    "ogg": "Ogg",
    "wav": "WAV",
    "aiff": "AIFF",
    "asf": "WMA/WMV",
    "avi": "AVI",
    "mpegts": "MPEG-TS",
    "mpeg": "MPEG-PS",
    "aac": "AAC",
    "flv": "FLV",
}
#: the heights people name a video resolution by, tallest first
RESOLUTIONS = ((2160, "4K"), (1440, "1440p"), (1080, "1080p"), (720, "720p"), (576, "576p"))
#: bit-rate bands in bits per second (upper bound, label)
BIT_RATES = (
    (128_000, "under 128 kb/s"),
    (320_000, "128-320 kb/s"),
    (1_000_000, "320 kb/s-1 Mb/s"),
    (5_000_000, "1-5 Mb/s"),
    (15_000_000, "5-15 Mb/s"),
)


def container_name(name: str | None) -> str:
    """``"mov,mp4,m4a,3gp,3g2,mj2"`` -> ``"MP4"``; an unknown one as FFmpeg says it."""
    if not name:
        return "unknown"
    return CONTAINERS.get(name, name.split(",")[0].upper())


def resolution_name(width: int | None, height: int | None) -> str:
    """The name of a frame size; a film cropped to 1920x800 is still 1080p (by its width)."""
    lines = max(height or 0, (width or 0) * 9 // 16)
    if not lines:
        return "unknown"
    for least, label in RESOLUTIONS:
        if lines >= least * 0.95:
            return label
    return "SD"


def _counts(pairs: Iterable[tuple[str, int]]) -> list[dict[str, Any]]:
    """``[{"name": ..., "count": ...}]``, merged by name, the biggest first."""
    merged: Counter[str] = Counter()
    for name, n in pairs:
        merged[name] += int(n)
    return [{"name": name, "count": n} for name, n in merged.most_common()]


def library_stats(catalog: Catalog, library_id: int) -> dict[str, Any]:
    """Every figure of a library's statistics view, aggregated in SQL."""
    with catalog.engine.connect() as conn:
        present = (Item.library_id == library_id, Item.present.is_(True))
        items, size = conn.execute(
            select(func.count(), func.coalesce(func.sum(Item.size), 0)).where(*present)
        ).one()
        kinds = conn.execute(select(Item.kind, func.count()).where(*present).group_by(Item.kind))
        probe = _probe_stats(conn, catalog.dialect, present, library_id)
        audio = _audio_stats(conn, present)
        # one pass for every processor's counts and its failures' causes
        error = case((Result.status == "failed", Result.error), else_=None)
        results = conn.execute(
            select(Result.processor, Result.status, error, func.count())
            .join(Item, Item.id == Result.item_id)
            .where(*present)
            .group_by(Result.processor, Result.status, error)
        ).all()
    by_processor: dict[str, Counter[str]] = {}
    causes: dict[str, list[tuple[str | None, int]]] = {}
    for processor, status, cause, n in results:
        by_processor.setdefault(processor, Counter())[status] += int(n)
        if status == "failed":
            causes.setdefault(processor, []).append((cause, int(n)))
    return {
        "items": int(items),
        "size": int(size),
        "kinds": _counts((k, n) for k, n in kinds),
        "results": {p: dict(counts) for p, counts in by_processor.items()},
        **probe,
        **audio,
        "failures": {
            processor: [{"name": c, "count": n} for c, n in group_causes(pairs)]
            for processor, pairs in causes.items()
        },
    }


def _probe_stats(
    conn: Connection, dialect: str, present: tuple[Any, ...], library_id: int
) -> dict[str, Any]:
    probed = (*present, Result.processor == "probe", Result.status == "ok")
    join = Item.__table__.join(Result.__table__, Result.item_id == Item.id)
    # an image has no container: its format (JPEG, PNG) says what it is
    container = func.coalesce(
        Result.data["container"].as_string(), Result.data[("image", "format")].as_string()
    )
    bit_rate = Result.data["bit_rate"].as_float()
    band = case(
        *((bit_rate < upper, label) for upper, label in BIT_RATES),
        (bit_rate.is_(None), "unknown"),
        else_="over 15 Mb/s",
    )
    # containers, bit-rate bands and the total duration in one pass over the results
    rows = conn.execute(
        select(container, band, func.count(), func.sum(Result.data["duration"].as_float()))
        .select_from(join)
        .where(*probed)
        .group_by(container, band)
    ).all()
    duration = sum(float(d or 0) for *_, d in rows)
    containers = [(c, n) for c, _, n, _ in rows]
    bands = [(b, n) for _, b, n, _ in rows]
    streams = conn.execute(_streams_query(dialect), {"lib": library_id}).all()
    codecs: dict[str, list[tuple[str, int]]] = {}
    heights: list[tuple[str, int]] = []
    for kind, codec, width, height, n in streams:
        codecs.setdefault(kind or "other", []).append((codec or "unknown", n))
        if kind == "video":
            heights.append((resolution_name(width, height), n))
    order = {label: i for i, label in enumerate(label for _, label in BIT_RATES)}
    return {
        "duration": float(duration),
        "containers": _counts((container_name(c), n) for c, n in containers),
        "codecs": {kind: _counts(pairs) for kind, pairs in sorted(codecs.items())},
        "resolutions": _counts(heights),
        "bit_rates": sorted(
            _counts(bands),
            key=lambda row: order.get(row["name"], len(order)),
        ),
    }


def _streams_query(dialect: str) -> Any:
    """Streams of probed items by (type, codec, width, height), cover art left out: one JSON unnest
    per dialect (SQLite's json_each, PostgreSQL's json_array_elements)."""
    if dialect == "postgresql":
        sql = """
            SELECT s->>'type', s->>'codec', CAST(s->>'width' AS INTEGER),
                   CAST(s->>'height' AS INTEGER), count(*)
            FROM items i JOIN results r ON r.item_id = i.id,
                 json_array_elements(r.data->'streams') s
            WHERE i.library_id = :lib AND i.present AND r.processor = 'probe'
              AND r.status = 'ok' AND COALESCE(s->>'attached_pic', 'false') = 'false'
            GROUP BY 1, 2, 3, 4"""
    else:
        sql = """
            SELECT json_extract(s.value, '$.type'), json_extract(s.value, '$.codec'),
                   json_extract(s.value, '$.width'), json_extract(s.value, '$.height'), count(*)
            FROM items i JOIN results r ON r.item_id = i.id,
                 json_each(r.data, '$.streams') s
            WHERE i.library_id = :lib AND i.present AND r.processor = 'probe'
              AND r.status = 'ok' AND NOT COALESCE(json_extract(s.value, '$.attached_pic'), 0)
            GROUP BY 1, 2, 3, 4"""
    return text(sql)


def _audio_stats(conn: Connection, present: tuple[Any, ...]) -> dict[str, Any]:
    """Tempo in 10-BPM bands and keys (Camelot and letter) of analysed music."""
    analysed = (*present, Result.processor == "audio", Result.status == "ok")
    join = Item.__table__.join(Result.__table__, Result.item_id == Item.id)
    bpm = func.round(Result.data["bpm"].as_float())
    key, scale = Result.data["key"].as_string(), Result.data["scale"].as_string()
    rows = conn.execute(
        select(bpm, key, scale, func.count())
        .select_from(join)
        .where(*analysed)
        .group_by(bpm, key, scale)
    ).all()
    tempos = [(b, n) for b, _, _, n in rows]
    keys: Counter[tuple[str, str]] = Counter()
    for _, k, sc, n in rows:
        keys[(k, sc)] += int(n)
    bands: Counter[int] = Counter()
    for value, n in tempos:
        if value is not None:
            bands[int(value) // 10 * 10] += int(n)
    named = []
    for (k, s), n in keys.items():
        try:
            code = str(camelot(k, s))
        except (ValueError, TypeError):
            code = "?"
        named.append((f"{code} {k} {s}", n))
    return {
        "tempo": [{"name": f"{b}-{b + 9}", "count": n} for b, n in sorted(bands.items())],
        "keys": _counts(named),
    }
