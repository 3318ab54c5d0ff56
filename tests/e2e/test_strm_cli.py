"""`mediamill run strm` as a user runs it: a real process against the stand-in VOD provider on
loopback, real files in a Kodi/Jellyfin layout, a real SQLite catalog."""

from __future__ import annotations

import json
import os
import re
import shutil
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from mediamill.catalog.db import Catalog
from mediamill.processors.strm import MARKER
from mediamill.testing.vodserver import VodCatalog, VodServer, make_catalog
from tests.helpers.cli import mediamill as run_cli
from tests.helpers.cli import mediamill_in as mediamill

MOVIES, SERIES, EPISODES_PER_SERIES = 30, 3, 4
ENTRIES = MOVIES + SERIES * EPISODES_PER_SERIES
#: movie indexes that are neither one of a duplicate pair (every 10th, +1) nor a nasty name
RENAMED, REMOVED = 13, 17
#: no provider rate limit: the stand-in is on loopback and the tests should be quick
NO_RATE_LIMIT = ("--set", "request_rate=0")
URL_LINE = re.compile(r"^[a-z][a-z0-9+.-]*://\S+$")


def make_provider_catalog() -> VodCatalog:
    """Messy provider names, a special season, duplicate titles and path-traversal titles."""
    return make_catalog(
        MOVIES, SERIES, EPISODES_PER_SERIES, seed=7, duplicates=10, nasty_names=True
    )


@pytest.fixture
def provider() -> Iterator[VodServer]:
    with VodServer(make_provider_catalog()) as server:
        yield server


def export(tmp: Path, spec: str, out: Path, *args: str) -> str:
    """Run the strm export; returns what it printed."""
    proc = mediamill(tmp, "run", "strm", spec, "--output", str(out), "-q", *NO_RATE_LIMIT, *args)
    return proc.stdout + proc.stderr


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """``relative path -> (inode, mtime_ns)`` of every file under ``root`` (but mediamill's
    own marker in the root, a hidden file that media servers pass over)."""
    found: dict[str, tuple[int, int]] = {}
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            if name == MARKER and dirpath == str(root):
                continue
            st = os.lstat(os.path.join(dirpath, name))
            found[Path(dirpath, name).relative_to(root).as_posix()] = (st.st_ino, st.st_mtime_ns)
    return found


def movie_files(out: Path, folder: str) -> set[str]:
    return {p.relative_to(out).as_posix() for p in (out / "Movies" / folder).iterdir()}


def movie_folder(out: Path, title: str) -> str:
    """The one Movies/ folder whose name starts with ``title`` (the year may follow)."""
    matches = [d.name for d in (out / "Movies").iterdir() if d.name.startswith(title)]
    assert len(matches) == 1, (title, matches)
    return matches[0]


def assert_kodi_library(out: Path, entries: int, shows: int) -> None:
    """Movies/<Name>/<Name>.strm+.nfo; TV Shows/<Show>/tvshow.nfo and Season NN/<episode>;
    every .nfo is XML; every .strm holds exactly one URL; no hidden or temp files left."""
    files = snapshot(out)
    strms = [p for p in files if p.endswith(".strm")]
    assert len(strms) == entries, sorted(strms)
    assert set(os.listdir(out)) == {"Movies", "TV Shows", MARKER}
    for path in files:
        parts = path.split("/")
        assert all(len(part.encode()) <= 255 and not part.startswith(".") for part in parts), path
        assert path.endswith((".strm", ".nfo")), f"unexpected file {path}"
        if path.endswith(".strm"):
            assert path.removesuffix(".strm") + ".nfo" in files, f"{path} has no .nfo"
        if parts[0] == "Movies":
            assert len(parts) == 3, path
            assert Path(parts[2]).stem == parts[1], f"movie file not named as its folder: {path}"
        else:
            assert parts[0] == "TV Shows", path
            if parts[-1] == "tvshow.nfo":
                assert len(parts) == 3, path
            else:
                assert len(parts) == 4, path
                assert re.fullmatch(r"Season \d{2}", parts[2]), path
                assert f"{parts[0]}/{parts[1]}/tvshow.nfo" in files
    show_dirs = list((out / "TV Shows").iterdir())
    assert len(show_dirs) == shows
    assert all((d / "Season 00").is_dir() for d in show_dirs), "the specials are Season 00"
    for path in files:
        full = out / path
        if path.endswith(".nfo"):
            root = ET.parse(full).getroot()  # noqa: S314 - our own export, not untrusted input
            assert root.tag in ("movie", "tvshow", "episodedetails"), path
            assert (root.findtext("title") or "").strip(), f"{path} has no title"
        else:
            lines = full.read_text(encoding="utf-8").splitlines()
            assert len(lines) == 1, (path, lines)
            assert URL_LINE.match(lines[0]), (path, lines)


