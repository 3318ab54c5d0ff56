"""A real `mediamill serve` process on a free loopback port, for API and browser tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "test-token-0123456789"  # noqa: S105 - a test server's token


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """Start, kill and restart one API process; ``client`` sends the token."""

    def __init__(
        self,
        db_url: str,
        home: Path,
        *,
        port: int | None = None,
        extra_env: dict[str, str] | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self.db_url, self.home = db_url, home
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.extra_env = extra_env or {}
        self.host = host
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = home / f"server-{self.port}.log"

    def start(self) -> Server:
        env = {
            **os.environ,
            "MEDIAMILL_DB": self.db_url,
            "MEDIAMILL_HOME": str(self.home),
            "MEDIAMILL_API_TOKEN": TOKEN,
            # the tests' libraries and outputs live in the temp dir
            "MEDIAMILL_ALLOWED_ROOTS": tempfile.gettempdir(),
            # the tests' own processors are named tests.helpers.processors:Class
            "MEDIAMILL_ALLOWED_PROCESSOR_MODULES": "tests.helpers",
            "PYTHONPATH": str(ROOT),
            **self.extra_env,
        }
        self.home.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "mediamill",
                    "serve",
                    "--host",
                    self.host,
                    "--port",
                    str(self.port),
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/api/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError(f"server did not start: {self.log.read_text()[-2000:]}")

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()

    def client(self, token: str | None = TOKEN) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def wait_job(self, job_id: str, statuses: set[str], timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self.client() as client:
            while True:
                job: dict[str, Any] = client.get(f"/api/jobs/{job_id}").json()
                if job["status"] in statuses:
                    return job
                if time.monotonic() > deadline:
                    raise AssertionError(f"job still {job['status']}: {job}")
                time.sleep(0.1)
