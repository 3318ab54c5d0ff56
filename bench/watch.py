"""Watched folders: latency from a file complete to its results in the catalog, CPU used while
idly watching a big library, and the cost of one polling interval against ``find -printf``.

(a) latency: ``mediamill watch TREE --run probe --settle S`` runs; a new real audio file is
    written (closed) into an album folder, and the catalog is read every 20 ms until its probe
    result is there. Target: <= S + 1 s (median of --samples files).
(b) idle CPU: the same process's user + system CPU (all threads, from /proc) over
    --idle-seconds once its catch-up jobs are done and nothing changes. Target: <= 1 % of a
    core with native events (inotify).
(c) polling: one interval's look at an unchanged tree as the watcher does it (a walk of the
    whole tree into a listing and a digest compared with the catalog's), in this process,
    against ``find TREE -printf '%s %T@\\n'`` (a stat each) on the same tree; medians of
    --repeat. Target: <= 5x. The idle CPU of ``mediamill watch --poll`` is shown too.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from _common import (
    isolated_env,
    machine,
    median,
    print_summary,
    print_table,
    run_in_temp,
    run_measured,
    venv_bin,
    verdict,
)
from rescan import make_sources, make_tree

MAX_IDLE_CPU = 0.01  # share of one core
MAX_POLL_RATIO = 5.0
LATENCY_SLACK = 1.0  # seconds over the settle time


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=100_000, help="tree size (default 100000)")
    parser.add_argument("--folders", type=int, default=1000, help="album folders (default 1000)")
    parser.add_argument("--settle", type=float, default=2.0, help="settle seconds (default 2)")
    parser.add_argument("--samples", type=int, default=3, help="latency samples (default 3)")
    parser.add_argument("--idle-seconds", type=float, default=60.0, help="default 60")
    parser.add_argument("--repeat", type=int, default=5, help="polling looks (median; 5)")
    parser.add_argument("--dir", type=Path, help="work here instead of a new temp dir")
    parser.add_argument("--keep", action="store_true", help="keep the tree and catalog")
    return parser.parse_args()


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process, every thread included (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Watching:
    """A ``mediamill watch`` child process, started and waited for until it is idle."""

    def __init__(self, tree: Path, db: Path, work: Path, *extra: str) -> None:
        self.db = db
        self.log = (work / f"watch-{len(extra)}.log").open("wb")
        cmd = [venv_bin("mediamill"), "watch", str(tree), "--run", "probe", "--db",
               f"sqlite:///{db}", *extra]  # fmt: skip
        env = {**isolated_env(work / "home"), "MEDIAMILL_EXECUTOR": "processes"}
        self.proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=self.log, stderr=self.log)

    def wait_idle(self, timeout: float = 3600) -> None:
        """Until it says it watches and no job of the catalog is queued or running."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, Path(self.log.name).read_text()[-2000:]
            text = Path(self.log.name).read_text(errors="replace")
            if "watching:" in text and self.db.exists() and not self._busy():
                return
            time.sleep(0.2)
        raise RuntimeError("the watcher did not settle")

    def _busy(self) -> int:
        with sqlite3.connect(self.db) as conn:
            return int(
                conn.execute(
                    "SELECT count(*) FROM jobs WHERE status IN ('queued', 'running')"
                ).fetchone()[0]
            )

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(60)
        self.log.close()


def probed(db: Path, path: str) -> bool:
    with sqlite3.connect(db) as conn:
        row = conn.execute(
            "SELECT 1 FROM results JOIN items ON items.id = results.item_id "
            "WHERE items.path = ? AND results.processor = 'probe'",
            (path,),
        ).fetchone()
    return row is not None


def latency(watching: Watching, tree: Path, sources: list[Path], samples: int) -> list[float]:
    """Seconds from a new file closed in the tree to its probe result in the catalog."""
    seconds = []
    for n in range(samples):
        source = sources[n % len(sources)]
        rel = f"Artist 000/Album 0/new {n}{source.suffix}"
        data = source.read_bytes()
        with open(tree / rel, "wb") as out:
            out.write(data)
        done = time.monotonic()
        while not probed(watching.db, rel):
            if time.monotonic() - done > 120:
                raise RuntimeError(f"{rel} was not probed within 120 s")
            time.sleep(0.02)
        seconds.append(time.monotonic() - done)
        watching.wait_idle()
    return seconds


def idle_cpu(watching: Watching, seconds: float) -> float:
    """Share of one core the watcher used over ``seconds`` of nothing changing."""
    watching.wait_idle()
    before, start = cpu_seconds(watching.proc.pid), time.monotonic()
    time.sleep(seconds)
    return (cpu_seconds(watching.proc.pid) - before) / (time.monotonic() - start)


