"""Turn provider titles into names every filesystem accepts, and parse what titles carry.

Shared by the VOD sources (to spot titles that would collide) and the .strm layout (to build
paths), so both agree on what "the same name" means.
"""

from __future__ import annotations

import re
import unicodedata

#: Default prefix-stripping regex: provider tags such as ``EN - ``, ``4K | ``, ``|FR| ``,
#: ``[DE] ``, ``4K-NF - `` (repeated tags too). Real words followed by ``:`` are left alone,
#: so "AI: Artificial Intelligence" keeps its name.
DEFAULT_STRIP_PREFIX = (
    r"^(?:\s*(?:"
    r"\|[A-Z0-9]{2,4}\|"  # |EN|
    r"|\[[A-Z0-9 ]{2,6}\]"  # [EN], [4K]
    r"|(?:[A-Z]{2,3}|4K|8K|UHD|FHD|HD|SD|VOD|MULTI)(?:[ -][A-Z0-9]{2,4})?\s*\|"  # 4K |
    r"|(?:[A-Z]{2,3}|4K|8K|UHD|FHD|HD|SD|VOD|MULTI)(?:[ -][A-Z0-9]{2,4})?\s+-"  # EN -
    r")\s*)+"
)

#: Longest path component most filesystems accept, in bytes of UTF-8.
MAX_COMPONENT_BYTES = 255

_FORBIDDEN = str.maketrans(
    {
        "<": "",
        ">": "",
        ":": " -",
        '"': "'",
        "/": "-",
        "\\": "-",
        "|": "-",
        "?": "",
        "*": "",
    }
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_SPACES = re.compile(r"\s+")
_RESERVED = frozenset(
    ["CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"]
    + [f"{dev}{n}" for dev in ("COM", "LPT") for n in [*"0123456789", "¹", "²", "³"]]
)
_YEAR_SUFFIX = re.compile(r"^(?P<title>.*?)[\s._-]*[(\[](?P<year>\d{4})[)\]]\s*$")
_EPISODE_MARK = re.compile(
    r"^(?P<show>.*?)[\s._-]*\bS(?P<season>\d{1,4})\s*[._-]?\s*E(?P<episode>\d{1,5})\b"
    r"[\s._:-]*(?P<title>.*)$",
    re.IGNORECASE,
)


_PLACEHOLDER_ID = re.compile(r"^(?:(?:tt)?0+|none|null|n/?a)?$", re.IGNORECASE)


def is_placeholder_id(text: str) -> bool:
    """Whether an external id is what providers send for "none": empty, ``0``, ``tt0000000``."""
    return bool(_PLACEHOLDER_ID.match(text.strip()))


def truncate_utf8(text: str, max_bytes: int) -> str:
    """``text`` cut to at most ``max_bytes`` of UTF-8, never splitting a character."""
    raw = text.encode("utf-8")
    if len(raw) <= max_bytes:
        return text
    return raw[:max_bytes].decode("utf-8", errors="ignore")


def clean_component(text: str, *, max_bytes: int = MAX_COMPONENT_BYTES, empty: str = "_") -> str:
    """One path component that Linux, macOS and Windows all accept, from any text.

    NFC Unicode; no ``<>:"/\\|?*`` and no control characters; no leading dots (so never
    ``.``/``..`` nor a hidden file), no leading or trailing spaces and no trailing dot;
    Windows device names get a ``_`` suffix; at most ``max_bytes`` of UTF-8.
    """
    name = unicodedata.normalize("NFC", text)
    name = _CONTROL.sub(" ", name).translate(_FORBIDDEN)
    name = unicodedata.normalize("NFC", _SPACES.sub(" ", name)).strip(" .")
    name = truncate_utf8(name, max_bytes).rstrip(" .")
    if not name:
        return empty
    stem = name.split(".", 1)[0].rstrip(" ")
    if stem.upper() in _RESERVED:
        name = truncate_utf8(stem + "_" + name[len(stem) :], max_bytes).rstrip(" .")
    return name


def strip_prefix(title: str, pattern: str | re.Pattern[str] | None = DEFAULT_STRIP_PREFIX) -> str:
    """``title`` without provider tags matched by ``pattern`` (``None``/empty: unchanged).

    A title that would be left empty is returned unchanged.
    """
    if not pattern:
        return title.strip()
    stripped = re.sub(pattern, "", title, count=1).strip()
    return stripped or title.strip()


def split_year(name: str) -> tuple[str, int | None]:
    """``("Title", 2019)`` from ``"Title (2019)"``; ``(name, None)`` without a year suffix."""
    if not name.rstrip().endswith((")", "]")):
        return name.strip(), None
    match = _YEAR_SUFFIX.match(name)
    if match and match.group("title").strip():
        year = int(match.group("year"))
        if 1870 <= year <= 2199:
            return match.group("title").strip(), year
    return name.strip(), None


def split_episode(name: str) -> tuple[str, int, int, str] | None:
    """``(show, season, episode, title)`` from ``"Show S01E02 - Title"``, else ``None``."""
    match = _EPISODE_MARK.match(name.strip())
    if not match:
        return None
    return (
        match.group("show").strip(" -_."),
        int(match.group("season")),
        int(match.group("episode")),
        match.group("title").strip(),
    )


def title_key(title: str, year: int | None) -> str:
    """What makes two titles "the same name" on disk: cleaned, prefix-stripped, casefolded.

    Casefolded because macOS and Windows filesystems are case-insensitive.
    """
    cleaned = clean_component(strip_prefix(title), max_bytes=MAX_COMPONENT_BYTES)
    return f"{cleaned.casefold()}\x00{year or ''}"
