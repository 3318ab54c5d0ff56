"""VOD sources against the stand-in provider on loopback: Xtream, Dispatcharr, M3U."""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mediamill.catalog.db import Catalog
from mediamill.credentials import MissingCredentials, fill, marker
from mediamill.sources import SourceEntry, SourceError, is_source_spec, open_source
from mediamill.sources._http import RateLimiter
from mediamill.sources._vod import flag_duplicates, mark_ambiguous, movie_group
from mediamill.testing.dispatcharr import EPISODE_ID_OFFSET
from mediamill.testing.vodserver import RawJson, VodServer, make_catalog

FAST = {"backoff": 0.001, "request_rate": 0}


@pytest.fixture
def server() -> Iterator[VodServer]:
    catalog = make_catalog(movies=12, series=3, episodes_per_series=4, seed=1, duplicates=5)
    with VodServer(catalog) as srv:
        yield srv


def entries(spec: str, **options: Any) -> list[SourceEntry]:
    return list(open_source(spec, options={**FAST, **options}).iter_entries())


def by_key(items: list[SourceEntry]) -> dict[str, SourceEntry]:
    return {entry.key: entry for entry in items}


def test_xtream_lists_movies_and_episodes_with_messy_fields_normalized(server: VodServer) -> None:
    found = by_key(entries(server.xtream_spec))
    movies = [e for e in found.values() if e.kind == "movie"]
    episodes = [e for e in found.values() if e.kind == "episode"]
    assert len(movies) == 12
    assert len(episodes) == 12
    first = found["movie/1"].meta  # stream_id came as the string "1", name "EN - ... (year)"
    assert first["id"] == "1"
    assert "s3cret-pass" not in first["url"], "the account stays out of the metadata"
    assert fill(first["url"]) == f"{server.url}/movie/alice/s3cret-pass/1.mkv"
    assert first["name"].startswith("EN - ")
    assert not first["title"].endswith(")")
    assert isinstance(first["year"], int)
    assert isinstance(first["rating"], float)
    assert first["category"] == "Movies 1"
    assert found["movie/1"].meta["tmdb_id"] == "10000"
    special = [e.meta for e in episodes if e.meta["season"] == 0]
    assert len(special) == 3
    episode = found["episode/1"].meta
    assert fill(episode["url"]) == f"{server.url}/series/alice/s3cret-pass/1.mkv"
    assert (episode["season"], episode["episode"], episode["title"]) == (1, 1, "Part 1")
    assert "title" not in found["episode/2"].meta  # its title was only the show name
    assert episode["show_plot"]
    assert episode["aired"] == "2020-01-01"


def test_a_new_password_makes_a_new_marker_and_a_lost_account_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = marker("http://host:8080", "alice", "old-pass")
    new = marker("http://host:8080", "alice", "new pass/é")
    assert old != new, "entries made with another password get another fingerprint"
    assert "pass" not in old + new
    assert fill(f"http://host:8080/movie/{new}/1.mkv") == (
        "http://host:8080/movie/alice/new%20pass%2F%C3%A9/1.mkv"
    )
    monkeypatch.setenv("MEDIAMILL_HOME", str(tmp_path / "another-machine"))
    unknown = "{credentials:" + "0" * 32 + "}"
    with pytest.raises(MissingCredentials, match=r"credentials\.json"):
        fill(f"http://host:8080/movie/{unknown}/1.mkv")


def test_duplicate_titles_are_flagged_on_every_member(server: VodServer) -> None:
    found = by_key(entries(server.xtream_spec))
    flagged = sorted(k for k, e in found.items() if e.meta.get("ambiguous"))
    assert flagged == ["movie/1", "movie/11", "movie/12", "movie/2", "movie/6", "movie/7"]


@pytest.mark.parametrize("shape", ["dict", "list", "flat", "mixed"])
def test_every_season_shape_gives_the_same_episodes(shape: str) -> None:
    catalog = make_catalog(movies=0, series=3, episodes_per_series=12, seed=2, seasons_shape=shape)
    with VodServer(catalog) as srv:
        found = by_key(entries(srv.xtream_spec))
    assert len(found) == 36
    numbers = sorted(
        (e.meta["show_id"], e.meta["season"], e.meta["episode"]) for e in found.values()
    )
    assert ("1", 0, 1) in numbers
    assert ("1", 2, 1) in numbers