def assert_nothing_outside(tmp: Path, out: Path, allowed: set[str]) -> None:
    """Every file the run made is under ``out``, or is one of ``allowed`` (catalog, report)."""
    for dirpath, _dirs, files in os.walk(tmp):
        for name in files:
            path = Path(dirpath, name)
            if path.is_relative_to(out) or path.relative_to(tmp).parts[0] == "home":
                continue
            assert path.name in allowed or path.name.startswith("c.db"), f"written outside: {path}"


def test_xtream_export_is_a_kodi_library_and_a_rerun_touches_nothing(
    provider: VodServer, tmp_path: Path
) -> None:
    """Given a messy provider catalog, the first export writes a Kodi/Jellyfin library (and a
    report of every file it created) and nothing elsewhere; the same command again writes
    nothing and says every entry is already up to date."""
    out = tmp_path / "library"
    report = tmp_path / "first.json"
    printed = export(tmp_path, provider.xtream_spec, out, "--report", str(report))
    assert f"{ENTRIES} new" in printed
    assert f"{ENTRIES} ok" in printed

    assert_kodi_library(out, ENTRIES, shows=SERIES)
    assert_nothing_outside(tmp_path, out, allowed={report.name})
    duplicated = [d.name for d in (out / "Movies").iterdir() if "[id " in d.name]
    assert len(duplicated) >= 2, "titles that clean to the same name get the provider id"
    assert (out / "Movies" / "CON_").is_dir(), "a Windows device name is made safe"
    traversal = [d.name for d in (out / "Movies").iterdir() if "etc" in d.name]
    assert traversal, "a path-traversal title is exported inside Movies/"
    rows = json.loads(report.read_text(encoding="utf-8"))
    assert {r["path"] for r in rows} == set(snapshot(out)), "the report names every file"
    assert {r["action"] for r in rows} == {"created"}

    before = snapshot(out)
    printed = export(tmp_path, provider.xtream_spec, out)
    assert snapshot(out) == before, "an unchanged re-run rewrites nothing (inode, mtime_ns)"
    assert f"{ENTRIES} unchanged" in printed
    assert f"({ENTRIES} already up to date)" in printed


