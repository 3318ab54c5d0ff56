"""Watch folder libraries and queue their processors for what is new or changed.

Each library is watched with native events (watchdog's inotify observer) when its file
system delivers them, else polled: every N seconds the existing cheap scan walks the tree
and compares the listing's digest with the one the catalog keeps (an unchanged tree costs
one walk). Events only mark folders dirty (``settle.py``); a settled folder's subtree is
scanned, moves across the folders released together are matched, and the library's
processors are queued (``queue.py``). On start, each library is scanned in full first and
its processors queued for whatever changed or was never processed while nothing watched.

Trouble never stops a watch silently: an inotify limit, a lost event queue or a vanished
root switches the library to polling, and its state (:class:`WatchState`) says why. Native
events come back by themselves once a poll goes through: one poll interval after a lost
queue or a root that came back, :data:`REARM_AFTER_LIMIT` after a limit was reached (it may
have been raised since).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from mediamill.catalog.db import Catalog, LibraryRef
from mediamill.sources.folder import (
    ScanReport,
    adopt_moved,
    scan_digest,
    scan_folder,
    scan_listing,
)
from mediamill.walk import Listing, ScanError, is_temporary, list_folder
from mediamill.watch.automation import STATE_REFRESH, claim_scheduled_run
from mediamill.watch.mounts import polling_reason
from mediamill.watch.queue import queue_processors
from mediamill.watch.schedule import Schedule
from mediamill.watch.settle import Settler, common_folder

log = logging.getLogger(__name__)

DEFAULT_SETTLE = 5.0
DEFAULT_POLL = 60.0
#: longest a watcher sleeps with nothing due (it also wakes for events and stop)
MAX_SLEEP = STATE_REFRESH
#: how often a natively watched root is checked to be the same folder still: inotify says
#: nothing when the root itself is moved away or its drive unmounted
ROOT_CHECK = 5.0
#: how long a library polls before native events are tried again after a limit was reached
REARM_AFTER_LIMIT = 600.0


@dataclass(slots=True)
class WatchSpec:
    """What to watch and how: a folder library, its processors in order, and ``poll``
    seconds to force polling (``None``: native events where the file system has them)."""

    library: LibraryRef
    processors: tuple[str, ...]
    poll: float | None = None
    settle: float = DEFAULT_SETTLE
    #: how often a library is polled when native events cannot be had
    fallback_poll: float = DEFAULT_POLL
    #: native events even where the mount type says they miss changes from elsewhere
    native: bool = False
    #: ``False``: not watched at all, only its schedule runs
    events: bool = True
    #: a cron-like schedule (``schedule.py``) of full rescans + processors
    schedule: str | None = None


@dataclass(slots=True)
class WatchState:
    """What a library's watch is doing, as the API, the page and the CLI show it."""

    library: str
    mode: str  # "native" | "polling" | "schedule"
    state: str  # "starting" | "watching" | "failed" | "stopped"
    detail: str = ""
    poll_seconds: float | None = None
    since: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    library_id: int = 0

    def line(self) -> str:
        """``watching: native events (inotify)``; ``failed: inotify watch limit 10 reached;
        polling every 60 s``."""
        return f"{self.state}: {self.detail}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "library": self.library,
            "mode": self.mode,
            "state": self.state,
            "detail": self.detail,
            "poll_seconds": self.poll_seconds,
            "since": self.since,
            "library_id": self.library_id,
        }


class _Watched:
    """One library being watched: its spec, dirty folders, state and observer watch."""

    def __init__(self, spec: WatchSpec) -> None:
        self.spec = spec
        self.root = os.path.realpath(spec.library.root)
        self.settler = Settler(spec.settle)
        self.state = WatchState(
            spec.library.name, "native", "starting", "catching up", library_id=spec.library.id
        )
        self.handle: Any = None  # watchdog's ObservedWatch while native
        self.next_poll: float | None = None
        self.interval = spec.poll or spec.fallback_poll
        self.trouble: str | None = None  # set by the event threads, acted on by the loop
        self.schedule = Schedule.parse(spec.schedule) if spec.schedule else None
        self.next_fire: float | None = None  # when the schedule fires next (clock time)
        self.root_id: tuple[int, int] | None = None  # (device, inode) while native
        self.next_root_check: float | None = None
        self.rearm_at: float | None = None  # when native events are tried again
        self.fell_back: str = ""  # why native events were given up, while polling

    def folder_of(self, path: str, is_dir: bool) -> str | None:
        """The dirty folder (path from the root) an event at ``path`` makes, or ``None`` for
        paths the scan passes over (temp and hidden names) or outside the root."""
        rel = os.path.relpath(path, self.root)
        if rel == ".":
            return ""
        if rel.startswith(".."):
            return None
        parts = rel.split(os.sep)
        if any(is_temporary(part) for part in parts):
            return None
        folder = "/".join(parts if is_dir else parts[:-1])
        try:
            folder.encode("utf-8")
        except UnicodeEncodeError:
            return ""  # a name that is not UTF-8 shows escaped in the catalog: scan it all
        return folder


