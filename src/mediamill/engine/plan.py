"""The run plan: a job's options resolved once, with where each engine option came from.

A job stores the options it was given (CLI flags and ``--set``, an API request's ``options``,
Python's ``options=``); the plan resolves them against the processor's defaults and the
settings, in that order (flag > job > processor default > settings > built-in: a value the
command that runs the job was given on its command line is a flag's, one the job holds
from an API request, Python or an earlier command is the job's), separates engine,
processor and source options, and carries the selection and the result version. The runner
reads nothing else: no stage looks back into the raw options.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from mediamill.catalog.db import LibraryRef, Selection
from mediamill.options import ENGINE_OPTION_NAMES, ENGINE_OPTIONS
from mediamill.processors import base as registry
from mediamill.processors.base import Processor
from mediamill.redact import with_secrets


@dataclass(slots=True)
class EngineOptions:
    """How a job runs; one field per :data:`mediamill.options.ENGINE_OPTIONS` entry, plus
    the window (batches in flight per worker), which is not an option."""

    executor: str = "auto"
    workers: int = 2
    batch_size: int = 32
    rate: float | None = None
    limit: int | None = None
    force: bool = False
    dry_run: bool = False
    item_timeout: float = 120.0
    #: seconds: keep per-item latency near this by adapting concurrency (None: off)
    adaptive_latency: float | None = None
    #: batches in flight per worker
    window_per_worker: int = 2


def engine_defaults(settings: Any) -> EngineOptions:
    """The engine options the settings give (those of :data:`ENGINE_OPTIONS` that name a
    setting); the rest keep their built-in defaults."""
    return EngineOptions(
        **{o.name: getattr(settings, o.setting) for o in ENGINE_OPTIONS if o.setting}
    )


#: where a value of the plan came from
FLAG, JOB, PROCESSOR, SETTINGS = "flag", "job", "processor", "settings"
BUILT_IN = "built-in"


@dataclass(frozen=True, slots=True)
class RunPlan:
    """Everything the runner needs to know about a job before it reads an item."""

    processor: type[Processor]
    engine: EngineOptions
    #: what the processor is built with (its own options, secrets put back, ``dry_run``)
    processor_options: dict[str, Any]
    #: the options that belong to the library's source (read at scan time, not by the run)
    source_options: dict[str, Any]
    selection: Selection
    #: the result version results are stored with (``Processor.result_version``)
    version: str
    #: engine option -> FLAG | JOB | PROCESSOR | SETTINGS | BUILT_IN
    origins: dict[str, str] = field(default_factory=dict)


def resolve(
    record: Mapping[str, Any],
    library: LibraryRef,
    *,
    defaults: EngineOptions,
    secrets: Any = None,
    flags: Collection[str] = (),
) -> RunPlan:
    """The plan of a job ``record`` (as ``jobs.manager.get_job`` gives it) over ``library``;
    ``defaults`` are the engine options the settings give, ``secrets`` those the caller
    holds for the processor (never stored with the job), ``flags`` the names of the options
    the caller was given on its command line."""
    options = {k: v for k, v in dict(record["options"] or {}).items() if v is not None}
    proc_cls = registry.get(record["processor"])
    engine, origins = _engine(options, proc_cls, defaults, flags)
    own = proc_cls.option_names
    rest = {k: v for k, v in options.items() if k not in ENGINE_OPTION_NAMES}
    processor_options = rest if own is None else {k: v for k, v in rest.items() if k in own}
    processor_options = with_secrets(processor_options, secrets)
    processor_options["dry_run"] = engine.dry_run
    # processors may read it too (comic: apply its rules over values already set)
    processor_options["force"] = engine.force
    source_options = {}
    if library.kind == "source":
        from mediamill.sources import source_option_names

        names = source_option_names(library.root)
        source_options = {k: v for k, v in rest.items() if k in names}
    sel = record["selection"] or {}
    selection = Selection(
        library_id=library.id,
        kinds=proc_cls.kinds,
        paths=tuple(sel["paths"]) if sel.get("paths") is not None else None,
        only=sel.get("only"),
    )
    version = registry.create(proc_cls.name, processor_options).result_version()
    return RunPlan(proc_cls, engine, processor_options, source_options, selection, version, origins)


def _engine(
    options: Mapping[str, Any],
    proc_cls: type[Processor],
    defaults: EngineOptions,
    flags: Collection[str],
) -> tuple[EngineOptions, dict[str, str]]:
    processor_defaults = {"workers": proc_cls.default_workers, "batch_size": proc_cls.batch_size}
    values = {f.name: getattr(defaults, f.name) for f in fields(EngineOptions)}
    origins: dict[str, str] = {}
    for option in ENGINE_OPTIONS:
        if option.name in options:
            values[option.name] = options[option.name]
            origins[option.name] = FLAG if option.name in flags else JOB
        elif processor_defaults.get(option.name):
            values[option.name] = processor_defaults[option.name]
            origins[option.name] = PROCESSOR
        else:
            origins[option.name] = SETTINGS if option.setting else BUILT_IN
    return EngineOptions(**values), origins
