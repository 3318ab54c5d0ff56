"""The HTTP API against a real server process and a real catalog."""

from __future__ import annotations

import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from mediamill.catalog.db import Catalog
from mediamill.catalog.models import Result
from tests.conftest import PG_URL, _pg_reachable, make_files, require_server, reset_postgres
from tests.helpers.server import Server

ECHO = "tests.helpers.processors:Echo"


@pytest.fixture
def library(tmp_path: Path) -> Path:
    root = tmp_path / "lib"
    make_files(root, [f"d{i % 4}/f{i:03}.bin" for i in range(60)] + ["bad/fail1.bin"])
    return root


def _add_library(client: httpx.Client, root: Path, name: str = "lib") -> dict[str, Any]:
    response = client.post("/api/libraries", json={"path": str(root), "name": name})
    assert response.status_code == 201, response.text
    return dict(response.json())


def test_a_job_runs_to_completion_and_reports_its_failures(server: Server, library: Path) -> None:
    with server.client() as client:
        lib = _add_library(client, library)
        assert lib["name"] == "lib"
        created = client.post(
            "/api/jobs",
            json={"processor": ECHO, "library": "lib", "options": {"workers": 2, "batch_size": 4}},
        )
        assert created.status_code == 201, created.text
        job = created.json()
        assert job["total_items"] == 61
        done = server.wait_job(job["job_id"], {"completed"})
        for key in (
            "job_id",
            "status",
            "processor",
            "library",
            "total_items",
            "processed_items",
            "succeeded",
            "failed",
            "skipped",
            "progress",
            "rate",
            "eta_seconds",
            "error",
            "created_at",
            "started_at",
            "completed_at",
        ):
            assert key in done
        assert (done["succeeded"], done["failed"], done["progress"]) == (60, 1, 1.0)
        failed = client.get(f"/api/jobs/{job['job_id']}/items", params={"status": "failed"})
        assert failed.json()["total"] == 1
        item = failed.json()["items"][0]
        assert (item["path"], item["success"]) == ("bad/fail1.bin", False)
        assert "broken on purpose" in item["error"]
        listed = client.get("/api/jobs", params={"status": "completed"}).json()
        assert [j["job_id"] for j in listed["jobs"]] == [job["job_id"]]
        items = client.get(
            "/api/items", params={"library": "lib", "processor": ECHO, "q": "d1/", "limit": 5}
        ).json()
        assert items["total"] == 15
        assert all(i["path"].startswith("d1/") and i["status"] == "ok" for i in items["items"])
        libs = client.get("/api/libraries").json()["libraries"]
        assert libs[0]["counts"] == {"other": 61}


def test_selected_items_and_retry_failed(server: Server, library: Path) -> None:
    with server.client() as client:
        _add_library(client, library)
        job = client.post(
            "/api/jobs",
            json={"processor": ECHO, "library": "lib", "items": ["d0/f000.bin", "d1/f001.bin"]},
        ).json()
        done = server.wait_job(job["job_id"], {"completed"})
        assert (done["total_items"], done["succeeded"]) == (2, 2)
        client.post("/api/jobs", json={"processor": ECHO, "library": "lib"})
        time.sleep(0.2)
        retry = client.post(
            "/api/jobs", json={"processor": ECHO, "library": "lib", "filter": "failed"}
        )
        assert retry.status_code == 201


def test_state_changes_need_the_token(server: Server, library: Path) -> None:
    wrong_token = "wrong"  # noqa: S105 - the point of the test
    with server.client(token=None) as anonymous, server.client(token=wrong_token) as wrong:
        for client in (anonymous, wrong):
            response = client.post("/api/libraries", json={"path": str(library)})
            assert response.status_code == 401
            assert response.json()["detail"] == "missing or wrong API token"
        assert anonymous.get("/api/jobs").status_code == 200, "reads are open on loopback"
        assert anonymous.post("/api/jobs/x/cancel").status_code == 401
        assert anonymous.delete("/api/libraries/lib").status_code == 401


