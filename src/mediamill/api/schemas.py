"""Request and response bodies of the HTTP API (pydantic), separate from the catalog's tables."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mediamill.settings import MAX_BATCH_SIZE, MAX_WORKERS

#: the most a job's options may weigh as JSON: they are stored with the job and sent to
#: every reader of the job list and the event streams
MAX_OPTIONS_BYTES = 16_384
#: how many of a selection's paths a job's status lists: a job may select tens of thousands,
#: and the status goes to every reader of the job list and of the event streams
SHOWN_PATHS = 100


def shown_selection(selection: Any) -> Any:
    """A job's selection as the API shows it: at most :data:`SHOWN_PATHS` paths, with
    ``paths_total`` when there are more."""
    if not isinstance(selection, dict):
        return selection
    paths = selection.get("paths")
    if isinstance(paths, list) and len(paths) > SHOWN_PATHS:
        return {**selection, "paths": paths[:SHOWN_PATHS], "paths_total": len(paths)}
    return selection


class LibraryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str = Field(min_length=1, max_length=4096, description="Folder path or source spec")
    name: str | None = Field(default=None, min_length=1, max_length=255)


class LibraryOut(BaseModel):
    id: int
    name: str
    root: str
    kind: str
    scanned_at: str | None
    counts: dict[str, int]
    #: what runs by itself (processors on new files, watch mode, schedule)
    automation: dict[str, Any] | None = None
    #: what its watcher is doing: {"state": "failed", "detail": "inotify watch limit …"}
    watch: dict[str, Any] | None = None


class AutomationIn(BaseModel):
    """A library's automation; fields left out keep their value."""

    model_config = ConfigDict(extra="forbid")

    processors: list[str] | None = Field(default=None, description="In order, e.g. probe, comic")
    watch: str | None = Field(default=None, description="auto | native | poll | off")
    poll_seconds: float | None = Field(default=None, gt=0)
    settle_seconds: float | None = Field(default=None, gt=0)
    schedule: str | None = Field(default=None, description="cron-like, '' for none")


class LibraryList(BaseModel):
    libraries: list[LibraryOut]


class ScanOut(BaseModel):
    report: dict[str, Any]


class JobOptions(BaseModel):
    """Engine options; any other key is passed to the processor (e.g. ``output`` for strm)."""

    model_config = ConfigDict(extra="allow")

    workers: int | None = Field(default=None, ge=1, le=MAX_WORKERS)
    batch_size: int | None = Field(default=None, ge=1, le=MAX_BATCH_SIZE)
    rate: float | None = Field(default=None, gt=0, le=1e9)
    limit: int | None = Field(default=None, ge=0, le=2**31 - 1)
    force: bool | None = None
    dry_run: bool | None = None
    executor: Literal["auto", "serial", "threads", "processes", "celery"] | None = None
    item_timeout: float | None = Field(default=None, gt=0, le=86_400)
    adaptive_latency: float | None = Field(default=None, gt=0, le=3600)

    @model_validator(mode="after")
    def _small(self) -> JobOptions:
        size = len(json.dumps(self.model_dump(exclude_none=True), default=str))
        if size > MAX_OPTIONS_BYTES:
            raise ValueError(f"options take {size:,} bytes as JSON; at most {MAX_OPTIONS_BYTES:,}")
        return self


class JobIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    processor: str = Field(min_length=1, max_length=200)
    library: str = Field(min_length=1, max_length=255, description="Library name")
    items: list[Annotated[str, Field(max_length=4096)]] | None = Field(
        default=None,
        max_length=100_000,
        description="Relative paths of the items to process (the body is at most 1 MB: a "
        "bigger selection goes in several jobs)",
    )
    filter: Literal["failed", "new"] | None = None
    options: JobOptions | None = None
    priority: int = Field(default=0, ge=-1000, le=1000)


class JobOut(BaseModel):
    job_id: str
    status: str
    processor: str
    library: str | None
    library_id: int | None
    selection: dict[str, Any]
    options: dict[str, Any]
    priority: int
    total_items: int
    processed_items: int
    succeeded: int
    failed: int
    skipped: int
    progress: float
    rate: float
    eta_seconds: float | None
    error: str | None
    summary: dict[str, Any] | None
    requested: str | None
    owner: str | None
    created_at: str | None
    started_at: str | None
    completed_at: str | None
    heartbeat_at: str | None

    @field_validator("selection", mode="before")
    @classmethod
    def _page_paths(cls, value: Any) -> Any:
        return shown_selection(value)


