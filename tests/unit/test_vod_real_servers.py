"""The strm export against a stand-in as strict as the real Dispatcharr and Xtream panels:
how Dispatcharr lets programs in, what it shows non-admin users, the rows and titles it
really serves, and what real panels send that the export used to ignore or misread."""

# The XML parsed here is the .nfo output of this project, not untrusted input.
# ruff: noqa: S314

from __future__ import annotations

import logging
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mediamill import ops
from mediamill.catalog.db import Catalog
from mediamill.credentials import fill
from mediamill.sources import SourceEntry, SourceError, open_source
from mediamill.strm.layout import Layout
from mediamill.strm.nfo import episode_nfo, movie_nfo, tvshow_nfo
from mediamill.testing.dispatcharr import EPISODE_ID_OFFSET
from mediamill.testing.vodserver import VodServer, make_catalog

FAST = {"backoff": 0.001, "request_rate": 0}


@pytest.fixture
def server() -> Iterator[VodServer]:
    catalog = make_catalog(movies=12, series=4, episodes_per_series=4, seed=1)
    with VodServer(catalog) as srv:
        yield srv


def entries(spec: str, **options: Any) -> dict[str, SourceEntry]:
    found = open_source(spec, options={**FAST, **options}).iter_entries()
    return {entry.key: entry for entry in found}


def episode(found: dict[str, SourceEntry], stream_id: int) -> dict[str, Any]:
    """The Dispatcharr episode of a panel's episode stream id."""
    return dict(found[f"episode/{EPISODE_ID_OFFSET + stream_id}"].meta)


# -- 1. authentication --------------------------------------------------------------------


def test_an_api_key_goes_in_x_api_key_because_dispatcharr_reads_bearer_as_a_jwt(
    server: VodServer,
) -> None:
    """Dispatcharr refuses an API key sent as ``Bearer`` (and so does the stand-in); the
    default scheme sends it as ``X-API-Key``, and asking for ``bearer`` says why not."""
    api = f"{server.url}/api/vod/movies/"
    refused = httpx.get(api, headers={"Authorization": f"Bearer {server.token}"})
    assert (refused.status_code, refused.json()["code"]) == (401, "token_not_valid")
    assert httpx.get(api, headers={"Authorization": f"ApiKey {server.token}"}).is_success
    assert len(entries(server.dispatcharr_spec, token=server.token)) == 28
    with pytest.raises(ValueError, match="expires after 30 minutes"):
        open_source(server.dispatcharr_spec, options={"token": server.token, "auth": "bearer"})


