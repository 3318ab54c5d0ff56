"""Scale-out: the same jobs on Celery workers as on the local process pool, on this machine.

On one generated audio library (40 tracks of 30 s) and one probe corpus (5,000 files) it
times ``mediamill run PROCESSOR DIR`` as a child process, each into a fresh SQLite catalog:

(a) ``-e processes -w 2``: the local process executor with two workers;
(b) ``-e celery`` on two ``mediamill worker`` processes of one batch at a time each;
(c) ``-e celery`` on one ``mediamill worker --concurrency 2``.

The workers are started (and answering) before the run, as a cluster would be; the run's
time includes its start-up, the scan and the catalog writes, the same as (a). While (b) and
(c) run, the broker is sampled every 20 ms: the job queue's length (batches waiting) must
never exceed the window (two batches per worker process); the batches held (waiting +
delivered and not yet acknowledged) are shown too: a batch is acknowledged just after its
worker says it is done, so the runner's next one may overlap it by a moment. Last, an
audio run on two workers has one worker SIGKILLed (every process of it) a quarter of the
way through: the runner must give the lost batch to the other worker within 60 s, and the
job completes with every item counted once.

Targets: celery >= 0.9x the local executor's throughput for audio, >= 0.7x for probe.
Others may share this machine: the load average is printed with every figure.
Run: ``.venv/bin/python bench/scale.py [--tracks 40] [--files 5000] [--broker URL]``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sqlite3
import subprocess
import threading
import time
import uuid
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
    warm,
)

TARGETS = {"audio": 0.9, "probe": 0.7}
RECOVERY_LIMIT = 60.0
PER_WORKER = 2  # mediamill.executors.celery.PER_WORKER: batches in the broker per process
_COMPLETED = re.compile(r"completed: (\d+)/(\d+) items, (\d+) ok, (\d+) failed")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracks", type=int, default=40, help="audio tracks")
    parser.add_argument("--seconds", type=float, default=30.0, help="seconds per track")
    parser.add_argument("--files", type=int, default=5000, help="files of the probe corpus")
    parser.add_argument("--unique", type=int, default=24, help="real encodes in the corpus")
    parser.add_argument(
        "--broker",
        default=os.environ.get("MEDIAMILL_BENCH_BROKER", "redis://127.0.0.1:6379/7"),
        help="a Redis broker (its queue is sampled); default: database 7 on this machine",
    )
    parser.add_argument("--only", choices=["audio", "probe"], help="run one job kind only")
    parser.add_argument("--no-kill", action="store_true", help="skip the SIGKILL recovery run")
    parser.add_argument("--dir", help="where to make the temp folder")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder")
    return parser.parse_args()


def load() -> str:
    """The 1, 5 and 15 minute load averages, as `uptime` shows them."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


class Cluster:
    """``mediamill worker`` processes on queues of their own (a unique prefix)."""

    def __init__(self, broker: str, home: Path) -> None:
        self.prefix = f"mmbench{uuid.uuid4().hex[:8]}"
        self.env = {
            **isolated_env(home),
            "MEDIAMILL_BROKER_URL": broker,
            "MEDIAMILL_CELERY_QUEUE_PREFIX": self.prefix,
        }
        self.home = home
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, *concurrency: int) -> Cluster:
        for n, c in enumerate(concurrency):
            log = (self.home / f"worker-{len(self.procs)}-{n}.log").open("ab")
            cmd = [venv_bin("mediamill"), "-v", "worker", "--concurrency", str(c)]
            # a process group of its own (to kill the worker with all its processes), in this
            # session: Linux's autogroup scheduler shares the cores between sessions, so a
            # worker in a session of its own would get a share of its own next to other
            # users' work, and the runs would not compete on equal terms
            self.procs.append(
                subprocess.Popen(
                    cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT, process_group=0
                )
            )
        self._wait_ready(len(concurrency))
        return self

    def _wait_ready(self, count: int) -> None:
        from mediamill.executors.celery import CeleryConfig, close_app, live_workers, make_app

        app = make_app(CeleryConfig(self.env["MEDIAMILL_BROKER_URL"], self.prefix))
        pids = {p.pid for p in self.procs}
        deadline = time.monotonic() + 120
        try:
            while time.monotonic() < deadline:
                if len([w for w in live_workers(app) if w.pid in pids]) >= count:
                    return
            raise RuntimeError("the workers did not come up")
        finally:
            close_app(app)

    def kill(self, index: int) -> None:
        os.killpg(self.procs[index].pid, signal.SIGKILL)
        self.procs[index].wait()

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


