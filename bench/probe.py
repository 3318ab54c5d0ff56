"""Probe throughput: ``mediamill run probe`` against what a user would run instead.

On one generated corpus of real audio and video files (hard links of a few real encodes,
page cache warmed first) it times, each as a child process:

(a) ``mediamill run probe DIR -q`` into a fresh SQLite catalog (start-up, scan and catalog
    writes included);
(b) an ``ffprobe -show_format -show_streams -of json`` loop, one process per file, on a
    random sample (its rate is extrapolated to the corpus);
(c) ``exiftool -json -r -fast DIR`` over the whole corpus;
(d) the ceiling: a bare script that opens every file with PyAV on 2 threads and keeps nothing.

Then, on a corpus of phone and camera photos (``--photos``, default 2,000: half 12 MP HEIC,
half JPEG, with EXIF; a few real encodes, the rest hard links), it times (a) and (c) again:
mediamill reads HEIC through pillow-heif, exiftool with ``-fast``.

It prints files/s per tool, mediamill's ratio to each with PASS/FAIL against the targets,
and a last ``SUMMARY {json}`` line. Run: ``.venv/bin/python bench/probe.py [--files 5000]``.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

from _common import (
    TreeSampler,
    isolated_env,
    machine,
    median,
    print_summary,
    print_table,
    run_in_temp,
    run_measured,
    venv_bin,
    verdict,
    warm,
)

#: mediamill's rate divided by the other tool's must reach these
TARGETS = {"ffprobe-loop": 100.0, "exiftool": 5.0, "bare-pyav": 0.5}
#: mediamill's photo rate divided by exiftool's on the photo corpus
PHOTO_TARGET = 3.0

BARE_PYAV = '''\
"""Open every file under a folder with PyAV on N threads; keep nothing."""
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import av


def probe(path):
    try:
        with av.open(path) as container:
            _ = (container.format.name, container.duration, container.bit_rate,
                 dict(container.metadata))
            for stream in container.streams:
                ctx = stream.codec_context
                _ = (stream.index, stream.type, ctx.name, stream.duration,
                     dict(stream.metadata))
                if stream.type == "audio":
                    _ = (ctx.sample_rate, ctx.channels)
                elif stream.type == "video":
                    _ = (ctx.width, ctx.height, stream.average_rate)
        return 1
    except av.error.FFmpegError:
        return 0


start = time.perf_counter()
paths = [os.path.join(d, f) for d, _, names in os.walk(sys.argv[1]) for f in names]
with ThreadPoolExecutor(int(sys.argv[2])) as pool:
    ok = sum(pool.map(probe, paths, chunksize=64))
print(len(paths), ok, round(time.perf_counter() - start, 4))
'''

_COMPLETED = re.compile(r"completed: (\d+)/(\d+) items, (\d+) ok, (\d+) failed")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=5000, help="corpus size (default 5000)")
    parser.add_argument(
        "--unique", type=int, default=12, help="really encoded files; the rest are hard links"
    )
    parser.add_argument("--dir", type=Path, help="work here instead of a new temp dir")
    parser.add_argument("--keep", action="store_true", help="keep the corpus and catalogs")
    parser.add_argument(
        "--sample", type=int, default=300, help="files the ffprobe loop runs on (default 300)"
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs of mediamill/bare/exiftool; median kept"
    )
    parser.add_argument("--threads", type=int, default=2, help="bare PyAV threads (default 2)")
    parser.add_argument("--workers", type=int, help="pass --workers to mediamill")
    parser.add_argument("--seed", type=int, default=0, help="seed of the ffprobe sample")
    parser.add_argument(
        "--photos", type=int, default=2000, help="photo corpus size (default 2000; 0: none)"
    )
    parser.add_argument(
        "--photo-unique", type=int, default=8, help="really encoded photos (default 8)"
    )
    return parser.parse_args()


def make_files(root: Path, n: int, unique: int) -> list[Path]:
    from mediamill.testing.media import make_corpus

    return make_corpus(root, n, unique=unique)


def time_mediamill(
    corpus: Path, work: Path, run: int | str, workers: int | None
) -> dict[str, float]:
    home = work / "home"
    home.mkdir(exist_ok=True)
    db = work / f"catalog-{run}.db"
    cmd = [venv_bin("mediamill"), "run", "probe", str(corpus), "-q", "--db", f"sqlite:///{db}"]
    if workers:
        cmd += ["--workers", str(workers)]
    with TreeSampler(interval=0.05) as sampler:
        result = run_measured(cmd, cwd=work, env=isolated_env(home))
    # probe runs in worker processes (forked by multiprocessing's forkserver), which the
    # command's wait4 figure does not count: their CPU time is sampled from /proc
    roles = sampler.roles()
    pool_cpu = roles["forkserver"]["cpu_seconds"] + roles["workers"]["cpu_seconds"]
    match = _COMPLETED.search(result.stdout)
    if not match:
        raise RuntimeError(f"unexpected mediamill output:\n{result.stdout}\n{result.stderr}")
    done, total, ok, failed = map(int, match.groups())
    return {
        "seconds": result.seconds,
        "files": total,
        "ok": ok,
        "failed": failed,
        "cpu_seconds": result.cpu_seconds + pool_cpu,
        "max_rss_mb": result.max_rss_mb,
        "worker_rss_mb": max(roles["workers"]["rss_mb"], default=0.0),
        "done": done,
    }


def time_bare(corpus: Path, work: Path, threads: int) -> dict[str, float]:
    script = work / "bare_pyav.py"
    script.write_text(BARE_PYAV)
    result = run_measured([sys.executable, script, str(corpus), str(threads)], cwd=work)
    files, ok, inner = result.stdout.split()
    return {
        "seconds": result.seconds,
        "files": int(files),
        "ok": int(ok),
        "inner_seconds": float(inner),
        "cpu_seconds": result.cpu_seconds,
        "max_rss_mb": result.max_rss_mb,
    }


def time_exiftool(corpus: Path, work: Path) -> dict[str, float]:
    out = work / "exiftool.json"
    exiftool = shutil.which("exiftool") or "exiftool"
    result = run_measured(
        [exiftool, "-json", "-r", "-fast", str(corpus)], cwd=work, out_file=out, check=False
    )
    entries = json.loads(out.read_text() or "[]")
    out.unlink()
    return {
        "seconds": result.seconds,
        "files": len(entries),
        "returncode": result.returncode,
        "cpu_seconds": result.cpu_seconds,
    }


def time_ffprobe_loop(sample: list[Path]) -> dict[str, float]:
    ffprobe = shutil.which("ffprobe") or "ffprobe"
    ok = 0
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    for path in sample:
        done = subprocess.run(
            [ffprobe, "-v", "error", "-show_format", "-show_streams", "-of", "json", str(path)],
            capture_output=True,
            check=False,
        )
        ok += done.returncode == 0
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"seconds": seconds, "files": len(sample), "ok": ok, "cpu_seconds": cpu}


def import_seconds(work: Path) -> float:
    """Python start-up plus ``import mediamill.cli``: the floor of every command."""
    result = run_measured([sys.executable, "-c", "import mediamill.cli"], cwd=work)
    return result.seconds


def main() -> int:
    return run_in_temp("probe", parse_args(), bench)


def bench(args: argparse.Namespace, base: Path) -> int:
    corpus = base / "corpus"
    print(f"machine: {json.dumps(machine())}")
    start = time.perf_counter()
    files = make_files(corpus, args.files, args.unique)
    made = time.perf_counter() - start
    print(f"corpus: {len(files)} files ({args.unique} real encodes, the rest hard links)")
    print(f"  in {corpus}, made in {made:.1f} s")
    print(f"page cache warmed in {warm(files):.2f} s")
    n = len(files)

    mm_runs, bare_runs, exif_runs = [], [], []
    for run in range(args.repeat):
        mm_runs.append(time_mediamill(corpus, base, run, args.workers))
        bare_runs.append(time_bare(corpus, base, args.threads))
        exif_runs.append(time_exiftool(corpus, base))
        print(
            f"run {run + 1}: mediamill {mm_runs[-1]['seconds']:.2f} s, "
            f"bare PyAV {bare_runs[-1]['seconds']:.2f} s, "
            f"exiftool {exif_runs[-1]['seconds']:.2f} s"
        )
    sample = random.Random(args.seed).sample(files, min(args.sample, n))
    ff = time_ffprobe_loop(sample)
    startup = median([import_seconds(base) for _ in range(3)])

    mm = sorted(mm_runs, key=lambda r: r["seconds"])[len(mm_runs) // 2]
    mm_s = median([r["seconds"] for r in mm_runs])
    bare_s = median([r["seconds"] for r in bare_runs])
    exif_s = median([r["seconds"] for r in exif_runs])
    rates = {
        "mediamill": n / mm_s,
        "ffprobe-loop": ff["files"] / ff["seconds"],
        "exiftool": exif_runs[0]["files"] / exif_s,
        "bare-pyav": n / bare_s,
    }
    if mm["files"] != n or mm["ok"] != n:
        print(f"WARNING: mediamill probed {mm['ok']} ok of {mm['files']} items, corpus {n}")

    print()
    exif = sorted(exif_runs, key=lambda r: r["seconds"])[len(exif_runs) // 2]
    bare = sorted(bare_runs, key=lambda r: r["seconds"])[len(bare_runs) // 2]
    cpu_ms = {
        "mediamill": mm["cpu_seconds"] / n * 1000,
        "ffprobe-loop": ff["cpu_seconds"] / ff["files"] * 1000,
        "exiftool": exif["cpu_seconds"] / max(1, exif["files"]) * 1000,
        "bare-pyav": bare["cpu_seconds"] / n * 1000,
    }
    labels = {
        "mediamill": ("mediamill run probe DIR -q (whole command)", n, mm_s),
        "ffprobe-loop": (
            f"ffprobe loop, 1 process/file ({ff['files']} sampled)",
            ff["files"],
            ff["seconds"],
        ),
        "exiftool": ("exiftool -json -r -fast DIR", exif["files"], exif_s),
        "bare-pyav": (f"bare PyAV, {args.threads} threads (ceiling)", n, bare_s),
    }
    rows = [
        [label, files, f"{seconds:.2f}", f"{rates[tool]:,.1f}", f"{cpu_ms[tool]:.2f}"]
        for tool, (label, files, seconds) in labels.items()
    ]
    print_table(["tool", "files", "seconds", "files/s", "CPU ms/file"], rows)
    extrapolated = n / rates["ffprobe-loop"]
    print(
        f"(ffprobe loop rate measured on {ff['files']} random files and extrapolated: "
        f"all {n} would take ~{extrapolated:,.0f} s)"
    )
    print(
        "CPU ms/file (user+sys of the child) is the figure least moved by other load on the "
        "machine; wall-clock files/s is what the targets use."
    )

    print()
    ratio_rows = []
    checks: dict[str, dict[str, object]] = {}
    for tool, target in TARGETS.items():
        ratio = rates["mediamill"] / rates[tool]
        ok = ratio >= target
        shown = f"{ratio:.0%}" if target < 1 else f"{ratio:,.1f}x"
        wanted = f">= {target:.0%}" if target < 1 else f">= {target:,.0f}x"
        by_cpu = cpu_ms[tool] / cpu_ms["mediamill"]
        shown_cpu = f"{by_cpu:.0%}" if target < 1 else f"{by_cpu:,.1f}x"
        ratio_rows.append([f"mediamill / {tool}", shown, wanted, verdict(ok), shown_cpu])
        checks[tool] = {
            "ratio": round(ratio, 3),
            "target": target,
            "pass": ok,
            "ratio_by_cpu": round(by_cpu, 3),
        }
    print_table(["ratio (files/s)", "measured", "target", "result", "by CPU time"], ratio_rows)

    print()
    print(
        f"mediamill: {mm['cpu_seconds']:.2f} CPU s ({mm['cpu_seconds'] / n * 1000:.2f} ms/file, "
        "worker processes sampled from /proc every 0.05 s, so a lower bound), "
        f"peak RSS {mm['max_rss_mb']:.0f} MB main, {mm['worker_rss_mb']:.0f} MB per worker; "
        f"python start-up + import mediamill.cli: {startup:.2f} s"
    )
    print(
        f"bare PyAV: {bare['cpu_seconds']:.2f} CPU s; {bare['inner_seconds']:.2f} s of its wall "
        f"time walking+probing ({n / bare['inner_seconds']:,.0f} files/s without start-up)"
    )
    mm_no_start = n / max(1e-9, mm_s - startup)
    print(f"mediamill without its start-up: ~{mm_no_start:,.0f} files/s")
    if args.repeat > 1:
        print("all runs (s): mediamill", [round(r["seconds"], 2) for r in mm_runs])
        print("              bare PyAV", [round(r["seconds"], 2) for r in bare_runs])
        print("              exiftool ", [round(r["seconds"], 2) for r in exif_runs])

    summary = {
        "bench": "probe",
        "files": n,
        **machine(),
        "files_per_s": {k: round(v, 1) for k, v in rates.items()},
        "seconds": {
            "mediamill": round(mm_s, 3),
            "ffprobe-loop-sample": round(ff["seconds"], 3),
            "exiftool": round(exif_s, 3),
            "bare-pyav": round(bare_s, 3),
            "startup-import": round(startup, 3),
        },
        "ffprobe_sample": ff["files"],
        "cpu_ms_per_file": {k: round(v, 3) for k, v in cpu_ms.items()},
        "mediamill_rss_mb": round(mm["max_rss_mb"], 1),
        "checks": checks,
        "pass": all(c["pass"] for c in checks.values()),
    }
    if args.photos:
        summary["photos"] = bench_photos(args, base)
        summary["pass"] = summary["pass"] and summary["photos"]["pass"]
    print_summary(summary)
    return 0


def bench_photos(args: argparse.Namespace, base: Path) -> dict[str, object]:
    """mediamill against exiftool on the photo corpus, each ``--repeat`` times, medians."""
    from mediamill.testing.media import make_photo_corpus

    corpus = base / "photos"
    start = time.perf_counter()
    photos = make_photo_corpus(corpus, args.photos, unique=args.photo_unique)
    made = time.perf_counter() - start
    n = len(photos)
    print()
    print(f"photo corpus: {n} photos (HEIC and JPEG, 12 MP, {args.photo_unique} real encodes)")
    print(f"  made in {made:.1f} s; page cache warmed in {warm(photos):.2f} s")
    mm_runs, exif_runs = [], []
    for run in range(args.repeat):
        mm_runs.append(time_mediamill(corpus, base, f"photos-{run}", args.workers))
        exif_runs.append(time_exiftool(corpus, base))
        print(
            f"run {run + 1}: mediamill {mm_runs[-1]['seconds']:.2f} s, "
            f"exiftool {exif_runs[-1]['seconds']:.2f} s"
        )
    mm_s = median([r["seconds"] for r in mm_runs])
    exif_s = median([r["seconds"] for r in exif_runs])
    mm, exif = mm_runs[len(mm_runs) // 2], exif_runs[len(exif_runs) // 2]
    if mm["ok"] != n or exif["files"] != n:
        print(f"WARNING: mediamill {mm['ok']} ok, exiftool {exif['files']} read, corpus {n}")
    ratio = exif_s / mm_s
    by_cpu = (exif["cpu_seconds"] / n) / (mm["cpu_seconds"] / n)
    rows = [
        ["mediamill run probe PHOTOS -q", n, f"{mm_s:.2f}", f"{n / mm_s:,.1f}",
         f"{mm['cpu_seconds'] / n * 1000:.2f}"],
        ["exiftool -json -r -fast PHOTOS", exif["files"], f"{exif_s:.2f}", f"{n / exif_s:,.1f}",
         f"{exif['cpu_seconds'] / n * 1000:.2f}"],
    ]  # fmt: skip
    print_table(["tool", "files", "seconds", "files/s", "CPU ms/file"], rows)
    ok = ratio >= PHOTO_TARGET
    print_table(
        ["ratio (files/s)", "measured", "target", "result", "by CPU time"],
        [["mediamill / exiftool (photos)", f"{ratio:,.1f}x", f">= {PHOTO_TARGET:,.0f}x",
          verdict(ok), f"{by_cpu:,.1f}x"]],
    )  # fmt: skip
    return {
        "files": n,
        "seconds": {"mediamill": round(mm_s, 3), "exiftool": round(exif_s, 3)},
        "ratio": round(ratio, 3),
        "ratio_by_cpu": round(by_cpu, 3),
        "target": PHOTO_TARGET,
        "pass": ok,
    }


if __name__ == "__main__":
    sys.exit(main())
