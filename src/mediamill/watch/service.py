"""What ``mediamill serve`` and ``mediamill watch`` (without targets) watch: every folder
library whose automation runs something, picked up again when an automation changes."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from mediamill.catalog.db import Catalog, LibraryRef
from mediamill.settings import Settings
from mediamill.watch.automation import Automation, automations, save_state
from mediamill.watch.watcher import Watcher, WatchSpec, WatchState

log = logging.getLogger(__name__)

#: how often the catalog is asked whether an automation changed
RELOAD_EVERY = 5.0


def spec_for(
    library: LibraryRef,
    auto: Automation,
    settings: Settings,
    *,
    processors: tuple[str, ...] | None = None,
    poll: float | None = None,
    settle: float | None = None,
) -> WatchSpec:
    """A library's watch as its automation says, with command-line overrides."""
    forced_poll = poll or (
        (auto.poll_seconds or settings.watch_poll_seconds) if auto.watch == "poll" else None
    )
    return WatchSpec(
        library,
        processors or auto.processors,
        poll=forced_poll,
        settle=settle or auto.settle_seconds or settings.watch_settle_seconds,
        fallback_poll=auto.poll_seconds or settings.watch_poll_seconds,
        native=auto.watch == "native",
        events=auto.watch != "off" or poll is not None,
        schedule=auto.schedule,
    )


def catalog_specs(catalog: Catalog, settings: Settings) -> list[WatchSpec]:
    specs = []
    for library_id, auto in sorted(automations(catalog).items()):
        found = catalog.library(library_id)
        if found is not None:  # without scanned_at, which every scan moves: specs compare
            library = LibraryRef(found.id, found.name, found.root, found.kind)
            specs.append(spec_for(library, auto, settings))
    return specs


def state_saver(catalog: Catalog) -> Callable[[WatchState], None]:
    def save(state: WatchState) -> None:
        save_state(catalog, state.library_id, state.as_dict())

    return save


class WatchService:
    """Runs a :class:`Watcher` over the libraries the catalog says, and starts it again
    (catching up) whenever their automation changes."""

    def __init__(self, catalog: Catalog, settings: Settings) -> None:
        self.catalog, self.settings = catalog, settings
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._watcher: Watcher | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="mediamill-watch-service")
        self._thread.daemon = True
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        current: list[WatchSpec] | None = None
        while not self._stopping.is_set():
            try:
                specs = catalog_specs(self.catalog, self.settings)
                if specs != current:  # specs compare by value: any setting changed
                    current = specs
                    self._restart(specs)
            except Exception:  # the catalog may be briefly unreachable: try again
                log.exception("reading the libraries' automation failed")
            self._stopping.wait(RELOAD_EVERY)
        if self._watcher is not None:
            self._watcher.stop()

    def _restart(self, specs: list[WatchSpec]) -> None:
        if self._watcher is not None:
            self._watcher.stop()
            self._watcher = None
        if not specs:
            return
        log.info("watching %s", ", ".join(s.library.name for s in specs))
        save = state_saver(self.catalog)
        self._watcher = Watcher(self.catalog, on_state=save)
        for spec in specs:
            self._watcher.add(spec)
        self._watcher.start()
