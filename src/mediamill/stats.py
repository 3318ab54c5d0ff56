"""Library statistics and failure causes, as the CLI, the API and the page show them.

Everything is aggregated in SQL (a handful of GROUP BY queries); only the small groups come
back to Python, so a library of 100,000 items answers in a fraction of a second."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable


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
