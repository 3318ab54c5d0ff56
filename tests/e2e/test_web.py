"""The web page as a user drives it: headless Chromium against a real `mediamill serve` process,
a real catalog and a real media library."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import IN_CI

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TOKEN = "testtoken"  # noqa: S105 - the test server's token, not a secret
#: the demo library's files that probe cannot read, and the words of their causes
BROKEN = {
    "Broken/empty.mp3": "empty file",
    "Broken/corrupt.flac": "not a readable media file",
    "Broken/truncated.mp4": "not a readable media file",
}

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _require(what: str, problem: str | None) -> None:
    """Skip when the browser tooling is absent on a user's machine; fail when CI=true."""
    if problem is None:
        return
    if IN_CI:
        pytest.fail(f"{what} is required in CI but missing: {problem}")
    pytest.skip(f"{what} missing ({problem})")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_healthy(base: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"mediamill serve exited with {proc.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{base}/api/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail(f"mediamill serve did not answer /api/health in {timeout}s:\n{log.read_text()}")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    """A real `mediamill serve` on a free port with its own SQLite catalog."""
    port = _free_port()
    env = {
        **os.environ,
        "MEDIAMILL_DB": f"sqlite:///{tmp_path / 'c.db'}",
        "MEDIAMILL_API_TOKEN": TOKEN,
        "MEDIAMILL_HOME": str(tmp_path),
        "MEDIAMILL_ALLOWED_ROOTS": str(tmp_path),
        "PYTHONPATH": str(ROOT),
    }
    serve = ["serve", "--host", "127.0.0.1", "--port", str(port)]
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mediamill", *serve],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_healthy(base, proc, log)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def launcher() -> Any:
    """Playwright's launcher, checked before any server starts."""
    _require("Chromium", None if CHROMIUM.exists() else f"{CHROMIUM} not found")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        _require("Playwright for Python", f"{exc}; pip install playwright")
    return sync_playwright


@pytest.fixture
def browser(launcher: Any) -> Iterator[Any]:
    with launcher() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.mark.usefixtures("launcher")
def test_a_user_adds_a_library_probes_it_live_and_reads_the_failures(
    server: str, browser: Any, tmp_path: Path
) -> None:
    """Given a fresh server and a folder of media with three broken files, when a user adds the
    folder and starts a probe job from the page, then the job's bar fills to 100 through live
    events (no polling), the badge says completed, and its failures name each broken file with
    its cause."""
    from playwright.sync_api import expect

    from mediamill.testing.media import make_library

    library = tmp_path / "lib"
    make_library(library)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    problems: list[str] = []

    def on_console(message: Any) -> None:
        if message.type == "error":
            problems.append(message.text)

    page.on("console", on_console)
    page.on("pageerror", lambda exc: problems.append(f"uncaught: {exc}"))
    job_list_requests: list[str] = []
    event_streams: list[str] = []

    def on_request(request: Any) -> None:
        path = request.url.removeprefix(server).split("?")[0]
        if request.method == "GET" and path == "/api/jobs":
            job_list_requests.append(request.url)
        if path == "/api/events":
            event_streams.append(request.url)

    page.on("request", on_request)

    # the token comes in the URL fragment, is kept, and leaves the address bar
    page.goto(f"{server}/#token={TOKEN}")
    expect(page).to_have_url(f"{server}/")
    assert page.evaluate("localStorage.getItem('mediamill.token')") == TOKEN
    expect(page.locator("#live")).to_have_text("live")
    assert event_streams, "live updates come from an EventSource"
    assert f"access_token={TOKEN}" in event_streams[0]

    # add the library through the form; the page scans it
    page.get_by_label("Name", exact=True).fill("demo")
    page.get_by_label("Folder on the server").fill(str(library))
    page.get_by_role("button", name="Add library").click()
    card = page.locator("li.library", has_text="demo")
    expect(card.locator(".library-counts")).to_contain_text("items:", timeout=30_000)

    # start a probe job on the whole library
    page.locator("#job-processor").select_option("probe")
    page.locator("#job-library").select_option("demo")
    page.get_by_role("button", name="Process all").click()
    row = page.locator("li.job").first
    expect(row).to_have_attribute("data-job-id", re.compile(r".+"))
    job_id = row.get_attribute("data-job-id")
    bar = page.locator(f'progress.job-progress[data-job-id="{job_id}"]')
    badge = page.locator(f'.job-status[data-job-id="{job_id}"]')
    page.wait_for_function(
        "id => document.querySelector(`progress.job-progress[data-job-id='${id}']`)?.value === 100",
        arg=job_id,
        timeout=120_000,
    )
    expect(badge).to_have_text("completed", timeout=30_000)
    assert bar.evaluate("el => el.max") == 100
    expect(row.locator(".job-pct")).to_have_text("100%")
    expect(row.locator(".job-failed")).to_contain_text(f"{len(BROKEN)} failed")
    assert len(job_list_requests) <= 2, f"the page polled the job list: {job_list_requests}"

    # the job's failures list each broken file with its cause
    row.get_by_role("button", name=re.compile("Failures")).click()
    failures = row.locator(".failure")
    expect(failures).to_have_count(len(BROKEN))
    for path, cause in BROKEN.items():
        failure = failures.filter(has_text=path)
        expect(failure.locator(".cause")).to_contain_text(cause)

    # the item browser shows probe metadata readably
    page.locator("#browser-q").fill("Big Movie")
    expect(page.locator("li.item")).to_have_count(1)
    movie = page.locator("li.item", has_text="Big Movie (2019).mkv")
    expect(movie.locator(".item-streams")).to_contain_text("subtitle subrip eng")
    expect(movie.locator(".item-meta")).to_contain_text("0:0")

    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(tmp_path / "web.png"), full_page=True)
    # one column on a phone, nothing wider than the screen
    page.set_viewport_size({"width": 390, "height": 844})
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page is {overflow}px wider than a phone screen"
    page.screenshot(path=str(tmp_path / "web-phone.png"), full_page=True)
    assert problems == [], f"console errors: {problems}"
