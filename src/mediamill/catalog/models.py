"""The catalog's tables: libraries, items, results and jobs (SQLAlchemy 2 declarative)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every database (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, datetime: UTCDateTime()}


class Library(Base):
    """A named place items come from: a folder root, or a VOD source spec (``xtream+http://…``)."""

    __tablename__ = "libraries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    #: absolute folder path, or a source spec without credentials
    root: Mapped[str] = mapped_column(Text, unique=True)
    kind: Mapped[str] = mapped_column(String(32), default="folder")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    scanned_at: Mapped[datetime | None] = mapped_column(default=None)
    #: a source library: digest of the provider's answers its items were last synced from
    #: (``None`` while a sync is under way, or for sources that give none)
    source_digest: Mapped[str | None] = mapped_column(String(64), default=None)
    #: what runs by itself (``watch/automation.py``): processors, watch mode, schedule
    automation: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    #: what the library's watcher is doing (``WatchState.as_dict`` + owner and seen_at)
    watch_state: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    #: when the library's schedule last started a run
    scheduled_at: Mapped[datetime | None] = mapped_column(default=None)


class Item(Base):
    """One unit of work: a file of a folder library, or an entry of a VOD source."""

    __tablename__ = "items"
    __table_args__ = (
        UniqueConstraint("library_id", "path", name="uq_items_library_path"),
        Index("ix_items_library_present_kind", "library_id", "present", "kind"),
        Index("ix_items_library_present_id", "library_id", "present", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    library_id: Mapped[int] = mapped_column(ForeignKey("libraries.id", ondelete="CASCADE"))
    #: POSIX path relative to the root (undecodable bytes shown with backslash escapes), or key
    path: Mapped[str] = mapped_column(Text)
    #: the exact file name bytes when they are not valid UTF-8
    path_bytes: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
    kind: Mapped[str] = mapped_column(String(16))
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    mtime_ns: Mapped[int] = mapped_column(BigInteger, default=0)
    fingerprint: Mapped[str] = mapped_column(String(64))
    meta: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    present: Mapped[bool] = mapped_column(Boolean, default=True)
    first_seen: Mapped[datetime] = mapped_column(default=utcnow)
    last_changed: Mapped[datetime] = mapped_column(default=utcnow)


class Result(Base):
    """The latest outcome of one processor on one item (one row per item and processor)."""

    __tablename__ = "results"
    __table_args__ = (
        UniqueConstraint("item_id", "processor", name="uq_results_item_processor"),
        Index("ix_results_job_status", "job_id", "status"),
        # library statistics read only this index: one pass in (processor, status, facets)
        # order, never the results' JSON
        Index("ix_results_facets", "processor", "status", "facets", "media_seconds", "item_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"))
    processor: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    data: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    duration: Mapped[float] = mapped_column(Float, default=0.0)
    version: Mapped[str] = mapped_column(String(32))
    fingerprint: Mapped[str] = mapped_column(String(64))
    job_id: Mapped[str | None] = mapped_column(String(36), default=None)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: a failure's class: ``transient`` (retried by the next run) or ``permanent``
    error_class: Mapped[str | None] = mapped_column(String(16), default=None)
    #: transient failures in a row; after MAX_ATTEMPTS only ``--failed`` retries the item
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    #: when a transient failure is due again (``None``: not retried by a plain run)
    retry_at: Mapped[datetime | None] = mapped_column(default=None)
    #: what statistics count of ``data`` (``mediamill.facets``: container, streams, key, ...),
    #: as compact JSON, and the media's duration; ``None`` for results they do not count
    facets: Mapped[str | None] = mapped_column(Text, default=None)
    media_seconds: Mapped[float | None] = mapped_column(Float, default=None)


class Claim(Base):
    """An item a running job has taken: another run of the same processor passes it over
    while that job runs (its claims go when it stops running)."""

    __tablename__ = "claims"
    __table_args__ = (Index("ix_claims_job", "job_id"),)

    item_id: Mapped[int] = mapped_column(
        ForeignKey("items.id", ondelete="CASCADE"), primary_key=True
    )
    processor: Mapped[str] = mapped_column(String(64), primary_key=True)
    job_id: Mapped[str] = mapped_column(String(36))


class Job(Base):
    """One run of one processor over a selection of a library's items; status via jobs.status."""

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_status_priority", "status", "priority", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    processor: Mapped[str] = mapped_column(String(64))
    library_id: Mapped[int | None] = mapped_column(
        ForeignKey("libraries.id", ondelete="SET NULL"), default=None
    )
    selection: Mapped[dict[str, Any]] = mapped_column(default=dict)
    options: Mapped[dict[str, Any]] = mapped_column(default=dict)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16))
    total_items: Mapped[int] = mapped_column(Integer, default=0)
    processed_items: Mapped[int] = mapped_column(Integer, default=0)
    succeeded: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    skipped: Mapped[int] = mapped_column(Integer, default=0)
    rate: Mapped[float] = mapped_column(Float, default=0.0)
    eta_seconds: Mapped[float | None] = mapped_column(Float, default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    summary: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    #: "host:pid" of the process running the job, and when it last said it is alive
    owner: Mapped[str | None] = mapped_column(String(255), default=None)
    heartbeat_at: Mapped[datetime | None] = mapped_column(default=None)
    #: what a user asked for while the job runs: "pause" or "cancel"
    requested: Mapped[str | None] = mapped_column(String(16), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    completed_at: Mapped[datetime | None] = mapped_column(default=None)


class ItemChange(Base):
    """One change a processor made to its item's file (``data["change"]`` of its result):
    for comics, the ComicInfo.xml and the path before and after, so that it can be undone."""

    __tablename__ = "item_changes"
    __table_args__ = (
        Index("ix_item_changes_job", "job_id", "id"),
        Index("ix_item_changes_item", "item_id", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[str | None] = mapped_column(String(36), default=None)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"))
    processor: Mapped[str] = mapped_column(String(64))
    change: Mapped[dict[str, Any]] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    undone_at: Mapped[datetime | None] = mapped_column(default=None)