class QueueSampler:
    """The job queue's length (batches waiting) at its longest, and the most batches the
    broker held at once (waiting + delivered, not yet acknowledged)."""

    def __init__(self, broker: str, queue: str) -> None:
        import redis

        self.client = redis.Redis.from_url(broker)
        self.queue = queue
        self.peak = 0
        self.held_peak = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> QueueSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.client.close()

    def _loop(self) -> None:
        while not self._stop.wait(0.02):
            waiting = int(self.client.llen(self.queue))  # type: ignore[arg-type]
            # kombu keeps every delivered, unacknowledged message of the database in one
            # hash (message, exchange, routing key): count this queue's only
            held = waiting + sum(
                json.loads(raw)[-1] == self.queue
                for raw in self.client.hvals("unacked")  # type: ignore[union-attr]
            )
            self.peak = max(self.peak, waiting)
            self.held_peak = max(self.held_peak, held)
            self.samples += 1


def run_job(
    processor: str, root: Path, db: Path, env: dict[str, str], extra: list[str]
) -> dict[str, Any]:
    cmd = [venv_bin("mediamill"), "run", processor, str(root), "-q", "--db", f"sqlite:///{db}"]
    result = run_measured([*cmd, *extra], cwd=db.parent, env=env)
    match = _COMPLETED.search(result.stdout)
    if not match:
        raise RuntimeError(f"unexpected mediamill output:\n{result.stdout}\n{result.stderr}")
    done, total, ok, failed = map(int, match.groups())
    return {"seconds": result.seconds, "items": total, "done": done, "ok": ok, "failed": failed}


def compare(processor: str, root: Path, base: Path, broker: str) -> dict[str, Any]:
    """(a), (b) and (c) for one job kind."""
    out: dict[str, Any] = {}
    home = base / "home"
    home.mkdir(exist_ok=True)
    work = "cpu"  # probe and audio are both cpu work: mediamill.<prefix>.cpu
    local = run_job(
        processor, root, base / f"{processor}-local.db", isolated_env(home), ["-e", "processes"]
    )
    local |= {"load": load()}
    out["local processes -w 2"] = local
    for label, shape in (("celery 2 workers x1", (1, 1)), ("celery 1 worker x2", (2,))):
        cluster = Cluster(broker, home).start(*shape)
        try:
            with QueueSampler(broker, f"{cluster.prefix}.{work}") as sampler:
                run = run_job(
                    processor, root, base / f"{processor}-{shape}.db", cluster.env, ["-e", "celery"]
                )
            window = PER_WORKER * sum(shape)
            run |= {"queue_peak": sampler.peak, "held_peak": sampler.held_peak}
            run |= {"window": window, "samples": sampler.samples}
            run |= {"load": load()}
        finally:
            cluster.stop()
        out[label] = run
    return out


