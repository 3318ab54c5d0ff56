"""One Settings object: defaults < mediamill.toml < MEDIAMILL_* environment < command-line flags.

Read and checked without pydantic (importing it cost every command ~0.04 s of start-up): a
field's annotation is its type and its ``metadata`` its bounds (``ge``, ``gt``, ``le``) or how
a string splits into a list (``split``); :func:`_coerce` converts what a source gives as
pydantic's lax mode did ("4" and 4.0 are 4, 1.5 is no int) and says what is wrong in its words."""

from __future__ import annotations

import difflib
import json
import logging
import math
import operator
import os
import re
import tomllib
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import Field, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import platformdirs

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


def _default_workers() -> int:
    return min(os.cpu_count() or 1, MAX_WORKERS)


def _path_list(value: str) -> Any:
    """``/srv/media:/home/me`` (``os.pathsep`` between paths), or a JSON list."""
    text = value.strip()
    return _json(value) if text.startswith("[") else [p for p in text.split(os.pathsep) if p]


def _name_list(value: str) -> Any:
    """``pkg.a, pkg.b`` (commas between names), or a JSON list."""
    text = value.strip()
    if text.startswith("["):
        return _json(value)
    return [part.strip() for part in text.split(",") if part.strip()]


@dataclass(kw_only=True, slots=True)
class Settings:
    """Every knob of mediamill, with the defaults of the embedded single-machine set-up.

    ``Settings(workers=4)`` is those values and the defaults, converted and checked (else a
    :class:`ConfigError`); :func:`load` takes them from flags, environment and file."""

    #: SQLAlchemy URL of the catalog; empty means SQLite in the data dir
    db: str = ""
    #: executor: auto | serial | threads | processes | celery, an entry point of the
    #: ``mediamill.executors`` group, or package.module:Class
    executor: str = "auto"
    #: each executor's own settings: ``[executors.NAME]`` tables of mediamill.toml
    #: (``MEDIAMILL_EXECUTORS='{"NAME": {...}}'``), handed to that executor only
    executors: dict[str, dict[str, Any]] = field(default_factory=dict)
    workers: int = field(default_factory=_default_workers, metadata={"ge": 1, "le": MAX_WORKERS})
    batch_size: int = field(default=32, metadata={"ge": 1, "le": MAX_BATCH_SIZE})
    #: seconds one item may take before it is recorded as failed and its worker replaced
    item_timeout: float = field(default=120.0, metadata={"gt": 0})
    #: API
    host: str = "127.0.0.1"
    port: int = 8484
    api_token: str = ""
    #: folders a server may touch for its clients: library roots, strm output roots and
    #: ``m3u+file`` playlists must lie under one (the CLI, run by the user, is not limited).
    #: Environment: ``MEDIAMILL_ALLOWED_ROOTS=/srv/media:/home/me`` (or a JSON list)
    allowed_roots: list[str] = field(
        default_factory=default_allowed_roots, metadata={"split": _path_list}
    )
    #: modules whose ``module:Class`` processors an HTTP request may name (a module and its
    #: submodules; comma-separated in ``MEDIAMILL_ALLOWED_PROCESSOR_MODULES``). Empty: none,
    #: only the built-in and installed (entry-point) processors. The CLI is not limited.
    allowed_processor_modules: list[str] = field(
        default_factory=list, metadata={"split": _name_list}
    )
    #: jobs: how many run at once per coordinator, lease length, record retention
    max_running_jobs: int = field(default=1, metadata={"ge": 1})
    lease_seconds: float = field(default=30.0, metadata={"gt": 0})
    job_retention_days: float = field(default=30.0, metadata={"ge": 0})
    #: watched folders: quiet seconds before a changed folder is scanned, and how often a
    #: library is polled where native events cannot be had (network file systems, limits)
    watch_settle_seconds: float = field(default=5.0, metadata={"gt": 0})
    watch_poll_seconds: float = field(default=60.0, metadata={"gt": 0})
    #: Celery broker for the celery executor and `mediamill worker` (redis:// or amqp://)
    broker_url: str = "redis://127.0.0.1:6379/0"
    #: the log file's level (debug, info, warning, error); stderr's is set by -v / -q
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    #: the rotating log file; empty means logs/mediamill.log in the data dir, "-" none
    log_file: str = ""
    #: a worker's map from the runner's paths to its own: {"/srv/media": "/mnt/nas/media"}
    #: (longest prefix wins)
    path_map: dict[str, str] = field(default_factory=dict)
    #: Celery queues are named <prefix>.io and <prefix>.cpu (by the processor's work) ...
    celery_queue_prefix: str = "mediamill"
    #: ... unless a processor is routed to a queue of its own: {"audio": "mediamill.audio"}
    celery_routes: dict[str, str] = field(default_factory=dict)
    #: seconds a batch runs on a worker before it hands back the items it has not begun
    #: (batches are bounded in time, so the broker never redelivers one that is running)
    celery_batch_seconds: float = field(default=60.0, metadata={"gt": 0})
    #: seconds without a word from a running batch before the runner gives it to another worker
    celery_lost_after: float = field(default=20.0, metadata={"gt": 0})
    #: seconds a job waits for a live worker that can run its processor before it fails
    celery_worker_wait: float = field(default=30.0, metadata={"ge": 0})
    #: Redis redelivers a message not acknowledged within this many seconds; it must exceed
    #: the longest batch (celery_batch_seconds + item_timeout)
    celery_visibility_timeout: float = field(default=7200.0, metadata={"gt": 0})
    #: `mediamill worker`: batches run at once (one local process each), and its queues
    #: (empty: <prefix>.io and <prefix>.cpu)
    worker_concurrency: int = field(default=1, metadata={"ge": 1})
    worker_queues: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        problems = {}
        for spec in fields(self):
            try:
                setattr(self, spec.name, _convert(spec, getattr(self, spec.name)))
            except _Bad as bad:
                problems[spec.name] = bad
        if problems:
            raise _Invalid(problems)
        self._celery_section()

    def _celery_section(self) -> None:
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

    def as_dict(self) -> dict[str, Any]:
        """Every setting by name, in declaration order (tables and lists are copies)."""
        return asdict(self)

    def db_url(self) -> str:
        if self.db:
            return self.db
        return f"sqlite:///{data_dir() / 'catalog.db'}"


