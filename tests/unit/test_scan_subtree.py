"""What a watcher's scans rely on: temp and hidden files are never items, one folder's subtree
can be scanned alone, and a moved or renamed file keeps its item and results."""

from __future__ import annotations

import os
from pathlib import Path

from mediamill.catalog.db import Catalog
from mediamill.processors.base import Outcome, Status
from mediamill.sources.folder import library_for_folder, scan_folder
from tests.conftest import make_files


def _paths(catalog: Catalog, root: Path) -> set[str]:
    library = catalog.library_by_root(root)
    assert library is not None
    return {item.path for item in catalog.iter_items(library.id)}


def test_temp_and_hidden_files_are_never_items_until_renamed_to_their_final_name(
    catalog: Catalog, tmp_path: Path
) -> None:
    root = tmp_path / "lib"
    temps = [
        "a/song.mp3.part",
        "a/movie.mkv.crdownload",
        "a/~$notes.docx",
        "a/.~lock.sheet.ods#",
        "a/.hidden.mp3",
        "a/.episode.nfo.12-3.mmtmp",
        "a/clip.PART",
    ]
    make_files(root, ["a/kept.mp3", *temps])
    library = library_for_folder(catalog, root)
    report = scan_folder(catalog, library)
    assert report.new == 1
    assert _paths(catalog, root) == {"a/kept.mp3"}
    (root / "a/song.mp3.part").rename(root / "a/song.mp3")
    assert scan_folder(catalog, library).new == 1
    assert _paths(catalog, root) == {"a/kept.mp3", "a/song.mp3"}


def test_a_subtree_scan_touches_only_that_folder(catalog: Catalog, tmp_path: Path) -> None:
    root = tmp_path / "lib"
    make_files(root, ["a/1.mp3", "a/b/2.mp3", "a0.mp3", "ab/3.mp3", "z/4.mp3"])
    library = library_for_folder(catalog, root)
    scan_folder(catalog, library)
    (root / "a/b/2.mp3").unlink()
    (root / "z/4.mp3").unlink()  # outside the subtree: not looked at
    make_files(root, ["a/b/new.mp3", "ab/new.mp3"])
    report = scan_folder(catalog, library, under="a")
    assert (report.found, report.new, report.missing, report.unchanged) == (2, 1, 1, 1)
    assert _paths(catalog, root) == {"a/1.mp3", "a/b/new.mp3", "a0.mp3", "ab/3.mp3", "z/4.mp3"}
    # the library's digest was forgotten: a full scan compares and finds the rest
    full = scan_folder(catalog, library)
    assert (full.new, full.missing) == (1, 1)
    assert _paths(catalog, root) == {"a/1.mp3", "a/b/new.mp3", "a0.mp3", "ab/3.mp3", "ab/new.mp3"}


def test_a_subtree_that_is_gone_marks_its_files_missing(catalog: Catalog, tmp_path: Path) -> None:
    root = tmp_path / "lib"
    make_files(root, ["keep/1.mp3", "gone/deep/2.mp3", "gone/3.mp3"])
    library = library_for_folder(catalog, root)
    scan_folder(catalog, library)
    for path in ("gone/deep/2.mp3", "gone/3.mp3"):
        (root / path).unlink()
    (root / "gone/deep").rmdir()
    (root / "gone").rmdir()
    assert scan_folder(catalog, library, under="gone").missing == 2
    assert _paths(catalog, root) == {"keep/1.mp3"}


def _ok(catalog: Catalog, root: Path, path: str) -> None:
    library = catalog.library_by_root(root)
    assert library is not None
    item_id = catalog.item_id(library.id, path)
    assert item_id is not None
    fingerprint = next(i.fingerprint for i in catalog.iter_items(library.id) if i.id == item_id)
    outcome = Outcome(item_id=item_id, status=Status.OK, data={"seen": path}, duration=0.1)
    catalog.write_outcomes(
        [outcome], processor="probe", version="1", job_id=None, fingerprints={item_id: fingerprint}
    )


def test_a_renamed_or_moved_file_keeps_its_item_and_results(
    catalog: Catalog, tmp_path: Path
) -> None:
    root = tmp_path / "lib"
    make_files(root, ["in/a.mp3", "in/b.mp3"])
    make_files(root, ["in/c.mp3"], content=b"other content")
    library = library_for_folder(catalog, root)
    scan_folder(catalog, library)
    _ok(catalog, root, "in/a.mp3")
    old_id = catalog.item_id(library.id, "in/a.mp3")
    os.makedirs(root / "out")
    os.rename(root / "in/a.mp3", root / "out/renamed.mp3")
    # in two subtree scans, the second one finds the file the first marked missing
    assert scan_folder(catalog, library, under="in").missing == 1
    report = scan_folder(catalog, library, under="out")
    assert (report.new, report.moved) == (0, 1)
    assert catalog.item_id(library.id, "out/renamed.mp3") == old_id
    results = catalog.item_results(library.id, "out/renamed.mp3")
    assert results is not None
    assert results["results"]["probe"]["data"] == {"seen": "in/a.mp3"}
    # the same in one full scan, and the result is still fresh (nothing to redo)
    os.rename(root / "out/renamed.mp3", root / "in/back.mp3")
    report = scan_folder(catalog, library)
    assert (report.new, report.missing, report.moved) == (0, 0, 1)
    assert catalog.item_id(library.id, "in/back.mp3") == old_id
    from mediamill.catalog.db import Selection

    pending = catalog.count_pending(Selection(library.id), "probe", "1")
    assert pending == 2, "a/b/c: only b and c wait for probe, the moved file is fresh"
