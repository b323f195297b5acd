"""Export to an OpenLineage backend over HTTP: a real server on loopback (in a thread) takes POST
/api/v1/lineage as Marquez does, validates each event against the published schema — the copy vendored for the
ingest tests, not the package's — and the export stops at the first refusal with the backend's status."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from modelshield.govern.lineage import LineageError, LineageStore, export_http, read_events

if TYPE_CHECKING:
    from conftest import PipelineRun

TESTS = Path(__file__).parent.parent


def _schema_validator() -> Any:
    jsonschema = pytest.importorskip("jsonschema")
    from referencing import Registry, Resource

    folders = [TESTS / "ingest/openlineage", TESTS / "ingest/openlineage/facets", TESTS / "pipeline/openlineage/facets"]
    docs = [json.loads(p.read_text()) for folder in folders for p in sorted(folder.glob("*.json"))]
    registry = Registry().with_resources((d["$id"], Resource.from_contents(d)) for d in docs)
    schema = {"$ref": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"}
    return jsonschema.Draft202012Validator(schema, registry=registry)


class _Backend(ThreadingHTTPServer):
    received: list[dict[str, Any]]
    refuse_after: int | None


class _Handler(BaseHTTPRequestHandler):
    server: _Backend
    validator: Any = None

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        ok = self.path == "/api/v1/lineage" and self.headers["Content-Type"] == "application/json"
        event = json.loads(body)
        ok = ok and _Handler.validator.is_valid(event)
        full = self.server.refuse_after is not None and len(self.server.received) >= self.server.refuse_after
        if ok and not full:
            self.server.received.append(event)
        self.send_response(201 if ok and not full else 400)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def backend() -> Iterator[_Backend]:
    _Handler.validator = _schema_validator()
    server = _Backend(("127.0.0.1", 0), _Handler)
    server.received, server.refuse_after = [], None
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_every_stored_event_reaches_the_backend_valid(pipeline_run: PipelineRun, backend: _Backend) -> None:
    with LineageStore.open(pipeline_run.db) as store:
        store.ingest_events(read_events(pipeline_run.run))
        events = store.events()
    url = f"http://127.0.0.1:{backend.server_address[1]}"
    assert export_http(events, url) == len(events) == 9
    assert backend.received == events


def test_a_refusal_stops_the_export_with_the_status(pipeline_run: PipelineRun, backend: _Backend) -> None:
    backend.refuse_after = 2
    url = f"http://127.0.0.1:{backend.server_address[1]}/"
    with pytest.raises(LineageError, match="refused event 3.*HTTP 400"):
        export_http(list(read_events(pipeline_run.run)), url)
    assert len(backend.received) == 2


def test_an_unreachable_backend_is_one_clear_error(pipeline_run: PipelineRun) -> None:
    with socket.socket() as sock:  # a port nothing listens on: bound, never accepting
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        with pytest.raises(LineageError, match="cannot reach"):
            export_http(list(read_events(pipeline_run.run))[:1], f"http://127.0.0.1:{port}", timeout=2)
    assert export_http([], "http://127.0.0.1:9") == 0  # nothing to send: no request