def test_reads_need_the_token_when_listening_beyond_loopback(tmp_path: Path) -> None:
    server = Server(f"sqlite:///{tmp_path / 'c.db'}", tmp_path / "home", host="0.0.0.0").start()
    try:
        with server.client(token=None) as anonymous, server.client() as client:
            assert anonymous.get("/api/jobs").status_code == 401
            assert anonymous.get("/api/events").status_code == 401
            assert client.get("/api/jobs").status_code == 200
            assert anonymous.get("/api/health").status_code == 200, "health stays open"
    finally:
        server.stop()


def test_a_generated_token_is_stored_with_0600(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mediamill.api.deps import load_or_create_token
    from mediamill.settings import Settings

    monkeypatch.setenv("MEDIAMILL_HOME", str(tmp_path))
    monkeypatch.delenv("MEDIAMILL_API_TOKEN", raising=False)
    token, created = load_or_create_token(Settings(api_token=""))
    assert created
    assert len(token) >= 32
    assert (tmp_path / "api-token").stat().st_mode & 0o777 == 0o600
    assert load_or_create_token(Settings(api_token="")) == (token, False)
    # an empty token file (a crash while it was written, by an older version) is no token
    (tmp_path / "api-token").write_text("")
    renewed, created = load_or_create_token(Settings(api_token=""))
    assert created
    assert len(renewed) >= 32
    assert (tmp_path / "api-token").read_text().strip() == renewed
    assert [p.name for p in tmp_path.iterdir()] == ["api-token"], "no temp file left"


def test_two_servers_starting_at_once_share_one_generated_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mediamill.api.deps import load_or_create_token
    from mediamill.settings import Settings

    monkeypatch.setenv("MEDIAMILL_HOME", str(tmp_path))
    monkeypatch.delenv("MEDIAMILL_API_TOKEN", raising=False)
    start = threading.Barrier(8)

    def first_start() -> str:
        start.wait()
        return load_or_create_token(Settings(api_token=""))[0]

    with ThreadPoolExecutor(8) as pool:
        tokens = set(pool.map(lambda _: first_start(), range(8)))
    assert tokens == {(tmp_path / "api-token").read_text().strip()}


def test_paths_that_escape_the_library_are_refused(
    server: Server, library: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside.bin"
    outside.write_bytes(b"secret")
    os.symlink(outside, library / "link-out.bin")
    with server.client() as client:
        _add_library(client, library)
        for bad in (
            "../outside.bin",
            "/etc/passwd",
            "d0/../../outside.bin",
            "link-out.bin",
            "~/x",
            "",
        ):
            response = client.post(
                "/api/jobs", json={"processor": ECHO, "library": "lib", "items": [bad]}
            )
            assert response.status_code == 422, (bad, response.text)
            assert "detail" in response.json()
        unknown = client.post(
            "/api/jobs", json={"processor": ECHO, "library": "lib", "items": ["no/such.bin"]}
        )
        assert unknown.status_code == 422
        assert "not items of lib" in unknown.json()["detail"]


def test_a_scan_of_an_emptied_folder_is_refused_unless_forced(
    server: Server, library: Path
) -> None:
    with server.client() as client:
        _add_library(client, library)
        assert client.post("/api/libraries/lib/scan").json()["report"]["found"] == 61
        moved = library.rename(library.with_name("parked"))
        library.mkdir()  # an unmounted share leaves an empty mount point
        refused = client.post("/api/libraries/lib/scan")
        assert refused.status_code == 422
        assert "Is the drive or share mounted?" in refused.json()["detail"]
        assert sum(client.get("/api/libraries/lib").json()["counts"].values()) == 61
        library.rmdir()
        moved.rename(library)
        back = client.post("/api/libraries/lib/scan")
        assert back.json()["report"]["unchanged"] == 61
        for path in list(library.rglob("*.bin")):
            path.unlink()
        forced = client.post("/api/libraries/lib/scan", params={"force": "true"})
        assert forced.status_code == 200, forced.text
        assert forced.json()["report"]["missing"] == 61


def test_invalid_requests_get_4xx_json(server: Server, library: Path) -> None:
    with server.client() as client:
        cases = [
            client.post("/api/jobs", json={"processor": "nosuch", "library": "lib"}),
            client.post("/api/jobs", json={"processor": ECHO, "library": "nolib"}),
            client.post("/api/jobs", json={"processor": ECHO}),
            client.post(
                "/api/jobs", content=b"{not json", headers={"content-type": "application/json"}
            ),
            client.post(
                "/api/jobs", json={"processor": ECHO, "library": "lib", "options": {"workers": 0}}
            ),
            client.post("/api/libraries", json={"path": "relative/path"}),
            client.post("/api/libraries", json={"path": "/no/such/folder"}),
            client.get("/api/jobs/does-not-exist"),
            client.post("/api/jobs/does-not-exist/pause"),
            client.get("/api/jobs", params={"limit": -1}),
            client.get("/api/items", params={"library": "nolib"}),
        ]
        for response in cases:
            assert 400 <= response.status_code < 500, response.text
            assert "detail" in response.json()


def test_a_processor_module_not_allowed_by_the_settings_is_refused(
    server: Server, library: Path
) -> None:
    """``module:Class`` in a request imports nothing unless the server allows the module
    (this server allows ``tests.helpers``): 403 before any import, 422 for a class that is
    not there, never 500."""
    with server.client() as client:
        _add_library(client, library)
        for name, status in (
            ("os:system", 403),
            ("mediamill.processors.probe:ProbeProcessor", 403),
            ("tests.helpersx.processors:Echo", 403),
            ("tests.helpers.processors:NoSuchClass", 422),
            ("tests.helpers.nosuchmodule:Echo", 422),
            ("tests.helpers.processors:Echo", 201),
        ):
            response = client.post("/api/jobs", json={"processor": name, "library": "lib"})
            assert response.status_code == status, (name, response.text)
        refused = client.post("/api/jobs", json={"processor": "os:system", "library": "lib"})
        assert refused.json()["detail"] == (
            "processor module 'os' is not allowed on this server "
            "(setting allowed_processor_modules)"
        )


def test_an_option_nothing_reads_is_refused_with_422(server: Server, library: Path) -> None:
    with server.client() as client:
        _add_library(client, library)
        body = {"processor": "probe", "library": "lib", "options": {"colour": "red"}}
        response = client.post("/api/jobs", json=body)
        assert response.status_code == 422, response.text
        assert "unknown option colour: probe takes mutagen" in response.json()["detail"]
        assert client.get("/api/jobs").json()["jobs"] == [], "no job was made"


def test_a_secret_option_is_never_served(server: Server, tmp_path: Path) -> None:
    """strm's ``refresh.token`` sent with a job is neither stored nor served by
    ``/api/jobs``, ``/api/jobs/{id}`` or ``/api/events``."""
    token = "media-server-token-93124"  # noqa: S105 - a made-up token to look for
    root = tmp_path / "vod"
    make_files(root, ["a.bin"])
    options = {
        "output": str(tmp_path / "out"),
        "refresh": {"kind": "jellyfin", "url": "http://127.0.0.1:9", "token": token},
    }
    with server.client() as client:
        _add_library(client, root)
        created = client.post(
            "/api/jobs", json={"processor": "strm", "library": "lib", "options": options}
        )
        assert created.status_code == 201, created.text
        job_id = created.json()["job_id"]
        assert created.json()["options"]["refresh"] == {
            "kind": "jellyfin",
            "url": "http://127.0.0.1:9",
        }
        server.wait_job(job_id, {"completed", "failed"})
        served = [client.get("/api/jobs").text, client.get(f"/api/jobs/{job_id}").text]
        with client.stream("GET", "/api/events") as events:
            for line in events.iter_lines():
                served.append(line)
                if line.startswith("data:") and job_id in line:
                    break
    assert all(token not in text for text in served)
    assert any(job_id in text for text in served[2:]), "the event stream showed the job"


def test_cancel_ends_a_running_job_within_5_seconds(server: Server, library: Path) -> None:
    with server.client() as client:
        _add_library(client, library)
        job = client.post(
            "/api/jobs",
            json={
                "processor": ECHO,
                "library": "lib",
                "options": {"workers": 1, "batch_size": 50, "delay": 0.5},
            },
        ).json()
        server.wait_job(job["job_id"], {"running"})
        time.sleep(0.5)
        asked = time.monotonic()
        answer = client.post(f"/api/jobs/{job['job_id']}/cancel")
        assert answer.status_code == 200
        assert answer.json()["status"] == "cancelling", "items in flight are still finishing"
        done = server.wait_job(job["job_id"], {"cancelled"}, timeout=10)
        assert time.monotonic() - asked < 5
        assert done["processed_items"] < 61


def test_pause_then_resume_finishes_the_job(server: Server, library: Path) -> None:
    with server.client() as client:
        _add_library(client, library)
        job = client.post(
            "/api/jobs",
            json={
                "processor": ECHO,
                "library": "lib",
                "options": {"workers": 2, "batch_size": 2, "delay": 0.05},
            },
        ).json()
        server.wait_job(job["job_id"], {"running"})
        time.sleep(0.3)
        client.post(f"/api/jobs/{job['job_id']}/pause")
        paused = server.wait_job(job["job_id"], {"paused"}, timeout=10)
        assert 0 < paused["processed_items"] < 61
        assert client.post(f"/api/jobs/{job['job_id']}/resume").status_code == 200
        done = server.wait_job(job["job_id"], {"completed"})
        assert done["processed_items"] == 61
        assert client.delete(f"/api/jobs/{job['job_id']}").status_code == 204
        assert client.get(f"/api/jobs/{job['job_id']}").status_code == 404


def test_live_events_stream_progress_and_state(server: Server, library: Path) -> None:
    events: list[dict[str, Any]] = []
    stop = threading.Event()

    def listen() -> None:
        with httpx.stream("GET", f"{server.url}/api/events", timeout=30) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            name = None
            for line in response.iter_lines():
                if line.startswith("event:"):
                    name = line.split(":", 1)[1].strip()
                elif line.startswith("data:") and name == "job":
                    events.append(json.loads(line.split(":", 1)[1]))
                    if events[-1]["status"] == "completed" or stop.is_set():
                        return

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    time.sleep(0.5)
    with server.client() as client:
        _add_library(client, library)
        job = client.post(
            "/api/jobs",
            json={
                "processor": ECHO,
                "library": "lib",
                "options": {"workers": 2, "batch_size": 2, "delay": 0.1},
            },
        ).json()
    listener.join(60)
    stop.set()
    mine = [e for e in events if e["job_id"] == job["job_id"]]
    assert mine[-1]["status"] == "completed"
    assert {"running", "completed"} <= {e["status"] for e in mine}
    progress = [e["processed_items"] for e in mine if e["status"] == "running"]
    assert progress == sorted(progress)
    assert len(set(progress)) >= 2, "progress arrives while the job runs"


def test_a_deleted_job_is_announced_to_every_listener(server: Server, library: Path) -> None:
    """Another open page learns of the deletion without reloading."""
    deleted: list[str] = []
    ready = threading.Event()

    def listen() -> None:
        with httpx.stream("GET", f"{server.url}/api/events", timeout=30) as response:
            ready.set()
            name = None
            for line in response.iter_lines():
                if line.startswith("event:"):
                    name = line.split(":", 1)[1].strip()
                elif line.startswith("data:") and name == "job_deleted":
                    deleted.append(json.loads(line.split(":", 1)[1])["job_id"])
                    return

    with server.client() as client:
        _add_library(client, library)
        job = client.post("/api/jobs", json={"processor": ECHO, "library": "lib"}).json()
        server.wait_job(job["job_id"], {"completed"})
        listener = threading.Thread(target=listen, daemon=True)
        listener.start()
        assert ready.wait(10)
        time.sleep(0.6)  # the broker has seen the finished job
        assert client.delete(f"/api/jobs/{job['job_id']}").status_code == 204
    listener.join(10)
    assert deleted == [job["job_id"]]


def test_metrics_in_prometheus_format(server: Server, library: Path) -> None:
    with server.client() as client:
        _add_library(client, library)
        job = client.post("/api/jobs", json={"processor": ECHO, "library": "lib"}).json()
        server.wait_job(job["job_id"], {"completed"})
        text = client.get("/metrics").text
    assert f'mediamill_items_processed_total{{processor="{ECHO}",status="ok"}} 60.0' in text
    assert f'mediamill_items_processed_total{{processor="{ECHO}",status="failed"}} 1.0' in text
    assert "mediamill_item_seconds_bucket" in text
    assert "mediamill_job_seconds_count" in text
    assert "mediamill_queue_depth 0.0" in text


def test_server_killed_mid_job_resumes_on_restart_and_every_item_is_done_once(
    tmp_path: Path, library: Path
) -> None:
    db = f"sqlite:///{tmp_path / 'catalog.db'}"
    log = tmp_path / "processed.log"
    server = Server(db, tmp_path / "home").start()
    with server.client() as client:
        _add_library(client, library)
        job = client.post(
            "/api/jobs",
            json={
                "processor": ECHO,
                "library": "lib",
                "options": {"workers": 2, "batch_size": 2, "delay": 0.05, "process_log": str(log)},
            },
        ).json()
        deadline = time.monotonic() + 30
        while client.get(f"/api/jobs/{job['job_id']}").json()["processed_items"] < 10:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    server.kill()
    restarted = Server(db, tmp_path / "home", port=server.port).start()
    try:
        done = restarted.wait_job(job["job_id"], {"completed"})
    finally:
        restarted.stop()
    assert (done["processed_items"], done["succeeded"], done["failed"]) == (61, 60, 1)
    catalog = Catalog.open(db)
    with catalog.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Result)).scalar() == 61
        dupes = conn.execute(
            select(Result.c.item_id).group_by(Result.c.item_id).having(func.count() > 1)
        ).all()
    catalog.close()
    assert dupes == []
    processed = log.read_text().splitlines()
    assert len(set(processed)) == 61, "no item lost"
    assert len(processed) - 61 <= 8, "only the items in flight at the kill were redone"


