"""API responsiveness while a CPU-bound job runs: does the server still answer quickly?

A real ``mediamill serve`` child (fresh SQLite catalog and MEDIAMILL_HOME, a token) gets a
library of generated music. It measures, first on the idle server and then while the
``audio`` processor analyses the library on 2 worker processes (both cores busy):

(a) ``GET /api/jobs/{id}`` latency, sequential requests on one keep-alive connection:
    p50/p95/p99/max;
(b) the Server-Sent Events delay: from the response to ``POST /api/jobs`` (a job with nothing
    to do) to the arrival of that job's first ``job`` event on ``GET /api/events``;
(c) under load only, ``POST /api/jobs/{id}/pause`` to the event carrying the request, and to
    the event saying ``paused`` (how fast the runner reacts), then ``resume``.

It prints a table, PASS/FAIL for p99 < 50 ms under load, and a last ``SUMMARY {json}`` line.
Run: ``.venv/bin/python bench/api.py [--requests 500] [--tracks 12] [--keep]``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from _common import isolated_env, machine, print_summary, print_table, run_in_temp, verdict

TOKEN = "bench-token-0123456789"  # noqa: S105 - a throwaway server's token
P99_TARGET_MS = 50.0
LOAD_JOB = {"executor": "processes", "workers": 2}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=500, help="GETs per phase (default 500)")
    parser.add_argument(
        "--max-seconds", type=float, default=20.0, help="stop a GET phase after this (default 20)"
    )
    parser.add_argument("--tracks", type=int, default=12, help="tracks to analyse (default 12)")
    parser.add_argument(
        "--track-seconds", type=float, default=20.0, help="length of each track (default 20)"
    )
    parser.add_argument("--events", type=int, default=10, help="SSE samples per phase")
    parser.add_argument("--pauses", type=int, default=3, help="pause/resume samples under load")
    parser.add_argument("--dir", type=Path, help="work here instead of a new temp dir")
    parser.add_argument("--keep", action="store_true", help="keep the library, catalog and log")
    return parser.parse_args()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (no interpolation: p99 of 500 samples is the 495th)."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * pct // 100))
    return ordered[int(rank) - 1]


def stats_ms(seconds: list[float]) -> dict[str, float]:
    if not seconds:
        return {"n": 0}
    ms = [s * 1000 for s in seconds]
    return {
        "n": len(ms),
        "p50": round(percentile(ms, 50), 2),
        "p95": round(percentile(ms, 95), 2),
        "p99": round(percentile(ms, 99), 2),
        "max": round(max(ms), 2),
    }


class ApiServer:
    """One ``mediamill serve`` child process on a free loopback port."""

    def __init__(self, base: Path) -> None:
        self.home = base / "home"
        self.home.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = base / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = isolated_env(self.home)
        env["MEDIAMILL_DB"] = f"sqlite:///{self.home / 'catalog.db'}"
        env["MEDIAMILL_API_TOKEN"] = TOKEN
        cmd = [sys.executable, "-m", "mediamill", "serve", "--host", "127.0.0.1"]
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [*cmd, "--port", str(self.port)], env=env, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/api/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError(f"server did not start: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def client(self) -> httpx.Client:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


@dataclass
class EventLog:
    """Every ``job`` event of one ``/api/events`` subscription, with its arrival time."""

    events: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    arrived: threading.Condition = field(init=False)
    connected: threading.Event = field(default_factory=threading.Event)
    stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.arrived = threading.Condition(self.lock)

    def listen(self, server: ApiServer) -> None:
        with server.client() as client, client.stream("GET", "/api/events") as response:
            self.connected.set()
            kind = ""
            for line in response.iter_lines():
                if self.stop.is_set():
                    return
                if line.startswith("event:"):
                    kind = line.partition(":")[2].strip()
                elif line.startswith("data:") and kind == "job":
                    job = json.loads(line.partition(":")[2])
                    with self.arrived:
                        self.events.append((time.perf_counter(), job))
                        self.arrived.notify_all()

    def wait_for(
        self, after: float, match: Callable[[dict[str, Any]], bool], timeout: float = 10.0
    ) -> float | None:
        """Arrival time of the first event after ``after`` (perf_counter) that matches."""
        deadline = time.perf_counter() + timeout
        with self.arrived:
            while True:
                for at, job in self.events:
                    if at >= after and match(job):
                        return at
                left = deadline - time.perf_counter()
                if left <= 0:
                    return None
                self.arrived.wait(left)


def get_latencies(
    client: httpx.Client, job_id: str, requests: int, max_seconds: float, *, load: bool
) -> tuple[list[float], dict[str, int]]:
    """Sequential ``GET /api/jobs/{id}``; under load only requests made while the job ran
    count (statuses tells how many did not)."""
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    end = time.perf_counter() + max_seconds
    while len(latencies) < requests and time.perf_counter() < end:
        start = time.perf_counter()
        response = client.get(f"/api/jobs/{job_id}")
        elapsed = time.perf_counter() - start
        response.raise_for_status()
        status = response.json()["status"]
        statuses[status] = statuses.get(status, 0) + 1
        if not load or status == "running":
            latencies.append(elapsed)
    return latencies, statuses


def event_delays(client: httpx.Client, events: EventLog, samples: int) -> list[float]:
    """Create a job with nothing to do (only the failed items, there are none) and time its
    first event; random gaps keep the samples out of step with the broker's poll."""
    rng = random.Random(0)
    delays = []
    for _ in range(samples):
        time.sleep(rng.uniform(0.1, 0.4))
        response = client.post(
            "/api/jobs", json={"processor": "audio", "library": "lib", "filter": "failed"}
        )
        answered = time.perf_counter()
        response.raise_for_status()
        job_id = response.json()["job_id"]
        at = events.wait_for(answered - 1.0, lambda job, j=job_id: job["job_id"] == j)
        if at is not None:
            delays.append(max(0.0, at - answered))
        client.post(f"/api/jobs/{job_id}/cancel")  # a queued one leaves the queue at once
    return delays


