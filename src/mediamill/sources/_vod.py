"""What VOD sources put in ``SourceEntry.meta``, and helpers to read messy provider JSON.

Movie meta (key ``movie/<provider id>``): ``id``, ``name`` (raw provider name), ``title``,
``year``, ``plot``, ``rating``, ``genre``, ``tmdb_id``, ``imdb_id``, ``thumb``, ``category``,
``url``, ``stream_id``, and ``ambiguous: True`` when another movie cleans to the same name.

Episode meta (key ``episode/<provider id>``): ``id``, ``title`` (episode title, may be
empty), ``season``, ``episode``, ``plot``, ``aired``, ``rating``, ``tmdb_id``, ``imdb_id``,
``thumb``, ``url``, ``stream_id``, ``ambiguous`` (same season/episode twice in one show), and
the show: ``show``, ``show_year``, ``show_id``, ``show_plot``, ``show_genre``,
``show_rating``, ``show_thumb``, ``show_tmdb_id``, ``show_imdb_id``, ``show_ambiguous``.

Absent values are left out rather than stored as ``None`` so the catalog fingerprint only
changes when something real changes.

Finding duplicate names needs the whole list, but not the whole list in memory:
:func:`flag_duplicates` keeps one id per name and parks the metadata in a temp file until
the list is read.
"""

from __future__ import annotations

import logging
import marshal
import math
import tempfile
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal
from typing import Any

from mediamill.sources.base import AnswerDigest, SourceEntry, SourceError
from mediamill.strm.names import (
    is_placeholder_id,
    split_episode,
    split_year,
    strip_prefix,
    title_key,
)

log = logging.getLogger(__name__)


#: digit strings up to this long are exact as floats too, so ``int(text)`` is what
#: ``int(float(text))`` gives; longer ones take the float path, as they always did
_EXACT_DIGITS = 15


def as_str(value: Any) -> str | None:
    """A stripped non-empty string, or ``None`` (numbers become their text)."""
    if type(value) is str:  # the common case, first (a provider row has dozens of fields)
        return value.strip() or None
    if value is None or isinstance(value, (bool, dict, list)):
        return None
    if isinstance(value, Decimal):  # a streamed JSON number: written as json.loads would
        value = float(value)
    text = str(value).strip()
    return text or None


def as_int(value: Any) -> int | None:
    """An int from ``3``, ``"3"``, ``"03"``, ``3.0``; ``None`` for anything else."""
    if type(value) is str:
        text = value.strip()
        if text.isascii() and text.isdigit() and len(text) <= _EXACT_DIGITS:
            return int(text)
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    try:
        number = float(str(value).strip())
    except ValueError:
        return None
    return int(number) if math.isfinite(number) and number == int(number) else None


