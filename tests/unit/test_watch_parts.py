"""The watcher's parts on their own: when a dirty folder settles, which file systems are
polled, and how changes are queued as jobs."""

from __future__ import annotations

from pathlib import Path

import pytest

from mediamill.catalog.db import Catalog, LibraryRef
from mediamill.jobs import manager
from mediamill.ops import create_job
from mediamill.sources.folder import library_for_folder, scan_folder
from mediamill.watch import queue
from mediamill.watch.mounts import mount_of, polling_reason
from mediamill.watch.queue import queue_processors
from mediamill.watch.settle import Settler, common_folder
from tests.conftest import make_files


def test_a_folder_is_released_after_the_settle_time_and_two_equal_looks() -> None:
    settler = Settler(settle=5.0, gap=1.0)
    settler.mark("a/b", now=0.0)
    assert settler.due(3.9) == []
    assert settler.due(4.0) == ["a/b"]  # first look one gap before the settle time
    assert not settler.looked("a/b", "size+mtime 1", now=4.0)
    assert settler.next_due() == 5.0
    assert not settler.looked("a/b", "size+mtime 2", now=5.0), "still growing: not released"
    assert settler.looked("a/b", "size+mtime 2", now=6.0)
    assert len(settler) == 0


def test_an_event_between_the_looks_starts_the_wait_again() -> None:
    settler = Settler(settle=5.0, gap=1.0)
    settler.mark("a", now=0.0)
    settler.looked("a", "d", now=4.0)
    settler.mark("a", now=4.5)
    assert settler.due(5.0) == []
    assert settler.due(8.5) == ["a"]
    assert not settler.looked("a", "d", now=8.5), "the look before the event does not count"


def test_dirty_folders_fold_into_the_folder_that_holds_them() -> None:
    settler = Settler(settle=2.0)
    assert settler.mark("a/b/c", now=0.0)
    assert settler.mark("x", now=0.0)
    assert settler.mark("a", now=1.0), "a holds a/b/c: one scan of a covers both"
    assert not settler.mark("a/b", now=1.5)
    assert sorted(settler.due(10.0)) == ["a", "x"]
    assert common_folder("music/a/1.mp3", "music/b") == "music"
    assert common_folder("a", "b") == ""


def test_network_and_fuse_file_systems_are_polled_local_ones_watched(tmp_path: Path) -> None:
    info = tmp_path / "mountinfo"
    info.write_text(
        "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
        "30 22 0:40 / /mnt/nas rw,relatime shared:5 - nfs4 nas:/media rw,vers=4.2\n"
        "31 22 0:41 / /mnt/my\\040share rw - cifs //pc/share rw\n"
        "32 22 0:42 / /mnt/cloud rw - fuse.rclone remote: rw\n"
        "33 22 8:17 / /mnt/usb rw - fuseblk /dev/sdb1 rw\n"
        "34 30 0:43 / /mnt/nas/local rw - ext4 /dev/sdc1 rw\n"
    )
    assert mount_of("/mnt/nas/movies", str(info)) == ("/mnt/nas", "nfs4")
    assert "nfs4 at /mnt/nas" in (polling_reason("/mnt/nas/movies", str(info)) or "")
    assert "cifs at /mnt/my share" in (polling_reason("/mnt/my share/x", str(info)) or "")
    assert polling_reason("/mnt/cloud/a", str(info)) is not None
    assert polling_reason("/mnt/usb/a", str(info)) is None, "ntfs-3g is a local disk"
    assert polling_reason("/mnt/nas/local/a", str(info)) is None, "the mount on top wins"
    assert polling_reason("/home/me/music", str(info)) is None


def _queued(catalog: Catalog) -> list[dict[str, object]]:
    jobs, _ = manager.list_jobs(catalog, status="queued")
    return jobs


def _scanned(catalog: Catalog, root: Path, names: list[str]) -> LibraryRef:
    """A folder library of ``names``, scanned."""
    make_files(root, names)
    library = library_for_folder(catalog, root)
    scan_folder(catalog, library)
    return library


def _added(catalog: Catalog, library: LibraryRef, names: list[str]) -> list[int]:
    """The ids a scan finds for ``names``, made in the library's folder."""
    make_files(Path(library.root), names)
    return list(scan_folder(catalog, library).new_ids)


def test_changes_join_the_queued_job_of_their_library_and_processor(
    catalog: Catalog, tmp_path: Path
) -> None:
    library = _scanned(catalog, tmp_path / "lib", ["old.mp3"])
    assert queue_processors(catalog, library, ["probe"], item_ids=[]) == []
    ids = _added(catalog, library, ["a/1.mp3", "a/2.mp3"])
    [job] = queue_processors(catalog, library, ["probe"], item_ids=ids)
    assert len(ids) == 2
    ids = _added(catalog, library, ["b/3.mp3"])
    assert queue_processors(catalog, library, ["probe"], item_ids=ids) == [job]
    [queued] = _queued(catalog)
    assert queued["selection"] == {"paths": ["a/1.mp3", "a/2.mp3", "b/3.mp3"]}
    # catching up names every item not fresh: the one never processed joins the job
    assert queue_processors(catalog, library, ["probe"]) == [job]
    assert _queued(catalog)[0]["selection"] == {
        "paths": ["a/1.mp3", "a/2.mp3", "b/3.mp3", "old.mp3"]
    }


def test_catching_up_on_more_items_than_a_job_names_covers_the_whole_library(
    catalog: Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    library = _scanned(catalog, tmp_path / "lib", ["a.mp3", "b.mp3", "c.mp3"])
    monkeypatch.setattr(queue, "MAX_PATHS", 2)
    [job] = queue_processors(catalog, library, ["probe"])
    [queued] = _queued(catalog)
    assert (queued["job_id"], queued["selection"]) == (job, {})


def test_changes_never_join_a_job_someone_queued_with_their_own_options(
    catalog: Catalog, tmp_path: Path
) -> None:
    """A dry run or a hand-picked selection queued from the page stays as it was asked."""
    library = _scanned(catalog, tmp_path / "lib", ["old.mp3"])
    dry = create_job(catalog, "probe", library, options={"dry_run": True}, queued=True)
    picked = create_job(
        catalog, "probe", library, options={}, selection={"paths": ["old.mp3"]}, queued=True
    )
    ids = _added(catalog, library, ["new.mp3"])
    [job] = queue_processors(catalog, library, ["probe"], item_ids=ids)
    assert job not in (dry, picked)
    queued = {j["job_id"]: j["selection"] for j in _queued(catalog)}
    assert queued == {dry: {}, picked: {"paths": ["old.mp3"]}, job: {"paths": ["new.mp3"]}}
