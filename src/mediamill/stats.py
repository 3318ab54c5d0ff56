"""Library statistics and failure causes, as the CLI, the API and the page show them.

Everything is aggregated in SQL (three GROUP BY queries over indexes, never over the results'
JSON: the facets statistics count are kept beside each result, see ``mediamill.facets``); only
the small groups come back to Python, so 100,000 items answer in a fraction of a second."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from sqlalchemy import TextClause, func, select, text

from mediamill.catalog.models import Item
from mediamill.facets import BIT_RATES, TOP_BIT_RATE, container_name, resolution_name

if TYPE_CHECKING:
    from mediamill.catalog.db import Catalog

__all__ = ["container_name", "library_stats", "resolution_name"]


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


def _counts(pairs: Iterable[tuple[str, int]]) -> list[dict[str, Any]]:
    """``[{"name": ..., "count": ...}]``, merged by name, the biggest first."""
    merged: Counter[str] = Counter()
    for name, n in pairs:
        merged[name] += int(n)
    return [{"name": name, "count": n} for name, n in merged.most_common()]


def library_stats(catalog: Catalog, library_id: int) -> dict[str, Any]:
    """Every figure of a library's statistics view, aggregated in SQL: item counts, then one
    pass over the results' facets (``mediamill.facets``, kept as each result is written, read
    from one index) grouped by processor, status and facets, then the failures' causes."""
    with catalog.engine.connect() as conn:
        present = (Item.c.library_id == library_id, Item.c.present.is_(True))
        items, size = conn.execute(
            select(func.count(), func.coalesce(func.sum(Item.c.size), 0)).where(*present)
        ).one()
        kinds = conn.execute(
            select(Item.c.kind, func.count()).where(*present).group_by(Item.c.kind)
        )
        args = {"lib": library_id, "present": True}
        grouped = conn.execute(_results_query(catalog.dialect, FACET_GROUPS), args).all()
        failures = conn.execute(_results_query(catalog.dialect, FAILURES), args).all()
    by_processor: dict[str, Counter[str]] = {}
    for processor, status, _, n, _ in grouped:
        by_processor.setdefault(processor, Counter())[status] += int(n)
    causes: dict[str, list[tuple[str | None, int]]] = {}
    for processor, error, n in failures:
        causes.setdefault(processor, []).append((error, int(n)))
    ok = [(p, json.loads(f), int(n), d) for p, st, f, n, d in grouped if st == "ok" and f]
    return {
        "items": int(items),
        "size": int(size),
        "kinds": _counts((k, n) for k, n in kinds),
        "results": {p: dict(counts) for p, counts in by_processor.items()},
        **_probe_stats([(f, n, d) for p, f, n, d in ok if p == "probe"]),
        **_audio_stats([(f, n) for p, f, n, _ in ok if p == "audio"]),
        "failures": {
            processor: [{"name": c, "count": n} for c, n in group_causes(pairs)]
            for processor, pairs in causes.items()
        },
    }


#: a library's results by processor, status and facets, in the index's order
FACET_GROUPS = """
    SELECT r.processor, r.status, r.facets, count(*), sum(r.media_seconds) FROM {results}
    WHERE i.library_id = :lib AND i.present = :present
    GROUP BY r.processor, r.status, r.facets"""
#: a library's failures by processor and error (grouped into causes in Python)
FAILURES = """
    SELECT r.processor, r.error, count(*) FROM {results}
    WHERE i.library_id = :lib AND i.present = :present AND r.status = 'failed'
    GROUP BY r.processor, r.error"""


def _results_query(dialect: str, sql: str) -> TextClause:
    """``sql`` over the results of a library's present items. On SQLite, ``CROSS JOIN`` keeps
    the results the outer loop, read from ``ix_results_facets`` alone in group order (left to
    itself, its planner walks the items and reads each result's row, JSON and all: 4x
    slower). PostgreSQL plans the plain join well, and has no ``CROSS JOIN ... ON``."""
    join = "CROSS JOIN" if dialect == "sqlite" else "JOIN"
    return text(sql.format(results=f"results r {join} items i ON i.id = r.item_id"))


def _probe_stats(groups: list[tuple[dict[str, Any], int, float | None]]) -> dict[str, Any]:
    """Containers, codecs by stream type, video resolutions, bit-rate bands and the total
    duration from the probe results' facet groups."""
    containers: list[tuple[str, int]] = []
    bands: list[tuple[str, int]] = []
    codecs: dict[str, list[tuple[str, int]]] = {}
    heights: list[tuple[str, int]] = []
    duration = 0.0
    for facets, n, seconds in groups:
        containers.append((facets.get("container", "unknown"), n))
        bands.append((facets.get("bit_rate", "unknown"), n))
        duration += float(seconds or 0)
        for kind, codec, resolution, count in facets.get("streams", ()):
            codecs.setdefault(kind, []).append((codec, n * count))
            if kind == "video":
                heights.append((resolution, n * count))
    order = {label: i for i, label in enumerate(label for _, label in BIT_RATES)}
    order[TOP_BIT_RATE] = len(order)
    return {
        "duration": duration,
        "containers": _counts(containers),
        "codecs": {kind: _counts(pairs) for kind, pairs in sorted(codecs.items())},
        "resolutions": _counts(heights),
        "bit_rates": sorted(_counts(bands), key=lambda row: order.get(row["name"], len(order))),
    }


def _audio_stats(groups: list[tuple[dict[str, Any], int]]) -> dict[str, Any]:
    """Tempo in 10-BPM bands and keys (Camelot and letter) of analysed music."""
    bands: Counter[int] = Counter()
    keys: list[tuple[str, int]] = []
    for facets, n in groups:
        if facets.get("tempo") is not None:
            bands[int(facets["tempo"])] += n
        if facets.get("key"):
            keys.append((facets["key"], n))
    return {
        "tempo": [{"name": f"{b}-{b + 9}", "count": n} for b, n in sorted(bands.items())],
        "keys": _counts(keys),
    }