def test_renamed_titles_move_and_removed_ones_are_previewed_then_cleaned_up(
    provider: VodServer, tmp_path: Path
) -> None:
    """After the provider renames one title and removes another: the renamed title's files
    move to the new name at once; the removed title's files are only listed by the default
    cleanup (preview) and removed, with their folder, by `--cleanup apply`. Every other file
    stays untouched."""
    out = tmp_path / "library"
    catalog = provider.catalog
    export(tmp_path, provider.xtream_spec, out)
    old_name = movie_folder(out, catalog.movie_title(RENAMED)[0])
    removed_name = movie_folder(out, catalog.movie_title(REMOVED)[0])
    renamed_files = movie_files(out, old_name)
    stale = movie_files(out, removed_name)
    assert len(renamed_files) == len(stale) == 2

    catalog.renamed[RENAMED] = "A Brand New Name"
    catalog.removed.add(REMOVED)
    before = snapshot(out)
    preview_report = tmp_path / "preview.json"
    printed = export(tmp_path, provider.xtream_spec, out, "--report", str(preview_report))
    assert "1 changed" in printed
    assert "1 missing" in printed
    assert removed_name in printed, "the preview names the removed title's files"
    rows = json.loads(preview_report.read_text(encoding="utf-8"))
    assert {r["path"] for r in rows if r["action"] == "would_remove"} == stale
    after_preview = snapshot(out)
    new_name = movie_folder(out, "A Brand New Name")
    assert set(after_preview) - set(before) == movie_files(out, new_name)
    assert set(before) - set(after_preview) == renamed_files, "the renamed title moved"
    assert not (out / "Movies" / old_name).exists(), "its old folder went with it"
    assert stale <= set(after_preview), "the preview deletes nothing"
    unchanged = {p: v for p, v in before.items() if p not in renamed_files}
    assert all(after_preview[p] == v for p, v in unchanged.items())

    apply_report = tmp_path / "apply.json"
    export(tmp_path, provider.xtream_spec, out, "--cleanup", "apply", "--report", str(apply_report))
    after_apply = snapshot(out)
    assert set(after_preview) - set(after_apply) == stale, "exactly the stale files are removed"
    assert all(after_apply[p] == v for p, v in after_preview.items() if p not in stale)
    assert not (out / "Movies" / removed_name).exists()
    rows = json.loads(apply_report.read_text(encoding="utf-8"))
    assert {r["path"] for r in rows if r["action"] == "removed"} == stale
    assert_kodi_library(out, ENTRIES - 1, shows=SERIES)


def test_dry_run_on_a_fresh_output_folder_creates_nothing(
    provider: VodServer, tmp_path: Path
) -> None:
    """`--dry-run` says how many entries it would export and creates no file or folder."""
    out = tmp_path / "library"
    printed = export(tmp_path, provider.xtream_spec, out, "--dry-run")
    assert f"Would run strm on {ENTRIES} item(s)" in printed
    assert not out.exists()
    assert_nothing_outside(tmp_path, out, allowed=set())


def test_bad_credentials_fail_clearly_without_showing_the_password(tmp_path: Path) -> None:
    """A rejected login exits non-zero with a message saying so, and the password typed on the
    command line appears nowhere in the output."""
    with VodServer(make_catalog(3, 1, 2), password="right-pass-4711") as server:  # noqa: S106
        spec = server.xtream_spec.replace("right-pass-4711", "wrong-pass-0815")
        proc = mediamill(
            tmp_path, "run", "strm", spec, "--output", str(tmp_path / "out"), check=False
        )
    printed = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert re.search(r"rejected|refused", printed), printed
    assert "wrong-pass-0815" not in printed
    assert "right-pass-4711" not in printed
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.mark.parametrize("kind", ["dispatcharr", "m3u"])
def test_first_export_from_dispatcharr_and_m3u(
    kind: str, provider: VodServer, tmp_path: Path
) -> None:
    """Dispatcharr (token from MEDIAMILL_DISPATCHARR_TOKEN) and an M3U playlist export the
    same catalog into the same layout (the playlist's live channel is left out)."""
    out = tmp_path / "library"
    spec = provider.dispatcharr_spec if kind == "dispatcharr" else provider.m3u_spec
    proc = mediamill(
        tmp_path,
        "run", "strm", spec, "--output", str(out), "-q", *NO_RATE_LIMIT,
        env={"MEDIAMILL_DISPATCHARR_TOKEN": provider.token},
    )  # fmt: skip
    assert provider.token not in proc.stdout + proc.stderr
    assert provider.password not in proc.stdout + proc.stderr
    assert_kodi_library(out, ENTRIES, shows=SERIES)
    assert_nothing_outside(tmp_path, out, allowed=set())


