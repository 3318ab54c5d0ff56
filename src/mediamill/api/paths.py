"""Untrusted item paths from requests: relative, inside the library, no escape by ``..``/links."""

from __future__ import annotations

import os
from pathlib import PurePosixPath


class UnsafePath(ValueError):
    pass


def check_relative(root: str, path: str) -> str:
    """``path`` if it names something inside the folder ``root``; raises :class:`UnsafePath`."""
    if not path or "\x00" in path:
        raise UnsafePath(f"{path!r}: not a path")
    pure = PurePosixPath(path)
    if pure.is_absolute() or path.startswith("~"):
        raise UnsafePath(
            f"{path!r}: absolute paths are not allowed; give it relative to the library root"
        )
    if ".." in pure.parts:
        raise UnsafePath(f"{path!r}: '..' would leave the library")
    if "://" in root:
        return path  # a source library: its items are keys, not files
    real_root = os.path.realpath(root)
    real = os.path.realpath(os.path.join(real_root, path))
    if real != real_root and not real.startswith(real_root.rstrip(os.sep) + os.sep):
        raise UnsafePath(f"{path!r}: a link that leads outside the library")
    return path
