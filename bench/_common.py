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
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


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


@dataclass
class TreeSampler:
    """Peak RSS (VmHWM) and CPU time of every descendant of this process, from ``/proc``.

    CPU time is sampled too because ``wait4`` only counts descendants that were reaped: the
    workers of a forkserver are not when the forkserver is left to exit on its own. What a
    process spends in its last interval is missed, so the sampled sum is a lower bound.
    """

    interval: float = 0.2
    peaks_kib: dict[int, int] = field(default_factory=dict)
    cpu_ticks: dict[int, int] = field(default_factory=dict)
    parents: dict[int, int] = field(default_factory=dict)
    cmdlines: dict[int, str] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> TreeSampler:
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join()

    def _loop(self) -> None:
        me = os.getpid()
        while not self._stop.wait(self.interval):
            parents = _descendants(me)
            for pid, ppid in parents.items():
                match = re.search(r"^VmHWM:\s+(\d+) kB", _read(f"/proc/{pid}/status"), re.M)
                if match:
                    self.peaks_kib[pid] = max(self.peaks_kib.get(pid, 0), int(match.group(1)))
                    self.parents[pid] = ppid
                    fields = _read(f"/proc/{pid}/stat").rpartition(")")[2].split()
                    if len(fields) > 12:  # utime and stime, fields 14 and 15 of stat(5)
                        self.cpu_ticks[pid] = int(fields[11]) + int(fields[12])
                    if pid not in self.cmdlines:
                        cmd = _read(f"/proc/{pid}/cmdline").replace("\0", " ")
                        self.cmdlines[pid] = cmd

    @property
    def cpu_seconds(self) -> float:
        return sum(self.cpu_ticks.values()) / os.sysconf("SC_CLK_TCK")

    def roles(self) -> dict[str, dict[str, Any]]:
        """Peak MB and CPU seconds by role: ``main`` (the command), ``forkserver``, ``workers``
        (the forkserver's children), ``other`` (e.g. multiprocessing's resource tracker)."""
        me = os.getpid()
        tick = os.sysconf("SC_CLK_TCK")
        out: dict[str, dict[str, Any]] = {
            role: {"rss_mb": [], "cpu_seconds": 0.0}
            for role in ("main", "forkserver", "workers", "other")
        }
        servers = {pid for pid, cmd in self.cmdlines.items() if "forkserver" in cmd}
        servers -= {pid for pid in servers if self.parents.get(pid) in servers}
        for pid, kib in sorted(self.peaks_kib.items()):
            if self.parents.get(pid) == me:
                role = "main"
            elif pid in servers:
                role = "forkserver"
            elif self.parents.get(pid) in servers:
                role = "workers"
            else:
                role = "other"
            out[role]["rss_mb"].append(round(kib / 1024, 1))
            out[role]["cpu_seconds"] += self.cpu_ticks.get(pid, 0) / tick
        return out


def _descendants(root: int) -> dict[int, int]:
    """``pid -> parent pid`` of every descendant of ``root``, from the ``children`` files of
    /proc (a few reads per sample, so sampling often does not load the machine), or from
    every process's status where the kernel has no such files."""
    found: dict[int, int] = {}
    todo = [root]
    while todo:
        pid = todo.pop()
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tasks:
            path = f"/proc/{pid}/task/{tid}/children"
            if not os.path.exists(path):
                return _descendants_by_status(root)
            for child in map(int, _read(path).split()):
                found[child] = pid
                todo.append(child)
    return found


def _descendants_by_status(root: int) -> dict[int, int]:
    parents: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            match = re.search(r"^PPid:\s+(\d+)", _read(f"/proc/{entry.name}/status"), re.M)
            if match:
                parents[int(entry.name)] = int(match.group(1))
    mine = {root}
    grew = True
    while grew:  # the closure of "child of one of mine"
        found = {pid for pid, ppid in parents.items() if ppid in mine} - mine
        mine |= found
        grew = bool(found)
    return {pid: parents[pid] for pid in mine - {root}}


def _read(path: str) -> str:
    try:
        with open(path) as fh:
            return fh.read()
    except OSError:  # the process ended between listing and reading
        return ""
