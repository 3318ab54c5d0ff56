"""Watched folders with real inotify, real files and real jobs: what a user dropping files
into a watched library sees in the catalog."""

from __future__ import annotations

import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from mediamill.catalog.db import Catalog, LibraryRef
from mediamill.catalog.models import Library
from mediamill.engine.coordinator import Coordinator
from mediamill.jobs import manager
from mediamill.settings import load
from mediamill.sources.folder import library_for_folder
from mediamill.testing.media import write_audio
from mediamill.watch.automation import Automation, set_automation
from mediamill.watch.watcher import Watcher, WatchSpec, WatchState
from tests.helpers.cli import cli_env

SETTLE = 1.5


def wait_for(check: Callable[[], Any], timeout: float = 30.0, what: str = "") -> Any:
    """Poll ``check`` until it returns something true, or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what or check}")
        time.sleep(0.05)


class Watching:
    """A watcher and a job coordinator on one library, in this process."""

    def __init__(self, catalog: Catalog, library: LibraryRef) -> None:
        self.catalog, self.library = catalog, library
        self.states: list[WatchState] = []
        self.watcher = Watcher(catalog, on_state=self.states.append)
        self.coordinator: Coordinator | None = None

    def start(
        self,
        *,
        poll: float | None = None,
        run_jobs: bool = True,
        fallback: float = 60.0,
        processors: tuple[str, ...] = ("probe",),
    ) -> Watching:
        spec = WatchSpec(self.library, processors, poll=poll, settle=SETTLE, fallback_poll=fallback)
        self.watcher.add(spec)
        if run_jobs:
            settings = load(db=self.catalog.url, executor="serial", workers=1)
            self.coordinator = Coordinator(self.catalog, settings, poll_seconds=0.1)
            self.coordinator.start()
        self.watcher.start()
        wait_for(lambda: self.states and self.states[-1].state != "starting", what="armed")
        return self

    def stop(self) -> None:
        self.watcher.stop()
        if self.coordinator is not None:
            self.coordinator.stop()

    def result(self, path: str) -> dict[str, Any] | None:
        found = self.catalog.item_results(self.library.id, path)
        if found and found["present"] and "probe" in found["results"]:
            return found
        return None

    def jobs(self) -> list[dict[str, Any]]:
        jobs, _ = manager.list_jobs(self.catalog, limit=1000)
        return [j for j in jobs if j["library_id"] == self.library.id]

    def idle(self) -> bool:
        return all(j["status"] in ("completed", "failed") for j in self.jobs())


class Output:
    """The lines a command prints, read in a thread so that waiting for one has a deadline."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._queue: queue.Queue[str] = queue.Queue()
        assert proc.stdout is not None
        self._stream = proc.stdout
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        for line in self._stream:
            self._queue.put(line)

    def close(self) -> None:
        """After the command ended: the last lines read, the stream closed."""
        self._thread.join(10)
        self._stream.close()

    def until(self, text: str, timeout: float = 60.0) -> str:
        """The first line from now on that holds ``text``."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(
                    f"no line with {text!r} in {timeout} s; printed:\n{''.join(self.lines)}"
                )
            self.lines.append(line)
            if text in line:
                return line


@pytest.fixture
def library(tmp_path: Path, sqlite_url: str) -> Iterator[tuple[Catalog, LibraryRef, Path]]:
    root = tmp_path / "lib"
    (root / "albums").mkdir(parents=True)
    write_audio(root / "albums" / "first.flac", "flac")
    catalog = Catalog.open(sqlite_url)
    yield catalog, library_for_folder(catalog, root), root
    catalog.close()


@pytest.fixture
def watching(library: tuple[Catalog, LibraryRef, Path]) -> Iterator[Watching]:
    catalog, lib, _root = library
    watch = Watching(catalog, lib)
    yield watch
    watch.stop()


def test_a_file_written_slowly_is_processed_once_after_it_is_complete(
    watching: Watching, library: tuple[Catalog, LibraryRef, Path], tmp_path: Path
) -> None:
    _catalog, _lib, root = library
    source = write_audio(tmp_path / "slow.flac", "flac", seconds=2)
    data = source.read_bytes()
    watching.start()
    wait_for(lambda: watching.result("albums/first.flac"), what="catch-up")
    started = time.monotonic()
    chunks = [data[i : i + len(data) // 40 + 1] for i in range(0, len(data), len(data) // 40 + 1)]
    with open(root / "albums" / "slow.flac", "wb") as out:
        for chunk in chunks:  # 10 s in all, a write every quarter of a second
            out.write(chunk)
            out.flush()
            time.sleep(10 / len(chunks))
    assert time.monotonic() - started >= 9.5
    done = wait_for(lambda: watching.result("albums/slow.flac"), what="slow.flac probed")
    assert done["size"] == len(data)
    assert done["results"]["probe"]["status"] == "ok", done["results"]["probe"]
    wait_for(watching.idle, what="jobs done")
    processed = sum(j["succeeded"] + j["failed"] for j in watching.jobs())
    assert processed == 2, "first.flac at catch-up, slow.flac once: never a partial file"


def test_a_copy_of_1000_files_makes_one_job(
    watching: Watching, library: tuple[Catalog, LibraryRef, Path], tmp_path: Path
) -> None:
    catalog, lib, root = library
    batch = tmp_path / "batch"
    batch.mkdir()
    for n in range(1000):
        (batch / f"{n:04}.mp3").write_bytes(b"not really an mp3 %d" % n)
    (root / "albums" / "first.flac").unlink()  # nothing to catch up: no job at start
    watching.start(run_jobs=False)
    shutil.copytree(batch, root / "incoming")
    wait_for(lambda: sum(catalog.library_counts(lib.id).values()) == 1000, what="1,000 items")
    [job] = wait_for(watching.jobs, what="a job")
    assert len(job["selection"]["paths"]) == 1000
    # a second copy while that job waits joins it
    shutil.copytree(batch, root / "more", ignore=lambda _d, names: sorted(names)[10:])
    wait_for(lambda: len(watching.jobs()[0]["selection"]["paths"]) == 1010, what="joined")
    assert [j["job_id"] for j in watching.jobs()] == [job["job_id"]], "one job for both"


def test_a_rename_inside_the_library_keeps_its_results(
    watching: Watching, library: tuple[Catalog, LibraryRef, Path]
) -> None:
    catalog, lib, root = library
    watching.start()
    before = wait_for(lambda: watching.result("albums/first.flac"), what="catch-up")
    item_id = catalog.item_id(lib.id, "albums/first.flac")
    (root / "renamed").mkdir()
    os.rename(root / "albums" / "first.flac", root / "renamed" / "1st.flac")
    after = wait_for(lambda: watching.result("renamed/1st.flac"), what="the renamed file")
    assert catalog.item_id(lib.id, "renamed/1st.flac") == item_id
    assert after["results"]["probe"] == before["results"]["probe"], "kept, not redone"
    assert catalog.item_results(lib.id, "albums/first.flac") is None
    assert len(watching.jobs()) == 1, "nothing to process again"


def test_a_folder_moved_in_is_processed(
    watching: Watching, library: tuple[Catalog, LibraryRef, Path], tmp_path: Path
) -> None:
    _catalog, _lib, root = library
    outside = tmp_path / "Downloads" / "Album"
    write_audio(outside / "CD1" / "01.flac", "flac")
    write_audio(outside / "CD2" / "01.mp3", "mp3")
    watching.start()
    os.rename(outside, root / "Album")
    for path in ("Album/CD1/01.flac", "Album/CD2/01.mp3"):
        found = wait_for(lambda p=path: watching.result(p), what=path)
        assert found["results"]["probe"]["status"] == "ok"


def test_a_part_file_is_processed_once_renamed_to_its_final_name(
    watching: Watching, library: tuple[Catalog, LibraryRef, Path], tmp_path: Path
) -> None:
    catalog, lib, root = library
    watching.start()
    wait_for(lambda: watching.result("albums/first.flac"), what="catch-up")
    write_audio(root / "albums" / "download.mp3.part", "mp3")
    time.sleep(SETTLE * 2)  # give a wrong scan time to happen: none may
    assert catalog.item_id(lib.id, "albums/download.mp3.part") is None
    os.rename(root / "albums" / "download.mp3.part", root / "albums" / "download.mp3")
    assert wait_for(lambda: watching.result("albums/download.mp3"), what="download.mp3")


@pytest.mark.skipif(not Path("/dev/shm").is_dir(), reason="no tmpfs at /dev/shm")
def test_polling_a_tmpfs_library_finds_changes_within_one_interval(sqlite_url: str) -> None:
    root = Path(os.environ.get("MEDIAMILL_TEST_TMPFS", "/dev/shm")) / f"mm-watch-{os.getpid()}"
    root.mkdir()
    catalog = Catalog.open(sqlite_url)
    watch = Watching(catalog, library_for_folder(catalog, root))
    try:
        watch.start(poll=1.0, run_jobs=False)
        assert watch.states[-1].mode == "polling"
        assert watch.states[-1].line() == "watching: polling every 1 s (asked for)"
        write_audio(root / "new.flac", "flac")
        written = time.monotonic()
        wait_for(lambda: catalog.item_id(watch.library.id, "new.flac"), what="new.flac")
        # one interval to be seen, one look later (half the settle time) to be sure
        assert time.monotonic() - written <= 1.0 + SETTLE / 2 + 0.5
        assert wait_for(watch.jobs, what="a job")
    finally:
        watch.stop()
        catalog.close()
        shutil.rmtree(root)


def _userns_ok() -> bool:
    try:
        probe = subprocess.run(
            ["unshare", "-U", "-r", "true"], capture_output=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


@pytest.mark.skipif(not _userns_ok(), reason="user namespaces (unshare -U -r) unavailable")
def test_an_inotify_limit_reached_falls_back_to_polling_and_says_so(
    library: tuple[Catalog, LibraryRef, Path], sqlite_url: str
) -> None:
    """In a user namespace of its own the test lowers the inotify watch limit to 5 (the
    machine's limit is untouched) and runs ``mediamill watch`` over a library of 20 folders."""
    catalog, lib, root = library
    for n in range(20):
        (root / f"folder {n}").mkdir()
    script = (
        "echo 5 > /proc/sys/user/max_inotify_watches && "
        f"exec {sys.executable} -m mediamill watch {root} --run probe --settle 0.5"
    )
    env = cli_env(sqlite_url, MEDIAMILL_WATCH_POLL_SECONDS="1", MEDIAMILL_EXECUTOR="serial")
    proc = subprocess.Popen(
        ["unshare", "-U", "-r", "sh", "-c", script],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output = Output(proc)
    try:
        failed = output.until("failed:")
        assert "lib: failed: inotify watch limit 5 reached; polling every 1 s" in failed
        write_audio(root / "folder 7" / "late.flac", "flac")
        found = wait_for(
            lambda: catalog.item_results(lib.id, "folder 7/late.flac"), what="late.flac"
        )
        wait_for(
            lambda: (
                "probe"
                in (catalog.item_results(lib.id, "folder 7/late.flac") or {}).get("results", {})
            ),
            what="late.flac probed",
        )
        assert found["present"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        output.close()


def test_a_lost_event_queue_falls_back_to_polling_says_so_and_comes_back(
    library: tuple[Catalog, LibraryRef, Path], sqlite_url: str
) -> None:
    """``mediamill watch`` is stopped (SIGSTOP) while more changes happen than the kernel's
    inotify queue holds, so it overflows (as under a big copy on a busy machine). The file
    whose events were lost is still processed, the state says what happened, and native
    events come back after one poll interval."""
    catalog, lib, root = library
    limit = int(Path("/proc/sys/fs/inotify/max_queued_events").read_text())
    flood = [root / "albums" / "a.txt", root / "albums" / "b.txt"]
    for path in flood:
        path.write_text("x")
    script = [sys.executable, "-m", "mediamill", "watch", str(root), "--run", "probe"]
    env = cli_env(sqlite_url, MEDIAMILL_WATCH_POLL_SECONDS="1", MEDIAMILL_EXECUTOR="serial")
    proc = subprocess.Popen(
        [*script, "--settle", "0.5"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output = Output(proc)

    def probed(path: str) -> bool:
        return "probe" in (catalog.item_results(lib.id, path) or {}).get("results", {})

    try:
        output.until("lib: watching: native events (inotify)")
        os.kill(proc.pid, signal.SIGSTOP)
        try:
            # attribute changes, alternating (none merge), twice what the queue holds: a
            # thread of the stopped process may still read a buffer (2,560 events) as it
            # stops; limit + 2,000 left the queue short of overflowing in 1 run of 10 on a
            # busy machine
            for n in range(2 * limit):
                os.utime(flood[n % 2], ns=(n, n))
            write_audio(root / "albums" / "lost.flac", "flac")
        finally:
            os.kill(proc.pid, signal.SIGCONT)
        failed = output.until("lib: failed:")
        assert "the inotify event queue overflowed, events were lost; polling every 1 s" in failed
        back = output.until("lib: watching:")
        assert "native events (inotify); back at" in back, back
        assert "after: the inotify event queue overflowed" in back, back
        wait_for(lambda: probed("albums/lost.flac"), what="lost.flac probed")
        write_audio(root / "albums" / "after.flac", "flac")
        wait_for(lambda: probed("albums/after.flac"), what="after.flac probed")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        output.close()


def test_a_restarted_watch_misses_nothing_that_changed_while_it_was_down(
    library: tuple[Catalog, LibraryRef, Path],
) -> None:
    catalog, lib, root = library
    write_audio(root / "albums" / "kept.flac", "flac")  # unchanged while down
    first = Watching(catalog, lib).start()
    wait_for(lambda: first.result("albums/first.flac"), what="catch-up")
    wait_for(lambda: first.result("albums/kept.flac"), what="catch-up")
    first.stop()
    before = {j["job_id"] for j in first.jobs()}
    write_audio(root / "while down" / "added.mp3", "mp3")
    (root / "albums" / "first.flac").write_bytes((root / "albums" / "first.flac").read_bytes())
    second = Watching(catalog, lib).start()
    try:
        wait_for(lambda: second.result("while down/added.mp3"), what="added.mp3")
        wait_for(second.idle, what="jobs done")
        first_flac = catalog.item_results(lib.id, "albums/first.flac")
        assert first_flac is not None
        assert first_flac["results"]["probe"]["job_id"] not in before, "rewritten: redone"
        (catch_up,) = [j for j in second.jobs() if j["job_id"] not in before]
        # the job names what was pending: nothing fresh shows as skipped
        assert (catch_up["total_items"], catch_up["succeeded"], catch_up["skipped"]) == (2, 2, 0)
    finally:
        second.stop()


def _queued_jobs(catalog: Catalog, lib: LibraryRef) -> list[dict[str, Any]]:
    jobs, _ = manager.list_jobs(catalog, limit=100)
    return [j for j in jobs if j["library_id"] == lib.id]


def test_a_schedule_fires_a_rescan_and_the_processors(
    library: tuple[Catalog, LibraryRef, Path],
) -> None:
    catalog, lib, _root = library
    set_automation(catalog, lib.id, Automation(("probe",), watch="off", schedule="* * * * *"))
    # the watcher's local time is set so that its next minute starts a second from now
    real = datetime.now()
    offset = real.replace(second=0, microsecond=0) + timedelta(minutes=1, seconds=-1) - real
    watcher = Watcher(catalog, wallclock=lambda: datetime.now() + offset)
    watcher.add(WatchSpec(lib, ("probe",), events=False, schedule="* * * * *"))
    started = time.monotonic()
    watcher.start()
    try:
        [job] = wait_for(lambda: _queued_jobs(catalog, lib), what="the scheduled run's job")
        assert time.monotonic() - started >= 0.5, "it waited for the fire time"
        assert job["processor"] == "probe"
        assert catalog.item_id(lib.id, "albums/first.flac") is not None, "rescanned"
    finally:
        watcher.stop()


def test_a_schedule_missed_while_nothing_ran_runs_once(
    library: tuple[Catalog, LibraryRef, Path],
) -> None:
    catalog, lib, _root = library
    set_automation(catalog, lib.id, Automation(("probe",), watch="off", schedule="0 * * * *"))
    with catalog.engine.begin() as conn:  # the last run was three fire times ago
        conn.execute(
            update(Library)
            .where(Library.c.id == lib.id)
            .values(scheduled_at=datetime.now(UTC) - timedelta(hours=3))
        )
    scanned = []
    for _restart in range(2):
        watcher = Watcher(catalog)
        watcher.add(WatchSpec(lib, ("probe",), events=False, schedule="0 * * * *"))
        watcher.start()
        wait_for(lambda w=watcher: w.states()[0].state == "watching", what="started")
        watcher.stop()
        library_now = catalog.library(lib.id)
        assert library_now is not None
        scanned.append(library_now.scanned_at)
    assert scanned[0] is not None, "the missed run scanned the library"
    assert scanned[1] == scanned[0], "one run for the three missed, none after the restart"
    assert len(_queued_jobs(catalog, lib)) == 1


def test_a_vanished_root_is_a_failed_watch_that_polls_and_recovers(
    watching: Watching, library: tuple[Catalog, LibraryRef, Path], tmp_path: Path
) -> None:
    catalog, lib, root = library
    watching.start(run_jobs=False, fallback=0.5)
    wait_for(lambda: catalog.item_id(lib.id, "albums/first.flac"), what="catch-up")
    root.rename(tmp_path / "unmounted")
    failed = wait_for(
        lambda: [s for s in watching.states if s.state == "failed"], what="a failed state"
    )[-1]
    assert failed.mode == "polling"
    assert "cannot read library root" in failed.detail, failed
    assert catalog.item_id(lib.id, "albums/first.flac") is not None
    # an empty mount point where the share was: refused, nothing marked missing
    root.mkdir()
    wait_for(
        lambda: "Is the drive or share mounted?" in watching.states[-1].detail,
        what="the emptied folder refused",
    )
    assert sum(catalog.library_counts(lib.id).values()) == 1
    root.rmdir()
    (tmp_path / "unmounted").rename(root)
    back = wait_for(
        lambda: watching.states[-1].mode == "native" and watching.states[-1], what="recovery"
    )
    assert back.state == "watching"
    assert "native events (inotify); back at" in back.detail, back
    assert "after: cannot read library root" in back.detail, back
    # native events again: a file dropped in now is found
    write_audio(root / "albums" / "second.mp3", "mp3")
    wait_for(lambda: catalog.item_id(lib.id, "albums/second.mp3"), what="second.mp3 by events")


def test_a_processor_that_rewrites_and_renames_its_files_never_triggers_itself(
    watching: Watching, library: tuple[Catalog, LibraryRef, Path]
) -> None:
    """A tagger rewrites each file, a renamer renames it; both report the change with their
    result (ItemUpdate), so the scans their own events cause find nothing to do."""
    catalog, lib, root = library
    (root / "albums" / "first.flac").unlink()
    rewriter, renamer = "tests.helpers.processors:Rewriter", "tests.helpers.processors:Renamer"
    watching.start(processors=(rewriter, renamer))
    (root / "albums" / "new.bin").write_bytes(b"dropped in\n")
    done = wait_for(
        lambda: len((catalog.item_results(lib.id, "albums/renamed-new.bin") or {})
                    .get("results", {})) == 2,
        what="rewritten and renamed",
    )  # fmt: skip
    assert done
    wait_for(watching.idle, what="jobs done")
    jobs = len(watching.jobs())
    time.sleep(SETTLE * 3)  # what the processors' own events would have caused, by now
    assert sorted(p.name for p in (root / "albums").iterdir()) == ["renamed-new.bin"]
    assert len(watching.jobs()) == jobs == 2, "one job a processor, none for their own writes"


def test_a_watcher_stopped_during_its_catch_up_arms_nothing(
    library: tuple[Catalog, LibraryRef, Path],
) -> None:
    """The server restarts watchers when automation changes; one still catching up on a big
    library when stopped must not go on to watch it (a leaked inotify watch of the whole
    tree) nor report states over those of the watcher that replaced it."""
    catalog, lib, _root = library
    states: list[WatchState] = []
    watcher = Watcher(catalog, on_state=states.append)
    watcher.add(WatchSpec(lib, ("probe",), settle=SETTLE))
    threads = set(threading.enumerate())
    caught_up = threading.Event()
    original = watcher._catch_up

    def slow_catch_up(watched: Any) -> None:
        original(watched)
        caught_up.set()
        watcher.stop(timeout=0.1)  # as a restart does, while this thread is still here

    watcher._catch_up = slow_catch_up  # type: ignore[method-assign]
    watcher.run()
    assert caught_up.is_set()
    assert [s.line() for s in states] == [], "nothing armed, nothing reported"
    assert set(threading.enumerate()) <= threads, "no observer thread left running"
