"""Audio analysis cost: ``mediamill run audio`` against essentia called in a plain loop.

On a synthesised library (40 tracks of 30 s by default, mp3/flac/m4a/ogg, page cache warmed
first) it times, each as a child process:

(a) the floor: a plain script that, for each file, decodes it with essentia's ``AudioLoader``
    and runs the analysis the ``audio`` processor runs (EBU R128, RhythmExtractor2013 degara,
    KeyExtractor bgate, Danceability, DynamicComplexity, ZCR, MFCC and centroid over
    non-overlapping 2048-sample frames, tags), in one process with OMP/BLAS pinned to one
    thread like mediamill's workers, keeping nothing;
(b) ``mediamill run audio DIR -q -e processes -w 1`` into a fresh SQLite catalog (start-up,
    scan and catalog writes included);
(c) the same with ``-w 2``.

While each runs, a thread samples ``/proc`` every 0.2 s for the peak RSS (VmHWM) of every
descendant process, so the worker processes' peaks are reported one by one. It prints
seconds per track (wall and CPU), the ratio (b)/(a) and the speedup (b)/(c) with PASS/FAIL,
and a last ``SUMMARY {json}`` line. Generating the library takes minutes: keep it with
``--dir``. Run: ``.venv/bin/python bench/audio.py --dir /tmp/audio-bench [--repeat 2]``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import (
    Measured,
    TreeSampler,
    isolated_env,
    machine,
    median,
    print_summary,
    print_table,
    run_measured,
    venv_bin,
    verdict,
    warm,
)

#: (b)/(a) at most this; (b)/(c) at least this
MAX_OVERHEAD = 1.1
MIN_SPEEDUP = 1.7
SAMPLE_SECONDS = 0.2
PINNED_THREADS = dict.fromkeys(
    ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"), "1"
)

PLAIN_LOOP = '''\
"""Analyse every audio file under a folder with essentia in a plain loop; print one JSON row
per file, then the timings."""
import json
import os
import sys
import time

start = time.perf_counter()
import numpy as np
import essentia
import essentia.standard as es

essentia.log.infoActive = False
RATE = 44100
FRAME = 2048
rhythm = es.RhythmExtractor2013(method="degara")
key_extractor = es.KeyExtractor(profileType="bgate")
danceability = es.Danceability(sampleRate=RATE)
dynamic_complexity = es.DynamicComplexity(sampleRate=RATE)
zcr = es.ZeroCrossingRate()
window = es.Windowing(type="hann", size=FRAME)
spectrum = es.Spectrum(size=FRAME)
mfcc = es.MFCC(inputSize=FRAME // 2 + 1, sampleRate=RATE)
centroid = es.Centroid(range=RATE / 2)
mix = es.MonoMixer()
meters = {}
resamplers = {}
paths = sorted(os.path.join(d, f) for d, _, names in os.walk(sys.argv[1]) for f in names)
ready = time.perf_counter()
for path in paths:
    audio, rate, channels, _, _, _ = es.AudioLoader(filename=path)()
    if rate not in meters:
        meters[rate] = es.LoudnessEBUR128(sampleRate=rate)
    _, _, loudness, loudness_range = meters[rate](audio)
    mono = mix(audio, channels)
    if rate != RATE:
        if rate not in resamplers:
            resamplers[rate] = es.Resample(inputSampleRate=rate, outputSampleRate=RATE)
        mono = resamplers[rate](mono)
    bpm, ticks, _, _, intervals = rhythm(mono)
    key, scale, strength = key_extractor(mono)
    dance, _ = danceability(mono)
    complexity, _ = dynamic_complexity(mono)
    n = (len(mono) - FRAME) // FRAME + 1
    mfccs = np.empty((n, 13), dtype=np.float32)
    centroids = np.empty(n, dtype=np.float32)
    for i in range(n):
        spec = spectrum(window(mono[i * FRAME : i * FRAME + FRAME]))
        mfccs[i] = mfcc(spec)[1]
        centroids[i] = centroid(spec)
    energy = float(np.sqrt(np.mean(np.square(mono, dtype=np.float64))))
    crossings = zcr(mono)
    title, artist, album = es.MetadataReader(filename=path)()[:3]
    print(json.dumps({"path": os.path.relpath(path, sys.argv[1]), "bpm": float(bpm),
                      "key": key, "scale": scale, "loudness": float(loudness)}))
end = time.perf_counter()
print(json.dumps({"files": len(paths), "setup_seconds": ready - start,
                  "loop_seconds": end - ready}))
'''

_COMPLETED = re.compile(r"completed: (\d+)/(\d+) items, (\d+) ok, (\d+) failed")
_SHARPS = {"Db": "C#", "Eb": "D#", "Gb": "F#", "Ab": "G#", "Bb": "A#"}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tracks", type=int, default=40, help="library size (default 40)")
    parser.add_argument("--seconds", type=float, default=30.0, help="track length (default 30)")
    parser.add_argument("--dir", type=Path, help="keep the library here and reuse it next time")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (without --dir)")
    parser.add_argument("--repeat", type=int, default=1, help="runs of (a), (b), (c); median")
    parser.add_argument(
        "--batch-size", type=int, help="pass --batch-size to mediamill (default: its own)"
    )
    return parser.parse_args()


def library(base: Path, tracks: int, seconds: float) -> tuple[Path, list[dict[str, Any]]]:
    """The synthesised library under ``base/library``, made once and reused while it fits."""
    root = base / "library"
    specs_file = base / "specs.json"
    if specs_file.is_file():
        specs = json.loads(specs_file.read_text())
        if len(specs) == tracks and all(
            s["seconds"] == seconds and Path(s["path"]).is_file() for s in specs
        ):
            return root, specs
    from mediamill.testing.music import as_json, make_music_library

    shutil.rmtree(root, ignore_errors=True)
    start = time.perf_counter()
    print(f"generating {tracks} tracks of {seconds:g} s into {root} ...", flush=True)
    specs = [as_json(s) for s in make_music_library(root, tracks, seconds=seconds)]
    print(f"  took {time.perf_counter() - start:.0f} s", flush=True)
    specs_file.write_text(json.dumps(specs, indent=1))
    return root, specs


def measured(cmd: list[Any], work: Path, env: dict[str, str]) -> tuple[Measured, TreeSampler]:
    with TreeSampler(SAMPLE_SECONDS) as sampler:
        result = run_measured(cmd, cwd=work, env=env)
    return result, sampler


def time_plain(root: Path, work: Path) -> dict[str, Any]:
    script = work / "plain_essentia.py"
    script.write_text(PLAIN_LOOP)
    env = {**os.environ, **PINNED_THREADS}
    result, sampler = measured([sys.executable, script, str(root)], work, env)
    *rows, totals = (json.loads(line) for line in result.stdout.splitlines())
    return {
        "seconds": result.seconds,
        "cpu_seconds": max(result.cpu_seconds, sampler.cpu_seconds),
        "setup_seconds": totals["setup_seconds"],
        "loop_seconds": totals["loop_seconds"],
        "files": totals["files"],
        "rss_mb": sampler.roles()["main"]["rss_mb"],
        "rows": {r["path"]: r for r in rows},
    }


def time_mediamill(
    root: Path, work: Path, workers: int, run: int, batch_size: int | None
) -> dict[str, Any]:
    home = work / "home"
    home.mkdir(exist_ok=True)
    db = work / f"catalog-w{workers}-{run}.db"
    db.unlink(missing_ok=True)
    url = f"sqlite:///{db}"
    mediamill = venv_bin("mediamill")
    cmd = [mediamill, "run", "audio", str(root), "-q", "-e", "processes", "-w", str(workers)]
    if batch_size:
        cmd += ["--batch-size", str(batch_size)]
    result, sampler = measured([*cmd, "--db", url], work, isolated_env(home))
    match = _COMPLETED.search(result.stdout)
    if not match:
        raise RuntimeError(f"unexpected mediamill output:\n{result.stdout}\n{result.stderr}")
    _done, total, ok, failed = map(int, match.groups())
    export = run_measured(
        [mediamill, "export", "audio", str(root), "--format", "jsonl", "--db", url],
        cwd=work,
        env=isolated_env(home),
    )
    roles = sampler.roles()
    return {
        "seconds": result.seconds,
        "cpu_seconds": max(result.cpu_seconds, sampler.cpu_seconds),
        "wait4_cpu_seconds": result.cpu_seconds,
        "files": total,
        "ok": ok,
        "failed": failed,
        "rss_mb": roles["main"]["rss_mb"],
        "worker_rss_mb": roles["workers"]["rss_mb"],
        "forkserver_rss_mb": roles["forkserver"]["rss_mb"],
        "cpu_by_role": {role: round(r["cpu_seconds"], 2) for role, r in roles.items()},
        "largest_process_mb": round(result.max_rss_mb, 1),
        "rows": {
            r["path"]: {**r["data"], "path": r["path"]}
            for r in map(json.loads, export.stdout.splitlines())
            if r["status"] == "ok"
        },
    }


def accuracy(rows: dict[str, dict[str, Any]], specs: list[dict[str, Any]], root: Path) -> int:
    """How many tracks have the synthesised key and scale and a tempo within 4 %."""
    right = 0
    for spec in specs:
        row = rows.get(Path(spec["path"]).relative_to(root).as_posix())
        if row is None:
            continue
        key = _SHARPS.get(row["key"], row["key"])
        tempo_ok = abs(row["bpm"] / spec["bpm"] - 1) <= 0.04
        right += tempo_ok and (key, row["scale"]) == (spec["key"], spec["scale"])
    return right


def main() -> int:
    args = parse_args()
    if args.dir:
        args.dir.mkdir(parents=True, exist_ok=True)
        base = args.dir
    else:
        base = Path(tempfile.mkdtemp(prefix="mediamill-bench-audio-"))
    try:
        return bench(args, base)
    finally:
        if not args.dir and not args.keep:
            shutil.rmtree(base, ignore_errors=True)
        elif not args.dir:
            print(f"kept {base}")


def bench(args: argparse.Namespace, base: Path) -> int:
    root, specs = library(base, args.tracks, args.seconds)
    work = base / "work"
    work.mkdir(exist_ok=True)
    files = sorted(p for p in root.rglob("*") if p.is_file())
    warm(files)
    n = len(files)
    runs: dict[str, list[dict[str, Any]]] = {"plain": [], "w1": [], "w2": []}
    loads: list[float] = []
    for run in range(args.repeat):
        for name, timed in (
            ("plain", lambda: time_plain(root, work)),
            ("w1", lambda run=run: time_mediamill(root, work, 1, run, args.batch_size)),
            ("w2", lambda run=run: time_mediamill(root, work, 2, run, args.batch_size)),
        ):
            load = os.getloadavg()[0]
            loads.append(load)
            print(f"run {run + 1}/{args.repeat} {name}: load {load:.2f} ...", flush=True)
            result = timed()
            result["load1_before"] = round(load, 2)
            runs[name].append(result)
            wall, cpu = result["seconds"], result["cpu_seconds"]
            print(f"  {wall:.1f} s wall, {cpu:.1f} s cpu", flush=True)

    def med(name: str, key: str) -> float:
        return median([r[key] for r in runs[name]])

    plain, w1, w2 = (med(k, "seconds") for k in ("plain", "w1", "w2"))
    plain_cpu, w1_cpu, w2_cpu = (med(k, "cpu_seconds") for k in ("plain", "w1", "w2"))
    loop = med("plain", "loop_seconds")
    overhead = w1 / plain
    speedup = w1 / w2
    workers_peak = [max(r["worker_rss_mb"], default=0.0) for r in runs["w1"] + runs["w2"]]
    right = {k: accuracy(runs[k][-1]["rows"], specs, root) for k in runs}
    rss = {k: max(max(r["rss_mb"], default=0.0) for r in runs[k]) for k in runs}

    print()
    batches = (
        f"--batch-size {args.batch_size}" if args.batch_size else "mediamill's default batch size"
    )
    print(f"{n} tracks of {args.seconds:g} s, {args.repeat} run(s) each, median; page cache warm")
    print(f"mediamill ran with {batches}")
    print("(a) runs with OMP/OPENBLAS/MKL/NUMEXPR_NUM_THREADS=1, as mediamill's workers do")
    print_table(
        ["run", "wall s", "s/track", "cpu s", "cpu s/track", "main RSS MB", "worker RSS MB", "ok"],
        [
            ["(a) plain essentia loop", f"{plain:.1f}", f"{plain / n:.3f}", f"{plain_cpu:.1f}",
             f"{plain_cpu / n:.3f}", rss["plain"], "-", f"{right['plain']}/{n}"],
            ["    of which the loop", f"{loop:.1f}", f"{loop / n:.3f}", "", "", "", "", ""],
            ["(b) mediamill -w 1", f"{w1:.1f}", f"{w1 / n:.3f}", f"{w1_cpu:.1f}",
             f"{w1_cpu / n:.3f}", rss["w1"], _fmt(runs["w1"]), f"{right['w1']}/{n}"],
            ["(c) mediamill -w 2", f"{w2:.1f}", f"{w2 / n:.3f}", f"{w2_cpu:.1f}",
             f"{w2_cpu / n:.3f}", rss["w2"], _fmt(runs["w2"]), f"{right['w2']}/{n}"],
        ],
    )  # fmt: skip
    print()
    print("ok = tracks with the synthesised key/scale and a tempo within 4 %")
    print(f"load average (1 min) before each run: {', '.join(f'{x:.2f}' for x in loads)}")
    print(
        f"overhead (b)/(a): {overhead:.3f}x wall (target <= {MAX_OVERHEAD}x) "
        f"{verdict(overhead <= MAX_OVERHEAD)}; {w1_cpu / plain_cpu:.3f}x cpu; "
        f"{w1 / loop:.3f}x against the loop alone"
    )
    print(f"speedup (b)/(c): {speedup:.2f}x (target >= {MIN_SPEEDUP}x) "
          f"{verdict(speedup >= MIN_SPEEDUP)}")  # fmt: skip
    print(f"peak RSS per worker: {max(workers_peak, default=0.0):.0f} MB")
    for name in ("w1", "w2"):
        print(f"cpu seconds by process of {name} (last run): {runs[name][-1]['cpu_by_role']}")
    print_summary(
        {
            "benchmark": "audio",
            **machine(),
            "tracks": n,
            "track_seconds": args.seconds,
            "repeat": args.repeat,
            "batch_size": args.batch_size,
            "load1_before_runs": [round(x, 2) for x in loads],
            "plain_s_per_track": round(plain / n, 4),
            "plain_loop_s_per_track": round(loop / n, 4),
            "w1_s_per_track": round(w1 / n, 4),
            "w2_s_per_track": round(w2 / n, 4),
            "plain_cpu_s_per_track": round(plain_cpu / n, 4),
            "w1_cpu_s_per_track": round(w1_cpu / n, 4),
            "w2_cpu_s_per_track": round(w2_cpu / n, 4),
            "overhead_w1_over_plain": round(overhead, 3),
            "overhead_cpu": round(w1_cpu / plain_cpu, 3),
            "speedup_w1_over_w2": round(speedup, 3),
            "worker_peak_rss_mb": max(workers_peak, default=0.0),
            "main_peak_rss_mb": {k: rss[k] for k in ("w1", "w2")},
            "plain_peak_rss_mb": rss["plain"],
            "accurate_tracks": right,
            "cpu_by_role": {k: runs[k][-1]["cpu_by_role"] for k in ("w1", "w2")},
            "overhead_pass": overhead <= MAX_OVERHEAD,
            "speedup_pass": speedup >= MIN_SPEEDUP,
        }
    )
    return 0 if overhead <= MAX_OVERHEAD and speedup >= MIN_SPEEDUP else 1


def _fmt(runs: list[dict[str, Any]]) -> str:
    """Each worker's peak of the last run, e.g. ``512.3+498.0``."""
    peaks = runs[-1]["worker_rss_mb"]
    return "+".join(f"{p:.0f}" for p in peaks) or "?"


if __name__ == "__main__":
    sys.exit(main())
