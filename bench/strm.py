"""VOD export: ``mediamill run strm`` against plain Python loops writing the same files.

It serves a generated catalog (``--movies`` movies, ``--episodes`` episodes in series of 20)
from the stand-in Xtream provider on loopback, reads it once in this process (timed, and the
entries kept), then writes the same Kodi/Jellyfin tree, each time into a fresh folder:

(a) ``mediamill run strm xtream+http://… --output DIR -q --set request_rate=0 --db sqlite:///fresh``,
    the whole command in a child (read + catalog sync + export + cleanup walk), with its peak
    RSS (reported by a small launcher process, see ``LAUNCHER``); the job's own timestamps
    split it into "start-up + read + sync", "export" and "finish";
(b) a plain loop over the pre-read entries: ``Layout().plan`` for names and bytes (so the file
    set is identical), ``mkdir`` + ``open().write()``, no comparing, no temp files, no fsync;
(c) the original plugin's way: a pool of 4 threads, batches of 100 entries, 10 ms sleep
    between batches, same writes as (b);
(d) (a) again, unchanged: must write no file (every file's mtime_ns checked) and take at most
    20% of (a).

Targets: (a)'s files/s at least half of (b)'s; (d) <= 20% of (a) and 0 files written; peak
RSS of the mediamill child < 300 MB. Prints a table, PASS/FAIL per target and a
``SUMMARY {json}`` line.

Run: ``.venv/bin/python bench/strm.py [--movies 100000] [--episodes 20000] [--keep]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from _common import (
    Measured,
    isolated_env,
    machine,
    print_summary,
    print_table,
    run_measured,
    verdict,
)

from mediamill.processors.strm import MARKER
from mediamill.sources import open_source
from mediamill.sources.base import SourceEntry
from mediamill.strm.layout import Layout
from mediamill.testing.vodserver import VodServer, make_catalog

MIN_RATE_RATIO = 0.5  # (a) files/s over (b) files/s
MAX_RERUN_SHARE = 0.20  # (d) seconds over (a) seconds
MAX_RSS_MB = 300.0
EPISODES_PER_SERIES = 20
PLUGIN_THREADS, PLUGIN_BATCH, PLUGIN_SLEEP = 4, 100, 0.010
#: Linux starts a child's peak RSS (``ru_maxrss``) at the peak of the process it was spawned
#: from (exec keeps the larger of the two), and this process holds every pre-read entry: a
#: mediamill child spawned from here would report this process's peak when it is higher than
#: its own. So a small launcher spawns the child and writes the child's own peak (KiB) to the
#: file named by its first argument; its exit code is the child's.
LAUNCHER = """
import os, subprocess, sys
child = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(child.pid, 0)
with open(sys.argv[1], "w") as out:
    out.write(str(usage.ru_maxrss))
code = os.waitstatus_to_exitcode(status)
sys.exit(code if code >= 0 else 128 - code)
"""


def read_entries(spec: str) -> tuple[list[SourceEntry], float]:
    start = time.perf_counter()
    entries = list(open_source(spec, options={"request_rate": 0}).iter_entries())
    return entries, time.perf_counter() - start


def count_files(root: Path) -> int:
    """Exported files: every file but mediamill's marker in the output root."""
    count = sum(len(files) for _dirpath, _dirs, files in os.walk(root))
    return count - (root / MARKER).is_file()


def mtimes(root: Path) -> dict[str, int]:
    found: dict[str, int] = {}
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            path = os.path.join(dirpath, name)
            found[path] = os.lstat(path).st_mtime_ns
    return found


def write_plain(root: Path, entries: Iterable[SourceEntry]) -> None:
    """(b): names and bytes from the layout, then mkdir + open().write() per file."""
    layout = Layout()
    written: set[str] = set()
    for entry in entries:
        for planned in layout.plan(entry.key, entry.kind, entry.meta):
            if planned.shared:
                if planned.path in written:
                    continue
                written.add(planned.path)
            path = root / planned.path
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "wb") as handle:
                handle.write(planned.content)