@pytest.mark.postgres
def test_two_api_processes_on_one_postgresql_catalog_see_the_same_job(
    tmp_path: Path, library: Path
) -> None:
    require_server("PostgreSQL", _pg_reachable())
    reset_postgres()
    first = Server(PG_URL, tmp_path / "a").start()
    second = Server(PG_URL, tmp_path / "b").start()
    try:
        with first.client() as one, second.client() as two:
            _add_library(one, library)
            assert [lib["name"] for lib in two.get("/api/libraries").json()["libraries"]] == ["lib"]
            job = two.post(
                "/api/jobs", json={"processor": ECHO, "library": "lib", "options": {"delay": 0.01}}
            ).json()
            seen = first.wait_job(job["job_id"], {"completed"})
            assert seen["succeeded"] == 60
            assert (
                one.get(f"/api/jobs/{job['job_id']}").json()
                == two.get(f"/api/jobs/{job['job_id']}").json()
            )
    finally:
        first.stop()
        second.stop()
    catalog = Catalog.open(PG_URL)
    with catalog.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Result)).scalar() == 61
    catalog.close()


def test_playlists_from_the_audio_analysis(server: Server, tmp_path: Path) -> None:
    from mediamill.testing.music import make_track

    root = tmp_path / "music"
    root.mkdir()
    for n, (bpm, key, scale) in enumerate(
        [(90, "C", "major"), (124, "A", "minor"), (128, "G", "major"), (140, "E", "minor")]
    ):
        make_track(
            root / f"t{n}.flac",
            bpm=bpm,
            key=key,
            scale=scale,
            seconds=10,
            fmt="flac",
            artist=f"Artist {n}",
            title=f"Song {n}",
        )
    with server.client() as client:
        _add_library(client, root, name="music")
        job = client.post(
            "/api/jobs", json={"processor": "audio", "library": "music", "options": {"workers": 2}}
        ).json()
        assert server.wait_job(job["job_id"], {"completed"}, timeout=120)["succeeded"] == 4
        in_range = client.get(
            "/api/playlists", params={"library": "music", "bpm_min": 118, "bpm_max": 132}
        ).json()
        assert sorted(t["path"] for t in in_range["tracks"]) == ["t1.flac", "t2.flac"]
        m3u = client.get(
            "/api/playlists",
            params={"library": "music", "format": "m3u8", "similar_to": "t1.flac", "size": 2},
        )
        assert m3u.headers["content-type"].startswith("audio/x-mpegurl")
        lines = m3u.text.splitlines()
        assert lines[0] == "#EXTM3U"
        assert lines[1].startswith("#EXTINF:10,Artist ")
        assert "t1.flac" not in lines, "the seed track is not similar to itself"
        bad = client.get(
            "/api/playlists", params={"library": "music", "bpm_min": 140, "bpm_max": 100}
        )
        assert bad.status_code == 422