def test_dispatcharr_login_with_direct_urls_says_which_entries_kept_a_proxy_url(
    provider: VodServer, tmp_path: Path
) -> None:
    """A Dispatcharr login (MEDIAMILL_DISPATCHARR_USER/PASS) exports in direct mode; entries
    whose account cannot give a direct URL (not Xtream Codes) keep their proxy URL, and the
    scan line says how many and why. No password or token is printed."""
    provider.account_type = "STD"
    user, password = provider.dispatcharr_login
    out = tmp_path / "library"
    proc = mediamill(
        tmp_path,
        "run", "strm", provider.dispatcharr_spec, "--output", str(out), "-q", *NO_RATE_LIMIT,
        "--set", "url_mode=direct",
        env={"MEDIAMILL_DISPATCHARR_USER": user, "MEDIAMILL_DISPATCHARR_PASS": password},
    )  # fmt: skip
    printed = " ".join((proc.stdout + proc.stderr).split())
    assert f"url_mode=direct: {ENTRIES} entries kept their proxy URL" in printed, printed
    assert "its account is not Xtream Codes (account_type STD)" in printed
    assert password not in printed
    assert provider.dispatcharr_auth.issued_logins == 1
    assert_kodi_library(out, ENTRIES, shows=SERIES)


def test_exporting_to_a_second_output_folder_writes_every_file_there(
    provider: VodServer, tmp_path: Path
) -> None:
    """The same source exported to another folder (same catalog) is a full export there: what
    is up to date in one folder is not up to date in another."""
    export(tmp_path, provider.xtream_spec, tmp_path / "first")
    export(tmp_path, provider.xtream_spec, tmp_path / "second")
    assert snapshot(tmp_path / "second").keys() == snapshot(tmp_path / "first").keys()


def test_an_unchanged_provider_is_neither_parsed_nor_walked_again_but_changes_still_count(
    provider: VodServer, tmp_path: Path
) -> None:
    """When the provider answers byte for byte as last time, the re-run says so, parses
    nothing and skips the walk over the exported files; a title removed after that is still
    reported, on every run while its files stay, and `--force` reads everything again."""
    out = tmp_path / "library"
    export(tmp_path, provider.xtream_spec, out)
    removed_name = movie_folder(out, provider.catalog.movie_title(REMOVED)[0])
    before = snapshot(out)

    printed = export(tmp_path, provider.xtream_spec, out)
    assert "the provider answered exactly as last time" in printed
    assert f"{ENTRIES} unchanged" in printed
    assert "nothing changed since the last cleanup" in printed
    assert snapshot(out) == before

    provider.catalog.removed.add(REMOVED)
    printed = export(tmp_path, provider.xtream_spec, out)
    assert "exactly as last time" not in printed
    assert "1 missing" in printed
    assert removed_name in printed, "the preview names the removed title's files"
    printed = export(tmp_path, provider.xtream_spec, out)
    assert "exactly as last time" in printed
    assert removed_name in printed, "stray files are listed again while they stay"
    assert "nothing changed since the last cleanup" not in printed

    printed = export(tmp_path, provider.xtream_spec, out, "--force")
    assert "exactly as last time" not in printed
    assert f"{ENTRIES - 1} unchanged" in printed
    assert snapshot(out) == before, "a forced run compares and rewrites nothing"


def test_an_emptied_output_folder_is_exported_again(provider: VodServer, tmp_path: Path) -> None:
    """Results are tied to the output folder they were written to: when the folder is
    deleted (or only its marker), the next run exports every entry again instead of calling
    them up to date; files that are still there are compared and left untouched."""
    out = tmp_path / "library"
    export(tmp_path, provider.xtream_spec, out)
    first = snapshot(out)
    shutil.rmtree(out)

    printed = export(tmp_path, provider.xtream_spec, out)
    assert f"{ENTRIES} ok" in printed
    assert_kodi_library(out, ENTRIES, shows=SERIES)
    assert snapshot(out).keys() == first.keys()

    before = snapshot(out)
    (out / MARKER).unlink()
    printed = export(tmp_path, provider.xtream_spec, out)
    assert f"{ENTRIES} ok" in printed
    assert snapshot(out) == before, "files already right are not rewritten"
    assert (out / MARKER).is_file()


