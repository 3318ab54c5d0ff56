"""ComicInfo.xml: read, change and write every field of the Anansi schema, losing nothing.

The field list, its order and the value types are those of the Anansi project's ComicInfo
schema v2.0 and its v2.1 draft (github.com/anansi-project/comicinfo, MIT licence), plus the
fields Kavita and Komga read beyond it (``LocalizedSeries``, ``SeriesSort``, ``TitleSort``,
``Isbn``). What is written lists the schema's elements in the schema's order, so it
validates against the XSD; elements other tools wrote that neither the schema nor those
readers know are kept, after the schema's, as they were.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET  # building and writing only; parsing goes through defusedxml
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from defusedxml import ElementTree as SafeET
from defusedxml.common import DefusedXmlException

FILENAME = "ComicInfo.xml"

_YES_NO = ("Unknown", "No", "Yes")
_MANGA = ("Unknown", "No", "Yes", "YesAndRightToLeft")
_AGE_RATINGS = (
    "Unknown",
    "Adults Only 18+",
    "Early Childhood",
    "Everyone",
    "Everyone 10+",
    "G",
    "Kids to Adults",
    "M",
    "MA15+",
    "Mature 17+",
    "PG",
    "R18+",
    "Rating Pending",
    "Teen",
    "X18+",
)
PAGE_TYPES = (
    "FrontCover",
    "InnerCover",
    "Roundup",
    "Story",
    "Advertisement",
    "Editorial",
    "Letters",
    "Preview",
    "BackCover",
    "Other",
    "Deleted",
)

#: the schema's elements in the schema's order (v2.1 draft: v2.0 plus Translator, Tags,
#: StoryArcNumber and GTIN) and
#: each one's type: str, int, rating (0-5, one decimal) or the tuple of allowed values
SCHEMA_FIELDS: tuple[tuple[str, Any], ...] = (
    ("Title", str),
    ("Series", str),
    ("Number", str),
    ("Count", int),
    ("Volume", int),
    ("AlternateSeries", str),
    ("AlternateNumber", str),
    ("AlternateCount", int),
    ("Summary", str),
    ("Notes", str),
    ("Year", int),
    ("Month", int),
    ("Day", int),
    ("Writer", str),
    ("Penciller", str),
    ("Inker", str),
    ("Colorist", str),
    ("Letterer", str),
    ("CoverArtist", str),
    ("Editor", str),
    ("Translator", str),
    ("Publisher", str),
    ("Imprint", str),
    ("Genre", str),
    ("Tags", str),
    ("Web", str),
    ("PageCount", int),
    ("LanguageISO", str),
    ("Format", str),
    ("BlackAndWhite", _YES_NO),
    ("Manga", _MANGA),
    ("Characters", str),
    ("Teams", str),
    ("Locations", str),
    ("ScanInformation", str),
    ("StoryArc", str),
    ("StoryArcNumber", str),
    ("SeriesGroup", str),
    ("AgeRating", _AGE_RATINGS),
    ("Pages", None),  # <Pages><Page Image=... /></Pages>, see PAGE_ATTRIBUTES
    ("CommunityRating", "rating"),
    ("MainCharacterOrTeam", str),
    ("Review", str),
    ("GTIN", str),
)
#: fields Kavita and Komga read that the schema does not (yet) have; written after it
EXTRA_FIELDS: tuple[tuple[str, Any], ...] = (
    ("LocalizedSeries", str),
    ("SeriesSort", str),
    ("TitleSort", str),
    ("Isbn", str),
)
FIELD_TYPES: dict[str, Any] = dict(SCHEMA_FIELDS + EXTRA_FIELDS)
#: attributes of ``<Page>`` and their types
PAGE_ATTRIBUTES: dict[str, Any] = {
    "Image": int,
    "Type": "page-type",
    "DoublePage": "boolean",
    "ImageSize": int,
    "Key": str,
    "Bookmark": str,
    "ImageWidth": int,
    "ImageHeight": int,
}
_XSI = "http://www.w3.org/2001/XMLSchema-instance"
_XSD = "http://www.w3.org/2001/XMLSchema"
_INT = re.compile(r"^[+-]?\d+$")


class ComicInfoError(ValueError):
    """A ComicInfo.xml that cannot be read, or values that the schema does not allow."""


@dataclass(slots=True)
class ComicInfo:
    """One ComicInfo.xml: known fields as text, pages as attribute dicts, unknown elements."""

    fields: dict[str, str] = field(default_factory=dict)
    pages: list[dict[str, str]] = field(default_factory=list)
    #: elements neither the schema nor Kavita/Komga know, serialised as they were read
    unknown: list[bytes] = field(default_factory=list)

    def get(self, name: str) -> str | None:
        return self.fields.get(name)

    def as_dict(self) -> dict[str, Any]:
        """The fields with their types (ints as ints), pages included; for results."""
        out: dict[str, Any] = {}
        for name, value in self.fields.items():
            kind = FIELD_TYPES.get(name)
            out[name] = int(value) if kind is int and _INT.match(value) else value
        if self.pages:
            out["Pages"] = [dict(page) for page in self.pages]
        return out

    def copy(self) -> ComicInfo:
        return ComicInfo(dict(self.fields), [dict(p) for p in self.pages], list(self.unknown))


def parse(raw: bytes) -> ComicInfo:
    """Read a ComicInfo.xml; raises :class:`ComicInfoError` with the cause when it is not XML."""
    try:
        root = SafeET.fromstring(raw)
    except ET.ParseError as exc:
        raise ComicInfoError(f"ComicInfo.xml is not well-formed XML ({exc})") from None
    except DefusedXmlException as exc:
        raise ComicInfoError(f"ComicInfo.xml declares entities or a DTD, refused ({exc})") from None
    if _local(root.tag) != "ComicInfo":
        raise ComicInfoError(
            f"ComicInfo.xml's root element is <{_local(root.tag)}>, not <ComicInfo>"
        )
    info = ComicInfo()
    for child in root:
        name = _local(child.tag)
        if name == "Pages":
            info.pages = [
                {_local(k): v for k, v in page.attrib.items()}
                for page in child
                if _local(page.tag) == "Page"
            ]
        elif name in FIELD_TYPES and len(child) == 0:
            text = (child.text or "").strip()
            if text:
                info.fields[name] = text
        else:
            child.tail = None
            info.unknown.append(ET.tostring(child, encoding="utf-8"))
    return info


def to_xml(info: ComicInfo) -> bytes:
    """The XML to write: schema elements in schema order, then the extra and unknown ones."""
    root = ET.Element("ComicInfo")
    root.set("xmlns:xsi", _XSI)
    root.set("xmlns:xsd", _XSD)
    for name, _ in SCHEMA_FIELDS + EXTRA_FIELDS:
        if name == "Pages":
            if info.pages:
                pages = ET.SubElement(root, "Pages")
                for page in info.pages:
                    ET.SubElement(pages, "Page", _ordered_page(page))
            continue
        value = info.fields.get(name)
        if value is not None and value != "":
            ET.SubElement(root, name).text = value
    ET.indent(root, space="  ")
    # other tools' elements go in as they were (indenting would change their mixed content)
    last = root[-1] if len(root) else None
    for raw in info.unknown:
        element = SafeET.fromstring(raw)
        if last is not None:
            last.tail = "\n  "
        else:
            root.text = "\n  "
        root.append(element)
        last = element
    if last is not None:
        last.tail = "\n"
    body: bytes = ET.tostring(root, encoding="utf-8")
    return b'<?xml version="1.0" encoding="utf-8"?>\n' + body + b"\n"


def _ordered_page(page: Mapping[str, str]) -> dict[str, str]:
    known = {k: page[k] for k in PAGE_ATTRIBUTES if k in page}
    known.update({k: v for k, v in page.items() if k not in PAGE_ATTRIBUTES})
    return known


def validate(info: ComicInfo) -> list[str]:
    """What the schema would reject in ``info`` (empty when it is valid)."""
    problems = []
    for name, value in info.fields.items():
        problem = _check(FIELD_TYPES[name], value)
        if problem:
            problems.append(f"{name}: {problem}")
    for index, page in enumerate(info.pages):
        if "Image" not in page:
            problems.append(f"Pages[{index}]: the Image attribute is required")
        for attr, value in page.items():
            kind = PAGE_ATTRIBUTES.get(attr)
            if kind is None:
                problems.append(f"Pages[{index}]: unknown attribute {attr}")
                continue
            problem = _check(kind, value)
            if problem:
                problems.append(f"Pages[{index}].{attr}: {problem}")
    return problems


def _check(kind: Any, value: str) -> str | None:
    if kind is str:
        return None
    if kind is int:
        if not _INT.match(value) or not -(2**63) <= int(value) < 2**63:
            return f"{value!r} is not an integer"
        return None
    if kind == "rating":
        return _check_rating(value)
    if kind == "boolean":
        return None if value in ("true", "false", "1", "0") else f"{value!r} is not a boolean"
    if kind == "page-type":
        bad = [word for word in value.split() if word not in PAGE_TYPES]
        return f"{' '.join(bad)!r} is not a page type" if bad else None
    if isinstance(kind, tuple):
        return None if value in kind else f"{value!r} is not one of {', '.join(kind)}"
    return None


def _check_rating(value: str) -> str | None:
    try:
        number = Decimal(value)
    except InvalidOperation:
        return f"{value!r} is not a number"
    if not (0 <= number <= 5) or number != round(number, 1):
        return f"{value!r} is not a rating from 0 to 5 with one decimal"
    return None


def _local(tag: Any) -> str:
    return str(tag).rsplit("}", 1)[-1]
