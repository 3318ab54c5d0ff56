"""The catalog: engine set-up (SQLite WAL or PostgreSQL), migrations, and the queries of
libraries, items and results (the jobs' own are in jobs/manager.py).

All reads that can be large are streamed in keyset pages; all writes are batched in one
transaction per batch (never one commit per item).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    and_,
    bindparam,
    case,
    create_engine,
    delete,
    event,
    func,
    insert,
    inspect,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.pool import NullPool

from mediamill import names
from mediamill.catalog.models import (
    Claim,
    Item,
    ItemChange,
    Job,
    Library,
    Result,
    metadata,
    utcnow,
)
from mediamill.core import ErrorClass, ItemRef, ItemUpdate, Outcome, Status
from mediamill.facets import facets_of

log = logging.getLogger(__name__)

#: the newest migration; checked against Alembic's head by the test suite, so start-up can
#: skip loading Alembic when the catalog is already current
HEAD_REVISION = "0007"
PAGE = 1000
#: transient failures of an item in a row before a plain run stops trying it (``--failed``
#: still does); the first is tried by the very next run, then after RETRY_BACKOFF seconds,
#: doubled each time
MAX_ATTEMPTS = 5
RETRY_BACKOFF = 30.0
#: a claim holds while its job runs and has shown a heartbeat within this many seconds
CLAIM_LEASE = 60.0


class CatalogError(RuntimeError):
    """The catalog cannot be opened or used (unreachable server, unwritable file)."""


@dataclass(frozen=True, slots=True)
class LibraryRef:
    id: int
    name: str
    root: str
    kind: str
    scanned_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Selection:
    """Which items of a library a job covers.

    ``paths``: only these item paths; ``only``: ``None`` (every item not fresh), ``"failed"``
    (items whose last result failed), ``"new"`` (items with no result yet).
    """

    library_id: int
    kinds: frozenset[str] | None = None
    paths: tuple[str, ...] | None = None
    only: str | None = None


def fingerprint_meta(meta: Mapping[str, Any]) -> str:
    """A stable fingerprint of a source entry's metadata."""
    raw = json.dumps(meta, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.blake2b(raw.encode(), digest_size=16).hexdigest()


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # the wait first: switching a new file to WAL needs a lock another process may hold
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _private_file(path: Path) -> None:
    """A new catalog file is made 0600 (SQLite gives its -wal and -shm files the same mode),
    in a folder made 0700: it holds what others on the machine need not read. One an older
    version left readable by others is made 0600 (its folder 0700 when it is the data dir)."""
    from mediamill.settings import data_dir, make_private, private_data_dir

    if path.parent.absolute() == data_dir().absolute():
        private_data_dir()
    elif not path.parent.is_dir():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        make_private([path, *(path.with_name(path.name + end) for end in ("-wal", "-shm"))])


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1] if "///" in url else ""
        if path and path != ":memory:":
            _private_file(Path(path))
        engine = create_engine(url, poolclass=NullPool if not path else None)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return create_engine(url, pool_pre_ping=True)


def _sqlite_file(engine: Engine) -> str | None:
    path = engine.url.database if engine.dialect.name == "sqlite" else None
    return os.path.abspath(path) if path and path != ":memory:" else None