def poll_look(tree: Path, db: Path) -> float:
    """One polling interval's look as the watcher does it, in this process: seconds."""
    from mediamill.catalog.db import Catalog
    from mediamill.sources.folder import scan_digest
    from mediamill.walk import list_folder

    catalog = Catalog.open(f"sqlite:///{db}")
    library = catalog.library_by_root(tree)
    assert library is not None
    start = time.perf_counter()
    with list_folder(str(tree)) as listing:
        unchanged = scan_digest(listing) == catalog.source_digest(library.id)
    seconds = time.perf_counter() - start
    catalog.close()
    assert unchanged, "the tree changed under the benchmark"
    return seconds


def bench(args: argparse.Namespace, base: Path) -> int:
    print(f"machine: {json.dumps(machine())}")
    (base / "home").mkdir()
    sources = make_sources(base / "sources")
    tree, db = base / "tree", base / "catalog.db"
    start = time.perf_counter()
    make_tree(tree, args.files, args.folders, sources)
    print(f"tree of {args.files:,} files made in {time.perf_counter() - start:.1f} s")
    first = run_measured(
        [venv_bin("mediamill"), "run", "probe", str(tree), "-q", "--db", f"sqlite:///{db}"],
        cwd=base,
        env=isolated_env(base / "home"),
    )
    print(f"first probe of the tree: {first.seconds:.1f} s (not a target)")

    native = Watching(tree, db, base, "--settle", str(args.settle))
    try:
        native.wait_idle()
        waits = latency(native, tree, sources, args.samples)
        native_cpu = idle_cpu(native, args.idle_seconds)
    finally:
        native.stop()
    polling = Watching(tree, db, base, "--settle", str(args.settle), "--poll", "10")
    try:
        polling_cpu = idle_cpu(polling, args.idle_seconds)
    finally:
        polling.stop()
    looks = [poll_look(tree, db) for _ in range(args.repeat)]
    find = shutil.which("find") or "find"
    finds = [
        run_measured([find, str(tree), "-printf", "%s %T@\n"], out_file=Path(os.devnull)).seconds
        for _ in range(args.repeat)
    ]
    return report(args, waits, native_cpu, polling_cpu, median(looks), median(finds))


def report(
    args: argparse.Namespace,
    waits: list[float],
    native_cpu: float,
    polling_cpu: float,
    look: float,
    find: float,
) -> int:
    lat = median(waits)
    ratio = look / find
    checks = {
        "latency_s": {"value": round(lat, 2), "target": f"<= {args.settle + LATENCY_SLACK}",
                      "pass": lat <= args.settle + LATENCY_SLACK},
        "idle_cpu_native": {"value": round(native_cpu, 4), "target": f"<= {MAX_IDLE_CPU}",
                            "pass": native_cpu <= MAX_IDLE_CPU},
        "poll_over_find_printf": {"value": round(ratio, 2), "target": f"<= {MAX_POLL_RATIO}",
                                  "pass": ratio <= MAX_POLL_RATIO},
    }  # fmt: skip
    print()
    print_table(
        ["what", "figure", "target", ""],
        [
            [f"file complete → probed (settle {args.settle:g} s; samples "
             f"{', '.join(f'{w:.2f}' for w in waits)})", f"{lat:.2f} s",
             f"<= {args.settle + LATENCY_SLACK:g} s", verdict(checks["latency_s"]["pass"])],
            [f"idle CPU, native events, {args.files:,} files, {args.idle_seconds:g} s",
             f"{native_cpu:.2%}", f"<= {MAX_IDLE_CPU:.0%}",
             verdict(checks["idle_cpu_native"]["pass"])],
            [f"idle CPU, polling every 10 s, {args.files:,} files", f"{polling_cpu:.2%}",
             "(informative)", ""],
            ["one polling look (walk + digest) / find -printf",
             f"{look:.3f} s / {find:.3f} s = {ratio:.1f}x", f"<= {MAX_POLL_RATIO:g}x",
             verdict(checks["poll_over_find_printf"]["pass"])],
        ],
    )  # fmt: skip
    print(f"load after: {os.getloadavg()[0]:.2f}")
    print_summary({"machine": machine(), "files": args.files, "checks": checks})
    return 0 if all(c["pass"] for c in checks.values()) else 1


def main() -> int:
    return run_in_temp("watch", parse_args(), bench)


if __name__ == "__main__":
    sys.exit(main())
