"""The app factory: ``create_app(settings)`` builds the API, the web page, the event broker and
(optionally) the job coordinator. Nothing is built at import time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import version
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from mediamill.api.access import AccessLog
from mediamill.api.deps import (
    CatalogDep,
    ReadAuth,
    StreamAuth,
    is_loopback,
    load_or_create_token,
)
from mediamill.api.docs import add_docs, reject_unknown_query
from mediamill.api.events import EventBroker, stream
from mediamill.api.limits import BodyLimit
from mediamill.api.metrics import Metrics
from mediamill.api.routes import items, jobs, libraries, playlists, stats, workers
from mediamill.api.schemas import Health
from mediamill.catalog.db import Catalog
from mediamill.engine.coordinator import Coordinator
from mediamill.jobs import manager
from mediamill.logs import JobLog
from mediamill.settings import Settings

WEB = Path(__file__).parent / "web"
#: the largest request body the API reads (413 beyond): a job's options and a selection of
#: some tens of thousands of paths fit; a bigger selection is sent as several jobs
MAX_BODY_BYTES = 1_000_000


def create_app(
    settings: Settings, *, coordinator: bool = True, catalog: Catalog | None = None
) -> FastAPI:
    catalog = catalog or Catalog.open(settings.db_url())
    token, _ = load_or_create_token(settings)
    metrics = Metrics(catalog)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        broker = EventBroker(catalog)
        broker.start()
        app.state.broker = broker
        coord = None
        watching = None
        if coordinator:
            from mediamill.watch.service import WatchService

            coord = Coordinator(catalog, settings, hooks=lambda: [metrics.hook(), JobLog()])
            coord.start()
            watching = WatchService(catalog, settings)  # libraries with automation
            watching.start()
        app.state.coordinator = coord
        try:
            yield
        finally:
            if watching is not None:
                watching.stop()
            if coord is not None:
                coord.stop()
            await broker.stop()

    app = FastAPI(
        title="mediamill",
        version=version("mediamill"),
        lifespan=lifespan,
        openapi_url="/api/openapi.json",
        docs_url=None,  # served below from local assets: a NAS often has no internet
        redoc_url=None,
        dependencies=[Depends(reject_unknown_query)],
    )
    app.add_middleware(BodyLimit, max_bytes=MAX_BODY_BYTES)
    app.add_middleware(AccessLog)  # outermost: it logs the 413s too
    add_docs(app)
    app.state.catalog = catalog
    app.state.settings = settings
    app.state.token = token
    app.state.loopback_only = is_loopback(settings.host)
    app.state.metrics = metrics

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", ""))} for e in exc.errors()
        ]
        if any(e.get("type") == "json_invalid" for e in exc.errors()):
            # as the schema documents: a body that is not JSON is a 400, not a 422
            return JSONResponse(
                {"detail": "the body is not valid JSON", "errors": errors}, status_code=400
            )
        return JSONResponse({"detail": "invalid request", "errors": errors}, status_code=422)

    app.include_router(libraries.router)
    app.include_router(jobs.router)
    app.include_router(items.router)
    app.include_router(playlists.router)
    app.include_router(stats.router)
    app.include_router(workers.router)

    @app.get("/api/health", response_model=Health, tags=["meta"])
    def health() -> dict[str, Any]:
        return {"status": "ok", "version": version("mediamill"), "catalog": catalog.dialect}

    @app.get(
        "/api/events", tags=["events"], dependencies=[StreamAuth], response_class=StreamingResponse
    )
    async def events(request: Request, cat: CatalogDep) -> StreamingResponse:
        """Server-Sent Events: a ``job`` event (a job status object) on every change, and a
        ``job_deleted`` event (``{"job_id": ...}``) when a job's record is deleted."""
        initial, _ = manager.list_jobs(cat, limit=50)
        return _sse(request, initial, None)

    @app.get(
        "/api/jobs/{job_id}/events",
        tags=["events"],
        dependencies=[StreamAuth],
        response_class=StreamingResponse,
    )
    async def job_events(job_id: str, request: Request, cat: CatalogDep) -> StreamingResponse:
        """Server-Sent Events for one job."""
        job = jobs.get_job(job_id, cat)
        return _sse(request, [job], job_id)

    def _sse(
        request: Request, initial: list[dict[str, Any]], job_id: str | None
    ) -> StreamingResponse:
        body = stream(request.app.state.broker, initial, job_id, request.is_disconnected)
        return StreamingResponse(
            body,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    @app.get("/metrics", include_in_schema=False, dependencies=[ReadAuth])
    def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    if WEB.is_dir():
        app.mount("/static", StaticFiles(directory=WEB), name="static")

        @app.get("/", include_in_schema=False)
        def index() -> FileResponse:
            return FileResponse(WEB / "index.html")

    return app