def pause_delays(
    client: httpx.Client, events: EventLog, job_id: str, samples: int
) -> tuple[list[float], list[float]]:
    """``pause``: to the event with the request, to the event saying paused; then resume."""
    seen, paused = [], []
    for _ in range(samples):
        response = client.post(f"/api/jobs/{job_id}/pause")
        answered = time.perf_counter()
        if response.status_code != 200:
            break  # the job finished
        at = events.wait_for(
            answered,
            lambda job: (
                job["job_id"] == job_id
                and (job["requested"] == "pause" or job["status"] == "paused")
            ),
        )
        done = events.wait_for(
            answered, lambda job: job["job_id"] == job_id and job["status"] == "paused", 60
        )
        if at is not None:
            seen.append(at - answered)
        if done is not None:
            paused.append(done - answered)
        client.post(f"/api/jobs/{job_id}/resume")
        wait_status(client, job_id, {"running", "completed"}, 60)
        time.sleep(1.0)
    return seen, paused


def wait_status(client: httpx.Client, job_id: str, statuses: set[str], timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while True:
        status = str(client.get(f"/api/jobs/{job_id}").json()["status"])
        if status in statuses or time.monotonic() > deadline:
            return status
        time.sleep(0.2)


def start_load(client: httpx.Client, *, force: bool) -> str:
    """The CPU-bound job: every track through the audio analysis on 2 worker processes."""
    options: dict[str, Any] = {**LOAD_JOB, "force": True} if force else dict(LOAD_JOB)
    response = client.post(
        "/api/jobs", json={"processor": "audio", "library": "lib", "options": options}
    )
    response.raise_for_status()
    job_id = str(response.json()["job_id"])
    if wait_status(client, job_id, {"running"}, 60) != "running":
        raise RuntimeError(f"load job {job_id} did not start")
    time.sleep(2.0)  # worker processes up and busy
    return job_id


def cpu_seconds(pid: int) -> float:
    """user + system CPU seconds of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    return run_in_temp("api", parse_args(), bench)


def bench(args: argparse.Namespace, base: Path) -> int:
    from mediamill.testing.music import make_music_library

    started = time.perf_counter()
    make_music_library(base / "lib", args.tracks, seconds=args.track_seconds)
    generate_s = time.perf_counter() - started
    server = ApiServer(base)
    server.start()
    events = EventLog()
    listener = threading.Thread(target=events.listen, args=(server,), daemon=True)
    try:
        with server.client() as client:
            client.post("/api/libraries", json={"path": str(base / "lib"), "name": "lib"})
            listener.start()
            if not events.connected.wait(10):
                raise RuntimeError("no /api/events stream")
            time.sleep(0.5)

            idle_job = client.post(
                "/api/jobs", json={"processor": "audio", "library": "lib", "filter": "failed"}
            ).json()["job_id"]
            wait_status(client, idle_job, {"completed", "cancelled", "failed"}, 30)
            load_before = os.getloadavg()[0]
            idle_get, _ = get_latencies(
                client, idle_job, args.requests, args.max_seconds, load=False
            )
            idle_sse = event_delays(client, events, args.events)

            job_id = start_load(client, force=False)
            assert server.proc is not None
            cpu_start, wall_start = cpu_seconds(server.proc.pid), time.perf_counter()
            load_get, load_statuses = get_latencies(
                client, job_id, args.requests, args.max_seconds, load=True
            )
            server_cpu = (cpu_seconds(server.proc.pid) - cpu_start) / (
                time.perf_counter() - wall_start
            )
            if wait_status(client, job_id, {"running"}, 1) != "running":
                job_id = start_load(client, force=True)
            load_sse = event_delays(client, events, args.events)
            if wait_status(client, job_id, {"running"}, 1) != "running":
                job_id = start_load(client, force=True)
            seen, paused = pause_delays(client, events, job_id, args.pauses)
            load_after = os.getloadavg()[0]
            client.post(f"/api/jobs/{job_id}/cancel")
    finally:
        events.stop.set()
        server.stop()

    rows = []
    table = {
        "idle GET /api/jobs/{id}": stats_ms(idle_get),
        "load GET /api/jobs/{id}": stats_ms(load_get),
        "idle POST job -> SSE event": stats_ms(idle_sse),
        "load POST job -> SSE event": stats_ms(load_sse),
        "load pause -> SSE event": stats_ms(seen),
        "load pause -> SSE paused": stats_ms(paused),
    }
    for name, s in table.items():
        rows.append([name, s["n"], *(s.get(k, "-") for k in ("p50", "p95", "p99", "max"))])
    print_table(["measure (ms)", "n", "p50", "p95", "p99", "max"], rows)
    load_p99 = table["load GET /api/jobs/{id}"].get("p99")
    ok = load_p99 is not None and load_p99 < P99_TARGET_MS
    print()
    print(f"GET p99 under load {load_p99} ms < {P99_TARGET_MS:g} ms: {verdict(ok)}")
    print(f"server process CPU while measuring: {server_cpu:.2f} cores")
    print(f"load average: {load_before:.2f} before, {load_after:.2f} after (cpus {os.cpu_count()})")
    print_summary(
        {
            "bench": "api",
            "machine": machine(),
            "tracks": args.tracks,
            "track_seconds": args.track_seconds,
            "generate_seconds": round(generate_s, 1),
            "latency_ms": table,
            "load_statuses": load_statuses,
            "server_cpu_cores": round(server_cpu, 2),
            "load1_before": round(load_before, 2),
            "load1_after": round(load_after, 2),
            "p99_target_ms": P99_TARGET_MS,
            "pass": ok,
        }
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
