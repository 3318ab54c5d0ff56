"""The .strm layout: clean names on every filesystem, Kodi/Jellyfin paths, parseable .nfo."""

# The XML parsed here is the .nfo output of this project, not untrusted input.
# ruff: noqa: S314

from __future__ import annotations

import random
import re
import unicodedata
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from mediamill.strm.layout import Layout, UnsafePath, resolve_inside
from mediamill.strm.names import clean_component, split_episode, split_year, strip_prefix
from mediamill.strm.nfo import episode_nfo, movie_nfo, tvshow_nfo

_ALPHABET = 'aZ09 .-_<>:"/\\|?*\x00\x07\x1f\x7féü長題🎬\u0301'
_RESERVED = ("CON", "con", "PRN", "AUX", "NUL", "COM1", "LPT1", "lpt9", "COM¹")


def assert_portable(name: str) -> None:
    assert name
    assert len(name.encode("utf-8")) <= 255
    assert not set(name) & set('<>:"/\\|?*')
    assert all(ord(c) >= 32 and not 0x7F <= ord(c) <= 0x9F for c in name)
    assert name not in (".", "..")
    assert not name.startswith(".")
    assert not name.endswith((" ", "."))
    assert name == unicodedata.normalize("NFC", name)
    assert name.split(".", 1)[0].rstrip().upper() not in {r.upper() for r in _RESERVED}


def test_random_names_always_clean_to_a_portable_component() -> None:
    rng = random.Random(7)
    for _ in range(2000):
        text = "".join(rng.choice(_ALPHABET) for _ in range(rng.randint(0, 400)))
        assert_portable(clean_component(text))


@pytest.mark.parametrize("name", _RESERVED)
def test_reserved_windows_names_get_a_suffix(name: str) -> None:
    cleaned = clean_component(name)
    assert cleaned == f"{name}_"
    assert clean_component(f"{name}.nfo") == f"{name}_.nfo"


def test_long_names_are_cut_in_bytes_without_splitting_a_character() -> None:
    name = clean_component("長" * 200)  # 600 bytes
    assert len(name.encode()) <= 255
    assert name == "長" * 85
    assert clean_component("é" * 300, max_bytes=101) == "é" * 50


@pytest.mark.parametrize("title", ["..", "../../etc/passwd", "/abs/path", "..\\..\\win", " . "])
def test_traversal_titles_stay_one_component(title: str) -> None:
    cleaned = clean_component(title)
    assert_portable(cleaned)
    assert "/" not in cleaned


def test_decomposed_unicode_becomes_nfc() -> None:
    assert clean_component("Cafe\u0301") == "Café"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("EN - The Matrix", "The Matrix"),
        ("4K | The Matrix", "The Matrix"),
        ("4K | EN - The Matrix", "The Matrix"),
        ("|FR| Amélie", "Amélie"),
        ("[DE] Das Boot", "Das Boot"),
        ("AI: Artificial Intelligence", "AI: Artificial Intelligence"),
        ("Up", "Up"),
        ("EN - ", "EN -"),
    ],
)
def test_default_prefix_stripping(raw: str, expected: str) -> None:
    assert strip_prefix(raw) == expected


def test_titles_carry_years_and_episode_marks() -> None:
    assert split_year("Dune (2021)") == ("Dune", 2021)
    assert split_year("Blade Runner 2049") == ("Blade Runner 2049", None)
    assert split_episode("Show (2019) S01E02 - Pilot") == ("Show (2019)", 1, 2, "Pilot")
    assert split_episode("A Movie") is None


def test_movie_paths_follow_the_kodi_layout() -> None:
    layout = Layout()
    meta = {"title": "EN - Dune", "year": 2021, "url": "http://h/1.mkv"}
    assert layout.paths("movie/1", "movie", meta) == [
        "Movies/Dune (2021)/Dune (2021).strm",
        "Movies/Dune (2021)/Dune (2021).nfo",
    ]
    no_year = layout.paths("movie/2", "movie", {"title": "Dune"})
    assert no_year[0] == "Movies/Dune/Dune.strm"


def test_episode_paths_follow_the_kodi_layout_with_specials_in_season_00() -> None:
    layout = Layout()
    meta = {"show": "Show", "show_year": 2019, "season": 0, "episode": 3, "title": "Extra"}
    assert layout.paths("episode/9", "episode", meta) == [
        "TV Shows/Show (2019)/Season 00/Show S00E03 - Extra.strm",
        "TV Shows/Show (2019)/Season 00/Show S00E03 - Extra.nfo",
        "TV Shows/Show (2019)/tvshow.nfo",
    ]
    untitled = layout.paths("episode/9", "episode", {"show": "Show", "season": 2, "episode": 1})
    assert untitled[0] == "TV Shows/Show/Season 02/Show S02E01.strm"


