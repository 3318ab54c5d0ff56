"""Scanning a folder: incremental, safe with links and odd names, kind from content."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mediamill.catalog.db import Catalog
from mediamill.sources.folder import (
    EmptyFolderError,
    detect_kind,
    library_for_folder,
    scan_folder,
)
from mediamill.walk import ScanError
from tests.conftest import make_files


def _scan(catalog: Catalog, root: Path) -> dict[str, object]:
    return scan_folder(catalog, library_for_folder(catalog, root)).as_dict()


def _paths(catalog: Catalog, root: Path) -> set[str]:
    library = catalog.library_by_root(root)
    assert library is not None
    return {item.path for item in catalog.iter_items(library.id)}


def test_rescan_reports_new_changed_unchanged_and_missing(catalog: Catalog, tmp_path: Path) -> None:
    root = tmp_path / "lib"
    files = make_files(root, ["a/1.mp3", "a/2.mp3", "b/3.flac", "4.mkv"])
    report = _scan(catalog, root)
    assert (report["new"], report["unchanged"], report["missing"]) == (4, 0, 0)
    files[0].write_bytes(b"changed and longer")
    files[3].unlink()
    make_files(root, ["c/5.ogg"])
    report = _scan(catalog, root)
    assert (report["new"], report["changed"], report["unchanged"], report["missing"]) == (
        1,
        1,
        2,
        1,
    )
    assert _paths(catalog, root) == {"a/1.mp3", "a/2.mp3", "b/3.flac", "c/5.ogg"}
    files[3].write_bytes(b"back")
    report = _scan(catalog, root)
    assert (report["changed"], report["missing"]) == (1, 0), "a file that returns is present again"


def test_symlink_loops_broken_links_and_links_out_of_the_root_are_survived(
    catalog: Catalog, tmp_path: Path
) -> None:
    root = tmp_path / "lib"
    make_files(root, ["music/a.mp3"])
    outside = tmp_path / "outside"
    make_files(outside, ["secret.mp3"])
    os.symlink(root, root / "music" / "loop")  # a loop back to the root
    os.symlink(root / "nowhere.mp3", root / "broken.mp3")
    os.symlink(outside, root / "escape")
    os.symlink(outside / "secret.mp3", root / "escape.mp3")
    os.symlink(root / "music", root / "alias")  # a second way into a folder inside the root
    report = _scan(catalog, root)
    assert _paths(catalog, root) == {"music/a.mp3"}
    causes = {p["path"]: p["cause"] for p in report["problems"]}  # type: ignore[union-attr]
    assert causes["broken.mp3"] == "broken symlink"
    assert causes["escape"] == "symlink points outside the library root"
    assert causes["escape.mp3"] == "symlink points outside the library root"


def test_odd_names_are_scanned_and_kept_exactly(catalog: Catalog, tmp_path: Path) -> None:
    root = tmp_path / "lib"
    root.mkdir()
    long_name = "é" * 120 + ".mp3"  # 240 bytes of UTF-8
    for name in ("new\nline.mp3", long_name, "  spaces  .flac", "ünï 日本.ogg"):
        (root / name).write_bytes(b"x")
    raw = os.path.join(os.fsencode(root), b"latin1-\xe9t\xe9.mp3")
    with open(raw, "wb") as fh:
        fh.write(b"x")
    _scan(catalog, root)
    paths = _paths(catalog, root)
    assert {"new\nline.mp3", long_name, "  spaces  .flac", "ünï 日本.ogg"} <= paths
    assert "latin1-\\xe9t\\xe9.mp3" in paths, "undecodable bytes are shown escaped"
    library = catalog.library_by_root(root)
    assert library is not None
    item = next(i for i in catalog.iter_items(library.id) if i.path.startswith("latin1"))
    assert item.abspath is not None
    assert os.path.exists(item.abspath), "the real file name is kept for the workers"
    assert _scan(catalog, root)["unchanged"] == 5


def test_hidden_files_and_nas_housekeeping_are_ignored(catalog: Catalog, tmp_path: Path) -> None:
    root = tmp_path / "lib"
    make_files(
        root,
        [
            "a.mp3",
            ".hidden.mp3",
            "@eaDir/a.mp3/SYNOFILE_THUMB_M.jpg",
            "._a.mp3",
            "#recycle/old.mp3",
        ],
    )
    _scan(catalog, root)
    assert _paths(catalog, root) == {"a.mp3"}


_SCAN_IN_CHILD = """
import json, sys
from mediamill.catalog.db import Catalog
from mediamill.sources.folder import library_for_folder, scan_folder
catalog = Catalog.open(sys.argv[1])
print(json.dumps(scan_folder(catalog, library_for_folder(catalog, sys.argv[2])).as_dict()))
"""


def _scan_as_a_user(catalog: Catalog, db_url: str, root: Path) -> dict[str, object]:
    """Scan ``root`` as a user for whom permissions hold. Root reads every folder, so as
    root the scan runs in a child without the capabilities that bypass them."""
    if os.geteuid() != 0:
        return _scan(catalog, root)
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root, and no setpriv to drop the capability to read anything")
    without = ["--bounding-set", "-dac_override,-dac_read_search"]
    child = subprocess.run(
        [setpriv, *without, sys.executable, "-c", _SCAN_IN_CHILD, db_url, str(root)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert child.returncode == 0, child.stderr
    report: dict[str, object] = json.loads(child.stdout)
    return report


def test_an_unreadable_folder_is_reported_and_its_items_are_not_marked_missing(
    catalog: Catalog, db_url: str, tmp_path: Path
) -> None:
    root = tmp_path / "lib"
    make_files(root, ["open/a.mp3", "closed/b.mp3", "closed/c.mp3"])
    _scan(catalog, root)
    (root / "closed").chmod(0)
    try:
        report = _scan_as_a_user(catalog, db_url, root)
    finally:
        (root / "closed").chmod(0o755)
    assert report["missing"] == 0
    assert report["unchanged"] == 1
    problems = report["problems"]
    assert isinstance(problems, list)
    assert [p["path"] for p in problems] == ["closed"]
    assert "unreadable folder" in problems[0]["cause"]
    assert _paths(catalog, root) == {"open/a.mp3", "closed/b.mp3", "closed/c.mp3"}


def test_a_missing_root_is_a_clear_error(catalog: Catalog, tmp_path: Path) -> None:
    with pytest.raises(ScanError, match="is not a folder"):
        library_for_folder(catalog, tmp_path / "nope")


def test_kind_comes_from_content_when_the_extension_lies(
    media_library: Path, tmp_path: Path
) -> None:
    flac = next(media_library.rglob("*.flac"))
    jpeg = next(media_library.rglob("*.jpg"))
    lying = tmp_path / "song.txt"
    lying.write_bytes(flac.read_bytes())
    assert detect_kind(lying.name, str(lying), lying.stat().st_size) == "audio"
    photo = tmp_path / "photo.mp3"
    photo.write_bytes(jpeg.read_bytes())
    assert detect_kind(photo.name, str(photo), photo.stat().st_size) == "image"
    empty = tmp_path / "empty.mp3"
    empty.write_bytes(b"")
    assert detect_kind(empty.name, str(empty), 0) == "audio"


@pytest.mark.parametrize(
    ("name", "muxer", "codec"),
    [
        ("tone.mp2", "mp2", "mp2"),
        ("tone.eac3", "eac3", "eac3"),
        ("tone.w64", "w64", "pcm_s16le"),
        ("tone.wv", "wv", "wavpack"),
        ("tone.tta", "tta", "tta"),
        ("mystery.bin", "mp2", "mp2"),  # a name that says nothing: FFmpeg reads the content
        ("backup.sound", "caf", "pcm_s16le"),
    ],
)
def test_any_file_ffmpeg_reads_as_audio_is_scanned_as_audio(
    catalog: Catalog, tmp_path: Path, name: str, muxer: str, codec: str
) -> None:
    from mediamill.processors.probe import probe_file
    from mediamill.testing.media import write_tone

    root = tmp_path / "lib"
    path = write_tone(root / name, muxer, codec)
    (root / "notes.nfo").write_text("Ripped with care.\nTrack list:\n1. Tone\n")
    (root / "random.dat").write_bytes(os.urandom(20_000))

    _scan(catalog, root)

    library = catalog.library_by_root(root)
    assert library is not None
    kinds = {item.path: item.kind for item in catalog.iter_items(library.id)}
    assert kinds == {name: "audio", "notes.nfo": "other", "random.dat": "other"}
    assert probe_file(path)["streams"][0]["codec"] == codec


def test_a_rescan_matches_every_file_whatever_its_name_sorts_like(
    catalog: Catalog, tmp_path: Path
) -> None:
    """Names chosen to trip a path-ordered merge: '-' and '.' and ' ' sort before '/', case,
    accents, digits, and a folder reached through a link (walked out of order)."""
    root = tmp_path / "lib"
    names = [
        "a-b.mp3",
        "a/x.mp3",
        "a/y/z.mp3",
        "a0.mp3",
        "A.mp3",
        "é.mp3",
        "z/é/b.mp3",
        "a b/c.mp3",
        "a.b/c.mp3",
        "b/a-/1.mp3",
        "b/a/1.mp3",
        "b/a.mp3",
        "日本/曲.flac",
    ]
    make_files(root, [*names, ".store/x/song.mp3"])
    os.symlink(root / ".store" / "x", root / "b" / "linked")  # only reachable by the link
    first = _scan(catalog, root)
    assert first["new"] == len(names) + 1
    assert "b/linked/song.mp3" in _paths(catalog, root)
    again = _scan(catalog, root)
    assert (again["unchanged"], again["new"], again["changed"], again["missing"]) == (
        len(names) + 1,
        0,
        0,
        0,
    )
    (root / "a" / "y" / "z.mp3").unlink()
    (root / "b" / "a.mp3").write_bytes(b"changed!")
    third = _scan(catalog, root)
    assert (third["changed"], third["missing"], third["unchanged"]) == (1, 1, len(names) - 1)


def test_an_unchanged_tree_is_not_compared_file_by_file(
    catalog: Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second scan of an untouched tree matches the digest of the first and never reads
    the catalog's items; one changed byte of size brings the comparison back."""
    root = tmp_path / "lib"
    files = make_files(root, ["a/1.mp3", "a/2.mp3", "b/3.flac"])
    _scan(catalog, root)

    def no_compare(library_id: int) -> object:
        raise AssertionError("an unchanged tree was compared file by file")

    with monkeypatch.context() as patch:
        patch.setattr(catalog, "iter_files", no_compare)
        again = _scan(catalog, root)
    assert (again["found"], again["unchanged"], again["new"], again["missing"]) == (3, 3, 0, 0)
    files[1].write_bytes(b"longer than before")
    after = _scan(catalog, root)
    assert (after["changed"], after["unchanged"]) == (1, 2)


