"""Settings as a user sets them: defaults < mediamill.toml < MEDIAMILL_* environment < flags,
converted and checked as they always were (pydantic's lax rules and words), and read without
importing pydantic: every command pays for what its settings import."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mediamill.settings import FIELDS, MAX_WORKERS, ConfigError, Settings, load


@pytest.fixture
def toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A config file of this test's own (not yet written), and no MEDIAMILL_* setting of the
    machine's."""
    for name in list(os.environ):
        if name.upper().startswith("MEDIAMILL_") and name != "MEDIAMILL_HOME":
            monkeypatch.delenv(name)
    path = tmp_path / "mediamill.toml"
    monkeypatch.setenv("MEDIAMILL_CONFIG", str(path))
    return path


def _error(**flags: object) -> str:
    with pytest.raises(ConfigError) as caught:
        load(**flags)
    return str(caught.value)


def test_settings_import_neither_pydantic_nor_pydantic_settings(toml: Path) -> None:
    toml.write_text("workers = 3\n")
    code = (
        "import sys, mediamill.settings as s; s.load(); "
        "print('pydantic' in sys.modules, 'pydantic_settings' in sys.modules)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert proc.stdout.strip() == "False False", proc.stderr


def test_flags_beat_the_environment_which_beats_the_file_which_beats_the_defaults(
    toml: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    toml.write_text('workers = 7\nbatch_size = 9\nexecutor = "threads"\n')
    monkeypatch.setenv("MEDIAMILL_WORKERS", "5")
    monkeypatch.setenv("MEDIAMILL_BATCH_SIZE", "11")
    settings = load(workers=3, batch_size=None)  # None: the flag was not given
    assert (settings.workers, settings.batch_size, settings.executor) == (3, 11, "threads")
    assert settings.port == 8484
    monkeypatch.delenv("MEDIAMILL_WORKERS")
    assert load().workers == 7
    toml.unlink()
    assert load().workers == min(os.cpu_count() or 1, MAX_WORKERS)
    assert set(load().allowed_roots) >= {str(Path.home()), "/media", "/mnt", "/srv"}


def test_environment_names_match_in_any_case(toml: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("mediamill_workers", "3")
    monkeypatch.setenv("Mediamill_Log_Level", "debug")
    settings = load()
    assert (settings.workers, settings.log_level) == (3, "debug")


def test_numbers_are_converted_as_before(toml: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    toml.write_text("batch_size = 8.0\nlease_seconds = 5\nport = true\n")
    monkeypatch.setenv("MEDIAMILL_WORKERS", " 4 ")
    monkeypatch.setenv("MEDIAMILL_MAX_RUNNING_JOBS", "2.0")
    monkeypatch.setenv("MEDIAMILL_ITEM_TIMEOUT", "1e3")
    settings = load(worker_concurrency="1_0")
    assert (settings.workers, settings.batch_size, settings.max_running_jobs) == (4, 8, 2)
    assert settings.worker_concurrency == 10
    assert settings.port == 1  # a TOML true is 1, as pydantic's lax mode had it
    assert settings.lease_seconds == 5.0
    assert isinstance(settings.lease_seconds, float)
    assert settings.item_timeout == 1000.0


def test_a_number_that_is_not_whole_or_not_a_number_is_refused_in_pydantics_words(
    toml: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    toml.write_text("batch_size = 1.5\n")
    monkeypatch.setenv("MEDIAMILL_WORKERS", "1.5")
    monkeypatch.setenv("MEDIAMILL_ITEM_TIMEOUT", "soon")
    assert _error(port=[80]).splitlines() == [
        "environment MEDIAMILL_WORKERS: workers = '1.5': "
        "Input should be a valid integer, unable to parse string as an integer",
        f"{toml} line 1: batch_size = 1.5: "
        "Input should be a valid integer, got a number with a fractional part",
        "environment MEDIAMILL_ITEM_TIMEOUT: item_timeout = 'soon': "
        "Input should be a valid number, unable to parse string as a number",
        "command line: port = [80]: Input should be a valid integer",
    ]


def test_bounds_name_the_value_as_given_and_where_it_was_set(
    toml: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    toml.write_text("\nitem_timeout = 0\njob_retention_days = 0\n")
    monkeypatch.setenv("MEDIAMILL_WORKERS", "0")
    assert _error(batch_size=10**9).splitlines() == [
        "environment MEDIAMILL_WORKERS: workers = '0': Input should be greater than or equal to 1",
        "command line: batch_size = 1000000000: Input should be less than or equal to 10000",
        f"{toml} line 2: item_timeout = 0: Input should be greater than 0",
    ]
    monkeypatch.delenv("MEDIAMILL_WORKERS")
    toml.write_text("job_retention_days = 0\n")  # ge=0: zero is allowed
    assert load(workers=MAX_WORKERS).job_retention_days == 0.0
    assert "less than or equal to 256" in _error(workers=MAX_WORKERS + 1)


def test_strings_and_levels_are_not_guessed(toml: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    toml.write_text("db = 5\n")
    monkeypatch.setenv("MEDIAMILL_LOG_LEVEL", "INFO")
    assert _error().splitlines() == [
        f"{toml} line 1: db = 5: Input should be a valid string",
        "environment MEDIAMILL_LOG_LEVEL: log_level = 'INFO': "
        "Input should be 'debug', 'info', 'warning' or 'error'",
    ]


def test_tables_and_lists_from_the_environment_are_json(
    toml: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEDIAMILL_PATH_MAP", '{"/srv/media": "/mnt/media"}')
    monkeypatch.setenv("MEDIAMILL_WORKER_QUEUES", '["mm.io", "mm.audio"]')
    monkeypatch.setenv("MEDIAMILL_EXECUTORS", '{"mine": {"endpoint": "http://h", "n": 2}}')
    settings = load()
    assert settings.path_map == {"/srv/media": "/mnt/media"}
    assert settings.worker_queues == ["mm.io", "mm.audio"]
    assert settings.executors["mine"] == {"endpoint": "http://h", "n": 2}
    monkeypatch.setenv("MEDIAMILL_PATH_MAP", "null")  # JSON null: as if not set
    assert load().path_map == {}
    monkeypatch.setenv("MEDIAMILL_PATH_MAP", '{"/srv": 5}')
    expected = "environment MEDIAMILL_PATH_MAP: path_map = 5: Input should be a valid string"
    assert _error() == expected


def test_malformed_json_in_the_environment_is_a_config_error_naming_the_variable(
    toml: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEDIAMILL_EXECUTORS", '{"celery": {"broker_url": "redis://h"}')
    monkeypatch.setenv("MEDIAMILL_WORKER_QUEUES", "mm.io,mm.cpu")
    monkeypatch.setenv("MEDIAMILL_WORKERS", "none")
    lines = _error().splitlines()
    assert len(lines) == 3, lines
    assert lines[0].startswith(
        "environment MEDIAMILL_EXECUTORS: executors = "
        """'{"celery": {"broker_url": "redis://h"}': Invalid JSON: """
    )
    assert lines[1].startswith("environment MEDIAMILL_WORKERS: workers = 'none': ")
    assert lines[2].startswith(
        "environment MEDIAMILL_WORKER_QUEUES: worker_queues = 'mm.io,mm.cpu': Invalid JSON: "
    )


def test_allowed_roots_and_processor_modules_split_or_read_a_json_list(
    toml: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEDIAMILL_ALLOWED_ROOTS", f"/srv/media{os.pathsep}/home/me/My Music")
    monkeypatch.setenv("MEDIAMILL_ALLOWED_PROCESSOR_MODULES", " plugins.a , plugins.b,, ")
    settings = load()
    assert settings.allowed_roots == ["/srv/media", "/home/me/My Music"]
    assert settings.allowed_processor_modules == ["plugins.a", "plugins.b"]
    monkeypatch.setenv("MEDIAMILL_ALLOWED_ROOTS", '["/a:b"]')
    monkeypatch.setenv("MEDIAMILL_ALLOWED_PROCESSOR_MODULES", '["x,y"]')
    settings = load()
    assert (settings.allowed_roots, settings.allowed_processor_modules) == (["/a:b"], ["x,y"])
    monkeypatch.setenv("MEDIAMILL_ALLOWED_ROOTS", "[/srv")
    assert _error().startswith(
        "environment MEDIAMILL_ALLOWED_ROOTS: allowed_roots = '[/srv': Invalid JSON: "
    )


def test_tables_set_in_several_places_are_merged_key_by_key(
    toml: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    toml.write_text(
        'celery_lost_after = 3\n[executors.celery]\nqueue_prefix = "file"\nbatch_seconds = 9\n'
        '[executors.mine]\nkeep = 1\nover = "file"\n[path_map]\n"/a" = "/file"\n"/b" = "/file"\n'
    )
    monkeypatch.setenv("MEDIAMILL_EXECUTORS", '{"mine": {"over": "env", "deep": {"x": 1}}}')
    monkeypatch.setenv("MEDIAMILL_PATH_MAP", '{"/b": "/env"}')
    monkeypatch.setenv("MEDIAMILL_BROKER_URL", "amqp://env")
    settings = load(executors={"celery": {"batch_seconds": 4}})
    assert settings.executors["mine"] == {"keep": 1, "over": "env", "deep": {"x": 1}}
    assert settings.path_map == {"/a": "/file", "/b": "/env"}
    assert settings.executors["celery"] == {  # the top-level celery_* settings fill the rest
        "broker_url": "amqp://env",
        "queue_prefix": "file",
        "routes": {},
        "batch_seconds": 4,
        "lost_after": 3.0,
        "worker_wait": 30.0,
        "visibility_timeout": 7200.0,
    }


def test_names_that_are_not_settings_are_ignored_and_a_file_says_so(
    toml: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    toml.write_text("\nbatch_sise = 3\n")
    monkeypatch.setenv("MEDIAMILL_NO_SUCH", "1")
    with caplog.at_level(logging.WARNING, logger="mediamill.settings"):
        settings = load(no_such_flag=1)
    assert settings.batch_size == 32
    assert caplog.messages == [
        f"{toml} line 2: unknown setting 'batch_sise' ignored (did you mean 'batch_size'?)"
    ]


def test_as_dict_lists_every_setting_in_order_and_copies_tables(toml: Path) -> None:
    settings = load()
    values = settings.as_dict()
    assert tuple(values) == FIELDS
    assert values["executors"]["celery"]["broker_url"] == settings.broker_url
    values["executors"].clear()
    assert "celery" in settings.executors
    assert load(**values).workers == settings.workers


def test_settings_built_directly_are_converted_and_checked_too() -> None:
    assert Settings(workers="4", item_timeout=2).workers == 4
    assert Settings(item_timeout=2).item_timeout == 2.0
    with pytest.raises(ConfigError, match=r"^workers = 0: Input should be greater than or equal"):
        Settings(workers=0)
