"""What the benchmarks share: run a command and measure it, an isolated mediamill environment.

Every timed tool runs as a child process, measured the same way: wall-clock seconds around
``Popen`` and that one child's resource use from ``os.wait4`` (peak RSS, CPU seconds).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Measured:
    """One finished child process: how long it took, what it used, what it printed."""

    seconds: float
    returncode: int
    max_rss_kib: int  # ru_maxrss of this child (KiB on Linux)
    cpu_seconds: float  # user + system
    stdout: str
    stderr: str

    @property
    def max_rss_mb(self) -> float:
        return self.max_rss_kib / 1024


def venv_bin(name: str) -> Path:
    """A script next to the running interpreter (``.venv/bin/mediamill`` for the venv python)."""
    return Path(sys.executable).parent / name


def isolated_env(home: Path) -> dict[str, str]:
    """The environment for mediamill children: no user catalog, config or progress bar."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIAMILL_")}
    env["MEDIAMILL_HOME"] = str(home)
    env["MEDIAMILL_CONFIG"] = str(home / "absent-mediamill.toml")
    env["COLUMNS"] = "200"  # Rich wraps at 80 columns when stdout is not a terminal
    return env


def run_measured(
    cmd: Sequence[str | os.PathLike[str]],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    out_file: Path | None = None,
    check: bool = True,
) -> Measured:
    """Run ``cmd`` to its end; stdout goes to ``out_file``, else it is captured and returned.

    Output goes to a file, never a pipe, so a chatty tool is not slowed by this process
    reading it, and ``os.wait4`` can reap the child itself to get its own rusage.
    """
    scratch = Path(cwd or tempfile.gettempdir()) / f".bench-{os.getpid()}"
    out_path = out_file or scratch.with_suffix(".out")
    err_path = scratch.with_suffix(".err")
    with out_path.open("wb") as out, err_path.open("wb") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    stdout = out_path.read_text(errors="replace") if out_file is None else ""
    stderr = err_path.read_text(errors="replace")
    if out_file is None:
        out_path.unlink()
    err_path.unlink()
    if check and proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(map(str, cmd))} exited {proc.returncode}:\n{stderr[-2000:]}{stdout[-2000:]}"
        )
    return Measured(
        seconds=seconds,
        returncode=proc.returncode,
        max_rss_kib=usage.ru_maxrss,
        cpu_seconds=usage.ru_utime + usage.ru_stime,
        stdout=stdout,
        stderr=stderr,
    )


def warm(paths: Sequence[Path]) -> float:
    """Read every file once so every tool sees them in the page cache; returns seconds."""
    start = time.perf_counter()
    seen: set[tuple[int, int]] = set()
    for path in paths:
        st = path.stat()
        key = (st.st_dev, st.st_ino)
        if key in seen:  # a hard link of a file already read: same pages
            continue
        seen.add(key)
        with path.open("rb") as fh:
            while fh.read(1 << 20):
                pass
    return time.perf_counter() - start


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def machine() -> dict[str, object]:
    """What the figures were measured on."""
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "load1": round(os.getloadavg()[0], 2),
    }


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """A plain fixed-width table; numbers right-aligned."""
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )

    print(line(cells[0]))
    print("  ".join("-" * w for w in widths))
    for row in cells[1:]:
        print(line(row))


def print_summary(summary: Mapping[str, object]) -> None:
    """The one-line JSON summary every benchmark ends with."""
    print("SUMMARY " + json.dumps(summary, sort_keys=True))


def run_in_temp(
    name: str, args: argparse.Namespace, bench: Callable[[argparse.Namespace, Path], int]
) -> int:
    """Run ``bench`` in a fresh temp dir (under ``args.dir`` if given), removed afterwards
    unless ``args.keep``."""
    base = Path(tempfile.mkdtemp(prefix=f"mediamill-bench-{name}-", dir=args.dir))
    try:
        return bench(args, base)
    finally:
        if args.keep:
            print(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
