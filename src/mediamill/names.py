"""File names that are not valid UTF-8, as each audience needs them.

The catalog shows such a name with its odd bytes escaped (``caf\\xe9.mp3``) and keeps the real
bytes beside it (``items.path_bytes``). A lookup turns the user's path into that shown form;
an export adds the real bytes (base64); a playlist is written with the real bytes, so a player
opens the file; the page shows a readable guess, marked as such."""

from __future__ import annotations

import base64
import os


def shown_path(path: str) -> str:
    """A path as the catalog shows it: undecodable bytes (surrogates from ``os.fsdecode``)
    escaped as ``\\xe9``; a valid UTF-8 path is itself."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return os.fsencode(path).decode("utf-8", "backslashreplace")
    return path


def b64(path_bytes: bytes) -> str:
    """The lossless form of a name in JSON or CSV: its bytes in base64."""
    return base64.b64encode(path_bytes).decode("ascii")


def readable(path_bytes: bytes) -> str:
    """A readable guess at a name that is not UTF-8: most such names were written in Latin-1
    or Windows-1252 (``caf\\xe9`` -> ``café``); a byte neither knows shows as U+FFFD."""
    return path_bytes.decode("cp1252", "replace")


def undecodable(path_bytes: bytes) -> dict[str, str]:
    """What an API item row adds for a name that is not UTF-8: its bytes and a readable guess."""
    return {"path_bytes": b64(path_bytes), "readable_path": readable(path_bytes)}
