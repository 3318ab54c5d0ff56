"""``mediamill config``: which files are read, where data lives, and every effective setting
with where its value comes from (secrets are never printed)."""

from __future__ import annotations

import json
import os
from typing import Any

import typer
from rich.table import Table
from rich.text import Text

from mediamill.cli.common import DbOption, add_command, console
from mediamill.settings import Settings, config_file, data_dir, load, origin

#: settings whose value is a secret, at any depth (``[executors.NAME]`` tables included)
SECRETS = {"api_token", "token", "password", "secret"}


def shown_value(key: str, value: Any) -> Any:
    """A setting's value as it may be shown: secrets as ``(set)``, URLs without a password,
    tables and lists (``executors``) item by item."""
    if isinstance(value, dict):
        return {k: shown_value(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [shown_value(key, v) for v in value]
    if key in SECRETS or key.endswith(("_token", "_password", "_secret")):
        return "(set)" if value else ""
    if isinstance(value, str) and "://" in value:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            return make_url(value).render_as_string(hide_password=True)
        except ArgumentError:
            return "(not a URL)"
    return value


def describe(settings: Settings, flags: dict[str, Any]) -> dict[str, Any]:
    """What ``mediamill config --json`` prints."""
    from mediamill.logs import log_file

    path = config_file()
    token_path = data_dir() / "api-token"  # where `serve` keeps a token it generates
    if settings.api_token:
        token = f"environment MEDIAMILL_API_TOKEN ({origin('api_token')})"
    else:
        token = f"{token_path} ({'exists' if token_path.exists() else 'made on the first serve'})"
    return {
        "config_file": str(path),
        "config_file_exists": path.exists(),
        "data_dir": str(data_dir()),
        "catalog": shown_value("db", settings.db_url()),
        "token": token,
        "log_file": str(log_file(settings) or "none"),
        "settings": {
            key: {"value": shown_value(key, value), "from": origin(key, flags)}
            for key, value in settings.as_dict().items()
        },
    }


def config(
    as_json: bool = typer.Option(False, "--json", help="Print it as JSON."),
    db: str | None = DbOption,
) -> None:
    """Where settings come from: config file, data dir, catalog, token and log file.

    Every effective setting is listed with where its value came from: default, file and line,
    environment variable or flag. Secrets are never shown."""
    flags = {"db": db} if db is not None else {}
    report = describe(load(**flags), flags)
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    found = "" if report["config_file_exists"] else "  (none there: defaults and environment)"
    for label, key in (
        ("config file", "config_file"),
        ("data dir", "data_dir"),
        ("catalog", "catalog"),
        ("API token", "token"),
        ("log file", "log_file"),
    ):
        extra = found if key == "config_file" else ""
        console.print(Text(f"{label + ':':<13}{report[key]}{extra}"))
    table = Table("setting", "value", "from", title="effective settings", title_justify="left")
    for key, row in report["settings"].items():
        table.add_row(key, Text(json.dumps(row["value"])), Text(row["from"]))
    console.print(table)
    if os.environ.get("MEDIAMILL_CONFIG") and not report["config_file_exists"]:
        console.print(Text(f"warning: MEDIAMILL_CONFIG names {report['config_file']}, not found"))


def register(app: typer.Typer) -> None:
    add_command(app, config)
