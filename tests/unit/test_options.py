"""The engine's options exist once (mediamill.options), and every place that names them agrees
with that list; a job's options are resolved once into a plan that says where each engine
option came from; an option nothing reads is refused."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

import pytest
import typer.main
from typer.testing import CliRunner

import mediamill as mediamill_python
from mediamill import ops, walk
from mediamill.api.schemas import JobOptions
from mediamill.catalog.db import Catalog
from mediamill.cli import app
from mediamill.engine.plan import EngineOptions
from mediamill.options import ENGINE_OPTION_NAMES, ENGINE_OPTIONS
from mediamill.processors import base as registry
from tests.conftest import make_files
from tests.helpers.cli import mediamill
from tests.helpers.run import run_folder


def test_the_runners_engine_options_are_the_list() -> None:
    names = {f.name for f in fields(EngineOptions)} - {"window_per_worker"}
    assert names == ENGINE_OPTION_NAMES


def test_the_api_schema_takes_exactly_the_listed_options_with_their_bounds() -> None:
    assert set(JobOptions.model_fields) == ENGINE_OPTION_NAMES
    for option in ENGINE_OPTIONS:
        bounds = {}
        for meta in JobOptions.model_fields[option.name].metadata:
            for key in ("ge", "gt", "le"):
                if getattr(meta, key, None) is not None:
                    bounds[key] = getattr(meta, key)
        for key in ("ge", "gt", "le"):
            if getattr(option, key) is not None:
                assert bounds.get(key) == getattr(option, key), (option.name, key)


def test_mediamill_run_has_a_flag_for_every_option_and_the_walk_knows_those_with_values() -> None:
    command = typer.main.get_command(app)
    run = command.commands["run"]  # type: ignore[attr-defined]
    flags = {opt for param in run.params for opt in param.opts}
    for option in ENGINE_OPTIONS:
        assert set(option.flags) <= flags, option.name
        if option.type is not bool:
            assert set(option.flags) <= walk.VALUE_OPTIONS, option.name


def test_an_option_nothing_reads_is_refused_with_what_is_taken() -> None:
    with pytest.raises(ops.UnknownOptions) as refused:
        ops.validate_options("probe", {"workers": 2, "mutagn": False})
    assert str(refused.value).startswith(
        "unknown option mutagn: probe takes mutagen; the engine takes adaptive_latency, "
    )
    ops.validate_options("probe", {"workers": 2, "mutagen": False})
    spec = "xtream+http://127.0.0.1:1"
    ops.validate_options("strm", {"output": "/tmp/o", "request_rate": 2}, source=spec)
    with pytest.raises(ops.UnknownOptions, match="the source takes"):
        ops.validate_options("strm", {"output": "/tmp/o", "request_rat": 2}, source=spec)


def test_every_built_in_processor_declares_its_options() -> None:
    for name in registry.available():
        assert registry.get(name).option_names is not None, name


@pytest.mark.parametrize("processor", registry.available())
def test_the_cli_refuses_an_unknown_option_clearly(processor: str, tmp_path: Path) -> None:
    make_files(tmp_path / "lib", ["a.bin"])
    result = CliRunner().invoke(
        app,
        ["run", processor, str(tmp_path / "lib"), "--set", "colour=red", "--db",
         f"sqlite:///{tmp_path / 'c.db'}"],
    )  # fmt: skip
    assert result.exit_code != 0
    assert f"unknown option colour: {processor} takes " in result.output
    if processor == "probe":
        assert "unknown option colour: probe takes mutagen;" in result.output


def test_a_plug_in_that_declares_no_options_gets_them_with_a_warning(tmp_path: Path) -> None:
    """A processor without ``option_names`` (a plug-in written before they were declared)
    still gets its options, and the user is told they were not checked."""
    make_files(tmp_path / "lib", ["a.bin"])
    echo = "tests.helpers.processors:Echo"
    run = mediamill(
        "run", echo, str(tmp_path / "lib"), "--set", "delay=0", "--workers", "1", "-q",
        db=f"sqlite:///{tmp_path / 'c.db'}",
    )  # fmt: skip
    assert f"{echo} does not declare its options" in run.stderr
    assert "delay given to it unchecked" in run.stderr
    assert "completed: 1/1 items, 1 ok" in run.stdout


def test_a_flag_is_its_own_origin_in_the_plan(tmp_path: Path) -> None:
    """``mediamill run --workers 1`` (and ``--set``) are flags in the plan's origins; the same
    values held by a job made from Python (or the API) are the job's."""
    make_files(tmp_path / "lib", ["a.bin", "b.bin"])
    db = f"sqlite:///{tmp_path / 'c.db'}"
    lib = str(tmp_path / "lib")
    run = mediamill(
        "run", "probe", lib, "--workers", "1", "--set", "batch_size=2", "--force", "--json",
        db=db,
    )  # fmt: skip
    origins = json.loads(run.stdout)["summary"]["options_from"]
    assert (origins["workers"], origins["batch_size"], origins["force"]) == ("flag",) * 3
    assert (origins["executor"], origins["limit"]) == ("settings", "built-in")
    job = mediamill_python.run(
        "probe", lib, db=db, options={"workers": 1, "batch_size": 2, "force": True}
    )
    origins = job["summary"]["options_from"]
    assert (origins["workers"], origins["batch_size"], origins["force"]) == ("job",) * 3


def test_the_plan_says_where_each_engine_option_came_from(catalog: Catalog, tmp_path: Path) -> None:
    root = tmp_path / "lib"
    make_files(root, [f"f{i}.bin" for i in range(4)])
    defaults = "tests.helpers.processors:Defaults"
    job = run_folder(catalog, root, defaults, rate=1000, settings={"item_timeout": 30})
    assert job["status"] == "completed"
    assert job["summary"]["options_from"] == {
        "workers": "processor",
        "batch_size": "processor",
        "rate": "job",
        "limit": "built-in",
        "force": "built-in",
        "dry_run": "built-in",
        "executor": "settings",
        "item_timeout": "settings",
        "adaptive_latency": "built-in",
    }
    job = run_folder(catalog, root, defaults, workers=2, batch_size=2, force=True)
    origins = job["summary"]["options_from"]
    assert (origins["workers"], origins["batch_size"], origins["force"]) == ("job",) * 3
