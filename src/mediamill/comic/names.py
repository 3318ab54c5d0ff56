"""Series, volume, issue, year and edition words from a comic's file and folder names.

Names come every way imaginable (``Saga 001 (2012) (Digital) (Empire-Zone).cbr``,
``X-Men_-_V1_#067``, ``Berserk Vol. 03 Ch. 012``, ``Kebab Том 1 Глава 3``). The parser
cuts a name into tokens (words, numbers, bracketed groups, `` - `` separators), finds the
volume and issue by their markers (``v``, ``Vol.``, ``Tome``, ``#``, ``Chapter``, ``Ch.``,
``c``, ``Ep.``, ...) or else by position (the first free number after the series), takes the
cover year (and month) from the bracketed groups, and keeps the series as the text before the
first of these. Kavita's and comictagger's parser test suites are the reference; where this
parser differs on purpose, docs/comic.md says how and why.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import PurePosixPath

#: suffixes removed from a name before parsing (anything else after a dot is part of the name:
#: ``Superman v1.5 024``)
ARCHIVE_SUFFIXES = frozenset({"cbz", "cbr", "cb7", "cbt", "zip", "rar", "7z", "tar", "pdf", "epub"})

#: 12, 33.5, 12a, 078.BEY, ½; not the ordinals 80th, 1st
_NUMBER = r"(?:\d+(?:\.\d+)?(?!st\b|nd\b|rd\b|th\b)(?:\.?[A-Za-z]{1,3}(?![A-Za-z]))?|½|¼|¾)"
_RANGE = rf"{_NUMBER}(?:-\d+(?:\.\d+)?)?"
_VOLUME_WORD = r"(?:v|vol\.?|volume|t|tome|том|เล่มที่|เล่ม)"
_ISSUE_WORD = r"(?:#|no\.|issue\s*#?|chapter|chap\.?|ch\.?|c|ep\.?|episode|глава|ตอนที่|บทที่)"
#: ``v03``, ``Vol. 2``, ``Tome_2`` (underscores are spaces by then), ``เล่ม 1``
_VOLUME_RE = re.compile(rf"(?<![\w'])({_VOLUME_WORD})\s*(\d+(?:\.\d+)?)(?![\w.])", re.I)
_ISSUE_RE = re.compile(
    rf"(?:(?<![\w'])|(?<=#))({_ISSUE_WORD})\s*-?\s*((?<=#)[A-Za-z]?{_RANGE}|{_RANGE})(?![\w])",
    re.I,
)
#: ``Манга 2 Глава``: the number before the chapter word
_ISSUE_BEFORE_WORD_RE = re.compile(r"(?<!\w)(\d+(?:\.\d+)?)\s+(глава)(?!\w)", re.I)
_FREE_NUMBER_RE = re.compile(rf"(?<![\w'.#$])({_RANGE})(?![\w'])")
_GROUP_RE = re.compile(r"\([^()]*\)?|\[[^\[\]]*\]?|\{[^{}]*\}")
_YEAR_RE = re.compile(r"(?<!\d)(1[89]\d\d|20\d\d)(?!\d)")
_OF_RE = re.compile(r"^\(\s*(?:(\d+)\s+)?of\s+(\d+)\s*\)$", re.I)
_SPECIAL_RE = re.compile(r"(?<![A-Za-z])SP\s?\d+(?!\w)", re.I)
_MONTH_NAMES = "jan feb mar apr may jun jul aug sep oct nov dec"
_MONTHS = {m: i + 1 for i, m in enumerate(_MONTH_NAMES.split())}
_MONTH_RE = re.compile(
    r"(?<![a-z])(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?", re.I
)
_DATE_RE = re.compile(r"(?<!\d)(1[89]\d\d|20\d\d)-(\d\d)(?:-\d\d)?(?!\d)")
#: words that say what kind of edition a file is (ComicInfo's ``Format``)
_FORMATS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(rf"(?<!\w){pattern}(?!\w)", re.I), label)
    for pattern, label in (
        (r"annual", "Annual"),
        (r"tpb|trade paperback", "TPB"),
        (r"one[- ]?shot", "One-Shot"),
        (r"omnibus", "Omnibus"),
        (r"hors[- ]s[ée]rie|hs", "Hors-Série"),
        (r"specials?", "Special"),
        (r"fcbd|free comic book day", "FCBD"),
        (r"yearbook", "Yearbook"),
        (r"director'?s cut", "Director's Cut"),
    )
)
#: a reading-order prefix such as ``04 - `` before the series
_ORDER_PREFIX_RE = re.compile(r"^\d{1,3}\s+-\s+(?=\S)")
_SEPARATORS = " -\u2013\u2014_,:.#"  # en and em dashes too


@dataclass(frozen=True, slots=True)
class NameInfo:
    """What a name says; ``None`` where it says nothing."""

    series: str | None = None
    volume: str | None = None
    issue: str | None = None
    issue_count: int | None = None
    year: int | None = None
    month: int | None = None
    title: str | None = None
    #: an explicit special marker (``SP01``): Kavita files it outside the numbered issues
    special: bool = False
    #: edition word (``Annual``, ``TPB``, ``One-Shot``, ...), ComicInfo's ``Format``
    format: str | None = None


def parse_path(relpath: str) -> NameInfo:
    """Parse a file's name; the series falls back to its nearest named folder."""
    path = PurePosixPath(relpath)
    info = parse_name(path.name)
    if info.series:
        return info
    for folder in reversed(path.parent.parts):
        series = parse_name(folder).series
        if series:
            return replace(info, series=series)
    return info


