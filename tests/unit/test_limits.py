"""Limits a user or an attacker could push: workers, batches, what counts as loopback, where a
server may read and write."""

from __future__ import annotations

from pathlib import Path

import pytest

from mediamill.api.deps import is_loopback
from mediamill.api.paths import ForbiddenPath, check_allowed, check_job_paths
from mediamill.settings import MAX_WORKERS, ConfigError, Settings, load
from tests.conftest import make_files
from tests.helpers.cli import mediamill


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("", False),  # every interface
        ("0.0.0.0", False),
        ("::", False),
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("localhost", True),
        ("no-such-host.invalid", False),
    ],
)
def test_loopback_is_decided_from_the_addresses_a_host_binds(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_workers_beyond_the_cap_are_refused_by_the_cli_and_the_settings(tmp_path: Path) -> None:
    (tmp_path / "lib").mkdir()
    db = f"sqlite:///{tmp_path / 'c.db'}"
    lib = str(tmp_path / "lib")
    run = mediamill("run", "probe", lib, "--workers", "100000", db=db, check=False)
    assert run.returncode == 2
    assert "--workers" in run.stderr
    assert not (tmp_path / "c.db").exists(), "refused before anything was done"
    with pytest.raises(ConfigError, match="less than or equal to 256"):
        Settings(workers=100_000)
    with pytest.raises(ConfigError, match="command line: batch_size"):
        load(batch_size=10**9)
    assert Settings(workers=MAX_WORKERS).workers == MAX_WORKERS


def test_allowed_roots_come_from_the_environment_as_a_path_list(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MEDIAMILL_ALLOWED_ROOTS", "/srv/media:/home/me/Music")
    assert load().allowed_roots == ["/srv/media", "/home/me/Music"]
    monkeypatch.setenv("MEDIAMILL_ALLOWED_ROOTS", '["/a b"]')
    assert load().allowed_roots == ["/a b"]
    monkeypatch.delenv("MEDIAMILL_ALLOWED_ROOTS")
    assert set(load().allowed_roots) >= {str(Path.home()), "/media", "/mnt", "/srv"}


def test_a_system_tree_is_refused_even_when_every_folder_is_allowed(tmp_path: Path) -> None:
    for path in ("/etc/shadow", "/proc/self/environ", "/sys", "/dev/sda"):
        with pytest.raises(ForbiddenPath, match="never touches"):
            check_allowed(path, ["/"], "library")
    assert check_allowed(str(tmp_path), ["/"], "library") == str(tmp_path.resolve())


def test_a_report_goes_to_the_data_dir_or_the_output_root(tmp_path: Path) -> None:
    roots, data = [str(tmp_path / "media")], str(tmp_path / "data")
    output = str(tmp_path / "media" / "vod")
    check_job_paths({"output": output, "report": f"{output}/r.csv"}, roots, data)
    check_job_paths({"output": output, "report": f"{data}/r.json"}, roots, data)
    with pytest.raises(ForbiddenPath, match="report"):
        check_job_paths({"output": output, "report": str(tmp_path / "media/r.csv")}, roots, data)


def test_a_data_dir_an_older_version_left_readable_is_made_private_and_said_once(
    tmp_path: Path,
) -> None:
    """A data dir of 0755 with a catalog, token and credentials of 0644 (as older versions
    made them), and a config file of 0644: the next command makes the folder 0700 and the
    files 0600, and says what it changed once; the command after that says nothing."""
    home, lib = tmp_path / "home", tmp_path / "lib"
    make_files(lib, ["a.bin"])
    config = tmp_path / "mediamill.toml"
    config.write_text('api_token = "not-for-others"\n')
    db = f"sqlite:///{home / 'catalog.db'}"
    env = {"MEDIAMILL_HOME": str(home), "MEDIAMILL_CONFIG": str(config)}
    mediamill("scan", str(lib), db=db, env=env)
    (home / "api-token").write_text("token\n")
    (home / "credentials.json").write_text("{}")
    readable = [home / "catalog.db", home / "api-token", home / "credentials.json", config]
    home.chmod(0o755)
    for path in readable:
        path.chmod(0o644)
    first = mediamill("scan", str(lib), db=db, env=env)
    assert home.stat().st_mode & 0o777 == 0o700
    for path in readable:
        assert path.stat().st_mode & 0o777 == 0o600, path
    said = [line for line in first.stderr.splitlines() if "made private" in line]
    assert len(said) == 1, first.stderr
    assert f"{home} (755 -> 700)" in said[0]
    assert f"{home / 'catalog.db'} (644 -> 600)" in said[0]
    assert f"{config} (644 -> 600)" in said[0]
    again = mediamill("scan", str(lib), db=db, env=env)
    assert "made private" not in again.stderr


def test_a_new_catalog_is_private_from_the_start_so_nothing_is_said(tmp_path: Path) -> None:
    """The catalog and the lock file beside it are made 0600: the next command finds nothing
    to make private (it said so of every new catalog's lock file)."""
    home, lib = tmp_path / "home", tmp_path / "lib"
    make_files(lib, ["a.bin"])
    db = f"sqlite:///{home / 'catalog.db'}"
    env = {"MEDIAMILL_HOME": str(home), "MEDIAMILL_CONFIG": str(tmp_path / "absent.toml")}
    made = mediamill("scan", str(lib), db=db, env=env)
    for name in ("catalog.db", "catalog.db.lock"):
        assert (home / name).stat().st_mode & 0o777 == 0o600, name
    again = mediamill("scan", str(lib), db=db, env=env)
    assert "made private" not in made.stderr + again.stderr, again.stderr