def recovery(root: Path, base: Path, broker: str, total: int) -> dict[str, Any]:
    """Kill one of two workers a quarter of the way through an audio job."""
    home = base / "home"
    cluster = Cluster(broker, home).start(1, 1)
    db = base / "audio-kill.db"
    cmd = [venv_bin("mediamill"), "run", "audio", str(root), "-q", "-e", "celery"]
    try:
        runner = subprocess.Popen(
            [*cmd, "--db", f"sqlite:///{db}"],
            env=cluster.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        lines: list[tuple[float, str]] = []
        reader = threading.Thread(
            target=lambda: lines.extend((time.monotonic(), ln) for ln in runner.stderr or ()),
            daemon=True,
        )
        reader.start()
        while _processed(db) < total // 4:
            time.sleep(0.1)
        cluster.kill(0)
        killed = time.monotonic()
        stdout = runner.stdout.read() if runner.stdout else ""
        runner.wait(600)
        ended = time.monotonic()
        reader.join(5)
    finally:
        cluster.stop()
    regiven = [t for t, line in lines if "went silent" in line]
    match = _COMPLETED.search(stdout)
    return {
        "regiven_after": round(regiven[0] - killed, 1) if regiven else None,
        "finished_after": round(ended - killed, 1),
        "completed": bool(match) and match.group(1) == match.group(2) == str(total),
        "items": total,
        "load": load(),
    }


def _processed(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as conn:
            row = conn.execute("SELECT max(processed_items) FROM jobs").fetchone()
    except sqlite3.Error:
        return 0
    return int(row[0] or 0)


def bench(args: argparse.Namespace, base: Path) -> int:
    print(f"machine: {json.dumps(machine())}")
    print("others may share this machine: each figure is printed with the load average")
    results: dict[str, Any] = {}
    if args.only in (None, "audio"):
        from mediamill.testing.music import make_music_library

        root = base / "music"
        print(f"generating {args.tracks} tracks of {args.seconds:g} s ...", flush=True)
        make_music_library(root, args.tracks, seconds=args.seconds)
        warm(list(root.rglob("*.*")))
        results["audio"] = compare("audio", root, base, args.broker)
        if not args.no_kill:
            results["recovery"] = recovery(root, base, args.broker, args.tracks)
    if args.only in (None, "probe"):
        from mediamill.testing.media import make_corpus

        corpus = base / "corpus"
        files = make_corpus(corpus, args.files, unique=args.unique)
        warm(files)
        results["probe"] = compare("probe", corpus, base, args.broker)
    return report(results)


def report(results: dict[str, Any]) -> int:
    ok = True
    rows = []
    for kind in ("audio", "probe"):
        if kind not in results:
            continue
        local = results[kind]["local processes -w 2"]
        for label, run in results[kind].items():
            rate = run["items"] / run["seconds"]
            ratio = rate / (local["items"] / local["seconds"])
            run["items_per_s"], run["ratio"] = round(rate, 2), round(ratio, 3)
            fits = run.get("queue_peak", 0) <= run.get("window", 0)
            is_local = label.startswith("local")
            passed = is_local or (ratio >= TARGETS[kind] and fits)
            target = "" if is_local else f" (>= {TARGETS[kind]})"
            ok &= passed and run["done"] == run["items"]
            rows.append(
                [
                    kind,
                    label,
                    f"{run['seconds']:.2f}",
                    f"{rate:.1f}",
                    f"{ratio:.2f}x{target}",
                    f"{run.get('queue_peak', '-')}/{run.get('held_peak', '-')}/"
                    f"{run.get('window', '-')}",
                    run["load"],
                    "" if is_local else verdict(passed),
                ]
            )
    print_table(
        ["job", "executor", "seconds", "items/s", "vs local", "queued/held/window", "load", ""],
        rows,
    )
    if "recovery" in results:
        rec = results["recovery"]
        passed = rec["completed"] and rec["regiven_after"] is not None
        passed &= (rec["regiven_after"] or RECOVERY_LIMIT + 1) <= RECOVERY_LIMIT
        ok &= passed
        print(
            f"SIGKILL of a worker mid-job: batch given to the other worker after "
            f"{rec['regiven_after']} s (<= {RECOVERY_LIMIT:g}), job done {rec['finished_after']} s "
            f"after the kill, every item once: {rec['completed']} (load {rec['load']}) "
            f"{verdict(passed)}"
        )
    print_summary(results)
    return 0 if ok else 1


def main() -> int:
    return run_in_temp("scale", parse_args(), bench)


if __name__ == "__main__":
    raise SystemExit(main())
