"""One Settings object: defaults < mediamill.toml < MEDIAMILL_* environment < command-line flags."""

from __future__ import annotations

import difflib
import logging
import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

import platformdirs
from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

log = logging.getLogger(__name__)


class ConfigError(ValueError):
    """A setting that cannot be used: the message names the file (or variable), line and key."""


#: the most workers a run may ask for (CLI, settings and API alike)
MAX_WORKERS = 256
#: the biggest batch a run may ask for
MAX_BATCH_SIZE = 10_000


def data_dir() -> Path:
    """Where the embedded catalog and the API token live (``MEDIAMILL_HOME`` overrides)."""
    home = os.environ.get("MEDIAMILL_HOME")
    return Path(home) if home else Path(platformdirs.user_data_dir("mediamill"))


def private_data_dir() -> Path:
    """The data dir, made if missing with mode 0700: it holds the catalog, the API token and
    source credentials, which nobody else on the machine should read. One an older version
    made readable by others is made private the first time a process uses it."""
    path = data_dir()
    if not path.is_dir():
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    elif path not in _made_private:
        _made_private.add(path)
        make_private([path, *(path / name for name in PRIVATE_FILES), config_file()])
    return path


#: what the data dir holds that others on the machine must not read: the catalog (and
#: SQLite's files beside it), the API token, source credentials and their lock files
PRIVATE_FILES = (
    "catalog.db", "catalog.db-wal", "catalog.db-shm", "catalog.db.lock",
    "api-token", "credentials.json", "credentials.lock",
)  # fmt: skip
#: data dirs this process has made private already
_made_private: set[Path] = set()


def make_private(paths: list[Path]) -> None:
    """Take the group's and others' permissions from each of ``paths`` that exists and
    belongs to this user (a folder becomes 0700, a file 0600), as earlier versions left
    them readable (0755/0644); what was changed is logged once, as a warning."""
    changed = []
    for path in paths:
        try:
            st = path.lstat()
        except OSError:
            continue
        mode = st.st_mode & 0o777
        if st.st_uid != os.getuid() or not mode & 0o077 or path.is_symlink():
            continue
        private = 0o700 if path.is_dir() else 0o600
        try:
            path.chmod(private)
        except OSError as exc:
            log.warning("%s is readable by others and cannot be made private: %s", path, exc)
            continue
        changed.append(f"{path} ({mode:o} -> {private:o})")
    if changed:
        log.warning("made private what others on this machine could read: %s", ", ".join(changed))


def default_allowed_roots() -> list[str]:
    """Where a server may read and write by default: the user's home and the usual mount
    points of media (``/media``, ``/mnt``, ``/srv``, ``/data``)."""
    return [str(Path.home()), "/media", "/mnt", "/srv", "/data"]


def config_file() -> Path:
    """``MEDIAMILL_CONFIG``, else ``./mediamill.toml``, else the user config dir's one."""
    explicit = os.environ.get("MEDIAMILL_CONFIG")
    if explicit:
        return Path(explicit)
    local = Path("mediamill.toml")
    if local.exists():
        return local.absolute()
    return Path(platformdirs.user_config_dir("mediamill")) / "mediamill.toml"


