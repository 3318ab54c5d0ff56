"""Run `python -m mediamill` as a user would, with its own catalog and a clean environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def cli_env(db: str, **extra: str) -> dict[str, str]:
    """This environment minus any MEDIAMILL_* setting of the machine (but the test's own data
    dir), plus the catalog ``db``; wide enough that Rich never wraps a line."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("MEDIAMILL_")}
    if "MEDIAMILL_HOME" in os.environ:
        base["MEDIAMILL_HOME"] = os.environ["MEDIAMILL_HOME"]
    pythonpath = [p for p in (os.environ.get("PYTHONPATH"), str(ROOT)) if p]
    return {
        **base,
        "MEDIAMILL_DB": db,
        "PYTHONPATH": os.pathsep.join(pythonpath),
        "COLUMNS": "400",  # Rich wraps long lines at 80 columns when stdout is not a terminal
        **extra,
    }


def mediamill(
    *args: str,
    db: str,
    check: bool = True,
    env: dict[str, str] | None = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    """``python -m mediamill ARGS``; with ``check``, a non-zero exit fails the test with its
    output."""
    proc = subprocess.run(
        [sys.executable, "-m", "mediamill", *args],
        capture_output=True,
        text=True,
        env=cli_env(db, **(env or {})),
        timeout=timeout,
        check=False,
    )
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def _own(tmp: Path) -> dict[str, str]:
    """A catalog ``tmp/c.db``, a data dir ``tmp/home`` and no config file."""
    return {
        "MEDIAMILL_DB": f"sqlite:///{tmp}/c.db",
        "MEDIAMILL_HOME": str(tmp / "home"),
        "MEDIAMILL_CONFIG": str(tmp / "absent-mediamill.toml"),
    }


def isolated_env(tmp: Path) -> dict[str, str]:
    """:func:`cli_env` for a mediamill of its own under ``tmp`` (:func:`_own`)."""
    own = _own(tmp)
    return cli_env(own.pop("MEDIAMILL_DB"), **own)


def mediamill_in(
    tmp: Path, *args: str, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m mediamill ARGS`` with its own catalog and data dir under ``tmp``."""
    own = _own(tmp)
    return mediamill(
        *args, db=own.pop("MEDIAMILL_DB"), check=check, timeout=120, env={**own, **(env or {})}
    )
