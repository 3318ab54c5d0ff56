"""Automation through the API and a real ``mediamill serve``: a library set to run probe is
watched by the server, says how, and misses nothing while the server is down."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

from mediamill.testing.media import write_audio
from tests.helpers.cli import mediamill
from tests.helpers.server import Server


def _wait(client: httpx.Client, check: Any, what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check(client)
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def _probed(path: str) -> Any:
    """The item at ``path`` once probe has a result for it."""

    def check(client: httpx.Client) -> Any:
        response = client.get("/api/items", params={"library": "lib", "q": path})
        items = response.json()["items"] if response.status_code == 200 else []
        return next((i for i in items if i["path"] == path and i["status"] != "pending"), None)

    return check


def _library(client: httpx.Client) -> dict[str, Any]:
    return dict(client.get("/api/libraries/lib").json())


def test_a_library_with_automation_is_watched_by_serve_and_a_restart_misses_nothing(
    server: Server, tmp_path: Path
) -> None:
    root = tmp_path / "lib"
    write_audio(root / "a" / "first.flac", "flac")
    with server.client() as client:
        assert client.post("/api/libraries", json={"path": str(root), "name": "lib"}).is_success
        response = client.put(
            "/api/libraries/lib/automation", json={"processors": ["probe"], "settle_seconds": 1}
        )
        assert response.status_code == 200, response.text
        assert response.json()["automation"]["processors"] == ["probe"]
        watching = _wait(
            client, lambda c: (_library(c)["watch"] or {}).get("state") == "watching", "watch"
        )
        assert _library(client)["watch"]["detail"] == "native events (inotify)", watching
        assert _wait(client, _probed("a/first.flac"), "catch-up")["status"] == "ok"
        write_audio(root / "b" / "dropped.mp3", "mp3")
        assert _wait(client, _probed("b/dropped.mp3"), "a dropped file")["status"] == "ok"
    server.kill()
    write_audio(root / "c" / "while down.ogg", "ogg")
    server.start()
    with server.client() as client:
        found = _wait(client, _probed("c/while down.ogg"), "a file added while down")
        assert found["status"] == "ok"


def test_bad_automation_is_refused_with_the_reason(server: Server, tmp_path: Path) -> None:
    (tmp_path / "lib").mkdir()
    with server.client() as client:
        client.post("/api/libraries", json={"path": str(tmp_path / "lib"), "name": "lib"})
        bad = client.put("/api/libraries/lib/automation", json={"processors": ["nosuch"]})
        assert bad.status_code == 422
        assert "nosuch" in bad.text
        bad = client.put("/api/libraries/lib/automation", json={"schedule": "61 * * * *"})
        assert bad.status_code == 422
        assert "minute '61' is out of 0-59" in bad.text
        assert _library(client)["automation"]["processors"] == []


def test_the_cli_sets_and_shows_a_library_automation(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'catalog.db'}"
    (tmp_path / "lib").mkdir()
    shown = mediamill(
        "automation", str(tmp_path / "lib"), "--run", "probe,audio", "--schedule", "0 3 * * *",
        db=db,
    )  # fmt: skip
    assert '"processors": [\n      "probe",\n      "audio"\n    ]' in shown.stdout
    assert '"schedule": "0 3 * * *"' in shown.stdout
    bad = mediamill("automation", "lib", "--watch", "sometimes", db=db, check=False)
    assert bad.returncode == 2
    assert "watch must be one of auto, native, poll, off" in bad.stderr
