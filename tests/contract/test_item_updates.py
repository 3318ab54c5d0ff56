"""A processor that rewrites or renames its item's file reports it (``ItemUpdate``), and the
writer records it with the result: the next scan sees no change, the item keeps its id and
every other processor's results, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from mediamill import ops
from mediamill.catalog.db import Catalog
from mediamill.core import ItemUpdate, Outcome, Status
from tests.conftest import make_files
from tests.helpers.run import results, run_folder

ECHO = "tests.helpers.processors:Echo"
REWRITER = "tests.helpers.processors:Rewriter"
RENAMER = "tests.helpers.processors:Renamer"
NAMES = ["a.bin", "sub/b.bin", "sub/deeper/c.bin", "d.bin"]


def scan(catalog: Catalog, root: Path) -> dict[str, object]:
    library = ops.resolve_library(catalog, str(root))
    return ops.refresh_library(catalog, library)


def no_change(report: dict[str, object]) -> bool:
    return (report["new"], report["changed"], report["missing"]) == (0, 0, 0)


def item_ids(catalog: Catalog, root: Path) -> dict[str, int]:
    library = catalog.library_by_root(root)
    assert library is not None
    return {item.path: item.id for item in catalog.iter_items(library.id)}


def test_files_rewritten_in_place_are_not_changed_for_the_next_scan(
    catalog: Catalog, tmp_path: Path
) -> None:
    root = tmp_path / "lib"
    make_files(root, NAMES)
    assert run_folder(catalog, root, ECHO)["succeeded"] == len(NAMES)
    before = item_ids(catalog, root)

    job = run_folder(catalog, root, REWRITER)

    assert (job["status"], job["succeeded"]) == ("completed", len(NAMES))
    assert all((root / n).stat().st_size > 64 for n in NAMES), "the files were rewritten"
    assert no_change(scan(catalog, root))
    assert item_ids(catalog, root) == before
    assert {p: r[0] for p, r in results(catalog, root, ECHO).items()} == dict.fromkeys(
        NAMES, "ok"
    ), "the other processor's results are kept"
    again = run_folder(catalog, root, REWRITER)
    assert again["succeeded"] == 0, "its own results are fresh: nothing to redo"


@pytest.mark.parametrize("executor", ["serial", "threads", "processes"])
def test_renamed_files_keep_their_item_and_every_result(
    executor: str, catalog: Catalog, tmp_path: Path
) -> None:
    root = tmp_path / "lib"
    make_files(root, NAMES)
    run_folder(catalog, root, ECHO)
    before = item_ids(catalog, root)

    job = run_folder(catalog, root, RENAMER, executor=executor, workers=2, batch_size=1)

    renamed = {n: n.rpartition("/")[0] + "/renamed-" + n.rpartition("/")[2] for n in NAMES}
    renamed = {n: r.lstrip("/") for n, r in renamed.items()}
    assert (job["status"], job["succeeded"]) == ("completed", len(NAMES))
    assert all((root / r).is_file() and not (root / n).exists() for n, r in renamed.items())
    assert no_change(scan(catalog, root))
    assert item_ids(catalog, root) == {renamed[n]: i for n, i in before.items()}
    echo = results(catalog, root, ECHO)
    assert {p: r[0] for p, r in echo.items()} == dict.fromkeys(renamed.values(), "ok")
    assert echo["renamed-a.bin"][1] == {"size": 64, "name": "a.bin"}
    assert run_folder(catalog, root, ECHO)["succeeded"] == 0, "a rename keeps results fresh"


def test_a_processor_change_forgets_the_listing_digest(catalog: Catalog, tmp_path: Path) -> None:
    """The scan trusts an unchanged listing digest without comparing: after a rename the
    digest must be gone, or the next scan would keep the old paths."""
    root = tmp_path / "lib"
    make_files(root, NAMES)
    run_folder(catalog, root, ECHO)
    library = catalog.library_by_root(root)
    assert library is not None
    assert catalog.source_digest(library.id) is not None

    run_folder(catalog, root, RENAMER, renames={"d.bin": "e.bin"})

    assert catalog.source_digest(library.id) is None
    report = scan(catalog, root)
    assert no_change(report)
    assert report["unchanged"] == len(NAMES)
    assert catalog.source_digest(library.id) is not None, "the comparison recorded a new one"


def test_a_dry_run_applies_no_item_update(catalog: Catalog, tmp_path: Path) -> None:
    root = tmp_path / "lib"
    make_files(root, NAMES)
    before_scan = scan(catalog, root)
    assert before_scan["new"] == len(NAMES)
    before = item_ids(catalog, root)

    renamer = run_folder(catalog, root, RENAMER, dry_run=True)
    rewriter = run_folder(catalog, root, REWRITER, dry_run=True)

    assert renamer["summary"]["actions"] == {"rename": len(NAMES)}, "it ran, describing"
    assert rewriter["summary"]["would_process"] == len(NAMES)

    assert all((root / n).stat().st_size == 64 for n in NAMES), "nothing was touched"
    assert item_ids(catalog, root) == before
    assert results(catalog, root, RENAMER) == dict.fromkeys(NAMES, ("pending", None, None))
    assert no_change(scan(catalog, root))


def test_a_rename_onto_a_missing_items_path_takes_it_over(catalog: Catalog, tmp_path: Path) -> None:
    """A missing item (a file that is gone) is a tombstone; a file renamed onto its path is
    the moved item, which keeps its id and results; the tombstone and its results go."""
    root = tmp_path / "lib"
    make_files(root, [*NAMES, "gone.bin"])
    run_folder(catalog, root, ECHO)
    (root / "gone.bin").unlink()
    assert scan(catalog, root)["missing"] == 1
    a_id = item_ids(catalog, root)["a.bin"]

    job = run_folder(catalog, root, RENAMER, renames={"a.bin": "gone.bin"})

    assert (job["status"], job["failed"]) == ("completed", 0)
    assert item_ids(catalog, root)["gone.bin"] == a_id
    assert "a.bin" not in item_ids(catalog, root)
    assert results(catalog, root, ECHO)["gone.bin"][1] == {"size": 64, "name": "a.bin"}
    assert no_change(scan(catalog, root))


def test_a_rename_onto_another_present_item_fails_that_item_and_the_job_goes_on(
    catalog: Catalog, tmp_path: Path
) -> None:
    root = tmp_path / "lib"
    make_files(root, NAMES)
    run_folder(catalog, root, ECHO)
    before = item_ids(catalog, root)

    job = run_folder(catalog, root, RENAMER, renames={"a.bin": "d.bin", "sub/b.bin": "b2.bin"})

    assert (job["status"], job["succeeded"], job["failed"]) == ("completed", 3, 1)
    status, data, error = results(catalog, root, RENAMER)["a.bin"]
    assert (status, data) == ("failed", None)
    assert error == (
        "the processor moved a.bin onto d.bin, which is another item of the library; "
        "the move was not recorded"
    )
    after = item_ids(catalog, root)
    assert after["a.bin"] == before["a.bin"]
    assert after["d.bin"] == before["d.bin"]
    assert after["b2.bin"] == before["sub/b.bin"], "the other items' moves are recorded"


def test_moves_written_together_are_recorded_as_if_one_after_the_other(
    catalog: Catalog, tmp_path: Path
) -> None:
    """The writer records a batch's moves at once; when two of them want the same path, or
    one wants the path another item holds, the order of the batch decides as it would one
    move at a time: the first to take a name keeps it, a move onto a present item fails."""
    root = tmp_path / "lib"
    make_files(root, NAMES)
    scan(catalog, root)
    ids = item_ids(catalog, root)
    a, b, c, d = (ids[n] for n in NAMES)

    def write(moves: dict[int, str]) -> list[int]:
        outcomes = [
            Outcome(i, Status.OK, {}, None, 0.1, item_update=ItemUpdate(path=p, size=64))
            for i, p in moves.items()
        ]
        return catalog.write_outcomes(
            outcomes, processor="renamer", version="1", job_id=None, fingerprints={}
        )

    assert write({a: "a2.bin", b: "b2.bin"}) == [], "distinct free names: both recorded"
    assert write({c: "same.bin", d: "same.bin"}) == [d], "the second onto the same name fails"
    assert write({a: "d.bin", d: "d2.bin"}) == [a], "d.bin was still an item's when a moved"
    assert write({d: "d3.bin", a: "same.bin"}) == [a], "same.bin is c's"
    assert write({c: "c2.bin", a: "same.bin"}) == [], "c left same.bin before a took it"
    assert item_ids(catalog, root) == {
        "same.bin": a,
        "b2.bin": b,
        "c2.bin": c,
        "d3.bin": d,
    }
