"""The engine's options, listed once: what a run may set about how (not what) it processes.

Everything that names an engine option derives from :data:`ENGINE_OPTIONS` or is checked
against it by a test (``tests/unit/test_options.py``): the runner's ``EngineOptions``, the
jobs' split of engine and processor options, the API's ``JobOptions`` schema, the flags of
``mediamill run`` and the early-walk argument reader (``walk.VALUE_OPTIONS``). Every other
option of a job belongs to its processor (``Processor.option_names``) or its source
(``sources.source_option_names``); one that belongs to none is refused.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class EngineOption:
    """One engine option: its name in jobs and the API, its type and bounds, its flags on
    ``mediamill run`` and the setting that gives its default (``None``: the built-in one)."""

    name: str
    type: type
    help: str
    flags: tuple[str, ...] = ()
    setting: str | None = None
    ge: float | None = None
    gt: float | None = None
    le: float | None = None


ENGINE_OPTIONS: tuple[EngineOption, ...] = (
    EngineOption("workers", int, "parallel workers", ("--workers", "-w"), "workers", ge=1, le=256),
    EngineOption(
        "batch_size", int, "items per batch", ("--batch-size",), "batch_size", ge=1, le=10_000
    ),
    EngineOption("rate", float, "at most this many items per second", ("--rate",), gt=0),
    EngineOption("limit", int, "process at most N items", ("--limit",), ge=0),
    EngineOption("force", bool, "redo items whose result is fresh", ("--force",)),
    EngineOption("dry_run", bool, "change nothing; report what would be done", ("--dry-run",)),
    EngineOption(
        "executor",
        str,
        "where batches run: auto, serial, threads, processes, ...",
        ("--executor", "-e"),
        "executor",
    ),
    EngineOption(
        "item_timeout", float, "seconds one item may take", ("--timeout",), "item_timeout", gt=0
    ),
    EngineOption(
        "adaptive_latency",
        float,
        "adapt concurrency to keep per-item seconds near this",
        ("--adaptive-latency",),
        gt=0,
    ),
)
ENGINE_OPTION_NAMES: frozenset[str] = frozenset(option.name for option in ENGINE_OPTIONS)