def write_plugin_style(root: Path, entries: Sequence[SourceEntry]) -> None:
    """(c): the original plugin: 4 threads, batches of 100 entries, 10 ms between batches."""
    layout = Layout()
    written: set[str] = set()
    lock = threading.Lock()

    def one(entry: SourceEntry) -> None:
        for planned in layout.plan(entry.key, entry.kind, entry.meta):
            if planned.shared:
                with lock:
                    if planned.path in written:
                        continue
                    written.add(planned.path)
            path = root / planned.path
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "wb") as handle:
                handle.write(planned.content)

    with ThreadPoolExecutor(max_workers=PLUGIN_THREADS) as pool:
        for start in range(0, len(entries), PLUGIN_BATCH):
            list(pool.map(one, entries[start : start + PLUGIN_BATCH]))
            time.sleep(PLUGIN_SLEEP)


def timed(func: Any, *args: Any) -> float:
    start = time.perf_counter()
    func(*args)
    return time.perf_counter() - start


def touched(before: dict[str, int], after: dict[str, int]) -> int:
    """Files written (another mtime) or removed between two :func:`mtimes` of a folder."""
    written = sum(1 for path, ns in after.items() if before.get(path) != ns)
    return written + len(set(before) - set(after))


def run_mediamill(
    label: str, spec: str, out: Path, db: Path, env: dict[str, str]
) -> tuple[Measured, float]:
    """One export in a child (through ``LAUNCHER``); returns its measurement, with the child's
    own peak RSS, and its wall-clock start (epoch); raises, naming ``label``, when it
    fails. CPU seconds include the launcher's (a few hundredths of a second)."""
    rss_file = out.parent / f".{out.name}-{time.monotonic_ns()}.maxrss"
    cmd = [sys.executable, "-c", LAUNCHER, str(rss_file), sys.executable, "-m", "mediamill"]
    cmd += ["run", "strm", spec, "--output", str(out)]
    cmd += ["-q", "--set", "request_rate=0", "--db", f"sqlite:///{db}"]
    launched = time.time()
    measured = run_measured(cmd, env=env, cwd=out.parent, check=False)
    if rss_file.exists():
        measured = dataclasses.replace(measured, max_rss_kib=int(rss_file.read_text()))
        rss_file.unlink()
    if measured.returncode != 0:
        raise RuntimeError(f"{label} failed:\n{measured.stderr[-3000:]}{measured.stdout}")
    return measured, launched