class JobList(BaseModel):
    jobs: list[JobOut]
    total: int


class ItemOut(BaseModel):
    path: str = Field(description="Relative path; bytes that are not UTF-8 escaped as \\xNN")
    path_bytes: str | None = Field(
        default=None, description="Only when the name is not UTF-8: its real bytes, base64"
    )
    readable_path: str | None = Field(
        default=None, description="Only when the name is not UTF-8: a readable guess (cp1252)"
    )
    kind: str
    status: str
    success: bool | None
    error: str | None
    data: dict[str, Any] | None
    size: int | None = None
    duration: float | None = None
    #: a failure's class: transient (the next run tries it again) or permanent
    error_class: str | None = None


class ItemList(BaseModel):
    items: list[ItemOut]
    total: int


class ProcessorList(BaseModel):
    processors: list[str]


class WorkerBatch(BaseModel):
    batch: str
    job: str
    processor: str
    items: int
    done: int
    started_at: float


class WorkerOut(BaseModel):
    name: str
    host: str
    pid: int
    concurrency: int
    queues: list[str]
    processors: list[str] = Field(description="Processors this worker can load")
    current_batches: list[WorkerBatch]
    items_done: int = Field(description="Items done since the worker started")
    started_at: float = Field(description="Unix time")
    last_heartbeat: float = Field(description="Unix time of its last word")
    path_map: dict[str, str]


class WorkerList(BaseModel):
    broker: str = Field(description="The broker asked (without its password)")
    workers: list[WorkerOut]
    error: str | None = Field(description="Why the broker could not be asked, if it could not")


class Health(BaseModel):
    status: str
    version: str
    catalog: str


class ErrorOut(BaseModel):
    """Every 4xx: a readable ``detail``; validation errors also list each bad field."""

    detail: str
    errors: list[dict[str, Any]] | None = None


ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "The body is not valid JSON"},
    401: {"model": ErrorOut, "description": "Missing or wrong API token"},
    403: {"model": ErrorOut, "description": "A path outside the folders the server may use"},
    404: {"model": ErrorOut, "description": "No such library or job"},
    413: {"model": ErrorOut, "description": "The request body is larger than 1 MB"},
    409: {"model": ErrorOut, "description": "Not possible in the job's current state"},
    422: {"model": ErrorOut, "description": "Invalid request"},
}


class UndoneOut(BaseModel):
    """One recorded change of a comic job, put back (or why not)."""

    path: str
    restored_path: str
    action: str
    error: str | None = None


class DryRunOut(BaseModel):
    """What a job would do (``POST /api/jobs`` with ``options.dry_run``): no job was made and
    nothing changed, the catalog included. ``scan``: what reading the library would find
    (new, changed, missing); ``would_process``: the items the job would run on, ``sample``
    the first of them (processors that only list), ``plans`` what the processor says it
    would do to each (strm, comic: ``would_create``, a new name...) and ``actions`` those
    counted; ``status``, ``failed`` and ``summary``: how the job would end."""

    dry_run: Literal[True] = True
    library: str
    new_library: bool
    processor: str | None = None
    scan: dict[str, Any]
    would_process: int
    sample: list[str]
    actions: dict[str, int]
    plans: list[str]
    problems: list[dict[str, str]] = Field(default_factory=list)
    status: str | None = None
    error: str | None = None
    succeeded: int | None = None
    failed: int | None = None
    summary: dict[str, Any] | None = None


class UndoOut(BaseModel):
    job_id: str
    dry_run: bool
    undone: int
    changes: list[UndoneOut]


class Count(BaseModel):
    name: str
    count: int


class LibraryStats(BaseModel):
    """Figures of one library; every list is ``[{name, count}]``, the biggest first (bit rates
    and tempo in their own order)."""

    library: str
    items: int
    size: int = Field(description="Bytes of the present items")
    duration: float = Field(description="Seconds of probed media")
    kinds: list[Count]
    results: dict[str, dict[str, int]] = Field(description="processor -> status -> items")
    containers: list[Count]
    codecs: dict[str, list[Count]] = Field(description="stream type -> codecs")
    resolutions: list[Count]
    bit_rates: list[Count]
    tempo: list[Count] = Field(description="10-BPM bands of analysed music")
    keys: list[Count] = Field(description="'8A A minor' (Camelot, key, scale)")
    failures: dict[str, list[Count]] = Field(description="processor -> causes")