def parse_name(name: str) -> NameInfo:
    """Parse one file or folder name (a path is cut to its last part)."""
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    stem, dot, suffix = name.rpartition(".")
    if dot and suffix.lower() in ARCHIVE_SUFFIXES and stem:
        name = stem
    text = " ".join(name.replace("_", " ").split())
    text = _ORDER_PREFIX_RE.sub("", text)
    year, month, volume_year, issue_count, issue_of = _groups(text)
    plain = _GROUP_RE.sub(lambda m: " " * len(m.group()), text)
    first_group = _first_group_at(text)
    cut = len(text) if first_group is None else first_group

    volume = None
    volume_match = _VOLUME_RE.search(plain)
    if volume_match is not None:
        volume = _clean_number(volume_match.group(2))
        cut = min(cut, volume_match.start())
    issue, issue_at, issue_end = _find_issue(plain, after=volume_match.end() if volume_match else 0)
    if issue is None and issue_of is not None:
        issue = issue_of
    if issue_at is not None:
        cut = min(cut, issue_at)
    if volume is None and volume_year is not None and issue is not None:
        volume = str(volume_year)
    special = bool(_SPECIAL_RE.search(plain))
    if special:
        cut = min(cut, _SPECIAL_RE.search(plain).start())  # type: ignore[union-attr]
    series = _clean_series(text[:cut])
    title = _title(text, plain, issue_end)
    return NameInfo(
        series=series or None,
        volume=volume,
        issue=issue,
        issue_count=issue_count,
        year=year,
        month=month,
        title=title,
        special=special,
        format=_format(plain),
    )


def _first_group_at(text: str) -> int | None:
    match = _GROUP_RE.search(text)
    return None if match is None else match.start()


def _groups(text: str) -> tuple[int | None, int | None, int | None, int | None, str | None]:
    """Cover year and month, the series' start year, the issue count and ``(N of M)``'s N.

    A year in brackets before the issue, with another after it, is the series' start year
    (comictagger's ``Super Strange Yarns (1957) #92 (1969)``); otherwise the last is the year.
    """
    years: list[tuple[int, int, int | None]] = []  # (position, year, month)
    issue_count = issue_of = None
    for match in _GROUP_RE.finditer(text):
        group = match.group()
        of = _OF_RE.match(group)
        if of is not None:
            issue_of = _clean_number(of.group(1)) if of.group(1) else None
            issue_count = int(of.group(2))
            continue
        found = _year_month(group)
        if found is not None:
            years.append((match.start(), found[0], found[1]))
    if not years:
        return None, None, None, issue_count, issue_of
    year, month = years[-1][1], years[-1][2]
    volume_year = years[0][1] if len(years) > 1 else None
    return year, month, volume_year, issue_count, issue_of


def _year_month(group: str) -> tuple[int, int | None] | None:
    date = _DATE_RE.search(group)
    if date is not None and 1 <= int(date.group(2)) <= 12:
        return int(date.group(1)), int(date.group(2))
    year = _YEAR_RE.search(group)
    if year is None:
        return None
    month_word = _MONTH_RE.search(group)
    month = _MONTHS[month_word.group(1).lower()] if month_word else None
    return int(year.group(1)), month