def test_after_a_clean_walk_only_missing_titles_are_checked_until_a_full_walk_is_due(
    provider: VodServer, tmp_path: Path
) -> None:
    """Once a cleanup found the folder clean, later ones check only the files of titles the
    provider dropped (no walk over every file); a stray file of other origin is found by the
    next full walk, due a day after the last one, and both are removed by `--cleanup apply`."""
    out = tmp_path / "library"
    export(tmp_path, provider.xtream_spec, out)
    removed_name = movie_folder(out, provider.catalog.movie_title(REMOVED)[0])
    stale = movie_files(out, removed_name)
    stray = out / "Movies" / "Stray (1999)" / "Stray (1999).strm"
    stray.parent.mkdir()
    stray.write_text("http://example.invalid/stray.mkv\n", encoding="utf-8")
    stray_rel = stray.relative_to(out).as_posix()

    provider.catalog.removed.add(REMOVED)
    printed = export(tmp_path, provider.xtream_spec, out)
    assert "cleanup scope: files of missing entries" in printed
    assert all(path in printed for path in stale)
    assert stray_rel not in printed, "a targeted cleanup does not look for strays"

    marker = json.loads((out / MARKER).read_text(encoding="utf-8"))
    (state,) = marker["clean"].values()
    state["walked"] -= 2 * 24 * 3600  # the last full walk was two days ago
    (out / MARKER).write_text(json.dumps(marker), encoding="utf-8")
    printed = export(tmp_path, provider.xtream_spec, out, "--cleanup", "apply")
    assert "cleanup scope: every file" in printed
    assert not stray.exists()
    assert not stray.parent.exists(), "the folder it leaves empty goes too"
    assert not any((out / path).exists() for path in stale)
    assert not (out / "Movies" / removed_name).exists()
    assert_kodi_library(out, ENTRIES - 1, shows=SERIES)


def test_the_xtream_account_stays_out_of_the_catalog_in_a_private_data_dir(
    tmp_path: Path,
) -> None:
    """The stream URLs in the .strm files carry the account (players need it), but the
    catalog keeps a marker in its place; the account is kept in a 0600 file of a data dir
    made 0700, and the catalog file is made 0600."""
    password = "pw-never-in-catalog-4711"  # noqa: S105 - the point of the test
    home = tmp_path / "home"
    out = tmp_path / "library"
    with VodServer(make_catalog(4, 1, 2), password=password) as server:
        spec = server.xtream_spec
        run_cli(
            "run", "strm", spec, "--output", str(out), "-q", *NO_RATE_LIMIT,
            db=f"sqlite:///{home}/catalog.db",
            env={"MEDIAMILL_HOME": str(home)},
        )  # fmt: skip
    strm_files = sorted(out.rglob("*.strm"))
    assert len(strm_files) == 6
    for strm in strm_files:
        assert f"/{server.username}/{password}/" in strm.read_text(), "players get the account"
    catalog_bytes = b"".join(p.read_bytes() for p in home.glob("catalog.db*"))
    assert password.encode() not in catalog_bytes
    catalog = Catalog.open(f"sqlite:///{home}/catalog.db")
    urls = [item.meta["url"] for lib in catalog.libraries() for item in catalog.iter_items(lib.id)]
    catalog.close()
    assert len(urls) == 6
    assert all(re.search(r"/\{credentials:[0-9a-f]{32}\}/", url) for url in urls), urls
    assert home.stat().st_mode & 0o777 == 0o700
    assert (home / "catalog.db").stat().st_mode & 0o777 == 0o600
    kept = home / "credentials.json"
    assert kept.stat().st_mode & 0o777 == 0o600
    assert password in kept.read_text()


