"""Unchanged re-run: ``mediamill run probe TREE`` on a probed tree against ``find``.

It builds a music tree (``Artist NNN/Album N/NNN Title.ext``, hard links of a few real small
audio files spread over ~1,000 folders), probes it once (timed, reported), then times, several
times each and interleaved, on the same hot tree:

- ``mediamill run probe TREE -q --db sqlite:///…`` with nothing changed (peak RSS too);
- ``find TREE -type f`` (names only) and ``find TREE -printf '%s %T@\\n'`` (a stat each,
  which is what a rescan needs);
- once, the same command after one file's mtime moved (a tagger's in-place edit): the tree's
  digest differs, so the scan compares it file by file.

It does this at two sizes (``--small-files``, default 10,000, then ``--files``, default
100,000) to show whether time and RSS grow with the tree, breaks the re-run down into
phases (start-up + imports, catalog open, scan, job set-up, job run) in a child process, and
ends with PASS/FAIL and a ``SUMMARY {json}`` line.
Run: ``.venv/bin/python bench/rescan.py [--files 100000]``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
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

MAX_FIND_RATIO = 5.0  # re-run seconds / find -type f seconds
MAX_RSS_MB = 300.0

SOURCE_FORMATS = ("mp3", "flac", "m4a-aac", "opus", "ogg")

# Runs in a child with the venv python: the CLI's `run` path, one phase at a time.
PHASES = """\
import json, sys, time
t0 = time.perf_counter()
from mediamill import walk
walk.start_ahead(["scan", sys.argv[1]])  # as the command does: the walk runs while it loads
import mediamill.cli  # what the command imports before doing anything
t_import = time.perf_counter()
from mediamill import ops
from mediamill.catalog.db import Catalog, Selection
from mediamill.processors.probe import ProbeProcessor
from mediamill.settings import load

tree, db = sys.argv[1], sys.argv[2]
phases = {"python start-up + import mediamill.cli (the walk runs meanwhile)": t_import - t0}

def timed(name, fn):
    start = time.perf_counter()
    value = fn()
    phases[name] = time.perf_counter() - start
    return value

settings = load(db=db)
catalog = timed("Catalog.open (engine + schema check)", lambda: Catalog.open(settings.db_url()))
library = timed("resolve_library", lambda: ops.resolve_library(catalog, tree))
report = timed("refresh_library (scan: wait for the walk, compare digests)",
               lambda: ops.refresh_library(catalog, library))
job_id, _ = timed("prepare_job", lambda: ops.prepare_job(
    catalog, "probe", library, options={}, settings=settings))
job = timed("run_job (count/iterate pending, executor, finish)",
            lambda: ops.run_job(catalog, job_id, settings=settings))
total = time.perf_counter() - t0
# the pieces inside, measured again on their own (not part of the total above)
sel = Selection(library_id=library.id, kinds=ProbeProcessor.kinds)
extra = {}
def again(name, fn):
    start = time.perf_counter()
    fn()
    extra[name] = time.perf_counter() - start
again("walk in line (os.scandir + stat + spool + digest)", lambda: walk.list_folder(tree).close())
def compare():
    from mediamill.sources.folder import _compare, ScanReport
    with walk.list_folder(tree) as listing:
        _compare(catalog, library, listing, ScanReport(library.name), None)
again("walk in line + compare file by file (a changed tree)", compare)
again("count_pending", lambda: catalog.count_pending(sel, "probe", ProbeProcessor.version))
again("count_selection", lambda: catalog.count_selection(sel))
again("iter_pending (drain)", lambda: sum(1 for _ in catalog.iter_pending(
    sel, "probe", ProbeProcessor.version, root=library.root)))
print(json.dumps({"phases": phases, "total": total, "inside": extra,
                  "scan": {k: report[k] for k in ("new", "changed", "unchanged", "missing")},
                  "job": {k: job[k] for k in ("status", "total_items", "skipped")}}))
