"""The strm processor driven directly (setup/process/finish) on entries from the stand-in."""

# The XML parsed here is the .nfo output of this project, not untrusted input.
# ruff: noqa: S314

from __future__ import annotations

import csv
import json
import os
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from mediamill.processors.base import FinishContext, ItemRef, Skip
from mediamill.processors.strm import MARKER, StrmProcessor
from mediamill.sources import open_source
from mediamill.testing.vodserver import VodCatalog, VodServer, make_catalog


class TinyCatalog:
    """What finish needs from the catalog: the present items of a library with their results
    and metadata, and the items that went missing with their last results (the same
    interface as mediamill.catalog.db.Catalog)."""

    def __init__(
        self,
        items: list[ItemRef],
        data: list[dict[str, Any]],
        gone: Sequence[tuple[ItemRef, dict[str, Any]]] = (),
    ) -> None:
        self.items, self.data, self.gone = items, data, list(gone)

    def iter_results_raw_meta(
        self, library_id: int | None, processor: str, *, present: bool = True
    ) -> Iterator[tuple[str, str, str | None, dict[str, Any] | None, str | None]]:
        pairs = zip(self.items, self.data, strict=True) if present else iter(self.gone)
        for item, data in pairs:
            yield item.path, item.kind, "ok", data, json.dumps(item.meta)

    def export_stamp(self, library_id: int | None, processor: str) -> str:
        """Changes whenever the items or their results do (as the catalog's does)."""
        state = [(i.path, i.meta, d) for i, d in zip(self.items, self.data, strict=True)]
        return json.dumps(state, sort_keys=True, default=str)


def scan(server: VodServer) -> list[ItemRef]:
    source = open_source(server.xtream_spec, options={"request_rate": 0, "backoff": 0.001})
    return [
        ItemRef(id=i, path=e.key, kind=e.kind, meta=e.meta)
        for i, e in enumerate(source.iter_entries(), 1)
    ]


#: per output folder: every item run() exported there, with its last result (what the
#: catalog keeps, so an item left out of a later run counts as missing, as in the catalog)
_EXPORTED: dict[str, dict[str, tuple[ItemRef, dict[str, Any]]]] = {}


