"""Property-based tests of the HTTP API from its own OpenAPI schema (schemathesis), against a
real server process: whatever a client sends, the API answers without a server error, and a
successful answer has the shape the schema promises."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy
from schemathesis import APIOperation, Case, GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import make_files
from tests.helpers.server import TOKEN, Server

LIBRARY = "lib"
ECHO = "tests.helpers.processors:Echo"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
# Server-Sent Events streams never end: a request to them would hang the run.
STREAMS = r"/events$"
EXAMPLES = 25  # per operation and generation mode: the whole run stays near a minute
# Conformance is checked on successful answers only: the schema does not document the API's
# 401/404/409 answers, nor the {"detail", "errors"} shape of its 422 answers.
SUCCESS_CHECKS = [content_type_conformance, response_schema_conformance, status_code_conformance]

pytestmark = pytest.mark.slow


@dataclass
class Known:
    """Names that exist on the server, so generated requests reach past the 404s."""

    root: Path
    job_id: str = ""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("schema")
    srv = Server(f"sqlite:///{tmp / 'catalog.db'}", tmp / "home").start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def known(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Known:
    root = tmp_path_factory.mktemp("lib")
    make_files(root, [f"d{i % 2}/f{i:02}.bin" for i in range(6)] + ["bad/fail1.bin"])
    return Known(root)


def _refresh(server: Server, known: Known) -> None:
    """The library ``lib`` exists and a slow job runs on it, whatever the last operation did
    (deleted the library, cancelled or deleted the job)."""
    with server.client() as client:
        added = client.post("/api/libraries", json={"path": str(known.root), "name": LIBRARY})
        assert added.status_code == 201, added.text
        job = client.post(
            "/api/jobs",
            json={"processor": ECHO, "library": LIBRARY, "options": {"workers": 1, "delay": 0.3}},
        )
        assert job.status_code == 201, job.text
        known.job_id = job.json()["job_id"]


def test_every_operation_answers_without_a_server_error(
    server: Server, known: Known, subtests: pytest.Subtests
) -> None:
    """Valid and invalid requests to every operation, with the token so that state-changing
    operations run too, get a 2xx or 4xx answer; every 2xx answer matches the schema."""
    schema = schemathesis.openapi.from_url(f"{server.url}/api/openapi.json")
    operations = [result.ok() for result in schema.exclude(path_regex=STREAMS).get_all_operations()]
    assert len(operations) >= 10, [op.label for op in operations]
    for operation in operations:
        _refresh(server, known)
        for mode in _modes(operation):

            @settings(
                max_examples=EXAMPLES,
                derandomize=True,  # the same requests on every run, so a failure reproduces
                deadline=None,  # a real server over loopback: timing is not what is tested
                database=None,  # a derandomized run has nothing to replay
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
            )
            @given(case=_cases(operation, mode, known))
            def call(case: Case) -> None:
                _keep_off_real_folders(case, known)
                response = case.call(headers=AUTH)
                checks = [not_a_server_error, *SUCCESS_CHECKS]
                case.validate_response(response, checks=checks, headers=AUTH)

            with subtests.test(msg=f"{operation.label} ({mode.value})"):
                call()


def _cases(operation: APIOperation, mode: GenerationMode, known: Known) -> SearchStrategy[Case]:
    """Generated cases; in positive mode half of them name the real library, job, items and a
    real processor instead of random strings."""
    generated = operation.as_strategy(mode)
    if mode is GenerationMode.NEGATIVE:
        return generated
    return st.tuples(generated, st.booleans()).map(
        lambda pair: _pin(pair[0], known) if pair[1] else pair[0]
    )


def _pin(case: Case, known: Known) -> Case:
    for key, value in (("name", LIBRARY), ("job_id", known.job_id)):
        if case.path_parameters and key in case.path_parameters:
            case.path_parameters[key] = value
    if case.query and "library" in case.query:
        case.query["library"] = LIBRARY
        if case.path == "/api/items":
            case.query["processor"] = ECHO
    body = case.body
    if isinstance(body, dict):
        if case.path == "/api/libraries":
            body["path"] = str(known.root)
        if "library" in body:
            body["library"] = LIBRARY
        if "processor" in body:
            body["processor"] = ECHO
        if isinstance(body.get("items"), list):
            body["items"] = ["d0/f00.bin", "bad/fail1.bin"]
        options = body.get("options")
        workers = options.get("workers") if isinstance(options, dict) else None
        if isinstance(options, dict) and isinstance(workers, int):
            options["workers"] = min(workers, 2)  # 256 worker processes would swamp CI
    return case


def _modes(operation: APIOperation) -> list[GenerationMode]:
    """Invalid requests need something to break: a body or a query; any string is a valid
    path parameter, so an operation with only those has no negative cases."""
    if operation.body or operation.query:
        return [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]
    return [GenerationMode.POSITIVE]


def _keep_off_real_folders(case: Case, known: Known) -> None:
    """A generated library path that happens to be a real folder ("/") would make the server
    scan this machine; send a folder that does not exist instead."""
    body = case.body
    if case.path == "/api/libraries" and isinstance(body, dict):
        path = body.get("path")
        if isinstance(path, str) and path != str(known.root) and os.path.isdir(path):
            body["path"] = str(known.root / "no-such-folder")
