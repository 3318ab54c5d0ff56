"""The API as a new user meets it from curl: clear answers to surprising requests, library
statistics, names that are not UTF-8, and a server that logs what it does."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from mediamill.testing.media import make_library
from tests.helpers.cli import mediamill
from tests.helpers.server import ROOT, Server, free_port

ECHO = "tests.helpers.processors:Echo"
ODD = b"caf\xe9 latin1.bin"


@pytest.fixture
def files(tmp_path: Path) -> Path:
    root = tmp_path / "lib"
    root.mkdir()
    for i in range(30):
        (root / f"f{i:02}.bin").write_bytes(b"x" * 64)
    (root.joinpath(os.fsdecode(ODD))).write_bytes(b"x" * 64)
    return root


def _add(client: httpx.Client, root: Path, name: str = "lib") -> None:
    response = client.post("/api/libraries", json={"path": str(root), "name": name})
    assert response.status_code == 201, response.text


def test_surprising_requests_get_clear_answers(server: Server, files: Path) -> None:
    with server.client() as client:
        _add(client, files)
        again = client.post("/api/libraries", json={"path": str(files), "name": "other"})
        assert again.status_code == 409
        assert again.json()["detail"] == f"{files} is already the library 'lib'; it keeps that name"
        unknown = client.get("/api/jobs", params={"stauts": "running"})
        assert unknown.status_code == 422
        assert unknown.json()["detail"].startswith("unknown query parameter stauts")
        assert "status" in unknown.json()["detail"]
        # the CLI's tempo form is understood; a wrong one is refused, never ignored
        ranged = client.get("/api/playlists", params={"library": "lib", "bpm": "120-130"})
        assert ranged.status_code == 200, ranged.text
        bad = client.get("/api/playlists", params={"library": "lib", "bpm": "fast"})
        assert bad.status_code == 422
        assert "120-130" in bad.json()["detail"]
        broken = client.post(
            "/api/jobs", content=b"{not json", headers={"content-type": "application/json"}
        )
        assert broken.status_code == 400
        assert broken.json()["detail"] == "the body is not valid JSON"
        # the documented answer for a body that is not JSON is the 400
        spec = client.get("/api/openapi.json").json()
        assert "400" in spec["paths"]["/api/jobs"]["post"]["responses"]


def test_items_that_are_not_utf8_come_with_their_bytes_and_a_readable_name(
    server: Server, files: Path
) -> None:
    with server.client() as client:
        _add(client, files)
        assert client.post("/api/libraries/lib/scan").status_code == 200
        items = client.get("/api/items", params={"library": "lib", "q": "latin1"}).json()
        (item,) = items["items"]
        assert item["path"] == "caf\\xe9 latin1.bin"
        assert base64.b64decode(item["path_bytes"]) == ODD
        assert item["readable_path"] == "café latin1.bin"
        plain = client.get("/api/items", params={"library": "lib", "q": "f01"}).json()["items"][0]
        assert plain["path_bytes"] is None


def test_library_statistics_from_the_api_and_the_cli(server: Server, tmp_path: Path) -> None:
    """Given the demo library probed (video, music, pictures, three broken files), the
    statistics count its containers by their common names, its codecs, resolutions, bit
    rates and failures by cause, and the CLI prints the same figures."""
    root = tmp_path / "media"
    make_library(root)
    with server.client() as client:
        _add(client, root, name="demo")
        job = client.post("/api/jobs", json={"processor": "probe", "library": "demo"}).json()
        server.wait_job(job["job_id"], {"completed"}, timeout=120)
        figures = client.get("/api/libraries/demo/stats").json()
    assert figures["items"] == 24
    assert figures["size"] == sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    names = {row["name"]: row["count"] for row in figures["containers"]}
    assert names["MP4"] >= 1
    assert "mov,mp4,m4a,3gp,3g2,mj2" not in names
    assert names["Matroska"] >= 1
    assert {"video", "audio"} <= set(figures["codecs"])
    assert "h264" in {row["name"] for row in figures["codecs"]["video"]}
    assert figures["resolutions"]
    assert sum(r["count"] for r in figures["bit_rates"]) == figures["results"]["probe"]["ok"]
    causes = {row["name"]: row["count"] for row in figures["failures"]["probe"]}
    assert causes == {"not a readable media file": 2, "empty file (0 bytes)": 1}
    assert figures["duration"] > 0
    cli = mediamill("stats", "demo", "--json", db=server.db_url)
    assert json.loads(cli.stdout) == figures
    table = mediamill("stats", "demo", db=server.db_url).stdout
    assert "probe failures by cause" in table
    assert "not a readable media file" in table


def test_serve_logs_requests_and_jobs_and_prints_the_page_url_once(
    tmp_path: Path, files: Path
) -> None:
    """A first start prints the page's URL with the new token once; requests and jobs are
    logged to stderr and to the rotating file in the data dir, never the token."""
    home = tmp_path / "home"
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MEDIAMILL_")},
        "MEDIAMILL_DB": f"sqlite:///{tmp_path / 'c.db'}",
        "MEDIAMILL_HOME": str(home),
        "MEDIAMILL_ALLOWED_ROOTS": str(tmp_path),
        "MEDIAMILL_ALLOWED_PROCESSOR_MODULES": "tests.helpers",
        "PYTHONPATH": str(ROOT),
    }
    out = tmp_path / "serve.out"

    def start() -> subprocess.Popen[bytes]:
        with out.open("ab") as sink:
            proc = subprocess.Popen(
                [sys.executable, "-m", "mediamill", "serve", "--port", str(port)],
                env=env,
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=1).is_success:
                    return proc
            except httpx.HTTPError:
                time.sleep(0.1)
        proc.kill()
        pytest.fail(f"serve did not start: {out.read_text()}")

    proc = start()
    try:
        token = (home / "api-token").read_text().strip()
        base = f"http://127.0.0.1:{port}"
        assert f"{base}/#token={token}" in out.read_text()
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}) as client:
            _add(client, files)
            answer = client.post("/api/jobs", json={"processor": ECHO, "library": "lib"})
            assert answer.status_code == 201, answer.text
            job = answer.json()
            client.get("/api/events", params={"access_token": token}, timeout=0.5)
            deadline = time.monotonic() + 60
            while client.get(f"/api/jobs/{job['job_id']}").json()["status"] != "completed":
                assert time.monotonic() < deadline, "the job did not complete"
                time.sleep(0.1)
    except httpx.ReadTimeout:
        pass
    finally:
        proc.terminate()
        proc.wait(30)
    log = (home / "logs" / "mediamill.log").read_text()
    printed = out.read_text()
    for text in (log, printed):
        assert re.search(r"POST /api/libraries 201 [\d.]+ ms", text), text
        assert f"job {job['job_id']} ({ECHO}) started: 31 items" in text
        assert f"job {job['job_id']} ({ECHO}) completed: 31/31 items" in text
    assert token not in log
    proc = start()  # a second start: the token is not printed again
    proc.terminate()
    proc.wait(30)
    assert out.read_text().count("#token=") == 1


def test_a_run_logs_its_job_with_v_and_to_the_log_file(tmp_path: Path, files: Path) -> None:
    home = tmp_path / "home"
    run = mediamill(
        "-v",
        "run",
        ECHO,
        str(files),
        "-q",
        db=f"sqlite:///{tmp_path / 'c.db'}",
        env={"MEDIAMILL_HOME": str(home)},
    )
    assert "started: 31 items" in run.stderr
    assert "completed: 31/31 items, 31 ok" in run.stderr
    assert "completed: 31/31 items" in (home / "logs" / "mediamill.log").read_text()
    quiet = mediamill(
        "run",
        ECHO,
        str(files),
        "-q",
        db=f"sqlite:///{tmp_path / 'c.db'}",
        env={"MEDIAMILL_HOME": str(home)},
    )
    assert "started" not in quiet.stderr, "without -v, stderr stays quiet"