def as_float(value: Any) -> float | None:
    """A finite float from numbers or numeric strings; ``None`` (and 0 means unknown)."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(str(value).strip().replace(",", "."))
    except ValueError:
        return None
    return round(number, 2) if math.isfinite(number) and number > 0 else None


def as_year(value: Any) -> int | None:
    """A plausible year from ``2019``, ``"2019"``, ``"2019-05-01"``."""
    text = as_str(value)
    if text is None:
        return None
    year = as_int(text[:4])
    return year if year is not None and 1870 <= year <= 2199 else None


def as_id(value: Any) -> str | None:
    """A provider id as text (``123``, ``"123"`` and ``123.0`` are the same id)."""
    number = as_int(value)
    return str(number) if number is not None else as_str(value)


def as_ext_id(value: Any) -> str | None:
    """A TMDB/IMDb/TVDB id, or ``None`` for the placeholders providers send instead of
    nothing (``""``, ``0``, ``"0"``, ``tt0000000``): written as a ``uniqueid``, a placeholder
    sends scrapers to the wrong title."""
    ident = as_id(value)
    return None if ident is None or is_placeholder_id(ident) else ident


def as_rating(value: Any, five_based: Any = None) -> float | None:
    """A rating out of 10: ``rating`` or, when it is empty or 0, ``rating_5based`` doubled."""
    rating = as_float(value)
    if rating is None:
        half = as_float(five_based)
        rating = round(half * 2, 2) if half is not None and half <= 5 else None
    return rating


def first_text(mapping: Any, *keys: str) -> str | None:
    """The first non-empty text among ``mapping[key]`` for ``keys`` (``None`` if none)."""
    if not isinstance(mapping, dict):
        return None
    for key in keys:
        text = as_str(mapping.get(key))
        if text:
            return text
    return None


def episode_title(raw: str, show: str) -> tuple[str, int | None, int | None]:
    """The episode's own title and the season and episode a raw provider title carries.

    Panels title episodes ``"Show - S01E01 - Pilot"`` (Dispatcharr stores that as the
    episode's name), sometimes only the show's name: the title is what follows the
    ``SxxEyy`` mark, and ``""`` when nothing but the show's name is left. Every VOD source
    cleans titles here, so one catalog names its episodes the same through any of them.
    """
    parsed = split_episode(raw)
    title = parsed[3] if parsed else raw.strip()
    season, number = (parsed[1], parsed[2]) if parsed else (None, None)
    names = {show.casefold(), strip_prefix(show).casefold()} if show else set()
    if title.casefold() in names or (parsed and not title):
        title = ""
    return title, season, number


def title_and_year(name: str, year: Any = None) -> tuple[str, int | None]:
    """Title without its ``(2019)`` suffix, and the year (the explicit field wins)."""
    title, suffix_year = split_year(name)
    return title, as_year(year) or suffix_year


def compact(meta: dict[str, Any]) -> dict[str, Any]:
    """``meta`` without ``None``/empty values."""
    return {k: v for k, v in meta.items() if v is not None and v != ""}


def mark_ambiguous(
    metas: Iterable[dict[str, Any]],
    group_key: Callable[[dict[str, Any]], str],
    ident: Callable[[dict[str, Any]], str],
    flag: str = "ambiguous",
) -> None:
    """Set ``meta[flag] = True`` on every member of a group of metas with different ids.

    Every member is flagged (not all but one), so whether an entry's name carries its id
    does not depend on which duplicate came first.
    """
    groups: dict[str, set[str]] = defaultdict(set)
    members: list[tuple[str, dict[str, Any]]] = []
    for meta in metas:
        key = group_key(meta)
        groups[key].add(ident(meta))
        members.append((key, meta))
    for key, meta in members:
        if len(groups[key]) > 1:
            meta[flag] = True


def movie_group(meta: dict[str, Any]) -> str:
    return title_key(str(meta.get("title") or meta.get("name") or ""), meta.get("year"))


def show_group(meta: dict[str, Any]) -> str:
    return title_key(str(meta.get("show") or ""), meta.get("show_year"))


class MetaSpool:
    """Metadata written once and read back once, in order, from a temp file (in memory while
    small): what lets a source see its whole list before it yields the first entry without
    holding every entry's metadata. Records are plain JSON-able values (``marshal``: only
    this process reads them back)."""

    _BATCH = 1000

    def __init__(self) -> None:
        self._file = tempfile.SpooledTemporaryFile(max_size=1 << 20)  # noqa: SIM115 - closed in __iter__/close
        self._batch: list[Any] = []

    def add(self, record: Any) -> None:
        self._batch.append(record)
        if len(self._batch) >= self._BATCH:
            self._flush()

    def _flush(self) -> None:
        if self._batch:
            blob = marshal.dumps(self._batch)
            self._file.write(len(blob).to_bytes(8, "little"))
            self._file.write(blob)
            self._batch = []

    def __iter__(self) -> Iterator[Any]:
        """Every record, in the order added; the spool is closed at the end."""
        try:
            self._flush()
            self._file.seek(0)
            while size := int.from_bytes(self._file.read(8), "little"):
                yield from marshal.loads(self._file.read(size))  # noqa: S302 - our own temp file
        finally:
            self.close()

    def close(self) -> None:
        self._batch = []
        self._file.close()


class AnswerSpool:
    """Raw answers of a provider kept in a temp file (in memory while small) until they are
    parsed: a source fetches and digests every answer first and parses them only when the
    digest changed."""

    def __init__(self) -> None:
        self._file = tempfile.SpooledTemporaryFile(max_size=4 << 20)  # noqa: SIM115 - closed by close()
        self._where: dict[str, tuple[int, int]] = {}

    def add(self, key: str, body: bytes) -> None:
        self._file.seek(0, 2)
        self._where[key] = (self._file.tell(), len(body))
        self._file.write(body)

    def get(self, key: str) -> bytes:
        offset, size = self._where[key]
        self._file.seek(offset)
        return self._file.read(size)

    def close(self) -> None:
        self._file.close()


class Duplicates:
    """Which groups (names) hold more than one id, learnt one member at a time: only the
    first id of each group is kept, not the members."""

    def __init__(self) -> None:
        self._first: dict[str, str] = {}
        self._ambiguous: set[str] = set()

    def add(self, group: str, ident: str) -> None:
        if self._first.setdefault(group, ident) != ident:
            self._ambiguous.add(group)

    def done(self) -> None:
        """Every member was added: only the ambiguous groups are kept from now on."""
        self._first = {}

    def __contains__(self, group: object) -> bool:
        return group in self._ambiguous


def flag_duplicates(
    metas: Iterable[dict[str, Any]],
    group_key: Callable[[dict[str, Any]], str],
    ident: Callable[[dict[str, Any]], str],
    flag: str = "ambiguous",
) -> Iterator[dict[str, Any]]:
    """``metas`` again, in order, with ``meta[flag] = True`` on every member of a group of
    metas with different ids (what :func:`mark_ambiguous` does to a list).

    The whole input is read before the first meta comes out; meanwhile only the first id
    of each group is kept in memory (:class:`Duplicates`), and the metas wait in a
    :class:`MetaSpool`.
    """
    duplicates = Duplicates()
    spool = MetaSpool()
    try:
        for meta in metas:
            key = group_key(meta)
            duplicates.add(key, ident(meta))
            spool.add((key, meta))
        duplicates.done()
        for key, meta in spool:
            if key in duplicates:
                meta[flag] = True
            yield meta
    finally:
        spool.close()


def fetch_series_answers(
    source: str,
    shows: Iterable[dict[str, Any]],
    fetch: Callable[[dict[str, Any]], bytes],
    on_series_error: str,
    digest: AnswerDigest,
    spool: AnswerSpool,
) -> list[dict[str, Any]]:
    """Each show's answer (``fetch(show)``) into ``spool`` under its ``show_id`` and into
    ``digest``; returns the shows whose answer came. A show whose answer cannot be fetched
    fails the read (``on_series_error="fail"``) or is left out with a warning."""
    fetched = []
    for show in shows:
        series_id = str(show["show_id"])
        try:
            body = fetch(show)
        except SourceError as exc:
            if on_series_error == "fail":
                raise
            log.warning("%s: series %s skipped: %s", source, series_id, exc)
            continue
        digest.add(series_id.encode())
        digest.add(body)
        spool.add(series_id, body)
        fetched.append(show)
    return fetched


def episode_entries(
    source: str,
    shows: Iterable[dict[str, Any]],
    episodes_of: Callable[[dict[str, Any]], Iterable[dict[str, Any]]],
    on_series_error: str,
) -> Iterator[SourceEntry]:
    """Every episode of every show as an entry. A show whose episodes cannot be read stops
    the read (``on_series_error="fail"``) or is skipped with a warning (``"skip"``)."""
    for show in shows:
        try:
            episodes = episodes_of(show)
        except SourceError as exc:
            if on_series_error == "fail":
                raise
            log.warning("%s: series %s skipped: %s", source, show["show_id"], exc)
            continue
        for meta in episodes:
            yield SourceEntry(key=f"episode/{meta['id']}", kind="episode", meta=meta)