def test_a_login_renews_its_expiring_tokens_and_keeps_them_out_of_logs(
    server: VodServer, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a username and password, the access token that expires mid-read is renewed
    with the refresh token (one login for the whole read), and a new login is made once the
    refresh token has expired too (the next scheduled run). No token reaches a log."""
    caplog.set_level(logging.DEBUG)
    auth = server.dispatcharr_auth
    auth.jwt_uses = 3  # the stand-in's 30 minutes: every token dies after 3 requests
    user, password = server.dispatcharr_login
    monkeypatch.setenv("MEDIAMILL_DISPATCHARR_USER", user)
    monkeypatch.setenv("MEDIAMILL_DISPATCHARR_PASS", password)
    source = open_source(server.dispatcharr_spec, options=FAST)
    assert len(list(source.iter_entries())) == 28
    assert auth.issued_logins == 1
    assert auth.issued_refreshes >= 1
    auth.expire(refresh=True)
    assert len(list(source.iter_entries())) == 28
    assert auth.issued_logins == 2
    assert password not in caplog.text
    assert "eyJ." not in caplog.text


@pytest.mark.parametrize(
    ("options", "scheme"),
    [
        ({"token": "not-a-key-qzx"}, "the API key sent as X-API-Key"),
        ({"username": "admin", "password": "wrong-pass-qzx"}, "posted to /api/accounts/token/"),
    ],
)
def test_a_refused_credential_names_its_scheme_not_its_secret(
    server: VodServer, options: dict[str, str], scheme: str
) -> None:
    with pytest.raises(SourceError, match="refused with HTTP 401") as info:
        entries(server.dispatcharr_spec, **options)
    assert scheme in str(info.value)
    # a marker no port number or URL can hold, so the check cannot hit by chance
    assert "qzx" not in str(info.value)


# -- 2. and 3. direct URLs ------------------------------------------------------------------


@pytest.mark.parametrize(
    "pasted",
    ["{url}/player_api.php", "{url}/player_api.php?username=alice&password=x", "{url}/"],
)
def test_direct_urls_are_built_as_dispatcharr_builds_them(server: VodServer, pasted: str) -> None:
    """Episodes get provider URLs too (their stream ids come from the series' episodes), and
    a ``server_url`` pasted with the API endpoint or a query is normalised as Dispatcharr
    does: every direct URL is the one the panel's own lists give."""
    server.account_server_url = pasted.format(url=server.url)
    found = entries(server.dispatcharr_spec, token=server.token, url_mode="direct")
    assert fill(episode(found, 5)["url"]) == f"{server.url}/series/alice/s3cret-pass/5.mkv"
    xtream = {fill(e.meta["url"]) for e in entries(server.xtream_spec).values()}
    assert {fill(e.meta["url"]) for e in found.values()} == xtream


def test_direct_mode_keeps_a_base_path_of_the_account(server: VodServer) -> None:
    server.account_server_url = f"{server.url}/xc/player_api.php"
    found = entries(server.dispatcharr_spec, token=server.token, url_mode="direct", series=False)
    assert fill(found["movie/1"].meta["url"]) == f"{server.url}/xc/movie/alice/s3cret-pass/1.mkv"


def test_direct_mode_is_refused_clearly_when_passwords_are_hidden(server: VodServer) -> None:
    """Dispatcharr shows account passwords to admin users only: a non-admin key would write
    ``/movie/alice//1.mkv`` for every movie, so direct mode refuses to start."""
    user_key = "user-key-55"
    server.dispatcharr_auth.api_keys[user_key] = False
    assert len(entries(server.dispatcharr_spec, token=user_key)) == 28  # proxy is fine
    with pytest.raises(SourceError, match="admin users only") as info:
        entries(server.dispatcharr_spec, token=user_key, url_mode="direct")
    assert "url_mode=proxy" in str(info.value)


def test_accounts_that_are_not_xtream_keep_proxy_urls_and_the_summary_says_so(
    server: VodServer, catalog: Catalog
) -> None:
    server.account_type = "STD"
    spec = server.dispatcharr_spec
    options = {**FAST, "token": server.token, "url_mode": "direct"}
    library = ops.resolve_library(catalog, spec, source_options=options)
    counts = ops.refresh_library(catalog, library, source_options=options, spec=spec)
    assert counts["new"] == 28
    urls = {item.meta["url"] for item in catalog.iter_items(library.id)}
    assert all("/proxy/vod/" in url for url in urls)
    assert counts["notes"] == [
        f"{open_source(spec, options=options).name}: url_mode=direct: 28 entries kept their "
        "proxy URL: its account is not Xtream Codes (account_type STD)"
    ]


def test_a_stream_url_with_an_empty_segment_is_refused_by_the_layout() -> None:
    layout = Layout()
    with pytest.raises(ValueError, match="empty path segment"):
        layout.stream_url({"url": "http://panel.invalid/movie/alice//1.mkv"})
    with pytest.raises(ValueError, match="empty path segment"):
        layout.stream_url({"url": "http://panel.invalid//series/a/b/1.mkv"})
    assert layout.stream_url({"url": "http://p.invalid/m/a/b/1.mkv?x=//y"}).endswith("//y")


# -- 4. to 8. what the rows say -------------------------------------------------------------


def test_episode_titles_are_cleaned_the_same_through_every_source(server: VodServer) -> None:
    """Dispatcharr keeps the panel's raw title ("Show - S01E01 - Part 1") as the episode's
    name; the export names the episode "Show S01E01 - Part 1" either way, and an episode
    titled only with its show's name is untitled."""
    layout = Layout()
    xtream = entries(server.xtream_spec)
    dispatcharr = entries(server.dispatcharr_spec, token=server.token)
    for stream_id in (1, 2, 5):
        via_xtream = xtream[f"episode/{stream_id}"]
        via_dispatcharr = episode(dispatcharr, stream_id)
        assert via_dispatcharr.get("title") == via_xtream.meta.get("title")
        stem = layout.episode_stem("episode/x", via_dispatcharr)
        assert stem == layout.episode_stem("episode/x", via_xtream.meta)
    assert episode(dispatcharr, 1)["title"] == "Part 1"
    assert "title" not in episode(dispatcharr, 2)
    assert layout.episode_stem("e", episode(dispatcharr, 1)).endswith("S01E01 - Part 1")


def test_placeholder_ids_are_no_ids(server: VodServer) -> None:
    """A TMDB id "0" or 0, or IMDb's tt0000000, is what panels send for "none": no
    uniqueid is written for it (it sends scrapers to another title)."""
    found = entries(server.xtream_spec)
    assert server.catalog.movie(2)["tmdb"] == 0
    assert server.catalog.movie(6)["tmdb"] == "0"
    assert "tmdb_id" not in found["movie/3"].meta
    assert "tmdb_id" not in found["movie/7"].meta
    assert "tmdb_id" not in found["episode/3"].meta  # its info says tmdb_id: 0
    document = movie_nfo({"tmdb_id": "0", "imdb_id": "tt0000000", "tvdb_id": 7}, "T").decode()
    assert re.findall("<uniqueid[^>]*>[^<]*</uniqueid>", document) == [
        '<uniqueid type="tvdb" default="true">7</uniqueid>'
    ]


def test_the_series_detail_answer_completes_the_show(server: VodServer, tmp_path: Path) -> None:
    """``get_series_info.info`` carries what the ``get_series`` row lacks (here the TMDB id
    and cast of every other show, the row saying tmdb "0"): tvshow.nfo gets them."""
    assert server.catalog.series_row(1)["tmdb"] == "0"
    show = entries(server.xtream_spec)["episode/5"].meta  # series 2 (index 1)
    assert (show["show_tmdb_id"], show["show_cast"]) == ("20001", "Actor 1, Actress 1")
    assert show["show_thumb"] == "http://img.invalid/s/2-big.jpg"  # the detail answer wins
    document = ET.fromstring(tvshow_nfo(show, "Show"))
    assert document.find("uniqueid[@type='tmdb']").text == "20001"  # type: ignore[union-attr]
    assert [a.findtext("name") for a in document.iter("actor")] == ["Actor 1", "Actress 1"]


def test_php_list_seasons_without_a_season_field_keep_their_seasons() -> None:
    """PHP sends ``episodes`` as a list when the seasons run 0, 1, 2: the list index is the
    season (rows without ``season`` and titles without SxxEyy used to all land in Season 01,
    as duplicate S01E01s)."""
    catalog = make_catalog(
        movies=0, series=2, episodes_per_series=12, seed=3, seasons_shape="php",
        season_field=False, plain_titles=True,
    )  # fmt: skip
    assert isinstance(catalog.series_info(0)["episodes"], list)
    with VodServer(catalog) as srv:
        found = entries(srv.xtream_spec)
        dispatcharr = entries(srv.dispatcharr_spec, token=srv.token)
    numbers = sorted(
        (e.meta["show_id"], e.meta["season"], e.meta["episode"]) for e in found.values()
    )
    expected = sorted(
        (str(i + 1), season, number)
        for i in range(2)
        for _id, season, number in catalog.episode_numbers(i)
    )
    assert numbers == expected
    assert not any(e.meta.get("ambiguous") for e in found.values())
    assert sorted((e.meta["season"], e.meta["episode"]) for e in dispatcharr.values()) == sorted(
        (season, number) for _s, season, number in numbers
    )


def test_more_of_what_panels_send_reaches_the_nfo(server: VodServer) -> None:
    """Air dates under ``releaseDate``/``release_date``, an episode's IMDb id,
    ``rating_5based`` when ``rating`` is empty, Dispatcharr's cached logo, Kodi's
    ``<ratings>`` next to ``<rating>``, and "Episode 2" as an untitled episode's title."""
    found = entries(server.xtream_spec)
    shows = [e.meta for e in found.values() if e.kind == "episode"]
    assert [m.get("aired") for m in shows] == [f"2020-01-{m['episode']:02d}" for m in shows]
    assert found["episode/2"].meta["imdb_id"] == "tt1000002"
    assert server.catalog.movie(5)["rating"] == ""
    assert found["movie/6"].meta["rating"] == pytest.approx(
        round(server.catalog.movie(5)["rating_5based"] * 2, 2)
    )
    dispatcharr = entries(server.dispatcharr_spec, token=server.token)
    assert dispatcharr["movie/1"].meta["thumb"].startswith(f"{server.url}/api/vod/vodlogos/1/")
    document = ET.fromstring(episode_nfo(found["episode/2"].meta, "Episode 2", "Show"))
    assert document.findtext("ratings/rating[@name='themoviedb']/value") == "6.5"
    assert document.findtext("rating") == "6.5"
    layout = Layout()
    untitled = layout.plan("episode/2", "episode", found["episode/2"].meta)[1].content
    assert ET.fromstring(untitled).findtext("title") == "Episode 2"


# -- the same catalog through either source ---------------------------------------------


def _tree(root: Path) -> dict[str, str]:
    """Every exported file's text, stream URLs and image URLs replaced by a placeholder."""
    urls = re.compile(r"https?://[^<\s]+")
    return {
        path.relative_to(root).as_posix(): urls.sub("URL", path.read_text(encoding="utf-8"))
        for path in sorted(root.rglob("*"))
        if path.is_file() and path.suffix in (".strm", ".nfo")
    }


def test_xtream_and_dispatcharr_export_the_same_tree(tmp_path: Path) -> None:
    """One catalog exported through the panel and through Dispatcharr (which imported it)
    gives the same files with the same .nfo content, URLs apart. (Only what Dispatcharr's
    importer drops, ``xtream_extras``, is left out of this catalog.)"""
    catalog = make_catalog(
        movies=30, series=5, episodes_per_series=13, seed=8, xtream_extras=False,
        seasons_shape="php",
    )  # fmt: skip
    trees = []
    with VodServer(catalog) as srv:
        for name, spec, options in (
            ("xtream", srv.xtream_spec, {}),
            ("dispatcharr", srv.dispatcharr_spec, {"token": srv.token}),
        ):
            out = tmp_path / name
            job = ops.run(
                "strm",
                spec,
                db=f"sqlite:///{tmp_path / name}.db",
                options={**FAST, **options, "output": str(out)},
            )
            assert job["status"] == "completed", job
            trees.append(_tree(out))
    xtream, dispatcharr = trees
    assert len(xtream) > 30 + 5 * 13
    assert sorted(dispatcharr) == sorted(xtream)
    assert dispatcharr == xtream
