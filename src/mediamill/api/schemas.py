"""Request and response bodies of the HTTP API (pydantic), separate from the ORM models."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


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


class LibraryList(BaseModel):
    libraries: list[LibraryOut]


class ScanOut(BaseModel):
    report: dict[str, Any]


class JobOptions(BaseModel):
    """Engine options; any other key is passed to the processor (e.g. ``output`` for strm)."""

    model_config = ConfigDict(extra="allow")

    workers: int | None = Field(default=None, ge=1, le=256)
    batch_size: int | None = Field(default=None, ge=1, le=10_000)
    rate: float | None = Field(default=None, gt=0, le=1e9)
    limit: int | None = Field(default=None, ge=0, le=2**31 - 1)
    force: bool | None = None
    dry_run: bool | None = None
    executor: Literal["auto", "serial", "threads", "processes"] | None = None
    item_timeout: float | None = Field(default=None, gt=0, le=86_400)
    adaptive_latency: float | None = Field(default=None, gt=0, le=3600)


class JobIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    processor: str = Field(min_length=1, max_length=200)
    library: str = Field(min_length=1, max_length=255, description="Library name")
    items: list[str] | None = Field(
        default=None, max_length=100_000, description="Relative paths of the items to process"
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


class JobList(BaseModel):
    jobs: list[JobOut]
    total: int


class ItemOut(BaseModel):
    path: str
    kind: str
    status: str
    success: bool | None
    error: str | None
    data: dict[str, Any] | None
    size: int | None = None
    duration: float | None = None


class ItemList(BaseModel):
    items: list[ItemOut]
    total: int


class ProcessorList(BaseModel):
    processors: list[str]


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
    404: {"model": ErrorOut, "description": "No such library or job"},
    409: {"model": ErrorOut, "description": "Not possible in the job's current state"},
    422: {"model": ErrorOut, "description": "Invalid request"},
}
