"""The catalog on every database: SQLite, and PostgreSQL (when reachable; CI requires it)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select

from mediamill.catalog.db import HEAD_REVISION, Catalog, Selection
from mediamill.catalog.models import Result
from mediamill.jobs import manager
from mediamill.jobs.status import JobStatus, transition
from mediamill.processors.base import Outcome, Status
from mediamill.sources.base import SourceEntry
from tests.conftest import make_files
from tests.helpers.run import results, run_folder

ECHO = "tests.helpers.processors:Echo"


def test_head_revision_constant_matches_alembic_head() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from mediamill.catalog import db

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(db.__file__).parent / "migrations"))
    assert ScriptDirectory.from_config(cfg).get_current_head() == HEAD_REVISION


def test_a_run_writes_one_result_per_item_and_a_rerun_skips_fresh_items(
    catalog: Catalog, tmp_path: Path
) -> None:
    root = tmp_path / "lib"
    make_files(root, [f"d{i % 3}/f{i}.bin" for i in range(50)])
    first = run_folder(catalog, root, ECHO, executor="threads", workers=2, batch_size=7)
    assert (first["status"], first["succeeded"], first["total_items"]) == ("completed", 50, 50)
    second = run_folder(catalog, root, ECHO, executor="threads", workers=2)
    assert second["status"] == "completed"
    assert (second["processed_items"], second["skipped"], second["succeeded"]) == (50, 50, 0)
    with catalog.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Result)).scalar() == 50


def test_a_changed_file_is_processed_again_and_force_redoes_everything(
    catalog: Catalog, tmp_path: Path
) -> None:
    root = tmp_path / "lib"
    files = make_files(root, [f"f{i}.bin" for i in range(10)])
    run_folder(catalog, root, ECHO, executor="serial")
    files[3].write_bytes(b"longer content now")
    job = run_folder(catalog, root, ECHO, executor="serial")
    assert (job["succeeded"], job["skipped"]) == (1, 9)
    assert results(catalog, root, ECHO)["f3.bin"][1] == {"size": 18, "name": "f3.bin"}
    forced = run_folder(catalog, root, ECHO, executor="serial", force=True)
    assert (forced["succeeded"], forced["skipped"]) == (10, 0)


def test_limit_and_dry_run(catalog: Catalog, tmp_path: Path) -> None:
    root = tmp_path / "lib"
    make_files(root, [f"f{i}.bin" for i in range(10)])
    dry = run_folder(catalog, root, ECHO, executor="serial", dry_run=True)
    assert dry["status"] == "completed"
    assert dry["summary"]["would_process"] == 10
    assert all(r[0] == "pending" for r in results(catalog, root, ECHO).values()), (
        "a dry run stores no result"
    )
    limited = run_folder(catalog, root, ECHO, executor="serial", limit=4)
    assert (limited["succeeded"], limited["total_items"]) == (4, 4)
    rest = run_folder(catalog, root, ECHO, executor="serial")
    assert (rest["succeeded"], rest["skipped"]) == (6, 4)


def test_retry_failed_selects_only_failed_items(catalog: Catalog, tmp_path: Path) -> None:
    root = tmp_path / "lib"
    make_files(root, ["fail-a.bin", "fail-b.bin", "ok.bin"])
    run_folder(catalog, root, ECHO, executor="serial")
    library = catalog.library_by_root(root)
    assert library is not None
    sel = Selection(library.id, only="failed")
    assert catalog.count_pending(sel, ECHO, "1", force=False) == 2


def test_results_upsert_never_duplicates(catalog: Catalog, tmp_path: Path) -> None:
    root = tmp_path / "lib"
    make_files(root, ["a.bin"])
    run_folder(catalog, root, ECHO, executor="serial")
    library = catalog.library_by_root(root)
    assert library is not None
    item_id = catalog.item_id(library.id, "a.bin")
    assert item_id is not None
    for status in (Status.FAILED, Status.OK):
        catalog.write_outcomes(
            [Outcome(item_id, status, {"n": 1}, None, 0.1)],
            processor=ECHO,
            version="1",
            job_id=None,
            fingerprints={item_id: "x"},
        )
    with catalog.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Result)).scalar() == 1


def test_source_entries_sync_incrementally(catalog: Catalog) -> None:
    library = catalog.add_library("m3u+file:///tmp/list.m3u", kind="source")
    entries = [SourceEntry(f"movie/{i}", "movie", {"title": f"T{i}"}) for i in range(5)]
    assert catalog.sync_entries(library.id, entries)["new"] == 5
    entries[2] = SourceEntry("movie/2", "movie", {"title": "renamed"})
    counts = catalog.sync_entries(library.id, entries[:4])
    assert counts == {"new": 0, "changed": 1, "unchanged": 3, "missing": 1}
    keys = [item.path for item in catalog.iter_items(library.id)]
    assert keys == ["movie/0", "movie/1", "movie/2", "movie/3"]


def test_the_export_stamp_moves_with_every_item_and_result_change(catalog: Catalog) -> None:
    """What strm compares to skip its cleanup walk: equal while nothing changes, different
    after a new, changed or vanished entry and after a result is written, on every database."""
    library = catalog.add_library("m3u+file:///tmp/stamp.m3u", kind="source")
    other = catalog.add_library("m3u+file:///tmp/other.m3u", kind="source")
    entries = [SourceEntry(f"movie/{i}", "movie", {"title": f"T{i}"}) for i in range(4)]
    catalog.sync_entries(library.id, entries)
    stamps = [catalog.export_stamp(library.id, "strm")]
    assert catalog.export_stamp(library.id, "strm") == stamps[0], "nothing changed"
    catalog.sync_entries(library.id, entries)  # the same entries again
    assert catalog.export_stamp(library.id, "strm") == stamps[0]

    def changed() -> bool:
        stamps.append(catalog.export_stamp(library.id, "strm"))
        return stamps[-1] not in stamps[:-1]

    catalog.sync_entries(library.id, [*entries[:3], SourceEntry("movie/3", "movie", {"t": 1})])
    assert changed(), "a changed entry"
    catalog.sync_entries(library.id, entries[:3])
    assert changed(), "a vanished entry"
    catalog.sync_entries(library.id, [*entries[:3], SourceEntry("movie/9", "movie", {})])
    assert changed(), "a new entry"
    item_id = catalog.item_id(library.id, "movie/0")
    assert item_id is not None
    catalog.write_outcomes(
        [Outcome(item_id, Status.OK, {"files": []}, None, 0.1)],
        processor="strm",
        version="1",
        job_id=None,
        fingerprints={item_id: "x"},
    )
    assert changed(), "a result written"
    catalog.write_outcomes(
        [Outcome(item_id, Status.OK, {"files": []}, None, 0.1)],
        processor="probe",
        version="1",
        job_id=None,
        fingerprints={item_id: "x"},
    )
    catalog.sync_entries(other.id, entries)
    assert catalog.export_stamp(library.id, "strm") == stamps[-1], "other processors, libraries"


def test_job_states_change_only_along_allowed_transitions(catalog: Catalog) -> None:
    job_id = manager.create_job(catalog, ECHO, None)
    assert not transition(catalog, job_id, JobStatus.COMPLETED), "queued cannot complete"
    assert transition(catalog, job_id, JobStatus.RUNNING, expect=JobStatus.QUEUED)
    assert not transition(catalog, job_id, JobStatus.RUNNING, expect=JobStatus.QUEUED), (
        "a second claimer loses"
    )
    assert transition(catalog, job_id, JobStatus.COMPLETED)
    job = manager.get_job(catalog, job_id)
    assert job["status"] == "completed"
    assert job["completed_at"] is not None
    assert not transition(catalog, job_id, JobStatus.RUNNING)


def test_a_new_sqlite_catalog_has_the_schema_that_migrating_step_by_step_gives(
    tmp_path: Path,
) -> None:
    """A new embedded catalog is created from the models and stamped, not migrated; both
    ways must give the same tables, columns, indexes and constraints."""
    from alembic.autogenerate import compare_metadata
    from alembic.command import upgrade as alembic_upgrade
    from alembic.config import Config
    from alembic.migration import MigrationContext
    from sqlalchemy import create_engine, inspect, text

    from mediamill.catalog import db
    from mediamill.catalog.models import metadata

    created = Catalog.open(f"sqlite:///{tmp_path / 'created.db'}")
    migrated_engine = create_engine(f"sqlite:///{tmp_path / 'migrated.db'}")
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(db.__file__).parent / "migrations"))
    with migrated_engine.begin() as conn:
        cfg.attributes["connection"] = conn
        alembic_upgrade(cfg, "head")

    def schema(engine: object) -> dict[str, object]:
        insp = inspect(engine)
        return {
            table: (
                [(c["name"], str(c["type"]), c["nullable"]) for c in insp.get_columns(table)],
                sorted((i["name"], tuple(i["column_names"])) for i in insp.get_indexes(table)),
                sorted(tuple(u["column_names"]) for u in insp.get_unique_constraints(table)),
                sorted(
                    (f["referred_table"], tuple(f["constrained_columns"]))
                    for f in insp.get_foreign_keys(table)
                ),
            )
            for table in sorted(insp.get_table_names())
        }

    assert schema(created.engine) == schema(migrated_engine)
    with migrated_engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []
    with created.engine.connect() as conn:
        stamped = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    assert stamped == [HEAD_REVISION]  # so Alembic takes it from here at the next migration
    created.close()