def run(
    items: list[ItemRef], options: dict[str, Any], *, workers: int = 1
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    processor = StrmProcessor(options)
    processor.setup()
    try:
        if workers == 1:
            data = [processor.process(item) for item in items]
        else:
            with ThreadPoolExecutor(workers) as pool:
                data = list(pool.map(processor.process, items))
    finally:
        processor.teardown()
    known = _EXPORTED.setdefault(str(options["output"]), {})
    present = {item.path for item in items}
    gone = [pair for key, pair in known.items() if key not in present]
    if not options.get("dry_run"):  # dry runs store no results
        known.update((item.path, (item, d)) for item, d in zip(items, data, strict=True))
    ctx = FinishContext(
        library_root=None,
        job_id="job-1",
        options=options,
        dry_run=bool(options.get("dry_run")),
        counters={},
        catalog=TinyCatalog(items, data, gone),
        library_id=1,
    )
    return data, processor.finish(ctx)


def exported(root: Path) -> list[Path]:
    """Every file and folder under ``root`` but mediamill's marker in the root."""
    return [p for p in root.rglob("*") if p != root / MARKER]


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {
        p.relative_to(root).as_posix(): (p.stat().st_ino, p.stat().st_mtime_ns)
        for p in exported(root)
    }


@pytest.fixture
def catalog() -> VodCatalog:
    return make_catalog(
        movies=14, series=3, episodes_per_series=4, seed=5, duplicates=9, nasty_names=True
    )


@pytest.fixture
def server(catalog: VodCatalog) -> Iterator[VodServer]:
    with VodServer(catalog) as srv:
        yield srv


def test_export_writes_the_kodi_layout_and_every_nfo_parses(
    server: VodServer, tmp_path: Path
) -> None:
    items = scan(server)
    data, summary = run(items, {"output": str(tmp_path)})
    assert {d["action"] for d in data} == {"created"}
    files = sorted(p.relative_to(tmp_path).as_posix() for p in exported(tmp_path) if p.is_file())
    owned = {path for d in data for path in d["files"]}
    assert set(files) == owned
    assert len({d["files"][0] for d in data}) == len(items)  # no two entries share a .strm
    for path in files:
        assert path.startswith(("Movies/", "TV Shows/"))
        assert all(len(part.encode()) <= 255 for part in path.split("/"))
        if path.endswith(".nfo"):
            ET.parse(tmp_path / path)
    assert (tmp_path / "Movies/CON_/CON_.strm").read_text() == (
        f"{server.url}/movie/alice/s3cret-pass/4.mkv\n"
    )
    assert not any(tmp_path.parent.glob("etc*"))
    assert len(list(tmp_path.glob("TV Shows/*/tvshow.nfo"))) == 3
    assert len(list(tmp_path.glob("TV Shows/*/Season 00/*.strm"))) == 3
    assert summary["would_remove"] == []
    assert summary["collisions"] == []


def test_a_rerun_writes_nothing(server: VodServer, tmp_path: Path) -> None:
    items = scan(server)
    run(items, {"output": str(tmp_path)})
    before = snapshot(tmp_path)
    data, summary = run(scan(server), {"output": str(tmp_path), "cleanup": "apply"})
    assert {d["action"] for d in data} == {"unchanged"}
    assert sum(d["written"] for d in data) == 0
    assert snapshot(tmp_path) == before
    assert summary["removed"] == []
    assert summary["removed_dirs"] == 0


def test_renamed_and_removed_titles_are_previewed_then_cleaned_up(
    server: VodServer, catalog: VodCatalog, tmp_path: Path
) -> None:
    first, _summary = run(scan(server), {"output": str(tmp_path)})
    files_of = {item.path: d["files"] for item, d in zip(scan(server), first, strict=True)}
    catalog.renamed[7] = "A Brand New Name"  # movie/8 changes its title
    catalog.removed.add(8)  # movie/9 leaves the provider
    items = scan(server)
    data, preview = run(items, {"output": str(tmp_path)})
    moved = next(d for d in data if d["files"][0].startswith("Movies/A Brand New Name"))
    assert moved["action"] == "created"
    assert all((tmp_path / path).exists() for path in moved["files"])
    expected = sorted(files_of["movie/8"] + files_of["movie/9"])
    assert preview["would_remove"] == expected
    assert preview["would_remove_dirs"] == 2
    assert all((tmp_path / p).exists() for p in expected)

    _data, applied = run(items, {"output": str(tmp_path), "cleanup": "apply"})
    assert applied["removed"] == expected
    assert applied["removed_dirs"] == 2
    remaining = {p.relative_to(tmp_path).as_posix() for p in exported(tmp_path) if p.is_file()}
    assert remaining == {path for d in data for path in d["files"]}
    assert not [d for d in tmp_path.rglob("*") if d.is_dir() and not any(d.iterdir())]


def test_dry_run_touches_nothing_and_reports_what_would_change(
    server: VodServer, catalog: VodCatalog, tmp_path: Path
) -> None:
    fresh = tmp_path / "fresh"
    data, summary = run(scan(server), {"output": str(fresh), "dry_run": True})
    assert {d["action"] for d in data} == {"would_create"}
    assert not fresh.exists()

    out = tmp_path / "out"
    run(scan(server), {"output": str(out)})
    before = snapshot(out)
    catalog.renamed[7] = "Renamed In Dry Run"
    server.password = "n3w-pass"  # noqa: S105 - every URL changes
    items = scan_with(server, "n3w-pass")
    data, summary = run(items, {"output": str(out), "dry_run": True, "cleanup": "apply"})
    assert {d["action"] for d in data} == {"would_update", "would_create"}
    assert summary["removed"] == []
    assert len(summary["would_remove"]) == 2
    assert snapshot(out) == before


def scan_with(server: VodServer, password: str) -> list[ItemRef]:
    spec = f"xtream+http://alice:{password}@127.0.0.1:{server.port}"
    source = open_source(spec, options={"request_rate": 0})
    return [
        ItemRef(id=i, path=e.key, kind=e.kind, meta=e.meta)
        for i, e in enumerate(source.iter_entries())
    ]


def test_threads_export_one_show_at_once_safely(tmp_path: Path) -> None:
    catalog = make_catalog(movies=0, series=1, episodes_per_series=40, seed=3)
    with VodServer(catalog) as srv:
        items = scan(srv)
    data, _summary = run(items, {"output": str(tmp_path)}, workers=8)
    assert len(data) == 40
    shows = list(tmp_path.glob("TV Shows/*/tvshow.nfo"))
    assert len(shows) == 1
    assert ET.parse(shows[0]).getroot().tag == "tvshow"
    assert not [p for p in tmp_path.rglob(".*") if p != tmp_path / MARKER]  # no temp file left
    before = snapshot(tmp_path)
    run(items, {"output": str(tmp_path)}, workers=8)
    assert snapshot(tmp_path) == before


def test_report_and_media_server_refresh(server: VodServer, tmp_path: Path) -> None:
    out, report = tmp_path / "out", tmp_path / "report.csv"
    refresh = {"kind": "jellyfin", "url": server.url, "token": server.token}
    _data, summary = run(
        scan(server), {"output": str(out), "report": str(report), "refresh": refresh}
    )
    with report.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert {r["action"] for r in rows} == {"created"}
    assert len({r["key"] for r in rows}) == 26
    assert summary["refresh"]["ok"] is True
    assert server.refreshes == ["jellyfin"]

    bad = {"kind": "plex", "url": server.url, "token": "wrong-token-99"}
    json_report = tmp_path / "report.json"
    _data, summary = run(
        scan(server), {"output": str(out), "report": str(json_report), "refresh": bad}
    )
    assert json.loads(json_report.read_text()) == []
    assert summary["refresh"]["ok"] is False
    assert "wrong-token-99" not in json.dumps(summary)


def test_cleanup_refuses_to_empty_the_library_when_no_entry_is_present(
    server: VodServer, tmp_path: Path
) -> None:
    run(scan(server), {"output": str(tmp_path)})
    before = snapshot(tmp_path)
    _data, summary = run([], {"output": str(tmp_path), "cleanup": "apply"})
    assert "cleanup_skipped" in summary
    assert summary["removed"] == []
    assert snapshot(tmp_path) == before


def test_other_kinds_are_skipped_and_options_are_checked(tmp_path: Path) -> None:
    processor = StrmProcessor({"output": str(tmp_path)})
    with pytest.raises(Skip):
        processor.process(ItemRef(id=1, path="a.flac", kind="audio"))
    with pytest.raises(ValueError, match="no usable stream URL"):
        processor.process(ItemRef(id=2, path="movie/2", kind="movie", meta={"title": "X"}))
    with pytest.raises(ValueError, match="output"):
        StrmProcessor({})
    with pytest.raises(ValueError, match="cleanup"):
        StrmProcessor({"output": str(tmp_path), "cleanup": "yes"})
    with pytest.raises(RuntimeError, match="parent folder does not exist"):
        StrmProcessor({"output": str(tmp_path / "gone" / "out")}).setup()
    assert os.listdir(tmp_path) == []