def _identity(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino


#: what an :class:`ItemRef` is made of (:meth:`Catalog._item_ref`)
ITEM_REF_COLUMNS = (
    Item.c.id, Item.c.path, Item.c.path_bytes, Item.c.kind, Item.c.size, Item.c.mtime_ns,
    Item.c.fingerprint, Item.c.meta,
)  # fmt: skip

#: the PostgreSQL advisory lock that lets one process at a time create or migrate a catalog
MIGRATION_LOCK = 0x6D656469616D696C  # "mediamil"


def upgrade(engine: Engine) -> None:
    """Bring the catalog to the newest schema (Alembic), skipping Alembic when already there.

    Processes that open a new or outdated catalog at once (two commands on a new data dir, two
    servers on a fresh PostgreSQL database) take turns: a PostgreSQL advisory lock, or a lock
    file beside a SQLite file. The first creates or migrates it; the next finds it current.
    """
    if _revision(engine) == HEAD_REVISION:
        return
    with _migration_turn(engine) as conn:
        current = _revision(conn)
        if current == HEAD_REVISION:
            return
        if current is None and engine.dialect.name == "sqlite" and _is_empty(conn):
            _create_current_schema(conn)
            return
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def _revision(bind: Engine | Connection) -> str | None:
    """The catalog's Alembic revision; ``None`` for a new catalog (no version table)."""
    with contextlib.ExitStack() as stack:
        conn = stack.enter_context(bind.connect()) if isinstance(bind, Engine) else bind
        if not inspect(conn).has_table("alembic_version"):
            return None
        value = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        return str(value) if value else None


def _private_opener(path: str, flags: int) -> int:
    return os.open(path, flags, 0o600)


@contextmanager
def _migration_turn(engine: Engine) -> Iterator[Connection]:
    """A transaction that no other process creating or migrating this catalog runs beside."""
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
            yield conn
        return
    path = engine.url.database
    with contextlib.ExitStack() as stack:
        if path and path != ":memory:":
            import fcntl

            # private like the catalog beside it (an older one made it 0644: see
            # settings.make_private)
            lock = stack.enter_context(open(f"{path}.lock", "a+b", opener=_private_opener))
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        yield stack.enter_context(engine.begin())


def _is_empty(conn: Connection) -> bool:
    return not conn.execute(text("SELECT name FROM sqlite_master LIMIT 1")).first()


def _create_current_schema(conn: Connection) -> None:
    """A new embedded catalog: the models' tables at the head revision, in one transaction.

    This is Alembic's "create from scratch, then stamp" recipe, without importing Alembic:
    the first ``mediamill run`` starts 0.2 s sooner. A contract test checks that migrating
    step by step gives the very same schema.
    """
    metadata.create_all(conn)
    conn.execute(
        text(
            "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL, "
            "CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num))"
        )
    )
    conn.execute(text("INSERT INTO alembic_version VALUES (:v)"), {"v": HEAD_REVISION})


@dataclass(frozen=True, slots=True)
class _Refused:
    """An item update the writer did not apply, and why."""

    cause: str


def _stored_path(path: str) -> tuple[str, bytes | None]:
    """``(path as the catalog shows it, its bytes when they are not UTF-8)``, the way the
    folder walk stores a name: undecodable bytes (surrogate escapes, as ``os.fsdecode``
    gives them) are shown escaped (``\\xff``) and kept exactly in ``path_bytes``."""
    shown = names.shown_path(path)
    return shown, (None if shown == path else os.fsencode(path))


def _item_rows(conn: Connection, ids: Sequence[int]) -> dict[int, Any]:
    """The rows (library, path, size, mtime, fingerprint) of these items, by id."""
    rows = {}
    for start in range(0, len(ids), 500):
        found = conn.execute(
            select(
                Item.c.id,
                Item.c.library_id,
                Item.c.path,
                Item.c.size,
                Item.c.mtime_ns,
                Item.c.fingerprint,
            ).where(Item.c.id.in_(ids[start : start + 500]))
        )
        rows.update({row.id: row for row in found})
    return rows


def _paths_taken(conn: Connection, targets: Iterable[tuple[int, str]]) -> bool:
    """Whether an item (present or missing) holds any of these (library, path)."""
    by_library: dict[int, list[str]] = {}
    for library_id, path in targets:
        by_library.setdefault(library_id, []).append(path)
    for library_id, paths in by_library.items():
        for start in range(0, len(paths), 500):
            query = select(Item.c.id).where(
                Item.c.library_id == library_id, Item.c.path.in_(paths[start : start + 500])
            )
            if conn.execute(query.limit(1)).first() is not None:
                return True
    return False


def _updated_fingerprint(row: Any, change: ItemUpdate) -> tuple[int, int, str]:
    """(size, mtime, fingerprint) of an item after ``change``: the processor's fingerprint,
    else one from the new size and mtime, else the old one."""
    size = row.size if change.size is None else change.size
    mtime_ns = row.mtime_ns if change.mtime_ns is None else change.mtime_ns
    fingerprint = change.fingerprint
    if fingerprint is None:
        touched = change.size is not None or change.mtime_ns is not None
        fingerprint = f"{size}:{mtime_ns}" if touched else row.fingerprint
    return size, mtime_ns, fingerprint


def _live_jobs() -> Any:
    """The ids of jobs that run and have shown a heartbeat within :data:`CLAIM_LEASE`."""
    since = utcnow() - timedelta(seconds=CLAIM_LEASE)
    return select(Job.c.id).where(Job.c.status == "running", Job.c.heartbeat_at > since)


def _is_transient(outcome: Outcome) -> bool:
    return outcome.status is Status.FAILED and outcome.error_class == ErrorClass.TRANSIENT


def _retry_columns(outcome: Outcome, attempts_before: int, now: datetime) -> dict[str, Any]:
    """A result's error class, transient failures in a row, and when it is due again: the
    next run for a first transient failure, then after a doubling backoff, until
    :data:`MAX_ATTEMPTS`."""
    if outcome.status is not Status.FAILED:
        return {"error_class": None, "attempts": 0, "retry_at": None}
    if not _is_transient(outcome):
        return {"error_class": str(ErrorClass.PERMANENT), "attempts": 0, "retry_at": None}
    attempts = attempts_before + 1
    retry_at = None
    if attempts < MAX_ATTEMPTS:
        retry_at = now + timedelta(
            seconds=RETRY_BACKOFF * (2 ** (attempts - 2) if attempts > 1 else 0)
        )
    return {"error_class": str(ErrorClass.TRANSIENT), "attempts": attempts, "retry_at": retry_at}


def _facet_columns(processor: str, outcome: Outcome) -> dict[str, Any]:
    """What statistics count of a result (:func:`mediamill.facets.facets_of`), kept beside it."""
    if outcome.status is not Status.OK:
        return {"facets": None, "media_seconds": None}
    facets, seconds = facets_of(processor, outcome.data)
    return {"facets": facets, "media_seconds": seconds}


class Catalog:
    """Libraries, items, results and jobs in one database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.url = engine.url.render_as_string(hide_password=True)
        self._write_lock = threading.Lock()
        self._file = _sqlite_file(engine)
        self._identity = _identity(self._file) if self._file else None

    def check_file(self) -> None:
        """Raise :class:`CatalogError` if the SQLite file was deleted or replaced since it
        was opened: the connections still write into the old file, so whatever a job does
        from then on is lost, while it would seem to succeed."""
        if self._file is None or self._identity is None:
            return
        now = _identity(self._file)
        if now != self._identity:
            how = "deleted" if now is None else "replaced"
            raise CatalogError(
                f"the catalog {self._file} was {how} while in use: what was written to it "
                "since is lost"
            )

    @classmethod
    def open(cls, url: str | None = None) -> Catalog:
        """Open (and migrate) the catalog at ``url``, or the configured/default one."""
        if not url:
            from mediamill.settings import load

            url = load().db_url()
        try:
            engine = make_engine(url)
            upgrade(engine)
        except Exception as exc:
            raise CatalogError(f"cannot open catalog {url!r}: {exc}") from exc
        return cls(engine)

    def close(self) -> None:
        self.engine.dispose()

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def _insert(self, table: Any) -> Any:
        # imported here: the dialect modules cost a tenth of a second of start-up
        if self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            return pg_insert(table)
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(table)

    # ---------------------------------------------------------------- libraries
    def add_library(
        self, root: str, *, name: str | None = None, kind: str = "folder"
    ) -> LibraryRef:
        """The library at ``root``, created on first use (its name defaults to the folder name)."""
        found = self.library_by_root(root)
        if found:
            return found
        base = name or Path(root).name or root
        for n in range(1, 1000):
            candidate = base if n == 1 else f"{base}-{n}"
            with self.engine.begin() as conn:
                # nothing when the name is taken, or when another process has just added the
                # same root (two commands on a new library): then that one is the library
                conn.execute(
                    self._insert(Library)
                    .values(name=candidate, root=root, kind=kind)
                    .on_conflict_do_nothing()
                )
            found = self.library_by_root(root)
            if found:
                return found
        raise CatalogError(f"no free library name like {base!r}")

    def _library(self, where: Any) -> LibraryRef | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(
                    Library.c.id,
                    Library.c.name,
                    Library.c.root,
                    Library.c.kind,
                    Library.c.scanned_at,
                ).where(where)
            ).first()
        return LibraryRef(*row) if row else None

    def library_by_root(self, root: str | os.PathLike[str]) -> LibraryRef | None:
        key = str(root)
        if "://" not in key:
            key = os.path.abspath(key)
        return self._library(Library.c.root == key)

    def library_by_name(self, name: str) -> LibraryRef | None:
        return self._library(Library.c.name == name)

    def library(self, library_id: int) -> LibraryRef | None:
        return self._library(Library.c.id == library_id)

    def libraries(self) -> list[LibraryRef]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(
                    Library.c.id,
                    Library.c.name,
                    Library.c.root,
                    Library.c.kind,
                    Library.c.scanned_at,
                ).order_by(Library.c.name)
            ).all()
        return [LibraryRef(*r) for r in rows]

    def delete_library(self, library_id: int) -> None:
        with self.engine.begin() as conn:
            item_ids = select(Item.c.id).where(Item.c.library_id == library_id)
            conn.execute(delete(Result).where(Result.c.item_id.in_(item_ids)))
            conn.execute(delete(Item).where(Item.c.library_id == library_id))
            conn.execute(update(Job).where(Job.c.library_id == library_id).values(library_id=None))
            conn.execute(delete(Library).where(Library.c.id == library_id))

    def mark_scanned(self, library_id: int) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(Library).where(Library.c.id == library_id).values(scanned_at=utcnow())
            )

    def source_digest(self, library_id: int) -> str | None:
        """The digest of what the library's items were last synced from: a provider's
        answers, or a folder's listing (see :meth:`syncing_to`)."""
        with self.engine.connect() as conn:
            value = conn.execute(
                select(Library.c.source_digest).where(Library.c.id == library_id)
            ).scalar_one_or_none()
        return str(value) if value else None

    @contextmanager
    def syncing_to(self, library_id: int, digest: str | None) -> Iterator[None]:
        """Around a sync that brings the library's items in line with what ``digest`` sums up
        (a provider's answers, a folder's listing): the digest kept so far is forgotten
        before, ``digest`` recorded once the sync completes, so one that stops halfway is
        never taken for complete."""
        self._set_source_digest(library_id, None)
        yield
        self._set_source_digest(library_id, digest)

    def _set_source_digest(self, library_id: int, digest: str | None) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(Library).where(Library.c.id == library_id).values(source_digest=digest)
            )

    def export_stamp(self, library_id: int, processor: str) -> str:
        """A digest that changes whenever an item of the library or a result of
        ``processor`` for it is added, changed or removed (counts, highest ids, latest
        change times): what a processor's ``finish`` compares to skip a full pass when
        nothing moved since the last one."""
        import hashlib

        with self.engine.connect() as conn:
            items = conn.execute(
                select(
                    func.count(),
                    func.max(Item.c.id),
                    func.max(Item.c.last_changed),
                    func.sum(case((Item.c.present.is_(True), 1), else_=0)),
                ).where(Item.c.library_id == library_id)
            ).one()
            results = conn.execute(
                select(func.count(), func.max(Result.c.id), func.max(Result.c.updated_at))
                .join(Item, Item.c.id == Result.c.item_id)
                .where(Item.c.library_id == library_id, Result.c.processor == processor)
            ).one()
        raw = repr((tuple(items), tuple(results))).encode()
        return hashlib.blake2b(raw, digest_size=16).hexdigest()

    def library_counts(self, library_id: int) -> dict[str, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(Item.c.kind, func.count())
                .where(Item.c.library_id == library_id, Item.c.present.is_(True))
                .group_by(Item.c.kind)
            ).all()
        return dict(rows)

    # ---------------------------------------------------------------- items (scan side)
    def existing_items(
        self, library_id: int, paths: Sequence[str]
    ) -> dict[str, tuple[int, int, int, bool]]:
        """``path -> (id, size, mtime_ns, present)`` for those of ``paths`` already known."""
        out: dict[str, tuple[int, int, int, bool]] = {}
        with self.engine.connect() as conn:
            for start in range(0, len(paths), 900):
                chunk = paths[start : start + 900]
                rows = conn.execute(
                    select(
                        Item.c.path, Item.c.id, Item.c.size, Item.c.mtime_ns, Item.c.present
                    ).where(Item.c.library_id == library_id, Item.c.path.in_(chunk))
                )
                for path, item_id, size, mtime_ns, present in rows:
                    out[path] = (item_id, size, mtime_ns, present)
        return out

    def insert_items(self, library_id: int, rows: Sequence[Mapping[str, Any]]) -> list[int]:
        """Insert new items (dicts with path, kind, size, mtime_ns, fingerprint, ...)."""
        if not rows:
            return []
        now = utcnow()
        values = [
            {"library_id": library_id, "first_seen": now, "last_changed": now, **r} for r in rows
        ]
        with self.engine.begin() as conn:
            # another scan of the same new files at the same moment may have inserted them
            conn.execute(
                self._insert(Item).on_conflict_do_nothing(index_elements=["library_id", "path"]),
                values,
            )
            ids = (
                conn.execute(
                    select(Item.c.id).where(
                        Item.c.library_id == library_id, Item.c.path.in_([r["path"] for r in rows])
                    )
                )
                .scalars()
                .all()
            )
        return list(ids)

    def update_items(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Update changed or reappeared items: dicts with ``id`` and the new column values."""
        if not rows:
            return
        now = utcnow()
        with self.engine.begin() as conn:
            for row in rows:
                conn.execute(
                    update(Item)
                    .where(Item.c.id == row["id"])
                    .values(
                        present=True,
                        last_changed=now,
                        **{k: v for k, v in row.items() if k != "id"},
                    )
                )

    def iter_item_ids(self, library_id: int, *, present: bool = True) -> Iterator[int]:
        """Stream item ids of a library in ascending order."""
        last = 0
        while True:
            with self.engine.connect() as conn:
                ids = (
                    conn.execute(
                        select(Item.c.id)
                        .where(
                            Item.c.library_id == library_id,
                            Item.c.present.is_(present),
                            Item.c.id > last,
                        )
                        .order_by(Item.c.id)
                        .limit(PAGE * 10)
                    )
                    .scalars()
                    .all()
                )
            if not ids:
                return
            yield from ids
            last = ids[-1]

    def iter_files(
        self, library_id: int, under: str = ""
    ) -> Iterator[tuple[str, int, int, int, bool]]:
        """``(path, id, size, mtime_ns, present)`` of the library's items in path order (code
        point order on every database), from one streaming query: the scan's side of its merge
        join. Only items that exist when the stream starts are returned, so inserts made while
        it runs never show up in it. ``under``: only the items in that folder's subtree.

        It reads through the driver's own cursor, not SQLAlchemy rows: on an unchanged rescan
        of 100,000 files, building a row object per item was a fifth of the time.
        """
        with self.engine.connect() as conn:
            max_id = conn.execute(select(func.max(Item.c.id))).scalar() or 0
            raw: Any = conn.connection.dbapi_connection
            columns = "SELECT path, id, size, mtime_ns, present FROM items"
            params: tuple[Any, ...] = (library_id, max_id)
            if self.dialect == "postgresql":
                # a named cursor is a server-side one: rows arrive a page at a time
                cursor = raw.cursor(name=f"mediamill_scan_{library_id}")
                cursor.itersize = PAGE * 5
                sql = f"{columns} WHERE library_id = %s AND id <= %s"
                if under:  # "a/" <= path < "a0": exactly the subtree ('0' follows '/')
                    sql += ' AND path COLLATE "C" >= %s AND path COLLATE "C" < %s'
                sql += ' ORDER BY path COLLATE "C"'
            else:
                cursor = raw.cursor()
                sql = f"{columns} WHERE library_id = ? AND id <= ?"
                if under:
                    sql += " AND path >= ? AND path < ?"
                sql += " ORDER BY path"
            if under:
                params += (under + "/", under + "0")
            try:
                cursor.execute(sql, params)
                while rows := cursor.fetchmany(PAGE * 5):
                    yield from rows
            finally:
                cursor.close()
                conn.rollback()

    def mark_missing(self, item_ids: Sequence[int]) -> None:
        with self.engine.begin() as conn:
            for start in range(0, len(item_ids), 900):
                conn.execute(
                    update(Item)
                    .where(Item.c.id.in_(item_ids[start : start + 900]))
                    .values(present=False, last_changed=utcnow())
                )

    def paths_of(self, item_ids: Sequence[int]) -> list[str]:
        """The paths of those of ``item_ids`` that are present."""
        paths: list[str] = []
        with self.engine.connect() as conn:
            for start in range(0, len(item_ids), 900):
                chunk = list(item_ids[start : start + 900])
                paths += conn.execute(
                    select(Item.c.path).where(Item.c.id.in_(chunk), Item.c.present.is_(True))
                ).scalars()
        return paths

    def has_missing(self, library_id: int) -> bool:
        with self.engine.connect() as conn:
            return bool(
                conn.execute(
                    select(Item.c.id)
                    .where(Item.c.library_id == library_id, Item.c.present.is_(False))
                    .limit(1)
                ).first()
            )

    def adopt_moved(
        self,
        library_id: int,
        new_ids: Sequence[int],
        gone: Callable[[str], bool] = lambda path: False,
    ) -> list[int]:
        """Files found new that are known items moved (renamed, or moved to another folder
        of the library): same size and mtime, as a move keeps them, and the item missing, or
        still present but ``gone(path)`` from disk (its folder not scanned yet). Each such
        item takes the new path and is present, keeping its id and results (still fresh:
        the fingerprint is size and mtime); the item just made for the path goes. A file
        that two items could be is matched by its name, else left new. Returns the old ids."""
        adopted: list[int] = []
        for start in range(0, len(new_ids), 900):
            chunk = list(new_ids[start : start + 900])
            with self.engine.begin() as conn:
                new = conn.execute(
                    select(Item.c.id, Item.c.path, Item.c.path_bytes, Item.c.size, Item.c.mtime_ns)
                    .where(Item.c.id.in_(chunk))
                    .where(~select(Result.c.id).where(Result.c.item_id == Item.c.id).exists())
                ).all()
                stats = {(row.size, row.mtime_ns) for row in new}
                rows = conn.execute(
                    select(
                        Item.c.id, Item.c.path, Item.c.size, Item.c.mtime_ns, Item.c.present
                    ).where(
                        Item.c.library_id == library_id,
                        Item.c.size.in_(sorted({size for size, _ in stats})),
                        Item.c.id.not_in(chunk),
                    )
                ).all()
                moved_away = [
                    row
                    for row in rows
                    if (row.size, row.mtime_ns) in stats and (not row.present or gone(row.path))
                ]
                adopted += self._adopt(conn, new, moved_away)
        return adopted

    @staticmethod
    def _adopt(conn: Any, new: Sequence[Any], gone: Sequence[Any]) -> list[int]:
        by_stat: dict[tuple[int, int], list[Any]] = {}
        for row in gone:
            by_stat.setdefault((row.size, row.mtime_ns), []).append(row)
        adopted = []
        for row in new:
            candidates = by_stat.get((row.size, row.mtime_ns), [])
            if len(candidates) > 1:
                name = row.path.rpartition("/")[2]
                candidates = [c for c in candidates if c.path.rpartition("/")[2] == name]
            if len(candidates) != 1:
                continue
            old = candidates[0]
            by_stat[(row.size, row.mtime_ns)].remove(old)
            conn.execute(delete(Item).where(Item.c.id == row.id))
            conn.execute(
                update(Item)
                .where(Item.c.id == old.id)
                .values(path=row.path, path_bytes=row.path_bytes, present=True,
                        last_changed=utcnow())
            )  # fmt: skip
            adopted.append(old.id)
        return adopted

    def sync_entries(
        self, library_id: int, entries: Iterable[Any], *, chunk: int = 2000
    ) -> dict[str, int]:
        """Upsert a source's entries (``SourceEntry``) as items; mark vanished ones missing."""
        counts = {"new": 0, "changed": 0, "unchanged": 0, "missing": 0}
        seen: list[int] = []

        def flush(buffer: list[Any]) -> None:
            by_key = {e.key: e for e in buffer}
            known = self._existing_fingerprints(library_id, list(by_key))
            new, changed = [], []
            for key, entry in by_key.items():
                fp = fingerprint_meta(entry.meta)
                if key not in known:
                    new.append(
                        {
                            "path": key,
                            "kind": entry.kind,
                            "fingerprint": fp,
                            "meta": dict(entry.meta),
                        }
                    )
                    continue
                item_id, old_fp, present = known[key]
                seen.append(item_id)
                if old_fp != fp or not present:
                    changed.append(
                        {
                            "id": item_id,
                            "kind": entry.kind,
                            "fingerprint": fp,
                            "meta": dict(entry.meta),
                        }
                    )
                else:
                    counts["unchanged"] += 1
            seen.extend(self.insert_items(library_id, new))
            self._update_entries(changed)
            counts["new"] += len(new)
            counts["changed"] += len(changed)

        buffer: list[Any] = []
        for entry in entries:
            buffer.append(entry)
            if len(buffer) >= chunk:
                flush(buffer)
                buffer = []
        flush(buffer)
        missing = self.missing_ids(library_id, seen)
        self.mark_missing(missing)
        counts["missing"] = len(missing)
        self.mark_scanned(library_id)
        return counts

    def _update_entries(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Changed or returning source entries (``id``, ``kind``, ``fingerprint``, ``meta``):
        one executemany, not a statement per row (a provider that changes every URL changes
        every entry)."""
        if not rows:
            return
        from sqlalchemy import bindparam

        now = utcnow()
        stmt = (
            update(Item)
            .where(Item.c.id == bindparam("b_id"))
            .values(
                present=True,
                last_changed=now,
                kind=bindparam("b_kind"),
                fingerprint=bindparam("b_fingerprint"),
                meta=bindparam("b_meta", type_=Item.c.meta.type),
            )
        )
        values = [
            {
                "b_id": r["id"],
                "b_kind": r["kind"],
                "b_fingerprint": r["fingerprint"],
                "b_meta": r["meta"],
            }
            for r in rows
        ]
        with self.engine.begin() as conn:
            conn.execute(stmt, values)

    def missing_ids(self, library_id: int, seen: Iterable[int]) -> list[int]:
        """Present items of the library whose id is not in ``seen``.

        ``seen`` is kept as one sorted int64 array (8 bytes an item), not a Python set.
        """
        import numpy as np

        seen_ids = np.sort(np.fromiter(seen, dtype=np.int64))
        missing: list[int] = []
        page: list[int] = []

        def check() -> None:
            ids = np.asarray(page, dtype=np.int64)
            pos = np.searchsorted(seen_ids, ids)
            pos[pos >= len(seen_ids)] = 0
            known = seen_ids[pos] == ids if len(seen_ids) else np.zeros(len(ids), dtype=bool)
            missing.extend(int(i) for i in ids[~known])

        for item_id in self.iter_item_ids(library_id):
            page.append(item_id)
            if len(page) >= PAGE * 10:
                check()
                page = []
        if page:
            check()
        return missing

    def ids_outside(self, item_ids: Sequence[int], prefixes: Sequence[str]) -> list[int]:
        """Those of ``item_ids`` whose path is not under any of the folder ``prefixes``."""
        keep: list[int] = []
        with self.engine.connect() as conn:
            for start in range(0, len(item_ids), 900):
                rows = conn.execute(
                    select(Item.c.id, Item.c.path).where(
                        Item.c.id.in_(item_ids[start : start + 900])
                    )
                )
                keep.extend(
                    i
                    for i, path in rows
                    if not any(path.startswith(p.rstrip("/") + "/") for p in prefixes)
                )
        return keep

    def _existing_fingerprints(
        self, library_id: int, keys: Sequence[str]
    ) -> dict[str, tuple[int, str, bool]]:
        out: dict[str, tuple[int, str, bool]] = {}
        with self.engine.connect() as conn:
            for start in range(0, len(keys), 900):
                rows = conn.execute(
                    select(Item.c.path, Item.c.id, Item.c.fingerprint, Item.c.present).where(
                        Item.c.library_id == library_id, Item.c.path.in_(keys[start : start + 900])
                    )
                )
                for path, item_id, fp, present in rows:
                    out[path] = (item_id, fp, present)
        return out

    # ---------------------------------------------------------------- items (run side)
    def _item_ref(self, row: Any, root: str | None) -> ItemRef:
        # positional: the columns of iter_pending/iter_items, ``previous`` last when asked for
        item_id, path, path_bytes, kind, size, mtime_ns, fingerprint, meta = row[:8]
        abspath = None
        if root is not None and "://" not in root:
            abspath = os.path.join(root, path if path_bytes is None else os.fsdecode(path_bytes))
        return ItemRef(
            id=item_id,
            path=path,
            kind=kind,
            abspath=abspath,
            size=size,
            mtime_ns=mtime_ns,
            fingerprint=fingerprint,
            meta=meta,
            previous=row[8] if len(row) > 8 else None,
        )

    def _selection_filter(
        self, sel: Selection, processor: str, version: str, *, force: bool, job_id: str | None
    ) -> Any:
        """SQL condition for the items of ``sel`` that still need ``processor``."""
        cond = [Item.c.library_id == sel.library_id, Item.c.present.is_(True)]
        if sel.kinds is not None:
            cond.append(Item.c.kind.in_(sorted(sel.kinds)))
        if sel.paths is not None:
            cond.append(Item.c.path.in_(list(sel.paths)))
        if sel.only == "failed":
            cond.append(Result.c.status == Status.FAILED)
        elif sel.only == "new":
            cond.append(Result.c.id.is_(None))
        if force or sel.only == "failed":
            # everything selected, except what this very job already did (so a resumed forced
            # job does not start over)
            if job_id is not None:
                cond.append(
                    or_(Result.c.id.is_(None), Result.c.job_id.is_(None), Result.c.job_id != job_id)
                )
        else:
            cond.append(
                or_(
                    Result.c.id.is_(None),
                    Result.c.version != version,
                    Result.c.fingerprint != Item.c.fingerprint,
                    Result.c.retry_at <= utcnow(),  # a transient failure that is due again
                )
            )
        if job_id is not None and self._others_claim(processor, job_id):
            cond.append(~self._claimed_elsewhere(processor, job_id))
        return and_(*cond)

    def _join(self, processor: str) -> Any:
        return Item.outerjoin(
            Result, and_(Result.c.item_id == Item.c.id, Result.c.processor == processor)
        )

    def count_selection(self, sel: Selection) -> int:
        cond = [Item.c.library_id == sel.library_id, Item.c.present.is_(True)]
        if sel.kinds is not None:
            cond.append(Item.c.kind.in_(sorted(sel.kinds)))
        if sel.paths is not None:
            cond.append(Item.c.path.in_(list(sel.paths)))
        with self.engine.connect() as conn:
            return int(
                conn.execute(select(func.count()).select_from(Item).where(*cond)).scalar_one()
            )

    def count_pending(
        self,
        sel: Selection,
        processor: str,
        version: str,
        *,
        force: bool = False,
        job_id: str | None = None,
    ) -> int:
        cond = self._selection_filter(sel, processor, version, force=force, job_id=job_id)
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    select(func.count()).select_from(self._join(processor)).where(cond)
                ).scalar_one()
            )

    def iter_pending(
        self,
        sel: Selection,
        processor: str,
        version: str,
        *,
        root: str | None,
        force: bool = False,
        job_id: str | None = None,
        page: int = PAGE,
        with_previous: bool = False,
    ) -> Iterator[ItemRef]:
        """Stream the items that need ``processor``, in id order, one page at a time
        (with ``with_previous``, each carries the data of its last result)."""
        cond = self._selection_filter(sel, processor, version, force=force, job_id=job_id)
        cols: tuple[Any, ...] = ITEM_REF_COLUMNS
        if with_previous:
            cols = (*cols, Result.c.data.label("previous"))
        last = 0
        while True:
            with self.engine.connect() as conn:
                rows = conn.execute(
                    select(*cols)
                    .select_from(self._join(processor))
                    .where(cond, Item.c.id > last)
                    .order_by(Item.c.id)
                    .limit(page)
                ).all()
            if not rows:
                return
            last = rows[-1].id
            if job_id is not None:
                rows = self._claim(rows, processor, job_id)
            for row in rows:
                yield self._item_ref(row, root)
            # the next page's condition is made anew: which jobs are live moves on
            cond = self._selection_filter(sel, processor, version, force=force, job_id=job_id)

    def iter_items(self, library_id: int) -> Iterator[ItemRef]:
        """Stream every present item of a library."""
        lib = self.library(library_id)
        root = lib.root if lib else None
        cols = ITEM_REF_COLUMNS
        last = 0
        while True:
            with self.engine.connect() as conn:
                rows = conn.execute(
                    select(*cols)
                    .where(
                        Item.c.library_id == library_id, Item.c.present.is_(True), Item.c.id > last
                    )
                    .order_by(Item.c.id)
                    .limit(PAGE)
                ).all()
            if not rows:
                return
            for row in rows:
                yield self._item_ref(row, root)
            last = rows[-1].id

    def iter_results_raw_meta(
        self, library_id: int, processor: str, *, present: bool = True
    ) -> Iterator[tuple[str, str, str | None, dict[str, Any] | None, str | None]]:
        """``(path, kind, status, data, meta)`` per present item (``present=False``: per item
        that has gone missing) in id order, streamed, with ``processor``'s result (status
        ``None``: no result) and the item's metadata as JSON text: left undecoded for callers
        that need it only for some items. (Both JSON columns are read as text; ``data`` is
        decoded here, without SQLAlchemy's per-value layers.)"""
        from sqlalchemy import Text, cast

        last = 0
        join = self._join(processor)
        data = cast(Result.c.data, Text).label("data")
        meta = cast(Item.c.meta, Text).label("meta")
        while True:
            with self.engine.connect() as conn:
                rows = conn.execute(
                    select(Item.c.id, Item.c.path, Item.c.kind, Result.c.status, data, meta)
                    .select_from(join)
                    .where(
                        Item.c.library_id == library_id,
                        Item.c.present.is_(present),
                        Item.c.id > last,
                    )
                    .order_by(Item.c.id)
                    .limit(PAGE)
                ).all()
            if not rows:
                return
            for _id, path, kind, status, raw, meta_text in rows:
                yield path, kind, status, json.loads(raw) if raw else None, meta_text
            last = rows[-1][0]

    def undecodable_paths(self, library_id: int) -> dict[str, bytes]:
        """Shown path -> real bytes of the library's present items whose name is not UTF-8
        (few: one indexed query, the map stays small even for a huge library)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(Item.c.path, Item.c.path_bytes).where(
                    Item.c.library_id == library_id,
                    Item.c.present.is_(True),
                    Item.c.path_bytes.is_not(None),
                )
            ).all()
        return {path: bytes(raw) for path, raw in rows if raw is not None}

    def item_id(self, library_id: int, path: str) -> int | None:
        with self.engine.connect() as conn:
            return conn.execute(
                select(Item.c.id).where(Item.c.library_id == library_id, Item.c.path == path)
            ).scalar()

    # ---------------------------------------------------------------- results
    def write_outcomes(
        self,
        outcomes: Sequence[Outcome],
        *,
        processor: str,
        version: str,
        job_id: str | None,
        fingerprints: Mapping[int, str],
        job_values: Mapping[str, Any] | None = None,
    ) -> list[int]:
        """Upsert results (one row per item and processor), the item updates they carry
        (:meth:`_apply_item_update`), the changes they record (a result's ``data["change"]``
        goes to ``item_changes``, the history undo reads) and the job's counters, in one
        transaction.

        Returns the ids of the items whose update was refused (a move onto another present
        item): their result is stored as failed with the cause, and ``job_values``'
        ``succeeded``/``failed`` counters are corrected to match; the caller corrects its own.
        """
        if not outcomes and not job_values:
            return []
        self.check_file()
        now = utcnow()
        refused: list[int] = []
        with self._write_lock, self.engine.begin() as conn:
            fps = dict(fingerprints)
            written = self._still_there(conn, outcomes)
            updates = {
                o.item_id: o.item_update
                for o in written
                if o.item_update is not None and o.status is Status.OK
            }
            applied_all = self._apply_item_updates(conn, updates, now) if updates else {}
            for index, o in enumerate(written):
                if o.item_id not in applied_all:
                    continue
                applied = applied_all[o.item_id]
                if isinstance(applied, _Refused):
                    refused.append(o.item_id)
                    written[index] = Outcome(
                        o.item_id, Status.FAILED, None, applied.cause, o.duration, o.worker
                    )
                else:
                    fps[o.item_id] = applied
            transient = [o.item_id for o in written if _is_transient(o)]
            before = self._attempts(conn, processor, transient) if transient else {}
            rows = [
                {
                    "item_id": o.item_id,
                    "processor": processor,
                    "status": str(o.status),
                    "data": o.data,
                    "error": o.error,
                    "duration": o.duration,
                    "version": version,
                    "fingerprint": fps.get(o.item_id, ""),
                    "job_id": job_id,
                    "updated_at": now,
                    **_retry_columns(o, before.get(o.item_id, 0), now),
                    **_facet_columns(processor, o),
                }
                for o in written
            ]
            if rows:
                conn.execute(self._upsert_results(), rows)
            changes = [
                {
                    "job_id": job_id,
                    "item_id": o.item_id,
                    "processor": processor,
                    "change": o.data["change"],
                    "created_at": now,
                }
                for o in written
                if o.status is Status.OK and o.data and isinstance(o.data.get("change"), dict)
            ]
            if changes:
                conn.execute(insert(ItemChange), changes)
            if job_values and job_id is not None:
                values = dict(job_values)
                if refused and "succeeded" in values and "failed" in values:
                    values["succeeded"] -= len(refused)
                    values["failed"] += len(refused)
                conn.execute(update(Job).where(Job.c.id == job_id).values(**values))
        return refused

    @staticmethod
    def _still_there(conn: Connection, outcomes: Sequence[Outcome]) -> list[Outcome]:
        """The outcomes whose item is still in the catalog: one deleted while it was being
        processed (its library removed, or a scan that matched it as a move) has nowhere to
        go, and must not fail the outcomes written with it."""
        ids = [o.item_id for o in outcomes]
        found: set[int] = set()
        for start in range(0, len(ids), 900):
            chunk = ids[start : start + 900]
            found.update(conn.execute(select(Item.c.id).where(Item.c.id.in_(chunk))).scalars())
        gone = [item_id for item_id in ids if item_id not in found]
        if gone:
            log.warning("%d outcome(s) dropped: their items left the catalog meanwhile", len(gone))
        return [o for o in outcomes if o.item_id in found]

    def item_changes(self, job_id: str) -> list[dict[str, Any]]:
        """The changes a job recorded and not yet undone, oldest first, with each item's
        library, current path and presence."""
        query = (
            select(
                ItemChange.c.id,
                ItemChange.c.item_id,
                ItemChange.c.processor,
                ItemChange.c.change,
                Item.c.library_id,
                Item.c.path,
                Item.c.present,
            )
            .join(Item, Item.c.id == ItemChange.c.item_id)
            .where(ItemChange.c.job_id == job_id, ItemChange.c.undone_at.is_(None))
            .order_by(ItemChange.c.id)
        )
        with self.engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(query)]

    def record_undo(self, change_id: int, item_id: int, update_: ItemUpdate) -> str | None:
        """Mark a change undone and record the item's file as the undo left it, in one
        transaction; returns the refusal's cause when the old path is another item's."""
        now = utcnow()
        with self._write_lock, self.engine.begin() as conn:
            applied = self._apply_item_update(conn, item_id, update_, now)
            if isinstance(applied, _Refused):
                return applied.cause
            conn.execute(
                update(ItemChange).where(ItemChange.c.id == change_id).values(undone_at=now)
            )
        return None

    def _upsert_results(self) -> Any:
        stmt = self._insert(Result)
        return stmt.on_conflict_do_update(
            index_elements=["item_id", "processor"],
            set_={
                c: stmt.excluded[c]
                for c in (
                    "status",
                    "data",
                    "error",
                    "duration",
                    "version",
                    "fingerprint",
                    "job_id",
                    "updated_at",
                    "error_class",
                    "attempts",
                    "retry_at",
                    "facets",
                    "media_seconds",
                )
            },
        )

    @staticmethod
    def _attempts(conn: Connection, processor: str, item_ids: Sequence[int]) -> dict[int, int]:
        """How many transient failures in a row each item's last result counts."""
        rows = conn.execute(
            select(Result.c.item_id, Result.c.attempts).where(
                Result.c.processor == processor, Result.c.item_id.in_(item_ids)
            )
        )
        return {int(item_id): int(attempts) for item_id, attempts in rows.all()}

    def failure_classes(self, job_id: str) -> dict[str, int]:
        """How many of the job's failures are transient and how many permanent."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(Result.c.error_class, func.count())
                .where(Result.c.job_id == job_id, Result.c.status == Status.FAILED)
                .group_by(Result.c.error_class)
            ).all()
        counts = {str(ErrorClass.TRANSIENT): 0, str(ErrorClass.PERMANENT): 0}
        for error_class, n in rows:
            key = str(
                ErrorClass.TRANSIENT
                if error_class == ErrorClass.TRANSIENT
                else ErrorClass.PERMANENT
            )
            counts[key] += int(n)
        return counts

    # ---------------------------------------------------------------- claims
    def _claimed_elsewhere(self, processor: str, job_id: str) -> Any:
        """SQL condition: the item is claimed by another job that runs (see ``models.Claim``)."""
        return (
            select(Claim.c.item_id)
            .where(
                Claim.c.item_id == Item.c.id,
                Claim.c.processor == processor,
                Claim.c.job_id != job_id,
                Claim.c.job_id.in_(_live_jobs()),
            )
            .exists()
        )

    def _others_claim(self, processor: str, job_id: str) -> bool:
        """Whether another running job holds claims for ``processor``: only then is the
        (per item) condition worth adding to a query; :meth:`_claim` is what makes a claim
        exclusive, this only spares reading pages of others' items. A job that runs alone
        (the usual case) pays one small query."""
        with self.engine.connect() as conn:
            return (
                conn.execute(
                    select(Claim.c.item_id)
                    .where(
                        Claim.c.processor == processor,
                        Claim.c.job_id != job_id,
                        Claim.c.job_id.in_(_live_jobs()),
                    )
                    .limit(1)
                ).first()
                is not None
            )

    def _claim(self, rows: Sequence[Any], processor: str, job_id: str) -> list[Any]:
        """The rows of this page the job could claim: none that another running job holds.
        Two runs of the same processor on the same library so split the work."""
        ids = [row.id for row in rows]
        with self._write_lock, self.engine.begin() as conn:
            # claims of jobs that no longer run (finished, paused, dead) hold nothing
            conn.execute(
                delete(Claim).where(
                    Claim.c.processor == processor,
                    Claim.c.item_id.in_(ids),
                    Claim.c.job_id.not_in(_live_jobs()),
                )
            )
            conn.execute(
                self._insert(Claim).on_conflict_do_nothing(),
                [{"item_id": i, "processor": processor, "job_id": job_id} for i in ids],
            )
            mine = set(
                conn.execute(
                    select(Claim.c.item_id).where(
                        Claim.c.processor == processor,
                        Claim.c.job_id == job_id,
                        Claim.c.item_id.in_(ids),
                    )
                ).scalars()
            )
        return [row for row in rows if row.id in mine]

    def _apply_item_updates(
        self, conn: Connection, updates: Mapping[int, ItemUpdate], now: datetime
    ) -> dict[int, str | _Refused]:
        """:meth:`_apply_item_update` for a batch's updates, in a few statements instead of
        four an item (a comic job renames every file: they were a third of its CPU time).

        The batch is written at once only when no new path is held by an item (present or
        missing) and no two updates want the same path; otherwise each is applied in turn,
        as before, and their order decides which move wins.
        """
        rows = _item_rows(conn, list(updates))
        targets: set[tuple[int, str]] = set()
        for item_id, change in updates.items():
            row = rows.get(item_id)
            if row is None:
                return self._apply_each(conn, updates, now)
            shown = row.path if change.path is None else _stored_path(change.path)[0]
            if shown == row.path:
                continue
            if (row.library_id, shown) in targets:
                return self._apply_each(conn, updates, now)
            targets.add((row.library_id, shown))
        if _paths_taken(conn, targets):
            return self._apply_each(conn, updates, now)
        applied: dict[int, str | _Refused] = {}
        moved, kept = [], []
        for item_id, change in updates.items():
            row = rows[item_id]
            size, mtime_ns, fingerprint = _updated_fingerprint(row, change)
            values = {"b_id": item_id, "b_size": size, "b_mtime": mtime_ns, "b_fp": fingerprint}
            applied[item_id] = fingerprint
            shown, raw = (row.path, None) if change.path is None else _stored_path(change.path)
            if shown != row.path:
                moved.append({**values, "b_path": shown, "b_path_bytes": raw})
            else:
                kept.append(values)
        common: dict[Any, Any] = {
            Item.c.last_changed: now,
            Item.c.size: bindparam("b_size"),
            Item.c.mtime_ns: bindparam("b_mtime"),
            Item.c.fingerprint: bindparam("b_fp"),
        }
        by_id = update(Item).where(Item.c.id == bindparam("b_id"))
        if kept:
            conn.execute(by_id.values(common), kept)
        if moved:
            paths: dict[Any, Any] = {
                Item.c.path: bindparam("b_path"),
                Item.c.path_bytes: bindparam("b_path_bytes"),
            }
            conn.execute(by_id.values({**common, **paths}), moved)
        for library_id in sorted({row.library_id for row in rows.values()}):
            conn.execute(
                update(Library).where(Library.c.id == library_id).values(source_digest=None)
            )
        return applied

    def _apply_each(
        self, conn: Connection, updates: Mapping[int, ItemUpdate], now: datetime
    ) -> dict[int, str | _Refused]:
        return {i: self._apply_item_update(conn, i, change, now) for i, change in updates.items()}

    def _apply_item_update(
        self, conn: Connection, item_id: int, change: ItemUpdate, now: datetime
    ) -> str | _Refused:
        """Record a processor's own change to its item's file: path, size, mtime and
        fingerprint change, the id (and so every processor's results) stays. Returns the new
        fingerprint (what the result is stored with).

        The library's listing digest is forgotten, so the next scan compares the folder
        with the catalog (which now matches it) instead of trusting the old digest.

        A move onto the path of a *missing* item (``present = false``, a file that is gone)
        deletes that item and its results: its file is not coming back under that name,
        which now belongs to the moved item. A move onto a *present* item is refused
        (:class:`_Refused`): the processor overwrote another file of the library.
        """
        row = conn.execute(
            select(
                Item.c.library_id, Item.c.path, Item.c.size, Item.c.mtime_ns, Item.c.fingerprint
            ).where(Item.c.id == item_id)
        ).one()
        values: dict[str, Any] = {"last_changed": now}
        if change.path is not None:
            shown, raw = _stored_path(change.path)
            if shown != row.path:
                holder = conn.execute(
                    select(Item.c.id, Item.c.present).where(
                        Item.c.library_id == row.library_id,
                        Item.c.path == shown,
                        Item.c.id != item_id,
                    )
                ).one_or_none()
                if holder is not None and holder.present:
                    return _Refused(
                        f"the processor moved {row.path} onto {shown}, which is another item "
                        "of the library; the move was not recorded"
                    )
                if holder is not None:
                    conn.execute(delete(Result).where(Result.c.item_id == holder.id))
                    conn.execute(delete(Item).where(Item.c.id == holder.id))
                values.update(path=shown, path_bytes=raw)
        size, mtime_ns, fingerprint = _updated_fingerprint(row, change)
        values.update(size=size, mtime_ns=mtime_ns, fingerprint=fingerprint)
        conn.execute(update(Item).where(Item.c.id == item_id).values(**values))
        conn.execute(
            update(Library).where(Library.c.id == row.library_id).values(source_digest=None)
        )
        return fingerprint

    def iter_results(
        self, library_id: int, processor: str
    ) -> Iterator[tuple[str, str, dict[str, Any]]]:
        """``(path, status, data)`` of the latest result of ``processor`` for each present item;
        ``path`` is the real one (a name that is not UTF-8 as ``os.fsdecode`` gives it), so a
        playlist written from it opens the file."""
        undecodable = self.undecodable_paths(library_id)
        for path, _kind, status, data, _error in self.iter_export(
            library_id, processor, with_pending=False
        ):
            real = undecodable.get(path)
            yield (path if real is None else os.fsdecode(real)), status, data or {}

    def iter_export(
        self,
        library_id: int,
        processor: str,
        *,
        kinds: frozenset[str] | None = None,
        with_pending: bool = True,
        status: str | None = None,
    ) -> Iterator[tuple[str, str, str, dict[str, Any] | None, str | None]]:
        """``(path, kind, status, data, error)`` per present item, streamed in id order (the
        order the items were first found)."""
        last = 0
        join = self._join(processor)
        cond = [Item.c.library_id == library_id, Item.c.present.is_(True)]
        if kinds is not None:
            cond.append(Item.c.kind.in_(sorted(kinds)))
        if not with_pending:
            cond.append(Result.c.id.is_not(None))
        if status == "pending":
            cond.append(Result.c.id.is_(None))
        elif status:
            cond.append(Result.c.status == status)
        while True:
            with self.engine.connect() as conn:
                rows = conn.execute(
                    select(
                        Item.c.id,
                        Item.c.path,
                        Item.c.kind,
                        Result.c.status,
                        Result.c.data,
                        Result.c.error,
                    )
                    .select_from(join)
                    .where(*cond, Item.c.id > last)
                    .order_by(Item.c.id)
                    .limit(PAGE)
                ).all()
            if not rows:
                return
            for row in rows:
                yield row.path, row.kind, row.status or "pending", row.data, row.error
            last = rows[-1].id

    def item_results(self, library_id: int, path: str) -> dict[str, Any] | None:
        """One item with every processor's latest result, or ``None``."""
        with self.engine.connect() as conn:
            item = conn.execute(
                select(Item).where(Item.c.library_id == library_id, Item.c.path == path)
            ).first()
            if item is None:
                return None
            results = conn.execute(
                select(Result).where(Result.c.item_id == item.id).order_by(Result.c.processor)
            ).all()
            return {
                "path": item.path,
                "kind": item.kind,
                "size": item.size,
                "present": item.present,
                "meta": item.meta,
                "results": {
                    r.processor: {
                        "status": r.status,
                        "data": r.data,
                        "error": r.error,
                        "duration": r.duration,
                        "version": r.version,
                        "job_id": r.job_id,
                        "updated_at": r.updated_at.isoformat(),
                    }
                    for r in results
                },
            }

    def count_results(self, processor: str, library_id: int | None = None) -> dict[str, int]:
        q = select(Result.c.status, func.count()).where(Result.c.processor == processor)
        if library_id is not None:
            q = q.join(Item, Item.c.id == Result.c.item_id).where(Item.c.library_id == library_id)
        with self.engine.connect() as conn:
            return dict(conn.execute(q.group_by(Result.c.status)).all())

    def search_items(
        self,
        library_id: int,
        processor: str,
        *,
        q: str | None = None,
        kind: str | None = None,
        status: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[dict[str, Any]], int]:
        """A page of a library's present items (path contains ``q``) with ``processor``'s result."""
        cond = [Item.c.library_id == library_id, Item.c.present.is_(True)]
        if q:
            escaped = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            cond.append(Item.c.path.ilike(f"%{escaped}%", escape="\\"))
        if kind:
            cond.append(Item.c.kind == kind)
        if status == "pending":
            cond.append(Result.c.id.is_(None))
        elif status:
            cond.append(Result.c.status == status)
        join = self._join(processor)
        return self._item_page(join, cond, limit, offset)

    def job_items(
        self, job_id: str, *, status: str | None = None, limit: int = 50, offset: int = 0
    ) -> tuple[list[dict[str, Any]], int]:
        """A page of the results a job wrote (``status``: ok, failed or skipped)."""
        cond = [Result.c.job_id == job_id]
        if status:
            cond.append(Result.c.status == status)
        join = Result.join(Item, Item.c.id == Result.c.item_id)
        return self._item_page(join, cond, limit, offset)

    def _item_page(
        self, join: Any, cond: list[Any], limit: int, offset: int
    ) -> tuple[list[dict[str, Any]], int]:
        """One page (by path) of items with a result, and how many match in all."""
        with self.engine.connect() as conn:
            total = int(
                conn.execute(select(func.count()).select_from(join).where(*cond)).scalar_one()
            )
            rows = conn.execute(
                select(
                    Item.c.path,
                    Item.c.path_bytes,
                    Item.c.kind,
                    Item.c.size,
                    Result.c.status,
                    Result.c.error,
                    Result.c.data,
                    Result.c.duration,
                    Result.c.error_class,
                )
                .select_from(join)
                .where(*cond)
                .order_by(Item.c.path)
                .limit(limit)
                .offset(offset)
            ).all()
        return [self._item_row(r) for r in rows], total

    @staticmethod
    def _item_row(row: Any) -> dict[str, Any]:
        status = row.status or "pending"
        odd = {} if row.path_bytes is None else names.undecodable(bytes(row.path_bytes))
        return {
            **odd,
            "path": row.path,
            "kind": row.kind,
            "size": row.size,
            "status": status,
            "success": None if row.status is None else status == Status.OK,
            "error": row.error,
            "data": row.data,
            "duration": row.duration,
            "error_class": row.error_class,
        }

    def release_claims(self, conn: Connection, job_id: str) -> None:
        """Forget what a job claimed (it stopped running); in the caller's transaction."""
        conn.execute(delete(Claim).where(Claim.c.job_id == job_id))

    def update_job(self, job_id: str, **values: Any) -> None:
        """Set job columns other than ``status`` (that one changes in jobs.status only)."""
        assert "status" not in values
        with self._write_lock, self.engine.begin() as conn:
            conn.execute(update(Job).where(Job.c.id == job_id).values(**values))
