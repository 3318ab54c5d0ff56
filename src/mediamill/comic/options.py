"""What a comic job may be asked to do (``rules``, ``overwrite``, ``rename``, ``convert``,
``duplicates``), checked before any archive is opened.

Apart from :mod:`mediamill.comic.work` so that a job can check its options, and an
unchanged re-run finish, without loading the archive, XML and name-parsing code.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from mediamill.comic import rename as rn

#: what ``rules`` may name, and the ComicInfo field each fills
RULE_FIELDS = {
    "series": "Series",
    "number": "Number",
    "issue": "Number",
    "volume": "Volume",
    "year": "Year",
    "month": "Month",
    "count": "Count",
    "title": "Title",
    "format": "Format",
}
DEFAULT_RULES = ("series", "number", "volume", "year")
WRITABLE = {"zip": ".cbz", "7z": ".cb7"}
CONVERT_TO = {"cbz": "zip", "cb7": "7z"}


class ComicError(ValueError):
    """A comic that cannot be processed, with the cause."""


@dataclass(frozen=True, slots=True)
class Options:
    rules: tuple[str, ...] = DEFAULT_RULES
    #: apply the rules over values already in ComicInfo.xml
    overwrite: bool = False
    rename: str | None = None
    #: "cbz" or "cb7": rewrite other formats (rar, tar, the other writable one) as this
    convert: str | None = None
    #: folder (relative to the library root, or absolute inside it) for duplicates/conflicts
    duplicates: str | None = None

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any]) -> Options:
        rules = options.get("rules", DEFAULT_RULES)
        if isinstance(rules, str):
            rules = tuple(r.strip().lower() for r in rules.split(",") if r.strip())
        unknown = [r for r in rules if r not in RULE_FIELDS]
        if unknown:
            raise ComicError(
                f"unknown rule(s) {', '.join(unknown)}; known: {', '.join(RULE_FIELDS)}"
            )
        convert = options.get("convert") or None
        if convert is not None and convert not in CONVERT_TO:
            raise ComicError(f"convert must be cbz or cb7 (RAR is never written), not {convert!r}")
        template = options.get("rename") or None
        if template is not None:
            try:
                rn.check_template(str(template))
            except rn.TemplateError as exc:
                raise ComicError(str(exc)) from None
        duplicates = options.get("duplicates") or None
        if duplicates is not None and (
            not isinstance(duplicates, str) or ".." in PurePosixPath(duplicates).parts
        ):
            raise ComicError(f"duplicates must be a folder inside the library, not {duplicates!r}")
        return cls(
            rules=tuple(rules),
            overwrite=_true(options.get("overwrite", False)),
            rename=str(template) if template else None,
            convert=convert,
            duplicates=duplicates,
        )


def _true(value: Any) -> bool:
    return value is True or str(value).lower() in ("1", "true", "yes", "on")