#: every setting's name, in declaration order
FIELDS: tuple[str, ...] = tuple(spec.name for spec in fields(Settings))
#: every setting's type (the annotations, evaluated)
_TYPES: dict[str, Any] = typing.get_type_hints(Settings)
#: bounds a field's metadata may set: the test a value must pass, and pydantic's words for it
_BOUNDS: dict[str, tuple[Callable[[Any, Any], bool], str]] = {
    "gt": (operator.gt, "greater than"),
    "ge": (operator.ge, "greater than or equal to"),
    "le": (operator.le, "less than or equal to"),
}
#: an integer as a string: sign, digits (``_`` between them), and ``.0`` at most
_INT = re.compile(r"[+-]?[0-9]+(?:_[0-9]+)*(?:\.0+)?")


class _Bad(Exception):
    """A value that does not fit: the input at fault (an item, for a table or a list) and why."""

    def __init__(self, value: Any, why: str) -> None:
        super().__init__(why)
        self.value = value
        self.why = why


class _Invalid(ConfigError):
    """``Settings(...)`` given values that do not fit: one line per bad key."""

    def __init__(self, problems: dict[str, _Bad]) -> None:
        super().__init__("\n".join(f"{k} = {p.value!r}: {p.why}" for k, p in problems.items()))
        self.problems = problems


def _convert(spec: Field[Any], value: Any) -> Any:
    """``value`` for setting ``spec``: split if it is a string of a list, converted, checked."""
    split = spec.metadata.get("split")
    converted = _coerce(
        split(value) if split and isinstance(value, str) else value, _TYPES[spec.name]
    )
    for bound, limit in spec.metadata.items():
        if bound in _BOUNDS:
            test, words = _BOUNDS[bound]
            if not test(converted, limit):
                raise _Bad(value, f"Input should be {words} {limit}")  # as given: "0", not 0
    return converted


