"""The ``playlist`` command: an M3U8 playlist from a library's audio analysis."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from mediamill import playlists
from mediamill.cli.common import DbOption, add_command, fail, open_catalog
from mediamill.core import Status


class Ramp(StrEnum):
    UP = "up"
    DOWN = "down"
    UPDOWN = "updown"


_RAMPS: dict[Ramp, playlists.EnergyRamp] = {Ramp.UP: "up", Ramp.DOWN: "down", Ramp.UPDOWN: "updown"}


def register(app: typer.Typer) -> None:
    """Add the ``playlist`` command to ``app``."""
    add_command(app, playlist, "playlist")


def parse_bpm_range(text: str) -> tuple[float, float]:
    """``"120-130"`` -> ``(120.0, 130.0)``; a single number means that tempo +/- 2 %."""
    try:
        return playlists.parse_bpm_range(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def playlist(
    library_path: Annotated[Path, typer.Argument(help="Root folder of an analysed library.")],
    out: Annotated[Path, typer.Option("--out", help="The .m3u8 file to write.")],
    bpm: Annotated[str | None, typer.Option(help="Tempo range, e.g. 120-130.")] = None,
    half_double: Annotated[
        bool, typer.Option("--half-double", help="Also accept half or double the tempo range.")
    ] = False,
    key_order: Annotated[
        bool, typer.Option("--key-order", help="Order so each next key is Camelot-compatible.")
    ] = False,
    energy: Annotated[Ramp | None, typer.Option(help="Energy ramp: up, down or updown.")] = None,
    similar_to: Annotated[
        str | None,
        typer.Option("--similar-to", help="Path of a track, relative to the library root."),
    ] = None,
    size: Annotated[int | None, typer.Option(min=1, help="At most this many tracks.")] = None,
    db: str | None = DbOption,
) -> None:
    """Write an M3U8 playlist from the audio analysis of LIBRARY_PATH."""
    if key_order and energy is not None:
        raise typer.BadParameter("choose one ordering: --key-order or --energy")
    bpm_range = parse_bpm_range(bpm) if bpm else None
    catalog = open_catalog(db)
    try:
        library = catalog.library_by_root(library_path)
        if library is None:
            raise fail(f"{library_path}: not a library in the catalog (run `mediamill run` first)")
        tracks = [
            playlists.Track.from_data(path, data)
            for path, status, data in catalog.iter_results(library.id, "audio")
            if status == Status.OK and data.get("bpm") is not None
        ]
    finally:
        catalog.close()
    if not tracks:
        raise fail(
            f"{library_path}: no track has an audio analysis yet; "
            f"run `mediamill run audio {library_path}` first",
            code=1,
        )
    try:
        result = playlists.build_playlist(
            tracks,
            bpm=bpm_range,
            octave=half_double,
            similar=similar_to,
            key_order=key_order,
            energy=_RAMPS[energy] if energy else None,
            size=size,
        )
    except LookupError as exc:
        raise typer.BadParameter(str(exc), param_hint="--similar-to") from None
    for note in result.notes:
        typer.echo(f"note: {note}", err=True)
    if not result.tracks:
        raise fail("no track matches; nothing written", code=1)
    written = playlists.write_m3u8(result.tracks, out, Path(library.root))
    typer.echo(f"wrote {len(result.tracks)} tracks to {written}")