class Watcher:
    """Watches libraries in one thread (plus watchdog's), queueing their processors."""

    def __init__(
        self,
        catalog: Catalog,
        *,
        on_state: Callable[[WatchState], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        wallclock: Callable[[], datetime] = datetime.now,
    ) -> None:
        self.catalog = catalog
        self.on_state = on_state
        self.clock = clock
        self.wallclock = wallclock  # local time, naive: what schedules are written in
        self._watched: list[_Watched] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._observer: Any = None
        self._observer_lock = threading.Lock()  # no observer is made once stopping
        self._thread: threading.Thread | None = None
        self._log_handler: _WatchdogTrouble | None = None

    def add(self, spec: WatchSpec) -> None:
        self._watched.append(_Watched(spec))

    def states(self) -> list[WatchState]:
        return [w.state for w in self._watched]

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="mediamill-watch", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop watching. A thread still in a long catch-up scan ends by itself later, arms
        nothing and reports nothing more (a new watcher of the same libraries may run)."""
        with self._observer_lock:
            self._stopping.set()
            observer = self._observer
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                self.on_state = None
        if observer is not None:
            observer.stop()
            observer.join(timeout)
        if self._log_handler is not None:
            logging.getLogger("watchdog.observers.inotify").removeHandler(self._log_handler)

    def run(self) -> None:
        """Catch up, arm each library, then handle what comes until :meth:`stop`."""
        for watched in self._watched:
            try:
                self._start(watched)
            except Exception as exc:  # one library's trouble never stops the rest
                log.exception("watching %s failed to start", watched.spec.library.name)
                self._fall_back(watched, f"starting failed: {exc}")
        if self._stopping.is_set():
            return
        refreshed = self.clock()
        while not self._stopping.is_set():
            now = self.clock()
            for watched in self._watched:
                try:
                    self._tick(watched, now)
                except Exception:  # one library's trouble never stops the rest
                    log.exception("watching %s failed; trying again", watched.spec.library.name)
            if now - refreshed >= STATE_REFRESH:
                refreshed = now
                for watched in self._watched:
                    self._tell(watched.state)  # still alive: the API shows it as current
            self._sleep()
        for watched in self._watched:
            self._set_state(watched, watched.state.mode, "stopped", "the watcher stopped")

    def _start(self, watched: _Watched) -> None:
        """Catch up, then arm the library's events (and its schedule)."""
        if self._stopping.is_set():
            return
        if watched.spec.events:
            self._catch_up(watched)
            if self._stopping.is_set():  # stopped during a long catch-up: arm nothing
                return
            self._arm(watched)
        else:
            detail = f"not watched; schedule {watched.spec.schedule}"
            self._set_state(watched, "schedule", "watching", detail)
        self._start_schedule(watched)

    # ------------------------------------------------------------------ state
    def _set_state(self, watched: _Watched, mode: str, state: str, detail: str) -> None:
        old = watched.state
        if (old.mode, old.state, old.detail) == (mode, state, detail):
            return
        poll = watched.interval if mode == "polling" else None
        watched.state = WatchState(
            watched.spec.library.name, mode, state, detail, poll, library_id=watched.spec.library.id
        )
        (log.error if state == "failed" else log.info)(
            "%s: %s", watched.spec.library.name, watched.state.line()
        )
        self._tell(watched.state)

    def _tell(self, state: WatchState) -> None:
        if self.on_state is not None:
            try:
                self.on_state(state)
            except Exception:  # showing a state never breaks watching
                log.exception("watch state hook failed")

    # ------------------------------------------------------------------ set-up
    def _catch_up(self, watched: _Watched) -> None:
        """A full incremental scan, then the processors for anything not fresh."""
        try:
            report = scan_folder(self.catalog, watched.spec.library)
        except ScanError as exc:
            self._set_state(watched, "polling", "failed", f"{exc}; polling to recover")
            return
        log.info("%s: caught up (%s)", watched.spec.library.name, _counts(report))
        queue_processors(self.catalog, watched.spec.library, watched.spec.processors)

    def _start_schedule(self, watched: _Watched) -> None:
        """Run a schedule's missed run once (the catch-up scan was it, when watching), and
        set when it fires next."""
        if watched.schedule is None:
            return
        fired = watched.schedule.latest(self.wallclock())
        if fired is not None and claim_scheduled_run(
            self.catalog, watched.spec.library.id, fired.astimezone(UTC)
        ):
            log.info("%s: running the schedule missed at %s", watched.spec.library.name, fired)
            if not watched.spec.events:
                self._catch_up(watched)
        self._plan_fire(watched)

    def _plan_fire(self, watched: _Watched) -> None:
        assert watched.schedule is not None
        now = self.wallclock()
        upcoming = watched.schedule.next(now)
        watched.next_fire = (
            None if upcoming is None else self.clock() + (upcoming - now).total_seconds()
        )

    def _fire(self, watched: _Watched) -> None:
        """The schedule fired: a full incremental scan and the processors, once per fire
        time even with several processes watching the library."""
        assert watched.schedule is not None
        fired = watched.schedule.latest(self.wallclock())
        self._plan_fire(watched)
        if fired is None:
            return
        if claim_scheduled_run(self.catalog, watched.spec.library.id, fired.astimezone(UTC)):
            log.info("%s: scheduled run (%s)", watched.spec.library.name, watched.schedule.text)
            self._catch_up(watched)

    def _arm(self, watched: _Watched) -> None:
        if watched.spec.poll is not None:
            self._poll_from_now(watched, f"polling every {watched.interval:g} s (asked for)")
            return
        reason = None if watched.spec.native else polling_reason(watched.root)
        if reason is not None:
            self._poll_from_now(watched, f"polling every {watched.interval:g} s ({reason})")
            return
        try:
            watched.root_id = _identity(watched.root)
            watched.handle = self._schedule(watched)
        except OSError as exc:
            self._fall_back(watched, _inotify_trouble(exc))
            return
        watched.next_root_check = self.clock() + ROOT_CHECK
        detail = "native events (inotify)"
        if watched.fell_back:
            stamp = self.wallclock().strftime("%H:%M:%S")
            detail += f"; back at {stamp} after: {watched.fell_back}"
            watched.fell_back = ""
            watched.next_poll = self.clock()  # one more look, for what changed meanwhile
            self._set_state(watched, "native", "watching", detail)
        elif watched.state.state == "starting":
            self._set_state(watched, "native", "watching", detail)

    def _poll_from_now(self, watched: _Watched, detail: str) -> None:
        watched.next_poll = self.clock() + watched.interval
        if watched.state.state != "failed":
            self._set_state(watched, "polling", "watching", detail)

    def _schedule(self, watched: _Watched) -> Any:
        from watchdog import events
        from watchdog.observers.inotify import InotifyObserver

        with self._observer_lock:
            if self._stopping.is_set():
                raise OSError(errno.ECANCELED, "the watcher is stopping")
            if self._observer is None:
                self._observer = InotifyObserver()
                self._observer.start()
                self._log_handler = _WatchdogTrouble(self)
                logging.getLogger("watchdog.observers.inotify").addHandler(self._log_handler)
        # no open or read events: reading files (a processor probing them) is no change
        wanted = [
            events.FileCreatedEvent, events.FileModifiedEvent, events.FileMovedEvent,
            events.FileDeletedEvent, events.FileClosedEvent, events.DirCreatedEvent,
            events.DirMovedEvent, events.DirDeletedEvent,
            events.EventsLostEvent,  # the kernel's queue overflowed: without it, unseen
        ]  # fmt: skip
        return self._observer.schedule(
            _Events(self, watched), watched.root, recursive=True, event_filter=wanted
        )

    def _fall_back(self, watched: _Watched, why: str) -> None:
        """Native events failed: poll from now on (at once, for what the events missed)."""
        if watched.handle is not None and self._observer is not None:
            with contextlib.suppress(KeyError, OSError):  # already gone with its root
                self._observer.unschedule(watched.handle)
            watched.handle = None
        watched.next_root_check = None
        now = watched.next_poll = self.clock()
        if watched.spec.poll is None:  # native events were wanted: try them again later
            limit = "limit" in why
            watched.rearm_at = now + (REARM_AFTER_LIMIT if limit else watched.interval)
            watched.fell_back = why
        self._set_state(
            watched, "polling", "failed", f"{why}; polling every {watched.interval:g} s"
        )

    # ------------------------------------------------------------------ events
    def on_event(self, watched: _Watched, event: Any) -> None:
        """From watchdog's thread: mark the folders an event touches dirty."""
        from watchdog.events import DirModifiedEvent, EventsLostEvent

        if isinstance(event, EventsLostEvent):
            self.trouble(watched, "the inotify event queue overflowed, events were lost")
            return
        if isinstance(event, DirModifiedEvent):
            return  # its files' own events say what changed
        folders = []
        for path in (event.src_path, getattr(event, "dest_path", "")):
            folder = watched.folder_of(os.fsdecode(path), event.is_directory) if path else None
            if folder is not None:
                folders.append(folder)
        if len(folders) == 2:
            # a move inside the library: one scan of the folder holding both sides sees the
            # file gone and found at once, and keeps its item (and results)
            folders = [common_folder(*folders)]
        now = self.clock()
        for folder in folders:
            with self._lock:
                fresh = watched.settler.mark(folder, now)
            if fresh:
                self._wake.set()

    def trouble(self, watched: _Watched, why: str) -> None:
        """From any thread: native events of ``watched`` can no longer be trusted."""
        watched.trouble = why
        self._wake.set()

    def watched_at(self, path: str) -> _Watched | None:
        for watched in self._watched:
            if path == watched.root or path.startswith(watched.root + os.sep):
                return watched
        return None

    # ------------------------------------------------------------------ the loop
    def _sleep(self) -> None:
        now = self.clock()
        due = [now + MAX_SLEEP]
        with self._lock:
            for watched in self._watched:
                when = watched.settler.next_due()
                times = (when, watched.next_poll, watched.next_fire, watched.next_root_check)
                due += [t for t in times if t is not None]
        self._wake.wait(max(0.0, min(min(due) - now, MAX_SLEEP)))
        self._wake.clear()

    def _tick(self, watched: _Watched, now: float) -> None:
        if watched.next_fire is not None and now >= watched.next_fire:
            self._fire(watched)
        if watched.next_root_check is not None and now >= watched.next_root_check:
            watched.next_root_check = now + ROOT_CHECK
            try:
                same = _identity(watched.root) == watched.root_id
            except OSError as exc:
                same, why = False, exc.strerror or str(exc)
            else:
                why = "another folder is in its place"
            if not same:
                watched.trouble = f"cannot read library root {watched.spec.library.root}: {why}"
        if watched.trouble is not None:
            why, watched.trouble = watched.trouble, None
            self._fall_back(watched, why)
        released: list[tuple[str, Listing]] = []
        if watched.next_poll is not None and now >= watched.next_poll:
            # natively watched: a single look, for what changed while events were off
            watched.next_poll = None if watched.handle is not None else now + watched.interval
            polled = self._poll(watched, now)
            if polled is not None:
                released.append(("", polled))
        with self._lock:
            due = watched.settler.due(now)
        try:
            for folder in due:
                listing = self._look(watched, folder, now)
                if listing is not None:
                    released.append((folder, listing))
            if released:
                self._scan(watched, released)
        finally:
            for _folder, listing in released:
                listing.close()

    def _poll(self, watched: _Watched, now: float) -> Listing | None:
        """One interval's look at the whole tree: nothing more when its digest is the one the
        catalog's items match; else the root is dirty, with this walk as a look. Returns the
        listing when it agrees with the look before (the root is released)."""
        library = watched.spec.library
        try:
            listing = list_folder(library.root)
        except ScanError as exc:
            self._set_state(
                watched, "polling", "failed", f"{exc}; polling every {watched.interval:g} s"
            )
            return None
        unchanged = scan_digest(listing) == self.catalog.source_digest(library.id)
        if unchanged and listing.count == _present(self.catalog, library):
            listing.close()
            self._recovered(watched)
            return None
        with self._lock:
            released = watched.settler.looked("", listing.digest, now)
        if released:
            return listing
        listing.close()
        return None

    def _look(self, watched: _Watched, folder: str, now: float) -> Listing | None:
        """Walk a dirty folder's subtree; its listing when it agrees with the look before."""
        try:
            listing = list_folder(watched.spec.library.root, under=folder)
        except ScanError as exc:
            with self._lock:
                watched.settler.looked(folder, "", now)
            watched.trouble = str(exc)
            return None
        with self._lock:
            stable = watched.settler.looked(folder, listing.digest, now)
        if stable:
            return listing
        listing.close()
        return None

    def _scan(self, watched: _Watched, released: Sequence[tuple[str, Listing]]) -> None:
        """Scan the settled folders, match moves across them, queue the processors."""
        library = watched.spec.library
        total = ScanReport(library=library.name)
        try:
            for folder, listing in released:
                report = scan_listing(self.catalog, library, listing, under=folder, adopt=False)
                for name in ("new", "changed", "missing"):
                    setattr(total, name, getattr(total, name) + getattr(report, name))
                for name in ("new_ids", "missing_ids", "changed_ids"):
                    getattr(total, name).extend(getattr(report, name))
        except ScanError as exc:
            self._set_state(watched, watched.state.mode, "failed", str(exc))
            return
        if total.new_ids:
            total.count_moved(adopt_moved(self.catalog, library, total.new_ids))
        log.info("%s: %s in %s", library.name, _counts(total), [f or "." for f, _ in released])
        self._recovered(watched)
        if total.new or total.changed:
            ids = [*total.new_ids, *total.changed_ids]
            queue_processors(self.catalog, library, watched.spec.processors, item_ids=ids)

    def _recovered(self, watched: _Watched) -> None:
        """A scan went through: a library that failed only for its root is fine again, and
        one that fell back from native events gets them back when it is time."""
        state = watched.state
        if watched.rearm_at is not None and self.clock() >= watched.rearm_at:
            watched.rearm_at = None
            self._arm(watched)
            return
        if state.state == "failed" and "inotify" not in state.detail:
            self._set_state(
                watched, state.mode, "watching", f"polling every {watched.interval:g} s"
            )


def _identity(path: str) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino


def _present(catalog: Catalog, library: LibraryRef) -> int:
    return sum(catalog.library_counts(library.id).values())


def _counts(report: ScanReport) -> str:
    return (
        f"{report.new} new, {report.changed} changed, {report.moved} moved, "
        f"{report.missing} missing"
    )


def _inotify_trouble(exc: OSError) -> str:
    """What an inotify error means, with the limit that was reached."""
    if exc.errno == errno.ENOSPC:
        return f"inotify watch limit {_limit('max_inotify_watches')} reached"
    if exc.errno == errno.EMFILE:
        return f"inotify instance limit {_limit('max_inotify_instances')} reached"
    return f"native events unavailable ({exc.strerror or exc})"


def _limit(name: str) -> str:
    # the per-user-namespace limit; in the first namespace it is fs.inotify.max_user_*
    try:
        with open(f"/proc/sys/user/{name}", encoding="ascii") as fh:
            return fh.read().strip()
    except OSError:
        return "?"


class _Events:
    """watchdog's handler for one library: every event goes to :meth:`Watcher.on_event`."""

    def __init__(self, watcher: Watcher, watched: _Watched) -> None:
        self.watcher, self.watched = watcher, watched

    def dispatch(self, event: Any) -> None:
        self.watcher.on_event(self.watched, event)


class _WatchdogTrouble(logging.Handler):
    """watchdog logs (and goes on) when a folder created later cannot be watched (the inotify
    limit) or when the kernel's queue overflowed: either leaves changes unseen, so the
    library it hits falls back to polling."""

    def __init__(self, watcher: Watcher) -> None:
        super().__init__(logging.WARNING)
        self.watcher = watcher

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if not message.startswith("Unable to watch") or not record.args:
            return
        args = record.args if isinstance(record.args, tuple) else (record.args,)
        path, error = args[0], args[-1]
        if not isinstance(path, str | bytes):
            return
        path = os.fsdecode(path)
        watched = self.watcher.watched_at(path)
        if watched is not None:
            why = _inotify_trouble(error) if isinstance(error, OSError) else str(error)
            self.watcher.trouble(watched, why)
