"""What a command loads before it can work: a re-run that finds nothing to do is mostly
start-up, so the command line never imports what it does not use. Checked in fresh
interpreters (this test process has imported everything already), by the modules loaded
when the command ends, not with timings."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from mediamill.testing.media import write_png
from tests.helpers.cli import isolated_env

#: the ORM (0.06 s of every command's start-up: the catalog uses SQLAlchemy Core only) and
#: Alembic (loaded only to migrate an outdated catalog)
NEVER_AT_START = ("sqlalchemy.orm", "alembic")


def modules_after(argv: list[str], tmp_path: Path) -> tuple[set[str], str]:
    """Run ``mediamill ARGV`` as the console script does, with a catalog and data dir of its
    own under ``tmp_path``; the modules it had loaded at exit, and what it printed."""
    out = tmp_path / "modules.json"
    code = (
        "import atexit, json, sys\n"
        f"atexit.register(lambda: open({str(out)!r}, 'w').write(json.dumps(sorted(sys.modules))))\n"
        f"sys.argv = ['mediamill', *{argv!r}]\n"
        "from mediamill.__main__ import main\n"
        "main()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=isolated_env(tmp_path),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return set(json.loads(out.read_text())), done.stdout


def _unwanted(modules: set[str]) -> list[str]:
    return sorted(
        m for m in modules if any(m == n or m.startswith(f"{n}.") for n in NEVER_AT_START)
    )


def test_a_run_on_an_up_to_date_catalog_loads_neither_the_orm_nor_alembic(
    tmp_path: Path,
) -> None:
    root = tmp_path / "lib"
    root.mkdir()
    write_png(root / "a.png")
    first, _ = modules_after(["run", "probe", str(root)], tmp_path)  # makes the catalog
    again, printed = modules_after(["run", "probe", str(root)], tmp_path)
    listed, _ = modules_after(["jobs", "list"], tmp_path)
    assert "1 already up to date" in printed
    for modules in (first, again, listed):
        assert "sqlalchemy" in modules
        assert _unwanted(modules) == []


def test_a_command_loads_its_own_module_and_not_the_others(tmp_path: Path) -> None:
    loaded, printed = modules_after(["config"], tmp_path)
    assert "catalog" in printed
    assert "mediamill.cli.config" in loaded
    others = {f"mediamill.cli.{name}" for name in ("run", "serve", "watch", "worker", "playlist")}
    assert not loaded & others
    assert not loaded & {"fastapi", "uvicorn", "watchdog", "celery", "av"}


def test_help_lists_every_command(tmp_path: Path) -> None:
    from mediamill.cli import COMMANDS

    _, printed = modules_after(["--help"], tmp_path)
    listed = {line.split()[1] for line in printed.splitlines() if line.startswith("│ ")}
    assert set(COMMANDS) <= listed


def test_an_unchanged_comic_re_run_loads_no_archive_code_and_no_pydantic(tmp_path: Path) -> None:
    """What it does not need: the archive, XML and name code (no item to process) and
    pydantic (the settings and the options are read without it)."""
    from mediamill.testing.comics import write_comic

    library = tmp_path / "comics"
    write_comic(library / "Saga" / "Saga 001 (2012).cbz", pages=2, seed=1)
    _, printed = modules_after(["run", "comic", str(library), "-q"], tmp_path)
    assert "1 ok" in printed
    again, printed = modules_after(["run", "comic", str(library), "-q"], tmp_path)
    assert "1 already up to date" in printed
    assert not again & {"mediamill.comic.work", "mediamill.comic.archive", "xml.etree"}
    assert not again & {"pydantic", "pydantic_core", "pydantic_settings"}
    assert _unwanted(again) == []
