"""Library statistics on every database: the figures of the page's statistics view and of
`mediamill stats`, aggregated in SQL over a probed demo library and analysed music."""

from __future__ import annotations

from pathlib import Path

import pytest

from mediamill.catalog.db import Catalog
from mediamill.stats import container_name, library_stats, resolution_name
from mediamill.testing.media import make_library
from tests.helpers.run import run_folder


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("media")
    make_library(root)
    return root


def test_a_probed_library_counts_by_common_names(catalog: Catalog, media: Path) -> None:
    run_folder(catalog, media, "probe", executor="serial")
    library = catalog.library_by_root(media)
    assert library is not None
    figures = library_stats(catalog, library.id)
    files = [p for p in media.rglob("*") if p.is_file()]
    assert figures["items"] == len(files)
    assert figures["size"] == sum(p.stat().st_size for p in files)
    assert sum(k["count"] for k in figures["kinds"]) == len(files)
    assert figures["results"]["probe"] == {"ok": len(files) - 3, "failed": 3}
    containers = {c["name"]: c["count"] for c in figures["containers"]}
    assert containers["MP4"] >= 1
    assert containers["JPEG"] >= 1, "an image counts by its format"
    assert "unknown" not in containers
    assert sum(containers.values()) == len(files) - 3
    video = {c["name"] for c in figures["codecs"]["video"]}
    assert "h264" in video
    assert "subrip" in {c["name"] for c in figures["codecs"]["subtitle"]}
    assert sum(b["count"] for b in figures["bit_rates"]) == len(files) - 3
    assert figures["failures"]["probe"] == [
        {"name": "not a readable media file", "count": 2},
        {"name": "empty file (0 bytes)", "count": 1},
    ]
    assert figures["duration"] > 0


def test_analysed_music_counts_tempo_bands_and_camelot_keys(
    catalog: Catalog, tmp_path: Path
) -> None:
    from mediamill.testing.music import make_track

    for n, (bpm, key, scale) in enumerate([(124, "A", "minor"), (128, "A", "minor"),
                                            (92, "C", "major")]):  # fmt: skip
        make_track(tmp_path / f"t{n}.flac", bpm=bpm, key=key, scale=scale, seconds=6, seed=n)
    run_folder(catalog, tmp_path, "audio", executor="serial")
    library = catalog.library_by_root(tmp_path)
    assert library is not None
    figures = library_stats(catalog, library.id)
    assert figures["keys"] == [
        {"name": "8A A minor", "count": 2},
        {"name": "8B C major", "count": 1},
    ]
    bands = {b["name"]: b["count"] for b in figures["tempo"]}
    assert bands == {"90-99": 1, "120-129": 2}


def test_a_catalog_from_before_facets_counts_the_same_after_upgrading(
    catalog: Catalog, media: Path, tmp_path: Path
) -> None:
    """Results written before statistics kept their facets (schema 0006) get them from the
    0007 migration: the statistics view shows the very same figures afterwards."""
    from alembic.command import downgrade, upgrade
    from alembic.config import Config
    from sqlalchemy import text

    from mediamill.catalog import db
    from mediamill.testing.music import make_track

    run_folder(catalog, media, "probe", executor="serial")
    make_track(tmp_path / "t.flac", bpm=124, key="A", scale="minor", seconds=6, seed=1)
    run_folder(catalog, tmp_path, "audio", executor="serial")
    libraries = [catalog.library_by_root(media), catalog.library_by_root(tmp_path)]
    ids = [library.id for library in libraries if library is not None]
    before = [library_stats(catalog, i) for i in ids]
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(db.__file__).parent / "migrations"))
    with catalog.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        downgrade(cfg, "0006")
        columns = conn.execute(text("SELECT * FROM results")).keys()
        assert "facets" not in columns, "the old schema has no facets"
        upgrade(cfg, "head")
        assert not conn.execute(
            text("SELECT count(*) FROM results WHERE status = 'ok' AND facets IS NULL")
        ).scalar(), "every counted result has its facets back"
    assert [library_stats(catalog, i) for i in ids] == before
    assert before[1]["keys"] == [{"name": "8A A minor", "count": 1}]


def test_names_people_use() -> None:
    assert container_name("mov,mp4,m4a,3gp,3g2,mj2") == "MP4"
    assert container_name("matroska,webm") == "Matroska"
    assert container_name("nut") == "NUT"
    assert resolution_name(1920, 1080) == "1080p"
    assert resolution_name(1920, 800) == "1080p"  # a film cropped to 2.40:1
    assert resolution_name(3840, 2160) == "4K"
    assert resolution_name(720, 576) == "576p"
    assert resolution_name(640, 480) == "SD"
    assert resolution_name(None, None) == "unknown"