def test_vod_info_option_adds_richer_metadata(server: VodServer) -> None:
    found = by_key(entries(server.xtream_spec, vod_info=True, series=False))
    assert found["movie/2"].meta["originaltitle"].startswith("Original ")
    assert found["movie/2"].meta["tmdb_id"] == "10001"


def test_transient_server_errors_are_retried(server: VodServer) -> None:
    server.fail_first = 3
    assert len(entries(server.xtream_spec)) == 24
    assert server.requests > 3


def test_persistent_errors_give_up_with_a_clear_error(server: VodServer) -> None:
    server.fail_first = 1000
    with pytest.raises(SourceError, match=r"failed after 3 attempts \(HTTP 500\)") as info:
        entries(server.xtream_spec, retries=2)
    assert "s3cret-pass" not in str(info.value)


def test_bad_credentials_give_a_clear_error_without_the_password(
    server: VodServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    spec = f"xtream+http://alice:wrong-Pa55@127.0.0.1:{server.port}"
    source = open_source(spec, options=FAST)
    assert source.name == f"xtream+http://127.0.0.1:{server.port}"
    with pytest.raises(SourceError, match="rejected the username or password") as info:
        list(source.iter_entries())
    assert "wrong-Pa55" not in str(info.value)
    assert "wrong-Pa55" not in repr(source)
    assert "wrong-Pa55" not in caplog.text


def test_malformed_json_gives_a_clear_error(server: VodServer) -> None:
    server.malformed = {"get_vod_streams"}
    with pytest.raises(SourceError, match="get_vod_streams did not answer JSON") as info:
        entries(server.xtream_spec)
    assert "s3cret-pass" not in str(info.value)


def test_a_wrong_shape_is_a_source_error(server: VodServer) -> None:
    server.malformed = set()
    server.xtream = lambda query: {"weird": True} if query.get("action") else {}  # type: ignore[method-assign]
    with pytest.raises(SourceError, match="get_vod_categories answered"):
        entries(server.xtream_spec)


@pytest.mark.parametrize("auth", ["api-key", "login"])
def test_dispatcharr_pages_and_proxy_urls(server: VodServer, auth: str) -> None:
    server.page_size_max = 5  # several pages of movies
    user, password = server.dispatcharr_login
    credentials = {"token": server.token} if auth == "api-key" else {"username": user}
    if auth == "login":
        credentials["password"] = password
    found = by_key(entries(server.dispatcharr_spec, **credentials))
    assert len(found) == 24
    movie = found["movie/1"].meta
    assert movie["url"] == f"{server.url}/proxy/vod/movie/00000000-0000-4000-8000-000000000001"
    episode = found[f"episode/{EPISODE_ID_OFFSET + 4}"].meta
    assert episode["url"].startswith(f"{server.url}/proxy/vod/episode/")
    assert (episode["season"], episode["episode"]) == (0, 1)
    server.dispatcharr_lists = True
    assert set(by_key(entries(server.dispatcharr_spec, token=server.token))) == set(found)


def test_dispatcharr_direct_urls_point_at_the_provider(server: VodServer) -> None:
    """Every movie and episode gets the provider URL the panel itself gives (the episodes'
    stream ids come from the series' episodes, not from provider-info's rows); the account
    stays out of the entries, as for Xtream."""
    found = by_key(entries(server.dispatcharr_spec, token=server.token, url_mode="direct"))
    assert fill(found["movie/3"].meta["url"]) == f"{server.url}/movie/alice/s3cret-pass/3.avi"
    episode = found[f"episode/{EPISODE_ID_OFFSET + 5}"].meta
    assert fill(episode["url"]) == f"{server.url}/series/alice/s3cret-pass/5.mkv"
    assert "s3cret-pass" not in json.dumps([e.meta for e in found.values()])
    xtream = {fill(e.meta["url"]) for e in entries(server.xtream_spec)}
    assert {fill(e.meta["url"]) for e in found.values()} == xtream


def test_a_panels_own_direct_source_url_keeps_its_credentials_out_of_the_entries(
    server: VodServer,
) -> None:
    """A panel may give a movie's upstream URL as ``direct_source``: it is used as it is, but
    every credential in it (the account's, an Xtream path's, a token) is a marker."""
    upstream = "http://upstream.example:8080/movie/bob/up-pass-9/2.mkv?token=t0k3n-42&x=1"
    server.direct_sources = {2: upstream, 4: "https://cdn.example/s3cret-pass/4.mp4"}
    found = by_key(entries(server.dispatcharr_spec, token=server.token, url_mode="direct"))
    assert fill(found["movie/2"].meta["url"]) == upstream
    assert fill(found["movie/4"].meta["url"]) == "https://cdn.example/s3cret-pass/4.mp4"
    stored = json.dumps([e.meta for e in found.values()])
    for secret in ("bob", "up-pass-9", "t0k3n-42", "s3cret-pass"):
        assert secret not in stored
    assert "upstream.example:8080/movie/" in found["movie/2"].meta["url"]


def test_dispatcharr_bad_token_is_refused_clearly(
    server: VodServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEDIAMILL_DISPATCHARR_TOKEN", "nope-token-42")
    with pytest.raises(SourceError, match=r"refused with HTTP 401 \(auth=api-key") as info:
        entries(server.dispatcharr_spec)
    assert "nope-token-42" not in str(info.value)


def test_m3u_over_http_and_from_a_file(server: VodServer, tmp_path: Path) -> None:
    remote = by_key(entries(server.m3u_spec))
    source = open_source(server.m3u_spec)
    assert "s3cret" not in source.name
    assert "alice" not in source.name
    playlist = tmp_path / "list.m3u"
    playlist.write_text(server.m3u_text(), encoding="utf-8")
    local = by_key(entries(f"m3u+file://{playlist}"))
    assert set(remote) == set(local)
    kinds = [e.kind for e in local.values()]
    assert kinds.count("movie") == 12
    assert kinds.count("episode") == 12
    episode = local["episode/4"].meta
    assert (episode["season"], episode["episode"], episode["title"]) == (0, 1, "Part 1")
    assert episode["show"] == "Show Umbra 0"


def test_m3u_detects_episodes_by_name_and_skips_live(tmp_path: Path) -> None:
    playlist = tmp_path / "vod.m3u8"
    playlist.write_text(
        "#EXTM3U\n"
        '#EXTINF:-1 tvg-name="x" group-title="Films, new",EN - Heat (1995)\n'
        "http://cdn.invalid/v/heat.mp4\n"
        '#EXTINF:-1 group-title="TV",Lost S01E02 Walkabout\n'
        "http://cdn.invalid/v/lost-1-2.mkv\n"
        '#EXTINF:-1 group-title="News",News 24\n'
        "http://cdn.invalid/live/news.m3u8\n",
        encoding="utf-8",
    )
    found = entries(f"m3u+file://{playlist}")
    assert [(e.kind, e.meta.get("title")) for e in found] == [
        ("movie", "EN - Heat"),
        ("episode", "Walkabout"),
    ]
    assert found[0].meta["year"] == 1995
    assert found[0].meta["category"] == "Films, new"


def test_open_source_reads_credentials_from_options_and_env(
    server: VodServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    bare = f"xtream+http://127.0.0.1:{server.port}"
    with pytest.raises(ValueError, match="needs credentials"):
        open_source(bare)
    found = entries(bare, username="alice", password=server.password, series=False)
    assert len(found) == 12
    monkeypatch.setenv("MEDIAMILL_XTREAM_USER", "alice")
    monkeypatch.setenv("MEDIAMILL_XTREAM_PASS", "s3cret-pass")
    assert len(entries(bare, series=False)) == 12
    with pytest.raises(ValueError, match="unknown xtream source options"):
        open_source(server.xtream_spec, options={"colour": "red"})


def test_source_specs_are_recognised() -> None:
    assert is_source_spec("xtream+https://u:p@h:1")
    assert is_source_spec("dispatcharr+http://h:9191")
    assert is_source_spec("m3u+file:///srv/list.m3u")
    assert not is_source_spec("/srv/media")
    assert not is_source_spec("http://h")
    with pytest.raises(ValueError, match="absolute"):
        open_source("m3u+file://relative/list.m3u")


def test_rate_limit_spaces_requests() -> None:
    limiter = RateLimiter(50)
    start = time.monotonic()
    for _ in range(6):
        limiter.wait()
    assert time.monotonic() - start >= 0.09


def test_duplicates_are_found_without_holding_the_list_and_order_is_kept() -> None:
    """flag_duplicates flags exactly what mark_ambiguous flags on the whole list."""
    rng = random.Random(5)
    metas = [
        {"id": str(rng.randint(1, 300)), "title": rng.choice(["A", "a", "B", "C (1999)"]),
         "year": rng.choice([None, 1999]), "n": n}
        for n in range(2500)
    ]  # fmt: skip
    expected = [dict(m) for m in metas]
    mark_ambiguous(expected, movie_group, lambda m: m["id"])
    streamed = list(flag_duplicates((dict(m) for m in metas), movie_group, lambda m: m["id"]))
    assert streamed == expected
    assert any(m.get("ambiguous") for m in streamed)
    same_twice = [{"id": "1", "title": "X"}, {"id": "1", "title": "X"}]
    again = flag_duplicates(same_twice, movie_group, lambda m: m["id"])
    assert not any(m.get("ambiguous") for m in again)  # one id twice is no duplicate title


@pytest.mark.parametrize("shape", ["list", "object"])
def test_xtream_lists_are_read_as_a_stream_whatever_their_shape(
    server: VodServer, shape: str
) -> None:
    expected = by_key(entries(server.xtream_spec, series=False))
    answer = server.xtream

    def as_object(query: dict[str, str]) -> Any:
        data = answer(query)
        if query.get("action") == "get_vod_streams" and shape == "object":
            return {str(n): row for n, row in enumerate(data)}  # some panels answer this
        return data

    server.xtream = as_object  # type: ignore[method-assign]
    assert by_key(entries(server.xtream_spec, series=False)) == expected


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (b'[{"stream_id": 1, "name": "A"}, {"stream_id": 2, "na', "did not answer JSON"),
        (b'{"0": {"stream_id": 1}, "1": 5}', "answered dict, not a list"),
        (b'"nothing"', "answered str, not a list"),
    ],
)
def test_a_broken_stream_list_fails_the_read_before_any_entry(
    server: VodServer, answer: bytes, message: str
) -> None:
    answer_of = server.xtream

    def broken(query: dict[str, str]) -> Any:
        if query.get("action") == "get_vod_streams":
            return RawJson(answer)
        return answer_of(query)

    server.xtream = broken  # type: ignore[method-assign]
    seen: list[SourceEntry] = []
    with pytest.raises(SourceError, match=message) as info:
        seen.extend(open_source(server.xtream_spec, options=FAST).iter_entries())
    assert seen == []
    assert "s3cret-pass" not in str(info.value)


def test_empty_stream_lists_have_no_movies(server: VodServer) -> None:
    answer_of = server.xtream
    for empty in (b"null", b"[]", b"{}", b'""'):

        def answer(query: dict[str, str], body: bytes = empty) -> Any:
            return RawJson(body) if query.get("action") == "get_vod_streams" else answer_of(query)

        server.xtream = answer  # type: ignore[method-assign]
        assert entries(server.xtream_spec, series=False) == []


def test_m3u_shows_share_the_first_logo_and_repeated_episodes_are_flagged(
    tmp_path: Path,
) -> None:
    playlist = tmp_path / "shows.m3u"
    playlist.write_bytes(
        b"\xef\xbb\xbf#EXTM3U\r\n"
        b'#EXTINF:-1 tvg-logo="http://img.invalid/1.jpg",Lost (2004) S01E01 Pilot\r\n'
        b"http://cdn.invalid/series/u/p/1.mkv\r\n"
        b'#EXTINF:-1 tvg-logo="http://img.invalid/2.jpg",Lost (2004) S01E02 Pilot 2\r\n'
        b"http://cdn.invalid/series/u/p/2.mkv\r\n"
        b"#EXTINF:-1,Lost (2004) S01E02 Pilot 2 again\r\n"
        b"http://cdn.invalid/series/u/p/3.mkv\r\n"
        b"#EXTINF:-1,Heat (1995)\rhttp://cdn.invalid/movie/u/p/9.mp4\n"
    )
    found = by_key(entries(f"m3u+file://{playlist}"))
    assert sorted(found) == ["episode/1", "episode/2", "episode/3", "movie/9"]
    shows = {e.meta["show_id"] for e in found.values() if e.kind == "episode"}
    assert len(shows) == 1
    assert {e.meta["show_thumb"] for e in found.values() if e.kind == "episode"} == {
        "http://img.invalid/1.jpg"
    }
    flagged = sorted(k for k, e in found.items() if e.meta.get("ambiguous"))
    assert flagged == ["episode/2", "episode/3"]
    assert found["movie/9"].meta["year"] == 1995
    not_m3u = tmp_path / "notes.m3u"
    not_m3u.write_text("just text\n", encoding="utf-8")
    with pytest.raises(SourceError, match="not an M3U playlist"):
        entries(f"m3u+file://{not_m3u}")
    with pytest.raises(SourceError, match="cannot read the playlist"):
        entries(f"m3u+file://{tmp_path / 'missing.m3u'}")


def test_a_provider_that_changes_every_entry_updates_every_item(catalog: Catalog) -> None:
    """All changed entries are updated (one statement for all of them), vanished ones are
    marked missing, and the export's reading of results and metadata sees the new values."""
    library = catalog.add_library("xtream+http://provider.invalid", kind="source")
    first = [SourceEntry(f"movie/{n}", "movie", {"title": f"T{n}", "url": "http://a/1"})
             for n in range(5)]  # fmt: skip
    assert catalog.sync_entries(library.id, first)["new"] == 5
    changed = [SourceEntry(e.key, e.kind, {**e.meta, "url": "http://b/1"}) for e in first[:4]]
    counts = catalog.sync_entries(library.id, changed)
    assert (counts["changed"], counts["missing"]) == (4, 1)
    assert {item.meta["url"] for item in catalog.iter_items(library.id)} == {"http://b/1"}
    rows = list(catalog.iter_results_raw_meta(library.id, "strm"))
    assert [row[0] for row in rows] == ["movie/0", "movie/1", "movie/2", "movie/3"]
    assert all(row[2] is None and row[3] is None for row in rows)
    assert [json.loads(row[4] or "{}")["url"] for row in rows] == ["http://b/1"] * 4


@pytest.mark.parametrize("kind", ["xtream", "dispatcharr"])
def test_answers_unchanged_since_the_last_sync_are_not_parsed_again(
    kind: str, server: VodServer, catalog: Catalog
) -> None:
    """A re-read whose answers are byte for byte the last complete sync's parses and
    compares nothing; any change (a renamed title) is synced in full; `full` forces it."""
    from mediamill import ops

    spec = server.xtream_spec if kind == "xtream" else server.dispatcharr_spec
    options = {**FAST, "token": server.token}
    library = ops.resolve_library(catalog, spec, source_options=options)

    def refresh(**kwargs: Any) -> dict[str, Any]:
        return ops.refresh_library(catalog, library, source_options=options, spec=spec, **kwargs)

    assert refresh()["new"] == 24
    assert catalog.source_digest(library.id) is not None
    again = refresh()
    assert again.get("source_unchanged") is True
    assert (again["unchanged"], again["new"], again["changed"]) == (24, 0, 0)

    server.catalog.renamed[3] = "Some Other Title"
    changed = refresh()
    assert "source_unchanged" not in changed
    assert changed["changed"] == 1
    assert {i.meta["title"] for i in catalog.iter_items(library.id) if i.path == "movie/4"} == {
        "Some Other Title"
    }
    assert refresh().get("source_unchanged") is True
    forced = refresh(full=True)
    assert "source_unchanged" not in forced
    assert forced["unchanged"] == 24


def test_a_sync_that_stops_halfway_is_never_taken_for_complete(
    server: VodServer, catalog: Catalog
) -> None:
    """When parsing fails after some entries were stored (a broken series answer), the
    digest is forgotten: the next read parses everything, even if the answers are back to
    those of the last complete sync."""
    from mediamill import ops

    library = ops.resolve_library(catalog, server.xtream_spec, source_options=FAST)
    refresh = lambda: ops.refresh_library(  # noqa: E731
        catalog, library, source_options=FAST, spec=server.xtream_spec
    )
    refresh()
    server.malformed = {"get_series_info"}
    with pytest.raises(SourceError, match="get_series_info did not answer JSON"):
        refresh()
    assert catalog.source_digest(library.id) is None
    server.malformed = set()
    counts = refresh()
    assert "source_unchanged" not in counts
    assert counts["unchanged"] == 24
    assert refresh().get("source_unchanged") is True


def test_an_m3u_file_is_parsed_again_only_when_its_bytes_change(
    server: VodServer, catalog: Catalog, tmp_path: Path
) -> None:
    from mediamill import ops

    playlist = tmp_path / "vod.m3u"
    playlist.write_text(server.m3u_text(), encoding="utf-8")
    spec = f"m3u+file://{playlist}"
    library = ops.resolve_library(catalog, spec)
    first = ops.refresh_library(catalog, library, spec=spec)
    assert first["new"] > 0
    assert ops.refresh_library(catalog, library, spec=spec).get("source_unchanged") is True
    text = playlist.read_text(encoding="utf-8")
    playlist.write_text(text.replace("Movie", "Film", 1), encoding="utf-8")
    changed = ops.refresh_library(catalog, library, spec=spec)
    assert "source_unchanged" not in changed
    assert changed["changed"] + changed["new"] >= 1


def test_series_refresh_modified_asks_only_for_series_whose_row_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With `series_refresh=modified`, a read asks `get_series_info` only for series whose
    `get_series` row (with its `last_modified`) changed since their answer was kept; a panel
    that never moves `last_modified` is caught up once the kept answers are older than
    `series_max_age` days. The default asks for every series every time."""
    monkeypatch.setenv("MEDIAMILL_HOME", str(tmp_path / "home"))
    catalog = make_catalog(movies=2, series=4, episodes_per_series=3, seed=3)
    with VodServer(catalog) as server:

        def read(**options: Any) -> tuple[set[str], int]:
            before = server.actions["get_series_info"]
            found = entries(server.xtream_spec, series_refresh="modified", **options)
            keys = {e.key for e in found if e.kind == "episode"}
            return keys, server.actions["get_series_info"] - before

        first, asked = read()
        assert (len(first), asked) == (12, 4)
        assert (tmp_path / "home" / "cache" / "xtream").is_dir()
        assert read() == (first, 0), "nothing changed: no series is asked for"

        catalog.new_episodes[1] = 2
        grown, asked = read()
        assert asked == 1, "only the series whose last_modified moved"
        assert len(grown - first) == 2

        before = server.actions["get_series_info"]
        entries(server.xtream_spec)
        entries(server.xtream_spec)
        assert server.actions["get_series_info"] - before == 8, "the default asks every time"

    frozen = make_catalog(movies=0, series=4, episodes_per_series=3, seed=4)
    frozen.frozen_last_modified = True
    with VodServer(frozen) as server:
        first = {e.key for e in entries(server.xtream_spec, series_refresh="modified")}
        frozen.new_episodes[2] = 1
        stale = {e.key for e in entries(server.xtream_spec, series_refresh="modified")}
        assert stale == first, "a last_modified that never moves hides the new episode"
        caught_up = {
            e.key for e in entries(server.xtream_spec, series_refresh="modified", series_max_age=0)
        }
        assert len(caught_up - first) == 1, "until the kept answers are too old"


def test_the_provider_request_rate_is_not_the_engine_rate(server: VodServer) -> None:
    """`--rate` caps the items a job processes per second; `--set request_rate=N` caps the
    requests to the provider. Neither reaches the other (a gentle provider limit used to
    throttle the export to that many files per second)."""
    from mediamill.sources import source_options

    picked = source_options(server.xtream_spec, {"rate": 50, "request_rate": 2, "output": "x"})
    assert picked == {"request_rate": 2}
    source = open_source(server.xtream_spec, options=picked)
    assert source._http_options["rate"] == 2  # type: ignore[attr-defined]
    unlimited = open_source(server.xtream_spec, options=source_options(server.xtream_spec, {}))
    assert unlimited._http_options["rate"] == 5.0  # type: ignore[attr-defined]