def test_ambiguous_titles_get_their_provider_id() -> None:
    layout = Layout()
    a = layout.paths("movie/1", "movie", {"title": "Dune", "year": 2021, "ambiguous": True})
    b = layout.paths("movie/2", "movie", {"title": "Dune", "year": 2021, "ambiguous": True})
    assert a[0] == "Movies/Dune (2021) [id 1]/Dune (2021) [id 1].strm"
    assert a != b
    always = Layout(disambiguate="always").paths("movie/3", "movie", {"title": "Dune"})
    assert always[0] == "Movies/Dune [id 3]/Dune [id 3].strm"


def test_long_titles_keep_every_component_short_and_their_id() -> None:
    layout = Layout()
    meta = {"title": "題" * 300, "year": 2000, "ambiguous": True, "id": "77"}
    for path in layout.paths("movie/77", "movie", meta):
        assert all(len(part.encode()) <= 255 for part in path.split("/"))
        assert "[id 77]" in path
    episode = {"show": "長" * 200, "season": 1, "episode": 1, "title": "題" * 200}
    for path in layout.paths("episode/5", "episode", episode):
        assert all(len(part.encode()) <= 255 for part in path.split("/"))


def test_custom_templates_are_validated_and_used() -> None:
    layout = Layout.from_options({"templates": {"movie_name": "{title} [{year}]"}})
    assert layout.paths("movie/1", "movie", {"title": "X", "year": 1999})[0] == (
        "Movies/X [1999]/X [1999].strm"
    )
    with pytest.raises(ValueError, match="bad template"):
        Layout.from_options({"templates": {"movie_name": "{nope}"}})
    with pytest.raises(ValueError, match="unknown templates"):
        Layout.from_options({"templates": {"film": "{title}"}})


def test_nothing_resolves_outside_the_root(tmp_path: Path) -> None:
    assert resolve_inside(tmp_path, "Movies/a.strm") == tmp_path.resolve() / "Movies/a.strm"
    with pytest.raises(UnsafePath):
        resolve_inside(tmp_path, "../evil.strm")
    (tmp_path / "Movies").symlink_to(tmp_path.parent)
    with pytest.raises(UnsafePath):
        resolve_inside(tmp_path, "Movies/x.strm")


def test_every_nfo_parses_and_escapes_hostile_text() -> None:
    hostile = 'A <b>"bold"</b> & \x07 bell \x1b esc ]]>'
    movie = ET.fromstring(
        movie_nfo({"year": 2001, "plot": hostile, "genre": "Drama, Action", "tmdb_id": "5"}, "T&C")
    )
    assert movie.tag == "movie"
    assert movie.findtext("title") == "T&C"
    assert movie.findtext("plot") == 'A <b>"bold"</b> &  bell  esc ]]>'
    assert [g.text for g in movie.findall("genre")] == ["Drama", "Action"]
    assert movie.find("uniqueid[@type='tmdb']") is not None
    show = ET.fromstring(tvshow_nfo({"show_year": 2019, "show_imdb_id": "tt1"}, "S"))
    assert show.findtext("year") == "2019"
    assert show.find("uniqueid[@type='imdb']") is not None
    episode = ET.fromstring(
        episode_nfo({"season": 0, "episode": 2, "aired": "2020-01-01"}, "E", "S")
    )
    assert (episode.tag, episode.findtext("season"), episode.findtext("episode")) == (
        "episodedetails",
        "0",
        "2",
    )
    assert movie_nfo({}, "x").startswith(b'<?xml version="1.0" encoding="UTF-8"')


def test_url_base_rewrites_the_host_and_bad_urls_fail_without_echo() -> None:
    layout = Layout(url_base="https://tv.example")
    files = layout.plan("movie/1", "movie", {"title": "X", "url": "http://10.0.0.2:9191/p/1"})
    assert files[0].content == b"https://tv.example/p/1\n"
    with pytest.raises(ValueError, match="no usable stream URL") as info:
        layout.plan("movie/1", "movie", {"title": "X", "url": "not a url secret"})
    assert "secret" not in str(info.value)


