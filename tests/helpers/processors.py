"""Processors for engine tests: they misbehave on purpose, by the item's file name.

They are addressed as ``tests.helpers.processors:Name`` so worker processes can import them.
A name containing ``fail`` raises, ``skip`` skips, ``crash`` aborts the worker process
(``os.abort``, as a crashing C decoder would), ``hang`` sleeps far past any time limit,
``slow`` sleeps ``slow_seconds`` (default 1) and returns. While the file named by option
``full_disk_flag`` exists, every other item fails as a full disk would (ENOSPC).
"""

from __future__ import annotations

import errno
import os
import threading
import time
from pathlib import Path
from typing import Any, ClassVar

from mediamill.processors.base import ItemRef, ItemUpdate, Processed, Processor, Skip, Work


class Echo(Processor):
    name = "tests.helpers.processors:Echo"
    version = "1"
    work = Work.IO

    def setup(self) -> None:
        log = self.options.get("setup_log")
        if log:
            with open(log, "a") as fh:
                fh.write(f"{os.getpid()}\n")

    def process(self, item: ItemRef) -> dict[str, Any]:
        name = item.path.rsplit("/", 1)[-1]
        delay = float(self.options.get("delay", 0))
        if delay:
            time.sleep(delay)
        log = self.options.get("process_log")
        if log:
            with open(log, "a") as fh:
                fh.write(item.path + "\n")
        if "crash" in name:
            os.abort()
        if "hang" in name:
            time.sleep(3600)
        if "slow" in name:  # overruns a short time limit, then returns
            time.sleep(float(self.options.get("slow_seconds", 1.0)))
        if "fail" in name:
            raise ValueError(f"cannot read {name}: it is broken on purpose")
        if "skip" in name:
            raise Skip("not for this processor")
        full_disk = self.options.get("full_disk_flag")
        if full_disk and os.path.exists(full_disk):  # the disk is full while the flag exists
            raise OSError(errno.ENOSPC, "No space left on device", item.abspath)
        assert item.abspath is not None
        return {"size": Path(item.abspath).stat().st_size, "name": name}


class CpuEcho(Echo):
    name = "tests.helpers.processors:CpuEcho"
    work = Work.CPU


class BrokenSetup(Echo):
    name = "tests.helpers.processors:BrokenSetup"

    def setup(self) -> None:
        raise RuntimeError("model file /nonexistent/model.pb not found")


class Audited(Echo):
    """Counts finish calls, to check ``finish`` runs once per job."""

    name = "tests.helpers.processors:Audited"
    finished: ClassVar[list[dict[str, Any]]] = []

    def finish(self, ctx: Any) -> dict[str, Any]:
        summary = {"counters": dict(ctx.counters), "dry_run": ctx.dry_run}
        Audited.finished.append(summary)
        return summary


class SlowFinish(Echo):
    """A ``finish`` that takes ``linger`` seconds (a report, a media server's refresh)."""

    name = "tests.helpers.processors:SlowFinish"
    finishing: ClassVar[threading.Event] = threading.Event()

    def finish(self, ctx: Any) -> dict[str, Any]:
        SlowFinish.finishing.set()
        time.sleep(float(self.options.get("linger", 0)))
        return {}


class WorkerModules(Processor):
    """Reports whether the worker process running it has loaded the command line."""

    name = "tests.helpers.processors:WorkerModules"
    version = "1"
    work = Work.CPU

    def process(self, item: ItemRef) -> dict[str, Any]:
        import sys

        return {"pid": os.getpid(), "cli_loaded": "mediamill.cli" in sys.modules}


class Rewriter(Processor):
    """Rewrites each file in place (as a tagger would) and reports the file's new size and
    mtime with its result (``ItemUpdate``), so the next scan sees no change."""

    name = "tests.helpers.processors:Rewriter"
    version = "1"
    work = Work.IO

    def process(self, item: ItemRef) -> dict[str, Any] | Processed:
        assert item.abspath is not None
        if self.options.get("dry_run"):
            return {"would_rewrite": item.path}
        path = Path(item.abspath)
        path.write_bytes(path.read_bytes() + b"tagged by the processor\n")
        st = path.stat()
        update = ItemUpdate(size=st.st_size, mtime_ns=st.st_mtime_ns)
        return Processed({"rewrote": item.path}, update)


class Renamer(Processor):
    """Renames each file to ``renamed-<name>`` in its folder (as a comic renamer would), or,
    with option ``renames`` (``{path: new path}``), only those files, to where it says;
    ``delay`` seconds first (a job long enough to be paused)."""

    name = "tests.helpers.processors:Renamer"
    version = "1"
    work = Work.IO
    dry_run_processes = True

    def process(self, item: ItemRef) -> dict[str, Any] | Processed:
        assert item.abspath is not None
        delay = float(self.options.get("delay", 0))
        if delay:
            time.sleep(delay)
        renames = self.options.get("renames")
        folder, _, name = item.path.rpartition("/")
        default = (f"{folder}/" if folder else "") + f"renamed-{name}"
        new = renames.get(item.path) if renames else default
        if new is None:
            return {"kept": item.path}
        if self.options.get("dry_run"):
            return {"action": "rename", "to": new}
        root = item.abspath[: -len(item.path)]
        os.rename(item.abspath, root + new)
        st = os.stat(root + new)
        update = ItemUpdate(path=new, size=st.st_size, mtime_ns=st.st_mtime_ns)
        return Processed({"renamed_to": new}, update)


class Defaults(Echo):
    """An io processor with its own batch size and worker count, and declared options."""

    name = "tests.helpers.processors:Defaults"
    batch_size = 3
    default_workers = 1
    option_names = frozenset({"delay"})
