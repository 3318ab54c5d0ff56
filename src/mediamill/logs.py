"""Where mediamill's log records go: stderr (at the level the user asks for) and a rotating
file in the data dir (at the ``log_level`` setting), so a job or server has a history."""

from __future__ import annotations

import logging
import logging.handlers
import sys
from collections import Counter
from pathlib import Path

from mediamill.core import ItemRef, Outcome, Status
from mediamill.engine.progress import Hook, Progress
from mediamill.settings import Settings, data_dir, private_data_dir
from mediamill.stats import cause_of, causes_line

FILE_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s"
#: what third-party libraries log below WARNING is their business, not the user's
QUIET_LIBRARIES = ("PIL", "httpx", "httpcore", "asyncio", "urllib3", "multipart", "watchdog")


_stderr_level = logging.WARNING


def stderr_level() -> int:
    """The level stderr was set to (``-v``: INFO, ``-vv``: DEBUG)."""
    return _stderr_level


def log_file(settings: Settings) -> Path | None:
    """The ``log_file`` setting (``-`` for none), else ``logs/mediamill.log`` in the data dir."""
    if settings.log_file == "-":
        return None
    return Path(settings.log_file) if settings.log_file else data_dir() / "logs" / "mediamill.log"


def setup(stderr_level: int, settings: Settings | None = None) -> None:
    """Route records to stderr (Rich on a terminal, plain lines otherwise) and, given the
    settings, to the log file (call it first without: reading the settings may warn).

    The file is opened on the first record worth writing, so a command that logs nothing
    leaves no file behind; a file that cannot be opened is reported once on stderr."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    stderr: logging.Handler
    if sys.stderr.isatty():
        from rich.console import Console
        from rich.logging import RichHandler

        stderr = RichHandler(show_path=False, console=Console(stderr=True))
        stderr.setFormatter(logging.Formatter("%(message)s"))
    else:
        stderr = logging.StreamHandler(sys.stderr)
        stderr.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    stderr.setLevel(stderr_level)
    root.addHandler(stderr)
    global _stderr_level  # noqa: PLW0603 - one process, one choice of level
    _stderr_level = stderr_level
    path = None if settings is None else log_file(settings)
    levels = [stderr_level]
    if path is not None and settings is not None:
        try:
            if path.parent == data_dir() / "logs":
                private_data_dir()  # made 0700 first: it holds the catalog and the token
            path.parent.mkdir(parents=True, exist_ok=True)
            rotating = logging.handlers.RotatingFileHandler(
                path, maxBytes=5_000_000, backupCount=3, encoding="utf-8", delay=True
            )
        except OSError as exc:
            logging.getLogger(__name__).warning("no log file: %s", exc)
        else:
            rotating.setFormatter(logging.Formatter(FILE_FORMAT))
            file_level = int(logging.getLevelName(settings.log_level.upper()))
            rotating.setLevel(file_level)
            root.addHandler(rotating)
            levels.append(file_level)
    root.setLevel(min(levels))
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(logging.WARNING)


class JobLog(Hook):
    """Log a job's start and end with its counts, and its failures grouped by cause (each
    failed item at DEBUG)."""

    def __init__(self, library: str | None = None) -> None:
        self.library = library
        self.causes: Counter[str] = Counter()
        self.log = logging.getLogger("mediamill.jobs")

    def _what(self, progress: Progress) -> str:
        where = f" on {self.library}" if self.library else ""
        return f"job {progress.job_id} ({progress.processor}{where})"

    def on_start(self, progress: Progress) -> None:
        self.log.info(
            "%s started: %d items, %d already done",
            self._what(progress),
            progress.total,
            progress.processed,
        )

    def on_outcome(self, item: ItemRef, outcome: Outcome) -> None:
        if outcome.status is Status.FAILED:
            self.causes[cause_of(outcome.error)] += 1
            self.log.debug("%s failed: %s", item.path, outcome.error)

    def on_finish(self, progress: Progress) -> None:
        level = logging.INFO if progress.status == "completed" else logging.WARNING
        self.log.log(
            level,
            "%s %s: %d/%d items, %d ok, %d failed, %d skipped in %.1f s",
            self._what(progress),
            progress.status,
            progress.processed,
            progress.total,
            progress.ok,
            progress.failed,
            progress.skipped,
            progress.elapsed,
        )
        if self.causes:
            causes = causes_line(self.causes.most_common())
            self.log.warning("%s failures by cause: %s", self._what(progress), causes)
