"""One comic's plan and its safe application: rules, renames, collisions, conversions."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mediamill.comic import archive as arc
from mediamill.comic import comicinfo as ci
from mediamill.comic import work
from mediamill.comic.options import ComicError, Options
from mediamill.testing.comics import page_set, write_comic

DATA = Path(__file__).parent.parent / "data" / "comic"


def _tags(path: Path) -> dict[str, str]:
    with arc.ComicArchive(path) as archive:
        raw = archive.comicinfo()
    return {} if raw is None else ci.parse(raw).fields


def _pages(path: Path) -> list[bytes]:
    with arc.ComicArchive(path) as archive:
        return [archive.read(name) for name in archive.pages()]


def _run(root: Path, rel: str, **options: object) -> work.Applied:
    opts = Options.from_mapping(options)
    return work.apply(root, work.plan(root, rel, opts), opts)


def test_missing_fields_are_filled_from_the_name_and_real_values_are_kept(tmp_path: Path) -> None:
    xml = "<ComicInfo><Title>The Real Title</Title><Series>Saga Deluxe</Series></ComicInfo>"
    path = write_comic(tmp_path / "Saga" / "Saga 007 (2013).cbz", pages=4, comicinfo=xml)
    done = _run(tmp_path, "Saga/Saga 007 (2013).cbz")
    assert done.action == "tagged"
    tags = _tags(path)
    assert tags == {
        "Title": "The Real Title",
        "Series": "Saga Deluxe",
        "Number": "7",
        "Year": "2013",
    }
    assert _pages(path) == [data for _, data in page_set(4)]
    assert done.change is not None
    assert done.change["fields"] == {
        "Number": [None, "7"],
        "Year": [None, "2013"],
    }


def test_overwrite_applies_the_rules_over_existing_values(tmp_path: Path) -> None:
    path = write_comic(
        tmp_path / "Saga 007.cbz", comicinfo="<ComicInfo><Series>Wrong</Series></ComicInfo>"
    )
    _run(tmp_path, "Saga 007.cbz", overwrite="true")
    assert _tags(path)["Series"] == "Saga"


def test_an_archive_without_comicinfo_gets_one_and_the_series_falls_back_to_the_folder(
    tmp_path: Path,
) -> None:
    path = write_comic(tmp_path / "Saga (2012)" / "001.cbz")
    _run(tmp_path, "Saga (2012)/001.cbz")
    assert _tags(path) == {"Series": "Saga", "Number": "1"}


def test_an_unchanged_file_is_not_touched(tmp_path: Path) -> None:
    path = write_comic(tmp_path / "Saga 001.cbz")
    _run(tmp_path, "Saga 001.cbz")
    before = path.stat()
    again = _run(tmp_path, "Saga 001.cbz")
    assert again.action == "unchanged"
    assert again.change is None
    assert path.stat().st_mtime_ns == before.st_mtime_ns
    assert path.stat().st_ino == before.st_ino


def test_a_cb7_is_retagged_as_a_cb7(tmp_path: Path) -> None:
    path = write_comic(tmp_path / "Saga 002.cb7", pages=3)
    _run(tmp_path, "Saga 002.cb7")
    with arc.ComicArchive(path) as archive:
        assert archive.format == "7z"
    assert _tags(path)["Number"] == "2"


def test_rar_is_never_written_but_converted_to_cbz_on_request(tmp_path: Path) -> None:
    shutil.copy(DATA / "rar5.cbr", tmp_path / "Saga 003.cbr")
    before = (tmp_path / "Saga 003.cbr").read_bytes()
    opts = Options()
    plan = work.plan(tmp_path, "Saga 003.cbr", opts)
    assert plan.blocked is not None
    assert "--set convert=cbz" in plan.blocked
    assert work.apply(tmp_path, plan, opts).action == "unchanged"
    assert (tmp_path / "Saga 003.cbr").read_bytes() == before
    done = _run(tmp_path, "Saga 003.cbr", convert="cbz")
    assert done.action == "converted"
    assert done.relpath == "Saga 003.cbz"
    assert not (tmp_path / "Saga 003.cbr").exists()
    with (
        arc.ComicArchive(tmp_path / "Saga 003.cbz") as archive,
        arc.ComicArchive(DATA / "rar5.cbr") as rar,
    ):
        assert dict(archive.members()) | {} == dict(rar.members()) | {
            "ComicInfo.xml": archive.comicinfo()
        }


def test_rename_by_template_and_a_taken_name_is_a_duplicate_or_a_conflict(tmp_path: Path) -> None:
    write_comic(tmp_path / "Saga_001.cbz", seed=1)
    write_comic(
        tmp_path / "Saga #001.cbz",
        seed=1,
        comicinfo="<ComicInfo><Series>Saga</Series><Number>1</Number></ComicInfo>",
    )
    write_comic(tmp_path / "Saga-001 other.cbz", seed=2)
    write_comic(tmp_path / "Saga 002 scan.cbz", seed=3)
    assert (
        _run(tmp_path, "Saga 002 scan.cbz", rename="{series} #{issue:03}").relpath
        == "Saga #002.cbz"
    )
    dup = _run(tmp_path, "Saga_001.cbz", rename="{series} #{issue:03}")
    assert dup.action == "tagged+duplicate"
    assert dup.relpath == "Saga_001.cbz"
    conflict = _run(tmp_path, "Saga-001 other.cbz", rename="{series} #{issue:03}")
    assert conflict.action.endswith("conflict")
    assert _tags(tmp_path / "Saga #001.cbz")["Series"] == "Saga"  # the taken name is untouched


def test_duplicates_can_be_moved_to_a_duplicates_folder_without_overwriting(tmp_path: Path) -> None:
    write_comic(tmp_path / "Saga #001.cbz", seed=1)
    write_comic(tmp_path / "dupes" / "Saga #001.cbz", seed=9)
    write_comic(tmp_path / "saga 1.cbz", seed=1)
    done = _run(
        tmp_path, "saga 1.cbz", rename="Saga #{issue:03}", rules="number", duplicates="dupes"
    )
    assert done.relpath == "dupes/Saga #001 (2).cbz"
    assert (tmp_path / "dupes" / "Saga #001.cbz").exists()


def test_a_malformed_comicinfo_fails_the_file_and_leaves_it_alone(tmp_path: Path) -> None:
    path = write_comic(tmp_path / "Saga 001.cbz", comicinfo="<ComicInfo><Series>x</ComicInfo>")
    before = path.read_bytes()
    with pytest.raises(ci.ComicInfoError, match="not well-formed"):
        _run(tmp_path, "Saga 001.cbz")
    assert path.read_bytes() == before


def test_unknown_rules_and_formats_are_refused() -> None:
    with pytest.raises(ComicError, match="unknown rule"):
        Options.from_mapping({"rules": "series,colour"})
    with pytest.raises(ComicError, match="never written"):
        Options.from_mapping({"convert": "cbr"})


def test_a_name_of_255_bytes_is_retagged_through_a_temp_name_that_fits(tmp_path: Path) -> None:
    name = "Saga 007 " + "x" * (255 - len("Saga 007 .cbz")) + ".cbz"
    assert len(name.encode()) == 255
    path = write_comic(tmp_path / name)
    assert _run(tmp_path, name).action == "tagged"
    assert _tags(path)["Number"] == "7"
