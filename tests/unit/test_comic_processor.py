"""The comic processor as the engine calls it: options, library config, ItemUpdate."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from mediamill.comic import archive as arc
from mediamill.comic import comicinfo as ci
from mediamill.comic.options import ComicError
from mediamill.core import ItemRef, Processed
from mediamill.processors import base as registry
from mediamill.testing.comics import write_comic

DATA = Path(__file__).parent.parent / "data" / "comic"


def _item(root: Path, rel: str) -> ItemRef:
    st = (root / rel).stat()
    return ItemRef(1, rel, "comic", str(root / rel), st.st_size, st.st_mtime_ns)


def _tags(path: Path) -> dict[str, str]:
    with arc.ComicArchive(path) as archive:
        raw = archive.comicinfo()
    assert raw is not None
    return ci.parse(raw).fields


def test_a_retag_and_rename_return_the_new_path_size_and_mtime(tmp_path: Path) -> None:
    write_comic(tmp_path / "Saga" / "saga 007.cbz")
    processor = registry.create("comic", {"rename": "{series} #{issue:03}"})
    out = processor.process(_item(tmp_path, "Saga/saga 007.cbz"))
    assert isinstance(out, Processed)
    assert out.data["action"] == "tagged+renamed"
    assert out.item_update is not None
    assert out.item_update.path == "Saga/saga #007.cbz"
    st = os.stat(tmp_path / "Saga" / "saga #007.cbz")
    assert (out.item_update.size, out.item_update.mtime_ns) == (st.st_size, st.st_mtime_ns)
    assert out.data["change"]["path_before"] == "Saga/saga 007.cbz"


def test_a_library_sets_its_own_rules_and_the_job_options_win(tmp_path: Path) -> None:
    (tmp_path / ".mediamill-comic.toml").write_text(
        'rules = "series"\nrename = "{series} {issue}"\n'
    )
    write_comic(tmp_path / "Saga 007 (2013).cbz")
    write_comic(tmp_path / "Saga 008 (2013).cbz")
    registry.create("comic", {}).process(_item(tmp_path, "Saga 007 (2013).cbz"))
    assert _tags(tmp_path / "Saga 7.cbz") == {"Series": "Saga"}
    registry.create("comic", {"rules": "series,year", "rename": ""}).process(
        _item(tmp_path, "Saga 008 (2013).cbz")
    )
    assert _tags(tmp_path / "Saga 008 (2013).cbz") == {"Series": "Saga", "Year": "2013"}


def test_force_applies_the_rules_over_existing_values(tmp_path: Path) -> None:
    write_comic(
        tmp_path / "Saga 007.cbz", comicinfo="<ComicInfo><Series>Wrong</Series></ComicInfo>"
    )
    registry.create("comic", {}).process(_item(tmp_path, "Saga 007.cbz"))
    assert _tags(tmp_path / "Saga 007.cbz")["Series"] == "Wrong"
    registry.create("comic", {"force": True}).process(_item(tmp_path, "Saga 007.cbz"))
    assert _tags(tmp_path / "Saga 007.cbz")["Series"] == "Saga"


def test_a_dry_run_plans_and_touches_nothing(tmp_path: Path) -> None:
    path = write_comic(tmp_path / "Saga 007.cbz")
    before = path.read_bytes()
    out = registry.create("comic", {"dry_run": True}).process(_item(tmp_path, "Saga 007.cbz"))
    assert isinstance(out, dict)
    assert out["plan"] == "tag: Series: (none) → Saga, Number: (none) → 7"
    assert path.read_bytes() == before


def test_bad_options_and_a_bad_library_config_fail_with_the_cause(tmp_path: Path) -> None:
    with pytest.raises(ComicError, match="unknown rule"):
        registry.create("comic", {"rules": "colour"})
    (tmp_path / ".mediamill-comic.toml").write_text("colour = 1\n")
    write_comic(tmp_path / "Saga 007.cbz")
    with pytest.raises(ComicError, match="unknown key"):
        registry.create("comic", {}).process(_item(tmp_path, "Saga 007.cbz"))


def test_a_rename_that_fails_after_a_conversion_still_reports_the_converted_file(
    tmp_path: Path,
) -> None:
    """The .cbr became a .cbz (the .cbr is gone) when the rename's folder cannot be made: the
    outcome still carries the new path and the change, so the catalog follows the file and
    undo knows it; the note says why it was not renamed."""
    shutil.copy(DATA / "rar5.cbr", tmp_path / "Old 005.cbr")
    (tmp_path / "Old").write_text("a file where the template wants a folder")
    options = {"convert": "cbz", "rename": "{series}/{series} #{issue:03}"}
    out = registry.create("comic", options).process(_item(tmp_path, "Old 005.cbr"))
    assert isinstance(out, Processed)
    assert out.data["action"] == "converted+not renamed", out.data
    assert out.data["note"] == f"not renamed: a file is where a folder should be ({tmp_path}/Old)"
    assert out.item_update is not None
    assert out.item_update.path == "Old 005.cbz"
    assert not (tmp_path / "Old 005.cbr").exists()
    assert out.item_update.size == (tmp_path / "Old 005.cbz").stat().st_size
    assert out.data["change"]["path_after"] == "Old 005.cbz"


def test_a_duplicates_folder_outside_the_library_is_refused_up_front() -> None:
    with pytest.raises(ComicError, match="duplicates must be a folder inside the library"):
        registry.create("comic", {"duplicates": "../elsewhere"})