"""

_SCAN_LINE = re.compile(r"(\d+) new, (\d+) changed, (\d+) unchanged, (\d+) missing")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=100_000, help="big tree (default 100000)")
    parser.add_argument(
        "--small-files",
        type=int,
        default=10_000,
        help="small tree to compare RSS and time with (default 10000; 0 skips it)",
    )
    parser.add_argument("--folders", type=int, default=1000, help="album folders (default 1000)")
    parser.add_argument("--repeat", type=int, default=5, help="timed re-runs (median; default 5)")
    parser.add_argument("--dir", type=Path, help="work here instead of a new temp dir")
    parser.add_argument("--keep", action="store_true", help="keep the trees and catalogs")
    return parser.parse_args()


def make_sources(folder: Path) -> list[Path]:
    from mediamill.testing.media import AudioTags, suffix_for, write_audio

    return [
        write_audio(folder / f"source{n}{suffix_for(fmt)}", fmt, tags=AudioTags(track=n + 1))
        for n, fmt in enumerate(SOURCE_FORMATS)
    ]


def make_tree(tree: Path, n: int, folders: int, sources: list[Path]) -> None:
    """``n`` hard links under ``folders`` album folders, 10 albums an artist."""
    folders = max(1, min(folders, n))
    per_folder = -(-n // folders)
    width = max(2, len(str(per_folder)))
    made = 0
    for f in range(folders):
        album = tree / f"Artist {f // 10:03d}" / f"Album {f % 10}"
        album.mkdir(parents=True, exist_ok=True)
        for track in range(1, per_folder + 1):
            if made == n:
                return
            source = sources[made % len(sources)]
            os.link(source, album / f"{track:0{width}d} Title {track}{source.suffix}")
            made += 1


def mediamill_run(tree: Path, db: Path, work: Path) -> tuple[float, float, float, str]:
    """Seconds, peak RSS (MB), CPU seconds and output of ``mediamill run probe TREE -q``."""
    result = run_measured(
        [venv_bin("mediamill"), "run", "probe", str(tree), "-q", "--db", f"sqlite:///{db}"],
        cwd=work,
        env=isolated_env(work / "home"),
    )
    return result.seconds, result.max_rss_mb, result.cpu_seconds, result.stdout


def find_seconds(tree: Path, work: Path, *extra: str) -> float:
    find = shutil.which("find") or "find"
    return run_measured([find, str(tree), *extra], cwd=work, out_file=Path(os.devnull)).seconds


def bench_size(n: int, args: argparse.Namespace, work: Path, sources: list[Path]) -> dict:
    tree = work / f"tree-{n}"
    db = work / f"catalog-{n}.db"
    start = time.perf_counter()
    make_tree(tree, n, args.folders, sources)
    print(f"\n== {n:,} files: tree made in {time.perf_counter() - start:.1f} s ({tree})")

    first_s, first_rss, first_cpu, out = mediamill_run(tree, db, work)
    print(
        f"first run (probes everything, untimed in the targets): {first_s:.1f} s "
        f"({n / first_s:,.0f} files/s), peak RSS {first_rss:.0f} MB, {first_cpu:.1f} CPU s"
    )
    print("  " + " | ".join(line.strip() for line in out.splitlines() if line.strip()))

    runs: dict[str, list[float]] = {"rerun": [], "rss": [], "cpu": [], "find": [], "stat": []}
    for _ in range(args.repeat):
        runs["find"].append(find_seconds(tree, work, "-type", "f"))
        runs["stat"].append(find_seconds(tree, work, "-printf", "%s %T@\\n"))
        seconds, rss, cpu, out = mediamill_run(tree, db, work)
        match = _SCAN_LINE.search(out)
        if not match or match.groups()[:2] != ("0", "0"):
            print(f"WARNING: the re-run did not find the tree unchanged: {out.strip()}")
        runs["rerun"].append(seconds)
        runs["rss"].append(rss)
        runs["cpu"].append(cpu)
    some_file = next(p for p in sorted(tree.rglob("*")) if p.is_file())
    copy = some_file.with_name(some_file.name + ".tmp")
    shutil.copyfile(some_file, copy)  # a file of its own (the tree is hard links), new mtime
    copy.replace(some_file)  # like a tagger's edit: the next run compares file by file
    one_changed, _rss, _cpu, out = mediamill_run(tree, db, work)
    match = _SCAN_LINE.search(out)
    if not match or match.groups()[:2] != ("0", "1"):
        print(f"WARNING: the run after an edit did not see one changed file: {out.strip()}")
    env = isolated_env(work / "home")
    startup = median(
        [
            run_measured([sys.executable, "-c", "import mediamill.cli"], cwd=work).seconds
            for _ in range(3)
        ]
    )
    scan_cmd = [venv_bin("mediamill"), "scan", str(tree), "--db", f"sqlite:///{db}"]
    scan = median([run_measured(scan_cmd, cwd=work, env=env).seconds for _ in range(3)])
    script = work / "phases.py"
    script.write_text(PHASES)
    phases = json.loads(
        run_measured([sys.executable, script, str(tree), f"sqlite:///{db}"], cwd=work).stdout
    )

    rerun, find, stat = median(runs["rerun"]), median(runs["find"]), median(runs["stat"])
    rows = [
        ["mediamill run probe (unchanged re-run)", f"{rerun:.3f}", f"{n / rerun:,.0f}"],
        ["find TREE -type f", f"{find:.3f}", f"{n / find:,.0f}"],
        ["find TREE -printf '%s %T@\\n'", f"{stat:.3f}", f"{n / stat:,.0f}"],
        ["mediamill run probe, 1 file edited", f"{one_changed:.3f}", f"{n / one_changed:,.0f}"],
        ["mediamill scan TREE (whole command)", f"{scan:.3f}", f"{n / scan:,.0f}"],
        ["python -c 'import mediamill.cli'", f"{startup:.3f}", ""],
    ]
    print(f"medians of {args.repeat} runs:")
    print_table(["command", "seconds", "files/s"], rows)
    print(
        f"re-run: {rerun / find:.1f}x find -type f, {rerun / stat:.1f}x find -printf; "
        f"peak RSS {max(runs['rss']):.0f} MB (max of runs), "
        f"{median(runs['cpu']):.2f} CPU s"
    )
    print("all re-runs (s):", [round(s, 2) for s in runs["rerun"]])
    print("where one re-run's time goes (in-process, one child):")
    phase_rows = [[name, f"{s:.3f}"] for name, s in phases["phases"].items()]
    phase_rows.append(["total", f"{phases['total']:.3f}"])
    print_table(["phase", "seconds"], phase_rows)
    print("the same pieces on their own:")
    print_table(["piece", "seconds"], [[k, f"{v:.3f}"] for k, v in phases["inside"].items()])
    return {
        "files": n,
        "first_run_s": round(first_s, 2),
        "first_run_rss_mb": round(first_rss, 1),
        "rerun_s": round(rerun, 3),
        "rerun_runs_s": [round(s, 3) for s in runs["rerun"]],
        "find_s": round(find, 3),
        "find_printf_s": round(stat, 3),
        "one_changed_s": round(one_changed, 3),
        "scan_cmd_s": round(scan, 3),
        "startup_import_s": round(startup, 3),
        "rerun_over_find": round(rerun / find, 2),
        "rerun_over_find_printf": round(rerun / stat, 2),
        "rerun_rss_mb": round(max(runs["rss"]), 1),
        "rerun_cpu_s": round(median(runs["cpu"]), 2),
        "phases_s": {k: round(v, 3) for k, v in phases["phases"].items()},
        "inside_s": {k: round(v, 3) for k, v in phases["inside"].items()},
    }


def main() -> int:
    return run_in_temp("rescan", parse_args(), bench)


def bench(args: argparse.Namespace, base: Path) -> int:
    print(f"machine: {json.dumps(machine())}")
    (base / "home").mkdir()
    sources = make_sources(base / "sources")
    sizes = [s for s in (args.small_files, args.files) if s]
    results = [bench_size(n, args, base, sources) for n in sizes]
    big = results[-1]

    print()
    checks = {
        "rerun_over_find": {
            "value": big["rerun_over_find"],
            "target": f"<= {MAX_FIND_RATIO}",
            "pass": big["rerun_over_find"] <= MAX_FIND_RATIO,
        },
        "rerun_rss_mb": {
            "value": big["rerun_rss_mb"],
            "target": f"< {MAX_RSS_MB}",
            "pass": big["rerun_rss_mb"] < MAX_RSS_MB,
        },
    }
    rows = [
        [
            f"re-run / find -type f at {big['files']:,} files",
            f"{big['rerun_over_find']:.1f}x",
            f"<= {MAX_FIND_RATIO:.0f}x",
            verdict(checks["rerun_over_find"]["pass"]),
        ],
        [
            f"re-run / find -printf (a stat each) at {big['files']:,}",
            f"{big['rerun_over_find_printf']:.1f}x",
            "(informative)",
            "",
        ],
        [
            f"re-run peak RSS at {big['files']:,} files",
            f"{big['rerun_rss_mb']:.0f} MB",
            f"< {MAX_RSS_MB:.0f} MB",
            verdict(checks["rerun_rss_mb"]["pass"]),
        ],
    ]
    if len(results) > 1:
        small = results[0]
        growth = big["rerun_rss_mb"] - small["rerun_rss_mb"]
        rows.append(
            [
                f"RSS {small['files']:,} -> {big['files']:,} files",
                f"{small['rerun_rss_mb']:.0f} -> {big['rerun_rss_mb']:.0f} MB",
                "(informative)",
                f"{growth:+.0f} MB",
            ]
        )
        rows.append(
            [
                f"re-run time {small['files']:,} -> {big['files']:,} files",
                f"{small['rerun_s']:.2f} -> {big['rerun_s']:.2f} s",
                "(informative)",
                f"{big['rerun_s'] / small['rerun_s']:.1f}x",
            ]
        )
    print_table(["target", "measured", "wanted", "result"], rows)
    print_summary(
        {
            "bench": "rescan",
            **machine(),
            "sizes": results,
            "checks": checks,
            "pass": all(c["pass"] for c in checks.values()),
        }
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
