"""The runner's stages, each alone: batching, the dispatch window, gathering, the executor's
gathering cadence, the meter, and the single writer (on SQLite and PostgreSQL)."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path

from sqlalchemy import delete, select

from mediamill.catalog.db import Catalog
from mediamill.catalog.models import Item, Job, Result
from mediamill.core import ItemRef, ItemUpdate, Outcome, Status
from mediamill.engine.progress import Progress
from mediamill.engine.stages import Dispatcher, Meter, batch_size_for, batched
from mediamill.engine.throttle import AdaptiveWindow, RateLimit
from mediamill.engine.writer import FLUSH_ITEMS, Counters, Writer
from mediamill.executors import base as executors
from mediamill.executors.local import GATHER_EVERY, ThreadPool
from mediamill.jobs import manager
from tests.conftest import make_files

ECHO = "tests.helpers.processors:Echo"


def refs(root: Path, count: int) -> list[ItemRef]:
    names = [f"f{i:03d}.bin" for i in range(count)]
    make_files(root, names)
    return [
        ItemRef(i + 1, name, "other", abspath=str(root / name), fingerprint=f"fp{i}")
        for i, name in enumerate(names)
    ]


# ---------------------------------------------------------------- batch
def test_batches_are_cut_lazily_and_the_last_is_shorter() -> None:
    taken: list[int] = []

    def items() -> Iterator[ItemRef]:
        for i in range(10):
            taken.append(i)
            yield ItemRef(i, f"{i}", "other")

    batches = batched(items(), 4)
    assert [item.id for item in next(batches)] == [0, 1, 2, 3]
    assert taken == [0, 1, 2, 3], "nothing is read ahead of the batch"
    assert [len(b) for b in batches] == [4, 2]


def test_a_short_job_gives_every_worker_about_four_batches() -> None:
    assert batch_size_for(asked=32, to_do=10_000, workers=4) == 32
    assert batch_size_for(asked=32, to_do=40, workers=2) == 5
    assert batch_size_for(asked=32, to_do=0, workers=2) == 1
    assert batch_size_for(asked=32, to_do=10_000, workers=2, rate=10) == 5, "a worker's second"


# ---------------------------------------------------------------- dispatch, window, gather
def serial(_root: Path) -> executors.Executor:
    return executors.create("serial", executors.ExecutorJob(ECHO, {}))


def make_dispatcher(
    tmp_path: Path,
    items: list[ItemRef],
    batch_size: int,
    window: int,
    rate: float | None = None,
    make: Callable[[], executors.Executor] | None = None,
) -> Dispatcher:
    """A dispatcher of ``items`` in batches of ``batch_size`` to a serial executor."""
    return Dispatcher(
        make or (lambda: serial(tmp_path)),
        batched(iter(items), batch_size),
        batch_size=batch_size,
        window=AdaptiveWindow(window, None),
        rate_limit=RateLimit(rate),
    )


def test_the_window_bounds_the_items_on_the_executor(tmp_path: Path) -> None:
    items = refs(tmp_path, 30)
    built: list[executors.Executor] = []

    def make() -> executors.Executor:
        built.append(serial(tmp_path))
        return built[-1]

    dispatcher = make_dispatcher(tmp_path, items, 4, 2, make=make)
    assert built == [], "no executor before the first batch"
    dispatcher.fill()
    assert (dispatcher.pending(), len(dispatcher.in_flight)) == (8, 8)
    dispatcher.fill()
    assert dispatcher.pending() == 8, "a full window takes no more"
    seen: list[int] = []
    while not dispatcher.finished():
        dispatcher.fill()
        assert dispatcher.pending() <= 8
        done, _delay = dispatcher.gather(1.0)
        seen += [item.id for item, outcome in done if outcome.status is Status.OK]
    assert sorted(seen) == [item.id for item in items], "every item once, with its outcome"
    assert len(built) == 1
    assert dispatcher.in_flight == {}
    dispatcher.stop()


def test_a_rate_limit_holds_batches_back(tmp_path: Path) -> None:
    items = refs(tmp_path, 12)
    dispatcher = make_dispatcher(tmp_path, items, 2, 10, rate=4.0)
    dispatcher.fill()
    assert dispatcher.pending() == 4, "a burst of one second at 4 items/s"
    dispatcher.stop()


def test_abandon_drops_the_queued_items_and_submits_no_more(tmp_path: Path) -> None:
    items = refs(tmp_path, 20)
    dispatcher = make_dispatcher(tmp_path, items, 5, 2)
    dispatcher.fill()
    dispatcher.abandon()
    assert (dispatcher.pending(), dispatcher.in_flight) == (0, {})
    dispatcher.fill()
    assert dispatcher.finished()
    assert dispatcher.gather(0.1)[0] == []
    dispatcher.stop()


def test_an_outcome_for_an_item_not_in_flight_is_ignored(tmp_path: Path) -> None:
    items = refs(tmp_path, 3)
    dispatcher = make_dispatcher(tmp_path, items, 3, 1)
    dispatcher.fill()
    del dispatcher.in_flight[items[1].id]  # as if it had been reported already
    done, _ = dispatcher.gather(1.0)
    assert [item.id for item, _o in done] == [items[0].id, items[2].id]
    dispatcher.stop()


def test_the_local_pools_let_short_outcomes_pile_up_and_serial_never_waits() -> None:
    job = executors.ExecutorJob(ECHO, {}, workers=2)
    pool = ThreadPool(job)  # not started: the queue alone counts
    for start in (0, 4):
        pool.submit([ItemRef(i, f"{i}", "other") for i in range(start, start + 4)])
    short = [Outcome(1, Status.OK, {}, None, 0.0005)]
    long = [Outcome(1, Status.OK, {}, None, 0.01)]
    assert pool.gather_delay(short, waited=0.0) == GATHER_EVERY
    assert pool.gather_delay(long, waited=0.0) == 0.0, "long items: one wake-up each is cheap"
    assert pool.gather_delay(short, waited=0.05) == 0.0, "they did not come one by one"
    assert pool.gather_delay([], waited=0.0) == 0.0
    assert executors.create("serial", job).gather_delay(short, 0.0) == 0.0


# ---------------------------------------------------------------- meter
def test_the_meter_follows_the_rate_of_the_last_ten_seconds() -> None:
    now = [100.0]
    meter = Meter(Progress("j", "p", total=1000), clock=lambda: now[0])
    counters = Counters()
    for second in range(1, 31):
        now[0] = 100.0 + second
        counters.processed += 10 if second <= 15 else 2
        meter.observe(Outcome(1, Status.OK, None, None, 0.5, "w-0"))
        progress = meter.update(counters)
    assert round(progress.rate, 1) == 2.0, "the first 15 s at 10/s are forgotten"
    assert progress.eta_seconds == (1000 - counters.processed) / progress.rate
    assert progress.busy == {"w-0": 0.5}


# ---------------------------------------------------------------- write
def library_items(catalog: Catalog, root: Path, names: list[str]) -> list[ItemRef]:
    make_files(root, names)
    library = catalog.add_library(str(root))
    catalog.insert_items(
        library.id,
        [
            {"path": n, "kind": "other", "size": 64, "mtime_ns": 1, "fingerprint": "64:1"}
            for n in names
        ],
    )
    return list(catalog.iter_items(library.id))


def stored(catalog: Catalog, job_id: str) -> tuple[dict[int, str], tuple[int, int, int]]:
    with catalog.engine.connect() as conn:
        results = dict(conn.execute(select(Result.c.item_id, Result.c.status)).all())
        job = conn.execute(
            select(Job.c.processed_items, Job.c.succeeded, Job.c.failed).where(Job.c.id == job_id)
        ).one()
    return results, tuple(job)


def test_the_writer_stores_results_and_counters_together(catalog: Catalog, tmp_path: Path) -> None:
    items = library_items(catalog, tmp_path / "lib", ["a", "b", "c"])
    job_id = manager.create_job(catalog, ECHO, None)
    now = [0.0]
    writer = Writer(
        catalog,
        job_id=job_id,
        processor=ECHO,
        version="1",
        dry_run=False,
        counters=Counters(),
        clock=lambda: now[0],
    )
    writer.add(items[0], Outcome(items[0].id, Status.OK, {}, None, 0.1))
    writer.add(items[1], Outcome(items[1].id, Status.FAILED, None, "bad", 0.1))
    assert not writer.due()
    assert stored(catalog, job_id) == ({}, (0, 0, 0)), "nothing written before a flush"
    now[0] = 0.6
    assert writer.due()
    writer.flush()
    assert stored(catalog, job_id) == (
        {items[0].id: "ok", items[1].id: "failed"},
        (2, 1, 1),
    )
    assert writer.pending == 0


def test_the_writer_is_due_after_a_thousand_outcomes(catalog: Catalog, tmp_path: Path) -> None:
    items = library_items(catalog, tmp_path / "lib", ["a"])
    writer = Writer(
        catalog,
        job_id=manager.create_job(catalog, ECHO, None),
        processor=ECHO,
        version="1",
        dry_run=False,
        counters=Counters(),
        clock=lambda: 0.0,
    )
    for _ in itertools.repeat(None, FLUSH_ITEMS - 1):
        writer.add(items[0], Outcome(items[0].id, Status.OK, {}, None, 0.0))
    assert not writer.due()
    writer.add(items[0], Outcome(items[0].id, Status.OK, {}, None, 0.0))
    assert writer.due()


def test_a_dry_run_writes_counters_and_no_result(catalog: Catalog, tmp_path: Path) -> None:
    items = library_items(catalog, tmp_path / "lib", ["a", "b"])
    job_id = manager.create_job(catalog, ECHO, None)
    writer = Writer(
        catalog, job_id=job_id, processor=ECHO, version="1", dry_run=True, counters=Counters()
    )
    update = ItemUpdate(path="moved")
    for item in items:
        writer.add(item, Outcome(item.id, Status.OK, {}, None, 0.1, item_update=update))
    writer.flush()
    assert stored(catalog, job_id) == ({}, (2, 2, 0))
    library = catalog.library_by_root(tmp_path / "lib")
    assert library is not None
    assert [i.path for i in catalog.iter_items(library.id)] == ["a", "b"], "nothing moved"


def test_a_refused_move_is_counted_as_failed(catalog: Catalog, tmp_path: Path) -> None:
    items = library_items(catalog, tmp_path / "lib", ["a", "b"])
    job_id = manager.create_job(catalog, ECHO, None)
    counters = Counters()
    writer = Writer(
        catalog, job_id=job_id, processor=ECHO, version="1", dry_run=False, counters=counters
    )
    onto_b = ItemUpdate(path="b")
    writer.add(items[0], Outcome(items[0].id, Status.OK, {}, None, 0.1, item_update=onto_b))
    writer.flush()
    assert (counters.ok, counters.failed) == (0, 1)
    assert stored(catalog, job_id) == ({items[0].id: "failed"}, (1, 0, 1))


def test_an_outcome_for_an_item_that_left_the_catalog_is_dropped_and_the_rest_stored(
    catalog: Catalog, tmp_path: Path
) -> None:
    """Its library was removed, or a scan matched it as a move, while a worker had it."""
    items = library_items(catalog, tmp_path / "lib", ["a", "b"])
    job_id = manager.create_job(catalog, ECHO, None)
    with catalog.engine.begin() as conn:
        conn.execute(delete(Item).where(Item.c.id == items[0].id))
    writer = Writer(
        catalog, job_id=job_id, processor=ECHO, version="1", dry_run=False, counters=Counters()
    )
    for item in items:
        writer.add(item, Outcome(item.id, Status.OK, {}, None, 0.1))
    writer.flush()
    assert stored(catalog, job_id)[0] == {items[1].id: "ok"}
