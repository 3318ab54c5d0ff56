"""The catalog's tables: libraries, items, results and jobs (SQLAlchemy Core).

Core tables rather than ORM classes: the command line starts without importing
``sqlalchemy.orm`` (0.06 s of every command's start-up). A column is ``Item.c.path``.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
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


metadata = MetaData()

#: a named place items come from: a folder root, or a VOD source spec (``xtream+http://…``)
Library = Table(
    "libraries",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(255), nullable=False, unique=True),
    # absolute folder path, or a source spec without credentials
    Column("root", Text, nullable=False, unique=True),
    Column("kind", String(32), nullable=False, default="folder"),
    Column("created_at", UTCDateTime(), nullable=False, default=utcnow),
    Column("scanned_at", UTCDateTime(), nullable=True),
    # a source library: digest of the provider's answers its items were last synced from
    # (``None`` while a sync is under way, or for sources that give none)
    Column("source_digest", String(64), nullable=True),
    # what runs by itself (``watch/automation.py``): processors, watch mode, schedule
    Column("automation", JSON, nullable=True),
    # what the library's watcher is doing (``WatchState.as_dict`` + owner and seen_at)
    Column("watch_state", JSON, nullable=True),
    # when the library's schedule last started a run
    Column("scheduled_at", UTCDateTime(), nullable=True),
)

#: one unit of work: a file of a folder library, or an entry of a VOD source
Item = Table(
    "items",
    metadata,
    Column("id", Integer, primary_key=True),
    Column(
        "library_id",
        Integer,
        ForeignKey("libraries.id", ondelete="CASCADE"),
        nullable=False,
    ),
    # POSIX path relative to the root (undecodable bytes shown with backslash escapes), or key
    Column("path", Text, nullable=False),
    # the exact file name bytes when they are not valid UTF-8
    Column("path_bytes", LargeBinary, nullable=True),
    Column("kind", String(16), nullable=False),
    Column("size", BigInteger, nullable=False, default=0),
    Column("mtime_ns", BigInteger, nullable=False, default=0),
    Column("fingerprint", String(64), nullable=False),
    Column("meta", JSON, nullable=True),
    Column("present", Boolean, nullable=False, default=True),
    Column("first_seen", UTCDateTime(), nullable=False, default=utcnow),
    Column("last_changed", UTCDateTime(), nullable=False, default=utcnow),
    UniqueConstraint("library_id", "path", name="uq_items_library_path"),
    Index("ix_items_library_present_kind", "library_id", "present", "kind"),
    Index("ix_items_library_present_id", "library_id", "present", "id"),
)

#: the latest outcome of one processor on one item (one row per item and processor)
Result = Table(
    "results",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("item_id", Integer, ForeignKey("items.id", ondelete="CASCADE"), nullable=False),
    Column("processor", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("data", JSON, nullable=True),
    Column("error", Text, nullable=True),
    Column("duration", Float, nullable=False, default=0.0),
    Column("version", String(32), nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("job_id", String(36), nullable=True),
    Column("updated_at", UTCDateTime(), nullable=False, default=utcnow),
    # a failure's class: ``transient`` (retried by the next run) or ``permanent``
    Column("error_class", String(16), nullable=True),
    # transient failures in a row; after MAX_ATTEMPTS only ``--failed`` retries the item
    Column("attempts", Integer, nullable=False, default=0, server_default="0"),
    # when a transient failure is due again (``None``: not retried by a plain run)
    Column("retry_at", UTCDateTime(), nullable=True),
    # what statistics count of ``data`` (``mediamill.facets``: container, streams, key, ...),
    # as compact JSON, and the media's duration; ``None`` for results they do not count
    Column("facets", Text, nullable=True),
    Column("media_seconds", Float, nullable=True),
    UniqueConstraint("item_id", "processor", name="uq_results_item_processor"),
    Index("ix_results_job_status", "job_id", "status"),
    # library statistics read only this index: one pass in (processor, status, facets)
    # order, never the results' JSON
    Index("ix_results_facets", "processor", "status", "facets", "media_seconds", "item_id"),
)

#: an item a running job has taken: another run of the same processor passes it over while
#: that job runs (its claims go when it stops running)
Claim = Table(
    "claims",
    metadata,
    Column(
        "item_id",
        Integer,
        ForeignKey("items.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("processor", String(64), primary_key=True),
    Column("job_id", String(36), nullable=False),
    Index("ix_claims_job", "job_id"),
)

#: one run of one processor over a selection of a library's items; status via jobs.status
Job = Table(
    "jobs",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("processor", String(64), nullable=False),
    Column(
        "library_id",
        Integer,
        ForeignKey("libraries.id", ondelete="SET NULL"),
        nullable=True,
    ),
    Column("selection", JSON, nullable=False, default=dict),
    Column("options", JSON, nullable=False, default=dict),
    Column("priority", Integer, nullable=False, default=0),
    Column("status", String(16), nullable=False),
    Column("total_items", Integer, nullable=False, default=0),
    Column("processed_items", Integer, nullable=False, default=0),
    Column("succeeded", Integer, nullable=False, default=0),
    Column("failed", Integer, nullable=False, default=0),
    Column("skipped", Integer, nullable=False, default=0),
    Column("rate", Float, nullable=False, default=0.0),
    Column("eta_seconds", Float, nullable=True),
    Column("error", Text, nullable=True),
    Column("summary", JSON, nullable=True),
    # "host:pid" of the process running the job, and when it last said it is alive
    Column("owner", String(255), nullable=True),
    Column("heartbeat_at", UTCDateTime(), nullable=True),
    # what a user asked for while the job runs: "pause" or "cancel"
    Column("requested", String(16), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False, default=utcnow),
    Column("started_at", UTCDateTime(), nullable=True),
    Column("completed_at", UTCDateTime(), nullable=True),
    Index("ix_jobs_status_priority", "status", "priority", "created_at"),
)

#: one change a processor made to its item's file (``data["change"]`` of its result): for
#: comics, the ComicInfo.xml and the path before and after, so that it can be undone
ItemChange = Table(
    "item_changes",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("job_id", String(36), nullable=True),
    Column("item_id", Integer, ForeignKey("items.id", ondelete="CASCADE"), nullable=False),
    Column("processor", String(64), nullable=False),
    Column("change", JSON, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False, default=utcnow),
    Column("undone_at", UTCDateTime(), nullable=True),
    Index("ix_item_changes_job", "job_id", "id"),
    Index("ix_item_changes_item", "item_id", "id"),
)
