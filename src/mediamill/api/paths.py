"""Untrusted paths from requests: item paths relative and inside their library (no escape by
``..`` or links), and the folders a server may touch for its clients (``allowed_roots``)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit

from mediamill.walk import inside


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


#: the system's own trees: never a library, an output or a playlist of the server, whatever
#: ``allowed_roots`` says (``/`` as an allowed root must not open ``/etc/shadow``)
SYSTEM_ROOTS = ("/proc", "/sys", "/dev", "/etc", "/boot", "/run", "/var/run")


class ForbiddenPath(ValueError):
    """A path outside the folders the server may touch for its clients."""


def check_allowed(path: str, roots: Sequence[str], what: str) -> str:
    """The real path of ``path`` (links resolved) when it lies under one of ``roots`` and
    outside :data:`SYSTEM_ROOTS`; raises :class:`ForbiddenPath` otherwise."""
    if not path or "\x00" in path or not os.path.isabs(path):
        raise ForbiddenPath(f"{what} {path!r}: give an absolute path")
    real = os.path.realpath(path)
    for system in SYSTEM_ROOTS:
        if inside(real, os.path.realpath(system)) or inside(real, system):
            raise ForbiddenPath(f"{what} {path!r}: the server never touches {system}")
    for root in roots:
        if root and inside(real, os.path.realpath(os.path.expanduser(root))):
            return real
    allowed = ", ".join(roots) or "none"
    raise ForbiddenPath(
        f"{what} {path!r} is outside the folders this server may use ({allowed}); "
        "add its folder to allowed_roots (MEDIAMILL_ALLOWED_ROOTS)"
    )


def local_file_of(spec: str) -> str | None:
    """The local path a library root or source spec reads: the folder itself, or the file
    of an ``m3u+file://`` source; ``None`` for sources reached over the network."""
    if "://" not in spec:
        return spec
    scheme, _, _rest = spec.partition("://")
    if scheme.lower() != "m3u+file":
        return None
    parts = urlsplit(spec)
    return unquote(parts.path) or "/"


def check_library(spec: str, roots: Sequence[str]) -> None:
    """A folder library or an ``m3u+file`` source must lie under the allowed roots."""
    local = local_file_of(spec)
    if local is not None:
        check_allowed(local, roots, "library")


def check_job_paths(options: Mapping[str, Any], roots: Sequence[str], data_dir: str) -> None:
    """The files and folders a job's options name: an output root under the allowed roots,
    a report in the data dir or in that output root, a model under the allowed roots."""
    output = options.get("output")
    if output is not None:
        output = check_allowed(str(output), roots, "output")
    model = options.get("model_path")
    if model is not None:
        check_allowed(str(model), roots, "model_path")
    report = options.get("report")
    if report is not None:
        report_roots = [data_dir] + ([output] if output else [])
        check_allowed(str(report), report_roots, "report")