def _find_issue(plain: str, *, after: int) -> tuple[str | None, int | None, int | None]:
    """The issue, where its token starts, and where it ends."""
    marked = _ISSUE_RE.search(plain, after)
    if marked is not None and _marker_ok(plain, marked):
        return _clean_number(marked.group(2)), marked.start(), marked.end()
    before = _ISSUE_BEFORE_WORD_RE.search(plain, after)
    if before is not None:
        return _clean_number(before.group(1)), before.start(), before.end()
    return _free_number(plain, after)


def _marker_ok(plain: str, match: re.Match[str]) -> bool:
    """A bare ``c`` marks a chapter only as a token of its own (``c012``, not ``c2c``)."""
    word = match.group(1).lower()
    if word == "c":
        tail = plain[match.end() :]
        return not tail[:1].isalpha() and not match.group(2)[-1:].isalpha()
    return True


def _free_number(plain: str, after: int) -> tuple[str | None, int | None, int | None]:
    """The first number after the series, the last of a run (``Blade Runner 2029 006``)."""
    numbers = [m for m in _FREE_NUMBER_RE.finditer(plain, after) if not _is_noise(plain, m)]
    if not numbers:
        return None, None, None
    if after == 0 and numbers[0].start() == _lead(plain) and len(numbers) == 1:
        only = numbers[0]
        if plain[only.end() :].strip(_SEPARATORS):
            return None, None, None  # "52 Pickup" is a series, not issue 52
        return _clean_number(only.group(1)), only.start(), only.end()
    index = 0
    if after == 0 and numbers[0].start() == _lead(plain):
        index = 1  # a number that starts the name belongs to the series ("2000 AD 0366")
    chosen = numbers[index]
    while index + 1 < len(numbers) and not plain[chosen.end() : numbers[index + 1].start()].strip():
        index += 1
        chosen = numbers[index]
    return _clean_number(chosen.group(1)), chosen.start(), chosen.end()


def _lead(plain: str) -> int:
    return len(plain) - len(plain.lstrip())


def _is_noise(plain: str, match: re.Match[str]) -> bool:
    """Numbers glued to words by a hyphen (``IG-88``, ``100-Page``), or that are years."""
    start, end = match.span()
    before = plain[start - 1 : start]
    after = plain[end : end + 1]
    if before == "-" and plain[start - 2 : start - 1].isalnum():
        # "spawn-123" is series and issue; "IG-88 1" glues 88 to its word
        rest = plain[end:].strip(_SEPARATORS)
        return bool(_FREE_NUMBER_RE.search(rest))
    return after == "-" and plain[end + 1 : end + 2].isalpha()


def _clean_number(raw: str) -> str:
    """``001`` → ``1``, ``070.5`` → ``70.5``, ``B01`` → ``B1``; ``0`` and ``½`` stay."""
    raw = raw.strip()
    if re.fullmatch(r"\d+(?:\.\d+)?-\d+(?:\.\d+)?", raw):
        return "-".join(_clean_number(part) for part in raw.split("-"))
    match = re.fullmatch(r"([A-Za-z]?)(\d+)(.*)", raw)
    if match is None:
        return raw
    prefix, digits, rest = match.groups()
    return f"{prefix}{int(digits)}{rest}"


def _clean_series(raw: str) -> str:
    series = raw.strip(_SEPARATORS + " ")
    # a bracket left open by a cut group
    series = re.sub(r"\s*[(\[{]$", "", series).strip(_SEPARATORS + " ")
    return " ".join(series.split())


def _title(text: str, plain: str, issue_end: int | None) -> str | None:
    """The words after the issue, up to the first bracketed group (``#1 Stop it!``)."""
    if issue_end is None:
        return None
    rest = plain[issue_end:]
    group = _first_group_at(text[issue_end:])
    if group is not None:
        rest = rest[:group]
    title = " ".join(rest.split()).strip(_SEPARATORS.replace(".", "").replace("#", ""))
    return title or None


def _format(plain: str) -> str | None:
    for pattern, label in _FORMATS:
        if pattern.search(plain):
            return label
    return None
