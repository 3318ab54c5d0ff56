"""An executor outside the registry, addressed as ``tests.helpers.executors:Recording``: the
serial executor that writes down what it was built with (to its ``log`` setting)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mediamill.executors.base import ExecutorJob
from mediamill.executors.serial import SerialExecutor


class Recording(SerialExecutor):
    name = "recording"

    def __init__(self, job: ExecutorJob, settings: Mapping[str, Any] | None = None) -> None:
        super().__init__(job, settings)
        settings = dict(settings or {})
        record = {"processor": job.processor, "workers": job.workers, "settings": settings}
        Path(settings["log"]).write_text(json.dumps(record))