def _playlist_with_accounts(base: str, user: str, password: str) -> str:
    """An M3U file whose entries carry the account in each way providers put it."""
    return "\n".join([
        "#EXTM3U",
        '#EXTINF:-1 group-title="Movies",First Film (2001)',
        f"{base}/movie/{user}/{password}/101.mkv",
        '#EXTINF:-1 group-title="Movies",Second Film (2002)',
        f"{base}/vod/second.mkv?username={user}&password={password}&kind=vod",
        '#EXTINF:-1 group-title="Movies",Third Film (2003)',
        f"{base.replace('://', f'://{user}:{password}@')}/vod/third.mp4",
        f'#EXTINF:-1 tvg-logo="{base}/logo/4.png?username={user}&password={password}" '
        'group-title="Movies",Fourth Film (2004)',
        f"{base}/vod/fourth.mp4?token={password}",
        "",
    ])  # fmt: skip


@pytest.mark.parametrize("playlist", ["served", "file"])
def test_m3u_accounts_stay_out_of_the_catalog_and_the_api(playlist: str, tmp_path: Path) -> None:
    """M3U entries whose URLs carry the account (``/movie/USER/PASS/…``, ``?username=&
    password=``, ``user:pass@``, ``?token=``, a logo's query): the .strm and .nfo files get
    the URLs as they were (a player needs the account), while the catalog file and every API
    answer hold markers."""
    from tests.helpers.server import Server

    password = "pw-m3u-never-stored-9342"  # noqa: S105 - the point of the test
    home = tmp_path / "home"
    out = tmp_path / "library"
    db = f"sqlite:///{tmp_path}/c.db"
    with VodServer(make_catalog(4, 1, 2), password=password) as server:
        if playlist == "served":
            spec, expected = server.m3u_spec, 4 + 2
        else:
            lines = _playlist_with_accounts(server.url, server.username, password)
            (tmp_path / "list.m3u").write_text(lines)
            spec, expected = f"m3u+file://{tmp_path / 'list.m3u'}", 4
        proc = export(tmp_path, spec, out)
    assert password not in proc
    strm_urls = sorted(p.read_text().strip() for p in out.rglob("*.strm"))
    assert len(strm_urls) == expected
    if playlist == "file":
        wanted = [line for line in lines.splitlines() if line.startswith("http")]
        assert strm_urls == sorted(wanted), "players get the URLs exactly as listed"
        (nfo,) = out.rglob("Fourth Film*.nfo")
        logo = f"{server.url}/logo/4.png?username={server.username}&amp;password={password}"
        assert f'<thumb aspect="poster">{logo}</thumb>' in nfo.read_text()
    else:
        assert all(f"/{server.username}/{password}/" in url for url in strm_urls)
    catalog_bytes = b"".join(p.read_bytes() for p in tmp_path.glob("c.db*"))
    assert password.encode() not in catalog_bytes
    assert server.username.encode() not in catalog_bytes.replace(b"username=", b"")
    api = Server(db, home).start()
    try:
        with api.client() as client:
            answers = [client.get("/api/libraries"), client.get("/api/jobs")]
            (library,) = answers[0].json()["libraries"]
            (job,) = answers[1].json()["jobs"]
            answers += [
                client.get("/api/items", params={"library": library["name"], "limit": 100}),
                client.get(
                    "/api/items",
                    params={"library": library["name"], "processor": "strm", "limit": 100},
                ),
                client.get(f"/api/jobs/{job['job_id']}/items", params={"limit": 100}),
                client.get(f"/api/libraries/{library['name']}"),
            ]
    finally:
        api.stop()
    for answer in answers:
        assert answer.status_code == 200, answer.text
        assert password not in answer.text, answer.request.url
    assert len(answers[2].json()["items"]) == expected
