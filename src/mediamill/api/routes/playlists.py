"""Playlists from the audio analysis, as JSON or as an M3U8 file (paths relative to the
library root, so the file works when saved there)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import Response

from mediamill import playlists
from mediamill.api.deps import CatalogDep, ReadAuth
from mediamill.api.routes.libraries import library_or_404
from mediamill.api.schemas import ERRORS
from mediamill.core import Status
from mediamill.names import shown_path
from mediamill.playlists import parse_bpm_range

router = APIRouter(prefix="/api", tags=["playlists"], responses=ERRORS)


@router.get(
    "/playlists",
    dependencies=[ReadAuth],
    response_model=None,
    responses={
        200: {
            "description": "The playlist: JSON, or M3U8 with format=m3u8",
            "content": {"application/json": {}, "audio/x-mpegurl": {}},
        }
    },
)
def playlist(
    catalog: CatalogDep,
    library: Annotated[str, Query(min_length=1, max_length=255)],
    bpm: Annotated[
        str | None, Query(max_length=20, description="Tempo range as the CLI takes it: 120-130")
    ] = None,
    bpm_min: Annotated[float | None, Query(ge=0, le=1000)] = None,
    bpm_max: Annotated[float | None, Query(ge=0, le=1000)] = None,
    half_double: bool = False,
    key_order: bool = False,
    energy: Literal["up", "down", "updown"] | None = None,
    similar_to: Annotated[str | None, Query(max_length=4096)] = None,
    size: Annotated[int | None, Query(ge=1, le=100_000)] = None,
    format: Literal["json", "m3u8"] = "json",
) -> Any:
    """Tracks by rule: tempo range, Camelot key order or energy ramp, similar to a track."""
    lib = library_or_404(catalog, library)
    if bpm is not None:
        if bpm_min is not None or bpm_max is not None:
            raise HTTPException(422, detail="give bpm, or bpm_min and bpm_max, not both")
        try:
            bpm_min, bpm_max = parse_bpm_range(bpm)
        except ValueError as exc:
            raise HTTPException(422, detail=str(exc)) from exc
    if (bpm_min is None) != (bpm_max is None):
        raise HTTPException(422, detail="give both bpm_min and bpm_max, or neither")
    if bpm_min is not None and bpm_max is not None and bpm_min > bpm_max:
        raise HTTPException(422, detail="bpm_min is above bpm_max")
    tracks = [
        playlists.Track.from_data(path, data)
        for path, status, data in catalog.iter_results(lib.id, "audio")
        if status == Status.OK and data.get("bpm") is not None
    ]
    try:
        result = playlists.build_playlist(
            tracks,
            bpm=(bpm_min, bpm_max) if bpm_min is not None and bpm_max is not None else None,
            octave=half_double,
            similar=similar_to,
            key_order=key_order,
            energy=energy,
            size=size,
        )
    except (LookupError, ValueError) as exc:
        raise HTTPException(422, detail=str(exc).strip("'\"")) from exc
    if format == "m3u8":
        text = playlists.m3u8_text(result.tracks, lib.root, lib.root)
        # names that are not UTF-8 keep their real bytes, so a player opens them
        return Response(text.encode("utf-8", "surrogateescape"), media_type="audio/x-mpegurl")
    return {
        "library": lib.name,
        "notes": result.notes,
        "tracks": [
            {
                "path": shown_path(t.path),
                "duration": t.duration,
                "artist": t.artist,
                "title": t.title,
                "bpm": t.bpm,
                "key": t.key,
                "scale": t.scale,
                "energy": t.energy,
                "camelot": str(t.camelot) if t.camelot else None,
            }
            for t in result.tracks
        ],
    }