class Settings(BaseSettings):
    """Every knob of mediamill, with the defaults of the embedded single-machine set-up."""

    model_config = SettingsConfigDict(env_prefix="MEDIAMILL_", extra="ignore")

    #: SQLAlchemy URL of the catalog; empty means SQLite in the data dir
    db: str = ""
    #: executor: auto | serial | threads | processes | celery, an entry point of the
    #: ``mediamill.executors`` group, or package.module:Class
    executor: str = "auto"
    #: each executor's own settings: ``[executors.NAME]`` tables of mediamill.toml
    #: (``MEDIAMILL_EXECUTORS='{"NAME": {...}}'``), handed to that executor only
    executors: dict[str, dict[str, Any]] = Field(default_factory=dict)
    workers: int = Field(
        default_factory=lambda: min(os.cpu_count() or 1, MAX_WORKERS), ge=1, le=MAX_WORKERS
    )
    batch_size: int = Field(default=32, ge=1, le=MAX_BATCH_SIZE)
    #: seconds one item may take before it is recorded as failed and its worker replaced
    item_timeout: float = Field(default=120.0, gt=0)
    #: API
    host: str = "127.0.0.1"
    port: int = 8484
    api_token: str = ""
    #: folders a server may touch for its clients: library roots, strm output roots and
    #: ``m3u+file`` playlists must lie under one (the CLI, run by the user, is not limited).
    #: Environment: ``MEDIAMILL_ALLOWED_ROOTS=/srv/media:/home/me`` (or a JSON list)
    allowed_roots: Annotated[list[str], NoDecode] = Field(default_factory=default_allowed_roots)
    #: modules whose ``module:Class`` processors an HTTP request may name (a module and its
    #: submodules; comma-separated in ``MEDIAMILL_ALLOWED_PROCESSOR_MODULES``). Empty: none,
    #: only the built-in and installed (entry-point) processors. The CLI is not limited.
    allowed_processor_modules: Annotated[list[str], NoDecode] = Field(default_factory=list)
    #: jobs: how many run at once per coordinator, lease length, record retention
    max_running_jobs: int = Field(default=1, ge=1)
    lease_seconds: float = Field(default=30.0, gt=0)
    job_retention_days: float = Field(default=30.0, ge=0)
    #: watched folders: quiet seconds before a changed folder is scanned, and how often a
    #: library is polled where native events cannot be had (network file systems, limits)
    watch_settle_seconds: float = Field(default=5.0, gt=0)
    watch_poll_seconds: float = Field(default=60.0, gt=0)
    #: Celery broker for the celery executor and `mediamill worker` (redis:// or amqp://)
    broker_url: str = "redis://127.0.0.1:6379/0"
    #: the log file's level (debug, info, warning, error); stderr's is set by -v / -q
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    #: the rotating log file; empty means logs/mediamill.log in the data dir, "-" none
    log_file: str = ""
    #: a worker's map from the runner's paths to its own: {"/srv/media": "/mnt/nas/media"}
    #: (longest prefix wins)
    path_map: dict[str, str] = Field(default_factory=dict)
    #: Celery queues are named <prefix>.io and <prefix>.cpu (by the processor's work) ...
    celery_queue_prefix: str = "mediamill"
    #: ... unless a processor is routed to a queue of its own: {"audio": "mediamill.audio"}
    celery_routes: dict[str, str] = Field(default_factory=dict)
    #: seconds a batch runs on a worker before it hands back the items it has not begun
    #: (batches are bounded in time, so the broker never redelivers one that is running)
    celery_batch_seconds: float = Field(default=60.0, gt=0)
    #: seconds without a word from a running batch before the runner gives it to another worker
    celery_lost_after: float = Field(default=20.0, gt=0)
    #: seconds a job waits for a live worker that can run its processor before it fails
    celery_worker_wait: float = Field(default=30.0, ge=0)
    #: Redis redelivers a message not acknowledged within this many seconds; it must exceed
    #: the longest batch (celery_batch_seconds + item_timeout)
    celery_visibility_timeout: float = Field(default=7200.0, gt=0)
    #: `mediamill worker`: batches run at once (one local process each), and its queues
    #: (empty: <prefix>.io and <prefix>.cpu)
    worker_concurrency: int = Field(default=1, ge=1)
    worker_queues: list[str] = Field(default_factory=list)

    @field_validator("allowed_processor_modules", mode="before")
    @classmethod
    def _split_modules(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                import json

                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("allowed_roots", mode="before")
    @classmethod
    def _split_roots(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                import json

                return json.loads(text)
            return [part for part in text.split(os.pathsep) if part]
        return value

    @model_validator(mode="after")
    def _celery_section(self) -> Settings:
        """The celery executor's own settings (``[executors.celery]``) default to the
        top-level ones that `mediamill worker` reads too (``MEDIAMILL_BROKER_URL``, ...)."""
        top = {
            "broker_url": self.broker_url,
            "queue_prefix": self.celery_queue_prefix,
            "routes": dict(self.celery_routes),
            "batch_seconds": self.celery_batch_seconds,
            "lost_after": self.celery_lost_after,
            "worker_wait": self.celery_worker_wait,
            "visibility_timeout": self.celery_visibility_timeout,
        }
        self.executors["celery"] = {**top, **self.executors.get("celery", {})}
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _TomlSource(settings_cls, config_file()))

    def db_url(self) -> str:
        if self.db:
            return self.db
        return f"sqlite:///{data_dir() / 'catalog.db'}"


class _TomlSource(PydanticBaseSettingsSource):
    """``mediamill.toml``: malformed TOML is a :class:`ConfigError` naming the file and line;
    keys that are not settings are dropped with a warning (and a "did you mean")."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path) -> None:
        super().__init__(settings_cls)
        self.values = {k: v for k, v in read_config(path).items() if k in settings_cls.model_fields}

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self.values.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self.values)


_warned: set[tuple[str, str]] = set()


def read_config(path: Path) -> dict[str, Any]:
    """The config file's table (empty when there is none), warning once about unknown keys."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read ({exc})") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    known = list(Settings.model_fields)
    for key in data:
        if key in Settings.model_fields or (str(path), key) in _warned:
            continue
        _warned.add((str(path), key))
        near = difflib.get_close_matches(key, known, n=1)
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        line = key_line(path, key)
        log.warning("%s line %s: unknown setting %r ignored%s", path, line, key, hint)
    return data


def key_line(path: Path, key: str) -> int | None:
    """The line where ``key`` is set in the TOML file ``path`` (``None`` if not found)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    pattern = re.compile(rf"^\s*[\"']?{re.escape(key)}[\"']?\s*=")
    return next((n for n, line in enumerate(lines, 1) if pattern.match(line)), None)


def origin(key: str, flags: dict[str, Any] | None = None) -> str:
    """Where the effective value of setting ``key`` comes from, as a user would look for it."""
    env = f"MEDIAMILL_{key.upper()}"
    if flags and flags.get(key) is not None and str(flags[key]) != os.environ.get(env):
        return "command line"
    if env in os.environ:
        return f"environment {env}"
    path = config_file()
    if key in read_config(path):
        return f"{path} line {key_line(path, key)}"
    return "default"


def load(**overrides: Any) -> Settings:
    """Settings with flags applied; ``None`` flags mean "not given" and are dropped.

    A value that is not valid is a :class:`ConfigError` of one line per bad key, naming
    where it was set (flag, environment variable, or file and line)."""
    flags = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**flags)
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            key = str(error["loc"][0]) if error["loc"] else "?"
            lines.append(f"{origin(key, flags)}: {key} = {error['input']!r}: {error['msg']}")
        raise ConfigError("\n".join(lines)) from None