def _movie_nfo_as_elementtree_wrote_it(meta: dict[str, Any], title: str) -> bytes:
    """``<movie>`` built with ``xml.etree``, as the .nfo writer did before it wrote plain
    text (plus the ``<ratings>`` block and ``<actor>`` entries added since)."""
    not_xml = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")

    def text_of(value: Any) -> str | None:
        if value is None or isinstance(value, bool):
            return None
        text = f"{value:g}" if isinstance(value, float) else str(value)
        return not_xml.sub("", text).strip() or None

    def add(root: ET.Element, tag: str, value: Any, **attrib: str) -> None:
        text = text_of(value)
        if text is not None:
            ET.SubElement(root, tag, attrib).text = text

    root = ET.Element("movie")
    add(root, "title", title)
    add(root, "originaltitle", meta.get("originaltitle") or title)
    add(root, "year", meta.get("year"))
    add(root, "plot", meta.get("plot"))
    add(root, "rating", meta.get("rating"))
    rating = text_of(meta.get("rating"))
    if rating is not None:
        ratings = ET.SubElement(root, "ratings")
        block = ET.SubElement(
            ratings, "rating", {"name": "themoviedb", "max": "10", "default": "true"}
        )
        ET.SubElement(block, "value").text = rating
    genre = text_of(meta.get("genre"))
    for part in re.split(r"\s*[,/|;]\s*", genre) if genre else ():
        add(root, "genre", part)
    default = "true"
    for kind in ("tmdb", "imdb", "tvdb"):
        value = text_of(meta.get(f"{kind}_id"))
        if value is not None and not re.fullmatch(r"(?i)(?:(?:tt)?0+|none|null|n/?a)", value):
            add(root, "uniqueid", value, type=kind, default=default)
            default = "false"
    cast = text_of(meta.get("cast"))
    for name in re.split(r"\s*[,;|]\s*", cast) if cast else ():
        if name:
            actor = ET.SubElement(root, "actor")
            ET.SubElement(actor, "name").text = name
    add(root, "thumb", meta.get("thumb"), aspect="poster")
    ET.indent(root, space="  ")
    body: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=False)
    return b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n' + body + b"\n"


def test_nfo_bytes_are_what_elementtree_wrote_so_old_exports_stay_unchanged() -> None:
    """Random hostile metadata gives the .nfo bytes the ElementTree writer gave, so an
    upgrade never makes a re-run rewrite an export."""
    rng = random.Random(3)
    alphabet = "aZ09 &<>\"'.,/|;é長🎬\x00\x07\x0b\r\n\t\ufffe\ud800"

    def text() -> str:
        return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))

    keys = ("year", "plot", "rating", "genre", "tmdb_id", "imdb_id", "tvdb_id", "thumb", "cast")
    for _ in range(500):
        meta = {
            k: rng.choice([text(), rng.randint(0, 3000), rng.random() * 10, None]) for k in keys
        }
        meta["originaltitle"] = rng.choice([None, text()])
        title = rng.choice([text(), "\x07", "T"])
        assert movie_nfo(meta, title) == _movie_nfo_as_elementtree_wrote_it(meta, title)
        ET.fromstring(movie_nfo(meta, title))


def test_output_folders_are_checked_once_and_links_out_of_the_root_refused(
    tmp_path: Path,
) -> None:
    from mediamill.strm.files import OutputFolders

    root = tmp_path / "out"
    (root / "Movies" / "Old").mkdir(parents=True)
    (root / "Movies" / "Old" / "Old.strm").write_bytes(b"x\n")
    (tmp_path / "elsewhere").mkdir()
    (root / "Movies" / "Linked").symlink_to(root / "Movies" / "Old")
    (root / "Movies" / "Escape").symlink_to(tmp_path / "elsewhere")
    folders = OutputFolders(root, create=True)

    path, missing = folders.file("Movies/New (2020)/New (2020).strm")
    assert (path, missing) == (str(root / "Movies/New (2020)/New (2020).strm"), True)
    assert (root / "Movies" / "New (2020)").is_dir()  # made when first seen
    assert folders.file("Movies/New (2020)/New (2020).strm")[1] is False  # seen: compare
    assert folders.file("Movies/Old/Old.strm") == (str(root / "Movies/Old/Old.strm"), False)
    assert folders.file("Movies/Linked/Old.strm")[0] == str(root / "Movies/Old/Old.strm")
    with pytest.raises(UnsafePath):
        folders.file("Movies/Escape/x.strm")
    with pytest.raises(UnsafePath):
        folders.file("Movies/../x.strm")
    assert not list((tmp_path / "elsewhere").iterdir())

    planned = OutputFolders(tmp_path / "absent", create=False)  # a dry run makes nothing
    assert planned.file("Movies/A/A.strm")[1] is True
    assert not (tmp_path / "absent").exists()


def test_a_file_another_writer_made_first_is_compared_not_overwritten(tmp_path: Path) -> None:
    from mediamill.strm.files import Change, write_if_changed

    target = tmp_path / "tvshow.nfo"
    target.write_bytes(b"same")
    before = target.stat()
    assert write_if_changed(target, b"same", missing=True) is Change.UNCHANGED
    assert target.stat().st_mtime_ns == before.st_mtime_ns
    assert write_if_changed(target, b"other", missing=True) is Change.UPDATED
    assert target.read_bytes() == b"other"
    assert write_if_changed(tmp_path / "new.nfo", b"n", missing=True) is Change.CREATED
    assert (tmp_path / "new.nfo").read_bytes() == b"n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.nfo", "tvshow.nfo"]