def _coerce(value: Any, kind: Any) -> Any:
    """``value`` as ``kind`` (str, int, float, a Literal of strings, dict[str, X], list[X] or
    Any), converted as pydantic's lax mode does; a new table or list, never the one given."""
    if kind is Any:
        return value
    if kind is str:
        if isinstance(value, str):
            return value
        raise _Bad(value, "Input should be a valid string")
    if kind is int:
        return _int(value)
    if kind is float:
        return _float(value)
    shape, args = typing.get_origin(kind), typing.get_args(kind)
    if shape is Literal:
        if isinstance(value, str) and value in args:
            return value
        *others, last = map(repr, args)
        raise _Bad(value, f"Input should be {', '.join(others) + ' or ' if others else ''}{last}")
    if shape is dict:
        if not isinstance(value, Mapping):
            raise _Bad(value, "Input should be a valid dictionary")
        return {_coerce(k, args[0]): _coerce(v, args[1]) for k, v in value.items()}
    if shape is list:
        if isinstance(value, str | bytes | Mapping) or not isinstance(value, Iterable):
            raise _Bad(value, "Input should be a valid list")
        return [_coerce(item, args[0]) for item in value]
    raise TypeError(f"a setting of type {kind} cannot be read")


def _int(value: Any) -> int:
    if isinstance(value, int):  # True and False too: 1 and 0, as pydantic's lax mode has it
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _Bad(value, "Input should be a finite number")
        if not value.is_integer():
            raise _Bad(
                value, "Input should be a valid integer, got a number with a fractional part"
            )
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        if _INT.fullmatch(text):
            return int(text.partition(".")[0])
        raise _Bad(value, "Input should be a valid integer, unable to parse string as an integer")
    raise _Bad(value, "Input should be a valid integer")


def _float(value: Any) -> float:
    if isinstance(value, int | float):
        try:
            return float(value)
        except OverflowError:  # an int beyond any float
            raise _Bad(value, "Input should be a valid number") from None
    if isinstance(value, str):
        text = value.strip()
        try:
            if text.isascii():  # float() would take other scripts' digits
                return float(text)
        except ValueError:
            pass
        raise _Bad(value, "Input should be a valid number, unable to parse string as a number")
    raise _Bad(value, "Input should be a valid number")


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise _Bad(text, f"Invalid JSON: {exc}") from None


def _env_values() -> tuple[dict[str, Any], dict[str, _Bad]]:
    """The settings set by ``MEDIAMILL_<NAME>`` variables (the name in any case), tables and
    lists JSON-decoded (JSON ``null`` counts as not set), and the variables that are not JSON."""
    env = {name.lower(): text for name, text in os.environ.items()}
    values: dict[str, Any] = {}
    problems: dict[str, _Bad] = {}
    for spec in fields(Settings):
        text = env.get(f"mediamill_{spec.name}")
        if text is None:
            continue
        if "split" in spec.metadata or typing.get_origin(_TYPES[spec.name]) not in (dict, list):
            values[spec.name] = text
            continue
        try:
            value = _json(text)
        except _Bad as bad:
            problems[spec.name] = bad
            continue
        if value is not None:
            values[spec.name] = value
    return values, problems


def _merged(low: dict[str, Any], high: dict[str, Any]) -> dict[str, Any]:
    """``low`` updated with ``high``, tables in both merged key by key, at any depth."""
    merged = dict(low)
    for key, value in high.items():
        both = isinstance(merged.get(key), dict) and isinstance(value, dict)
        merged[key] = _merged(merged[key], value) if both else value
    return merged


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
    known = list(FIELDS)
    for key in data:
        if key in _TYPES or (str(path), key) in _warned:
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

    Tables (``executors``, ``path_map``, ``celery_routes``) set in several places are merged,
    key by key; names that are not settings are ignored. A value that is not valid is a
    :class:`ConfigError` of one line per bad key, naming where it was set (flag, environment
    variable, or file and line)."""
    flags = {k: v for k, v in overrides.items() if v is not None}
    env, problems = _env_values()
    values: dict[str, Any] = {}
    for source in (read_config(config_file()), env, flags):
        values = _merged(values, {k: v for k, v in source.items() if k in _TYPES})
    try:
        settings = Settings(**{k: v for k, v in values.items() if k not in problems})
    except _Invalid as exc:
        problems |= exc.problems
    else:
        if not problems:
            return settings
    lines = [
        f"{origin(key, flags)}: {key} = {bad.value!r}: {bad.why}"
        for key in FIELDS
        if (bad := problems.get(key))
    ]
    raise ConfigError("\n".join(lines))
