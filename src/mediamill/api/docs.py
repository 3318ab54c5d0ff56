"""The API's own documentation pages, and its refusal of query parameters it does not know.

Swagger UI comes from the ``fastapi-offline`` package's static files (no CDN: a NAS
often has no internet, and nothing third-party is copied into this repository)."""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import FastAPI, HTTPException, Request
from fastapi.dependencies.models import Dependant
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS = Path(fastapi_offline.__file__).parent / "static"
ASSETS_URL = "/api/docs-assets"
#: query parameters every route accepts: the page's EventSource sends its token this way
ALWAYS = frozenset({"access_token"})


def add_docs(app: FastAPI) -> None:
    """``/api/docs`` (Swagger UI) from assets shipped with a package. (ReDoc is not served:
    its page fetches its logo from a CDN whatever it is told.)"""
    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS), name="docs-assets")
    openapi = app.openapi_url or "/api/openapi.json"

    @app.get("/api/docs", include_in_schema=False)
    def swagger() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi,
            title="mediamill API",
            swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_URL}/favicon.png",
            # no badge from validator.swagger.io: nothing may be fetched from outside
            swagger_ui_parameters={"validatorUrl": None},
        )


def _query_names(dependant: Dependant) -> set[str]:
    names = {param.alias for param in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


def reject_unknown_query(request: Request) -> None:
    """A query parameter the route does not take is a 422 naming it and the ones it takes,
    where it used to be ignored (``/api/playlists?bpm=…`` returned everything)."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return
    known = _query_names(dependant) | ALWAYS
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        takes = ", ".join(sorted(known - ALWAYS)) or "none"
        raise HTTPException(
            422, detail=f"unknown query parameter {', '.join(unknown)} (this route takes: {takes})"
        )
