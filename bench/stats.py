"""Library statistics on a big catalog: `mediamill stats` against exporting every row and
aggregating it in Python, which is what a user would script without it.

It fills a fresh SQLite catalog with ``--items`` items (default 100,000) and a probe result
each (containers, streams, resolutions and bit rates as probe writes them; 2 % failed with a
few causes) plus an audio result for the music, then measures, as child processes:

(a) ``mediamill stats LIB --json``: every figure aggregated in SQL;
(b) ``mediamill export probe LIB --format jsonl`` into a small Python aggregation of the same
    containers, codecs and failures (the export alone is most of it).

It prints both times, the ratio, the in-process time of ``library_stats`` (the API's view),
and a last ``SUMMARY {json}`` line. Target: (a) well under a second at 100,000 items.
Run: ``.venv/bin/python bench/stats.py [--items 100000] [--keep]``.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path
from typing import Any

from _common import (
    isolated_env,
    machine,
    print_summary,
    print_table,
    run_in_temp,
    run_measured,
    venv_bin,
    verdict,
)

TARGET_SECONDS = 1.0
AGGREGATE = """
import collections, json, sys
containers, codecs, causes = collections.Counter(), collections.Counter(), collections.Counter()
for line in sys.stdin:
    row = json.loads(line)
    if row["status"] == "failed":
        causes[(row["error"] or "").split(":")[0]] += 1
    data = row["data"] or {}
    containers[data.get("container")] += 1
    for s in data.get("streams") or []:
        codecs[(s.get("type"), s.get("codec"))] += 1
print(len(containers), len(codecs), len(causes))
"""
VIDEO = [
    ("mov,mp4,m4a,3gp,3g2,mj2", "h264", 1080),
    ("matroska,webm", "hevc", 2160),
    ("avi", "mpeg4", 480),
    ("matroska,webm", "h264", 720),
]
AUDIO = [("mp3", "mp3"), ("flac", "flac"), ("mov,mp4,m4a,3gp,3g2,mj2", "aac"), ("ogg", "vorbis")]
CAUSES = [
    "not a readable media file: moov atom not found",
    "empty file (0 bytes): not media",
    "not a readable media file: Invalid data found when processing input",
]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=100_000, help="items (default 100,000)")
    parser.add_argument("--dir", type=Path, default=None, help="where to make the temp dir")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir")
    return parser.parse_args()


def probe_data(rng: random.Random, n: int) -> tuple[str, dict[str, Any]]:
    if n % 3 == 0:
        container, codec, height = rng.choice(VIDEO)
        streams = [
            {
                "type": "video",
                "codec": codec,
                "height": height,
                "width": height * 16 // 9,
                "attached_pic": False,
            },
            {"type": "audio", "codec": "aac", "height": None, "attached_pic": False},
        ]
        kind, bit_rate, duration = "video", rng.randint(1_000_000, 20_000_000), 5400.0
    else:
        container, codec = rng.choice(AUDIO)
        streams = [{"type": "audio", "codec": codec, "height": None, "attached_pic": False}]
        kind, bit_rate, duration = "audio", rng.randint(96_000, 1_400_000), 240.0
    return kind, {
        "media": kind,
        "container": container,
        "duration": duration,
        "bit_rate": bit_rate,
        "streams": streams,
    }


def fill(db: str, root: Path, count: int) -> None:
    from mediamill.catalog.db import Catalog
    from mediamill.core import Outcome, Status

    rng = random.Random(7)
    catalog = Catalog.open(db)
    library = catalog.add_library(str(root), name="big")
    for start in range(0, count, 5000):
        rows, datas = [], []
        for n in range(start, min(count, start + 5000)):
            kind, data = probe_data(rng, n)
            rows.append(
                {
                    "path": f"dir{n // 500}/file{n:07d}",
                    "path_bytes": None,
                    "size": rng.randint(10**5, 10**9),
                    "mtime_ns": n,
                    "fingerprint": str(n),
                    "kind": kind,
                }
            )
            datas.append(data)
        ids = catalog.insert_items(library.id, rows)
        probe, audio = [], []
        for item_id, data in zip(ids, datas, strict=True):
            if rng.random() < 0.02:
                probe.append(Outcome(item_id, Status.FAILED, None, rng.choice(CAUSES), 0.01))
                continue
            probe.append(Outcome(item_id, Status.OK, data, None, 0.01))
            if data["media"] == "audio":
                music = {
                    "bpm": rng.uniform(70, 180),
                    "key": rng.choice("CDEFGAB"),
                    "scale": rng.choice(["major", "minor"]),
                }
                audio.append(Outcome(item_id, Status.OK, music, None, 0.01))
        fps = {o.item_id: "fp" for o in probe}
        catalog.write_outcomes(probe, processor="probe", version="1", job_id=None, fingerprints=fps)
        catalog.write_outcomes(audio, processor="audio", version="1", job_id=None, fingerprints=fps)
    catalog.close()


def bench(args: argparse.Namespace, base: Path) -> int:
    from mediamill.catalog.db import Catalog
    from mediamill.stats import library_stats

    db = f"sqlite:///{base / 'catalog.db'}"
    root = base / "library"
    root.mkdir()
    started = time.perf_counter()
    fill(db, root, args.items)
    print(f"filled {args.items:,} items in {time.perf_counter() - started:.1f} s", flush=True)
    env = {**isolated_env(base / "home"), "MEDIAMILL_DB": db}
    mediamill = venv_bin("mediamill")
    ours = run_measured([mediamill, "stats", "big", "--json"], env=env, cwd=base)
    export_out = base / "export.jsonl"
    export = run_measured(
        [mediamill, "export", "probe", "big", "--format", "jsonl"],
        env=env,
        cwd=base,
        out_file=export_out,
    )
    with export_out.open("rb") as rows:
        import subprocess

        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-c", AGGREGATE], stdin=rows, check=True, capture_output=True
        )
        aggregate = time.perf_counter() - start
    catalog = Catalog.open(db)
    library = catalog.library_by_name("big")
    assert library is not None
    start = time.perf_counter()
    stats = library_stats(catalog, library.id)
    in_process = time.perf_counter() - start
    catalog.close()
    assert stats["items"] == args.items
    theirs = export.seconds + aggregate
    print_table(
        ["what", "seconds"],
        [
            ["(a) mediamill stats --json (process)", f"{ours.seconds:.2f}"],
            ["    library_stats() in process (API)", f"{in_process:.3f}"],
            ["(b) export jsonl + Python aggregation", f"{theirs:.2f}"],
            ["    of which the export", f"{export.seconds:.2f}"],
        ],
    )
    ratio = theirs / ours.seconds
    ok = in_process < TARGET_SECONDS
    print(
        f"mediamill stats is {ratio:.1f}x faster; in process {in_process:.3f} s "
        f"< {TARGET_SECONDS} s: {verdict(ok)}"
    )
    print_summary(
        {
            **machine(),
            "items": args.items,
            "stats_s": round(ours.seconds, 3),
            "in_process_s": round(in_process, 3),
            "export_aggregate_s": round(theirs, 3),
            "ratio": round(ratio, 2),
            "pass": ok,
        }
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(run_in_temp("stats", parse_args(), bench))
