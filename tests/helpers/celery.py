"""Real `mediamill worker` processes on a real broker (Redis or RabbitMQ), for live tests.

Each cluster has queues of its own (a unique prefix), so runs in parallel never take each
other's batches; a worker is its own process group, so a test can kill one process of it or
all of them at once.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mediamill import ops
from mediamill.catalog.db import Catalog
from mediamill.executors.celery import (
    CeleryConfig,
    WorkerInfo,
    close_app,
    live_workers,
    make_app,
)
from mediamill.settings import load
from tests.conftest import require_server
from tests.helpers.netns import Host, netns_problem

ROOT = Path(__file__).resolve().parents[2]
BROKERS = {
    # a Redis database of our own: other tests use 0
    "redis": os.environ.get("MEDIAMILL_TEST_REDIS_BROKER", "redis://127.0.0.1:6379/7"),
    "rabbitmq": os.environ.get("MEDIAMILL_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672//"),
}


def broker_problem(url: str) -> str | None:
    from kombu import Connection

    try:
        with Connection(url, connect_timeout=3) as conn:
            conn.ensure_connection(max_retries=1)
    except Exception as exc:  # noqa: BLE001 - any failure means: no server here
        return f"{type(exc).__name__}: {exc}"
    return None


def require_broker(kind: str) -> str:
    url = BROKERS[kind]
    require_server("Redis" if kind == "redis" else "RabbitMQ", broker_problem(url))
    return url


_LIBC = ctypes.CDLL(None, use_errno=True)
_PR_SET_PDEATHSIG = 1


def _own_group_dying_with_us() -> None:
    """In the child: a process group of its own (a test kills it whole), and SIGTERM when the
    test process dies, so a killed test run leaves no worker behind. It imports nothing and
    takes no lock, so it is safe after a fork from a process with threads."""
    os.setsid()
    _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class Worker:
    """One `mediamill worker` process (its own process group: it and its local workers)."""

    def __init__(self, proc: subprocess.Popen[bytes], log: Path) -> None:
        self.proc, self.log = proc, log
        self.pid = proc.pid

    def children(self) -> list[int]:
        """Every process of this worker but the Celery one (forkserver, local workers)."""
        out = subprocess.run(
            ["pgrep", "-g", str(self.pid)], capture_output=True, text=True, check=False
        )
        return [int(p) for p in out.stdout.split() if int(p) != self.pid]

    def kill_main(self) -> None:
        """SIGKILL the Celery worker process only (its local workers lose their parent)."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        self.proc.wait(10)

    def kill_all(self) -> None:
        """SIGKILL every process of the worker at once, as a machine that goes away."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill_all()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)  # local workers left behind


class Cluster:
    """Workers and the settings a runner needs to reach them."""

    def __init__(self, broker: str, home: Path, *, hosts: bool = False, **settings: Any) -> None:
        self.broker = broker
        #: each worker on a host of its own (a network namespace) when they can be made
        self.use_hosts = hosts and netns_problem() is None
        self.hosts: list[Host] = []
        self.home = home
        self.prefix = f"mmt{uuid.uuid4().hex[:10]}"
        self.env = {
            "MEDIAMILL_BROKER_URL": broker,
            "MEDIAMILL_CELERY_QUEUE_PREFIX": self.prefix,
            "MEDIAMILL_CELERY_LOST_AFTER": "5",
            "MEDIAMILL_CELERY_WORKER_WAIT": "10",
            **{f"MEDIAMILL_{k.upper()}": str(v) for k, v in settings.items()},
        }
        self.workers: list[Worker] = []
        self.config = CeleryConfig.from_settings(load(**self._settings()))
        self.app = make_app(self.config)

    def _settings(self) -> dict[str, Any]:
        with pytest.MonkeyPatch.context() as mp:
            for key, value in self.env.items():
                mp.setenv(key, value)
            return load().as_dict()

    def start_worker(self, *args: str, wait: bool = True) -> Worker:
        self.home.mkdir(parents=True, exist_ok=True)
        log = self.home / f"worker-{len(self.workers)}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIAMILL_")}
        pythonpath = [p for p in (os.environ.get("PYTHONPATH"), str(ROOT)) if p]
        env.update(self.env, PYTHONPATH=os.pathsep.join(pythonpath), COLUMNS="300")
        cmd = [sys.executable, "-m", "mediamill", "worker", *args]
        if self.use_hosts:
            host = Host(self.broker)
            self.hosts.append(host)
            cmd = host.wrap(cmd)
            env["MEDIAMILL_BROKER_URL"] = host.broker
        with log.open("ab") as out:
            proc = subprocess.Popen(
                cmd,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=_own_group_dying_with_us,  # noqa: PLW1509 - it only makes two system calls
            )
        worker = Worker(proc, log)
        self.workers.append(worker)
        if wait:
            self.wait_for(lambda found: any(w.pid == worker.pid for w in found), worker)
        return worker

    def live(self) -> list[WorkerInfo]:
        """This cluster's workers that answer (others may share the broker)."""
        ours = {w.pid for w in self.workers}
        return [w for w in live_workers(self.app, None, timeout=1.0) if w.pid in ours]

    def wait_for(self, check: Any, worker: Worker | None = None, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if worker is not None and worker.proc.poll() is not None:
                raise AssertionError(f"worker exited: {worker.log.read_text()[-3000:]}")
            if check(self.live()):
                return
        raise AssertionError("the workers did not come up: " + self.logs())

    def logs(self) -> str:
        return "\n".join(w.log.read_text()[-2000:] for w in self.workers if w.log.exists())

    @contextlib.contextmanager
    def settings_env(self) -> Iterator[None]:
        """The runner's environment (the executor reads its settings from it)."""
        with pytest.MonkeyPatch.context() as mp:
            for key, value in self.env.items():
                mp.setenv(key, value)
            yield

    def run(self, catalog: Catalog, root: Path, processor: str, **options: Any) -> dict[str, Any]:
        """Scan ``root`` and run ``processor`` over it on these workers, in this process."""
        with self.settings_env():
            library = ops.resolve_library(catalog, str(root))
            ops.refresh_library(catalog, library)
            options.setdefault("executor", "celery")
            job_id, _ = ops.prepare_job(catalog, processor, library, options=options)
            return ops.run_job(catalog, job_id, settings=load(db=catalog.url))

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()
        for host in self.hosts:
            host.close()
        close_app(self.app)


@contextlib.contextmanager
def cluster(
    broker: str, home: Path, *worker_args: list[str], hosts: bool = False, **settings: Any
) -> Iterator[Cluster]:
    """A cluster with one worker per entry of ``worker_args`` (its command-line options), each
    on a host of its own with ``hosts`` (where network namespaces can be made)."""
    found = Cluster(broker, home, hosts=hosts, **settings)
    try:
        for args in worker_args:
            found.start_worker(*args)
        yield found
    finally:
        found.stop()
