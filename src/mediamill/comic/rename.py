"""File names from a template (``{series} #{issue:03} ({year})``), safe on every file system.

Fields: ``series``, ``issue`` (``number`` too), ``volume``, ``year``, ``month``, ``title``,
``publisher``, ``format``, ``count``, and any other ComicInfo field by its lower-case name.
``{issue:03}`` pads the whole-number part (``7`` → ``007``, ``7.5`` → ``007.5``, ``½`` stays).
A field inside brackets is optional: with no value it is left out with the brackets
(``Saga #001 ()`` → ``Saga #001``); a field outside brackets is required: without it the
file is not renamed. A template without ``/`` renames the file in its folder;
with ``/`` it is a path from the library root (``{publisher}/{series}/{series} #{issue:03}``).
Values never make folders (a ``/`` in a series becomes ``-``), and each path part is made
valid everywhere: no ``< > : " / \\ | ? *`` or control characters, no trailing dot or space,
no Windows device name (``CON``, ``COM1``, ...), at most 255 bytes.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any

MAX_PART_BYTES = 255
_RESERVED = frozenset(
    {"CON", "PRN", "AUX", "NUL"}
    | {f"COM{i}" for i in range(1, 10)}
    | {f"LPT{i}" for i in range(1, 10)}
)
_BAD_CHARS = re.compile(r'[<>"|?*\x00-\x1f\x7f]')
_EMPTY_BRACKETS = re.compile(r"\(\s*\)|\[\s*\]|\{\s*\}")
_FIELD_ALIASES = {"number": "issue", "issue": "issue"}


class TemplateError(ValueError):
    """A template that cannot be used (bad syntax, or a field nobody has)."""


class _Formatter(string.Formatter):
    def get_value(self, key: int | str, args: Any, kwargs: Mapping[str, Any]) -> Any:
        if isinstance(key, int):
            raise TemplateError(f"positional field {{{key}}}: use a name such as {{series}}")
        return kwargs.get(key.lower())

    def format_field(self, value: Any, format_spec: str) -> str:
        if value is None or value == "":
            return ""
        text = str(value)
        pad = re.fullmatch(r"0?(\d+)", format_spec)
        if pad:
            return _pad_number(text, int(pad.group(1)))
        if format_spec:
            try:
                return format(value, format_spec)
            except ValueError as exc:
                raise TemplateError(
                    f"format {format_spec!r} does not apply to {text!r}: {exc}"
                ) from None
        return text


def _pad_number(text: str, width: int) -> str:
    match = re.match(r"(-?)(\d+)(.*)", text)
    if match is None:
        return text
    sign, digits, rest = match.groups()
    return f"{sign}{digits.zfill(width)}{rest}"


def template_fields(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Template values from ComicInfo fields (``Series`` → ``series``, ``Number`` → ``issue``)."""
    values: dict[str, Any] = {}
    for name, value in fields.items():
        if isinstance(value, (str, int, float)):
            values[name.lower()] = _field_value(value)
    if "number" in values:
        values["issue"] = values["number"]
    return values


def _field_value(value: str | int | float) -> str:
    # a value never makes a folder
    return str(value).replace("/", "-").replace("\\", "-")


def check_template(template: str) -> None:
    """Raise :class:`TemplateError` if ``template`` cannot render."""
    if not template.strip():
        raise TemplateError("the rename template is empty")
    try:
        _Formatter().format(template, series="S", issue="1", year="2000")
    except TemplateError:
        raise
    except (ValueError, IndexError, KeyError) as exc:
        raise TemplateError(f"bad rename template {template!r}: {exc}") from None


def render(template: str, values: Mapping[str, Any], *, current: str, suffix: str) -> str | None:
    """The new path (relative to the library root) for a file now at ``current``, or ``None``
    when the template gives an empty name."""
    if _missing_required(template, values):
        return None
    try:
        rendered = _Formatter().format(template, **dict(values))
    except TemplateError:
        raise
    except (ValueError, IndexError, KeyError) as exc:
        raise TemplateError(f"bad rename template {template!r}: {exc}") from None
    parts = [safe_part(p) for p in rendered.split("/")]
    if not parts or any(not p for p in parts):
        return None
    parts[-1] = safe_part(parts[-1] + suffix)
    if "/" not in template:
        parent = PurePosixPath(current).parent
        return str(parent / parts[-1]) if str(parent) != "." else parts[-1]
    return "/".join(parts)


def _missing_required(template: str, values: Mapping[str, Any]) -> bool:
    """Whether a field outside brackets has no value (``{series} #{issue}`` without an issue
    would name every issue ``Saga #``); fields inside brackets are optional."""
    depth = 0
    for literal, name, _spec, _conv in string.Formatter().parse(template):
        depth += sum(literal.count(c) for c in "([") - sum(literal.count(c) for c in ")]")
        if name and depth <= 0 and values.get(name.lower()) in (None, ""):
            return True
    return False


def safe_part(part: str) -> str:
    """One path part, valid on every common file system (and never ``.``, ``..`` or hidden)."""
    part = _EMPTY_BRACKETS.sub("", part)
    part = part.replace(":", " -").replace("\\", "-")
    part = _BAD_CHARS.sub("", re.sub(r"\s", " ", part))
    part = " ".join(part.split())
    part = re.sub(r"(\s-)+\s*$", "", part)  # "Saga - " left by an empty field
    part = part.strip(" ").lstrip(".").rstrip(". ")
    stem = part.split(".", 1)[0].upper()
    if stem in _RESERVED:
        part = "_" + part
    return _truncate(part)


def _truncate(part: str) -> str:
    raw = part.encode("utf-8")
    if len(raw) <= MAX_PART_BYTES:
        return part
    stem, dot, suffix = part.rpartition(".")
    if not dot or len(suffix) > 8:
        stem, suffix, dot = part, "", ""
    keep = MAX_PART_BYTES - len((dot + suffix).encode("utf-8"))
    cut = stem.encode("utf-8")[:keep].decode("utf-8", "ignore").rstrip(". ")
    return cut + dot + suffix
