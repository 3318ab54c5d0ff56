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


def _loopback_only(route: Any) -> None:
    """Playwright route handler: anything beyond this machine fails, as on a NAS offline."""
    host = re.sub(r"^\w+://", "", route.request.url).split("/")[0].rsplit(":", 1)[0]
    if host in ("127.0.0.1", "localhost", "[::1]"):
        route.continue_()
    else:
        route.abort("internetdisconnected")


@pytest.mark.usefixtures("launcher")
def test_the_api_docs_load_without_internet(server: str, browser: Any, tmp_path: Path) -> None:
    """Given no network beyond loopback, /api/docs still shows every operation."""
    from playwright.sync_api import expect

    page = browser.new_page(viewport={"width": 1280, "height": 800})
    outside: list[str] = []
    page.on("requestfailed", lambda request: outside.append(request.url))
    page.route("**/*", _loopback_only)
    page.goto(f"{server}/api/docs")
    expect(page.get_by_text("mediamill", exact=False).first).to_be_visible(timeout=30_000)
    expect(page.locator(".opblock").first).to_be_visible(timeout=30_000)
    expect(
        page.locator(".opblock-summary-path", has_text="/api/libraries/{name}/stats")
    ).to_be_visible()
    assert outside == [], f"the docs asked beyond loopback: {outside}"
    page.screenshot(path=str(tmp_path / "docs.png"))


@pytest.mark.usefixtures("launcher")
def test_first_hour_on_the_page_at_desktop_and_phone_widths(
    server: str, browser: Any, tmp_path: Path
) -> None:
    """Given a music folder with a track whose name is not UTF-8, when the user starts work
    from the library card, then the job is highlighted in view, finished jobs fold away
    behind "N finished" after a reload, audio results read as tempo, Camelot key and
    loudness, the odd name reads as a name, the statistics draw as SVG bars, and headings are
    not hidden under the sticky bar; at 1280x800 and at 390x844."""
    from playwright.sync_api import expect

    from mediamill.testing.music import make_track

    music = tmp_path / "music"
    music.mkdir()
    make_track(music / "plain.flac", bpm=124, key="A", scale="minor", seconds=6)
    make_track(music / "odd.flac", bpm=126, key="C", scale="major", seconds=6, seed=1)
    os.rename(os.fsencode(music / "odd.flac"), os.fsencode(music) + b"/caf\xe9 latin1.flac")
    for width, height in ((1280, 800), (390, 844)):
        page = browser.new_page(viewport={"width": width, "height": height})
        problems: list[str] = []
        page.on("pageerror", lambda exc, problems=problems: problems.append(str(exc)))
        page.goto(f"{server}/#token={TOKEN}")
        expect(page.locator("#live")).to_have_text("live")
        if width == 1280:
            page.get_by_label("Name", exact=True).fill("music")
            page.get_by_label("Folder on the server").fill(str(music))
            page.get_by_role("button", name="Add library").click()
        card = page.locator("li.library", has_text="music")
        expect(card.locator(".library-counts")).to_contain_text("2 items", timeout=30_000)
        if width == 1280:  # a dry run says what it would do, and makes no job
            page.locator("#job-processor").select_option("probe")
            page.locator("#job-dry-run").check()
            page.get_by_role("button", name="Process all").click()
            said = page.locator("#job-form-msg")
            expect(said).to_contain_text("nothing was changed", timeout=60_000)
            expect(said).to_contain_text("Would process 2 items")
            expect(page.locator("li.job.just-started")).to_have_count(0)
            page.locator("#job-dry-run").uncheck()
        button = card.get_by_role("button", name="Probe" if width == 1280 else "Analyse audio")
        expect(button).to_be_visible()
        button.click()
        started = page.locator("li.job.just-started")
        expect(started).to_have_count(1)
        expect(started).to_be_in_viewport()
        expect(started.locator(".job-status")).to_have_text("completed", timeout=120_000)
        expect(started).to_be_visible()  # the job just started stays in sight when it ends
        if width == 1280:
            page.reload()
            expect(page.locator("#jobs-finished-count")).to_have_text("1 finished")
            expect(page.locator("#job-done-list li.job").first).to_be_hidden()
            page.locator("#jobs-finished-count").click()
            expect(page.locator("#job-done-list li.job").first).to_be_visible()
            continue
        # the audio results, read as a DJ would
        page.locator("#browser-processor").select_option("audio")
        page.locator("#browser-library").select_option("music")
        odd = page.locator("li.item", has_text="café latin1.flac")
        expect(odd.locator(".badge.odd-name")).to_have_text("name not UTF-8")
        expect(odd.locator(".item-meta")).to_contain_text("8B · C major", timeout=30_000)
        plain = page.locator("li.item", has_text="plain.flac")
        expect(plain.locator(".item-meta")).to_contain_text("8A · A minor")
        expect(plain.locator(".item-meta")).to_contain_text(re.compile(r"12\d BPM"))
        expect(plain.locator(".item-meta")).to_contain_text("LUFS")
        # the heading a button jumps to is below the sticky bar, not under it
        card.get_by_role("button", name="Browse items").click()
        page.wait_for_function(
            "() => Math.abs(document.querySelector('#browser').getBoundingClientRect().top"
            " - document.querySelector('.topbar').getBoundingClientRect().bottom) < 80"
        )
        bar = page.locator(".topbar").bounding_box()
        heading = page.locator("#browser-title").bounding_box()
        assert heading["y"] >= bar["y"] + bar["height"], "the sticky bar covers the heading"
        # statistics as pictures
        card.get_by_role("button", name="Statistics").click()
        charts = page.locator("#stats figure.chart-box")
        expect(charts.filter(has_text="Keys (Camelot)").locator("rect")).to_have_count(2)
        expect(charts.filter(has_text="Containers")).to_contain_text("FLAC")
        expect(page.locator("#stats-summary")).to_contain_text("2 items")
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"the page is {overflow}px wider than a phone screen"
        page.screenshot(path=str(tmp_path / "stats-phone.png"), full_page=True)
        page.set_viewport_size({"width": 1280, "height": 800})
        page.locator("#stats").scroll_into_view_if_needed()
        page.screenshot(path=str(tmp_path / "stats-desktop.png"), full_page=True)
        assert problems == [], problems