def job_phases(db: Path, launched: float) -> dict[str, float]:
    """Seconds of start-up + read + sync, export and finish, from the job's timestamps."""
    from mediamill.catalog.db import Catalog
    from mediamill.jobs import manager

    catalog = Catalog.open(f"sqlite:///{db}")
    try:
        jobs, _ = manager.list_jobs(catalog, limit=1)
    finally:
        catalog.close()
    job = jobs[0]

    def epoch(stamp: str) -> float:
        moment = dt.datetime.fromisoformat(stamp)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=dt.UTC)
        return moment.timestamp()

    started, completed = epoch(job["started_at"]), epoch(job["completed_at"])
    export = float((job["summary"] or {}).get("elapsed", 0.0))
    return {
        "startup_read_sync": round(started - launched, 2),
        "export": round(export, 2),
        "finish": round(completed - started - export, 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--movies", type=int, default=100_000)
    parser.add_argument("--episodes", type=int, default=20_000)
    parser.add_argument("--keep", action="store_true", help="Keep the output folders.")
    args = parser.parse_args()
    series = max(1, args.episodes // EPISODES_PER_SERIES)
    catalog = make_catalog(args.movies, series, EPISODES_PER_SERIES, seed=1)
    work = Path(tempfile.mkdtemp(prefix="mediamill-bench-strm-"))
    figures: dict[str, Any] = {"machine": machine(), "movies": args.movies}
    figures["episodes"] = series * EPISODES_PER_SERIES
    try:
        with VodServer(catalog) as server:
            # credentials from the environment: the spec a library remembers carries none
            spec = f"xtream+http://127.0.0.1:{server.port}"
            env = isolated_env(work / "home")
            env["MEDIAMILL_XTREAM_USER"] = server.username
            env["MEDIAMILL_XTREAM_PASS"] = server.password
            print(f"reading {args.movies:,} movies + {figures['episodes']:,} episodes …")
            entries, read_seconds = read_entries(server.xtream_spec)
            figures["read_seconds"] = round(read_seconds, 2)

            (work / "a").mkdir()
            db = work / "a.db"
            first, launched = run_mediamill("(a)", spec, work / "a" / "out", db, env)
            figures["phases_a"] = job_phases(db, launched)
            files = count_files(work / "a" / "out")
            before = mtimes(work / "a" / "out")

            plain = timed(write_plain, work / "b", entries)
            plain_files = count_files(work / "b")
            plugin = timed(write_plugin_style, work / "c", entries)
            plugin_files = count_files(work / "c")

            again, launched = run_mediamill("(d)", spec, work / "a" / "out", db, env)
            figures["phases_d"] = job_phases(db, launched)
            after = mtimes(work / "a" / "out")
            rewritten = touched(before, after)

            # (e), for information: the provider renamed one movie and dropped another
            catalog.renamed[3] = "A Title The Provider Changed"
            catalog.removed.add(5)
            changed_run, launched = run_mediamill("(e)", spec, work / "a" / "out", db, env)
            figures["phases_e"] = job_phases(db, launched)
            changed = touched(after, mtimes(work / "a" / "out"))
        rate_a, rate_b, rate_c = files / first.seconds, plain_files / plain, plugin_files / plugin
        ratio = rate_a / rate_b
        share = again.seconds / first.seconds
        rss_mb = max(first.max_rss_mb, again.max_rss_mb)
        same_files = files == plain_files == plugin_files
        print_table(
            ["approach", "files", "seconds", "files/s", "peak RSS MB"],
            [
                ["(a) mediamill run strm", files, f"{first.seconds:.1f}", f"{rate_a:,.0f}",
                 f"{first.max_rss_mb:.0f}"],
                ["(b) plain loop", plain_files, f"{plain:.1f}", f"{rate_b:,.0f}", "-"],
                ["(c) plugin: 4 threads, 100/batch, 10 ms", plugin_files, f"{plugin:.1f}",
                 f"{rate_c:,.0f}", "-"],
                ["(d) unchanged re-run of (a)", rewritten, f"{again.seconds:.1f}", "-",
                 f"{again.max_rss_mb:.0f}"],
            ],
        )  # fmt: skip
        print(f"source read in this process: {read_seconds:.1f} s for {len(entries):,} entries")
        print(
            f"(e) after the provider renamed one movie (moved: 2 files written, 2 removed) "
            f"and dropped one (previewed): {changed_run.seconds:.1f} s "
            f"({changed_run.seconds / first.seconds:.0%} of (a)), {changed} files touched"
        )
        print(f"(a) phases: {figures['phases_a']}; (d) phases: {figures['phases_d']}")
        print(f"(e) phases: {figures['phases_e']}")
        checks = {
            f"(a) files/s >= {MIN_RATE_RATIO}x (b)": ratio >= MIN_RATE_RATIO,
            f"(d) <= {MAX_RERUN_SHARE:.0%} of (a)": share <= MAX_RERUN_SHARE,
            "(d) writes 0 files": rewritten == 0,
            f"peak RSS < {MAX_RSS_MB:.0f} MB": rss_mb < MAX_RSS_MB,
            "same file count in (a), (b), (c)": same_files,
        }
        for name, ok in checks.items():
            print(f"{verdict(ok)}  {name}")
        figures.update(
            files=files,
            seconds={"a": round(first.seconds, 2), "b": round(plain, 2), "c": round(plugin, 2),
                     "d": round(again.seconds, 2)},
            files_per_s={"a": round(rate_a), "b": round(rate_b), "c": round(rate_c)},
            ratio_a_b=round(ratio, 3),
            rerun_share=round(share, 3),
            rerun_files_written=rewritten,
            changed_rerun={"seconds": round(changed_run.seconds, 2), "files_touched": changed},
            peak_rss_kib=max(first.max_rss_kib, again.max_rss_kib),
            cpu_seconds={"a": round(first.cpu_seconds, 1), "d": round(again.cpu_seconds, 1)},
            checks={name: verdict(ok) for name, ok in checks.items()},
        )  # fmt: skip
        print_summary(figures)
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