def test_a_scan_that_stops_halfway_is_not_taken_for_complete(
    catalog: Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A scan dies after writing its new items; the tree goes back to how it was. The next
    scan must not trust what was recorded before the broken one: the file is missing."""
    root = tmp_path / "lib"
    make_files(root, ["a.mp3"])
    _scan(catalog, root)
    (added,) = make_files(root, ["b.mp3"])

    def crash(item_ids: object) -> None:
        raise OSError("disk full")

    with monkeypatch.context() as patch:
        patch.setattr(catalog, "mark_missing", crash)
        with pytest.raises(OSError, match="disk full"):
            _scan(catalog, root)
    added.unlink()
    report = _scan(catalog, root)
    assert (report["missing"], report["unchanged"]) == (1, 1)
    library = catalog.library_by_root(root)
    assert library is not None
    assert sum(catalog.library_counts(library.id).values()) == 1


def test_items_changed_behind_the_scans_back_are_set_right_by_the_next_scan(
    catalog: Catalog, tmp_path: Path
) -> None:
    """The digest alone is not trusted: an item marked missing by hand (the tree untouched)
    makes the next scan compare, and the file is present again."""
    root = tmp_path / "lib"
    make_files(root, ["a.mp3", "b.mp3"])
    _scan(catalog, root)
    library = catalog.library_by_root(root)
    assert library is not None
    catalog.mark_missing([next(catalog.iter_items(library.id)).id])
    report = _scan(catalog, root)
    assert (report["changed"], report["unchanged"]) == (1, 1)
    assert sum(catalog.library_counts(library.id).values()) == 2


def test_an_emptied_folder_is_refused_as_an_unmounted_share_until_forced(
    catalog: Catalog, tmp_path: Path
) -> None:
    """A NAS share that is not mounted leaves an empty mount point: the scan must not mark
    the whole library missing. When the files really are gone, a forced scan says so."""
    root = tmp_path / "mnt" / "music"
    make_files(root, ["a/1.mp3", "a/2.mp3", "b/3.flac"])
    _scan(catalog, root)
    parked = tmp_path / "parked"
    root.rename(parked)
    root.mkdir()  # the mount point, without the share
    with pytest.raises(EmptyFolderError, match="holds no files now, but the catalog has 3"):
        _scan(catalog, root)
    library = catalog.library_by_root(root)
    assert library is not None
    assert sum(catalog.library_counts(library.id).values()) == 3, "nothing went missing"
    forced = scan_folder(catalog, library, allow_empty=True).as_dict()
    assert (forced["missing"], forced["found"]) == (3, 0)
    assert sum(catalog.library_counts(library.id).values()) == 0
    root.rmdir()
    parked.rename(root)  # mounted again: every file is back
    back = _scan(catalog, root)
    assert (back["changed"], back["missing"]) == (3, 0)
