"""A local BigQuery-API server (bqemulator 1.4.0) started in-process, for tests and benches.

The BigQuery backend is tested through the real `google-cloud-bigquery` client against this
server. bqemulator needs three patches to work offline; they are applied here and nowhere else:

1. It runs `INSTALL spatial` at start-up, which downloads DuckDB's spatial extension and fails
   without network. The runbook never uses GEOGRAPHY, so the spatial (and avro) loads are skipped.
2. Small load jobs go up as a multipart upload whose media part the client labels `*/*`;
   bqemulator 1.4.0 rejects that content type (fixed upstream in its open PR #266), so `*/*` is
   added to the accepted media types.
3. Its synchronous `jobs.query` answers a failed query with HTTP 200 and the error in `errors`,
   which `query_and_wait` treats as a warning: a query on a missing table would return no rows
   instead of raising. Real BigQuery answers a failed `jobs.query` with a non-success status
   (see google-cloud-bigquery `_job_helpers`), so the response is turned into that status.

It ships in the package, not under tests/, on purpose: `warehouse.connect` builds its client
with `client_for` whenever RUNBOOK_BIGQUERY_EMULATOR names an endpoint, and the emulator
environment (`--env emulator`, issue 10) starts this same patched server for a whole run.
bqemulator itself stays a dev extra, imported only when a server is started.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager

from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery

log = logging.getLogger(__name__)

_patched = False


def _patch_bqemulator() -> None:
    """Apply the offline patches (idempotent)."""
    global _patched
    if _patched:
        return
    from bqemulator.api.routes import upload
    from bqemulator.storage.engine import DuckDBEngine

    # Patch 1: no network at start-up; GEOGRAPHY is not part of the platform's schema.
    DuckDBEngine._load_spatial = lambda self: None
    # Patch 2: accept the `*/*` media part of small multipart load uploads (upstream PR #266).
    if "*/*" not in upload._PERMITTED_MEDIA_CONTENT_TYPES:
        upload._PERMITTED_MEDIA_CONTENT_TYPES = (*upload._PERMITTED_MEDIA_CONTENT_TYPES, "*/*")
    # Patch 3: a failed jobs.query must be an HTTP error, as on real BigQuery.
    from bqemulator import server

    original_create_app = server.create_app

    def create_app(context):
        app = original_create_app(context)
        app.middleware("http")(_fail_failed_queries)
        return app

    server.create_app = create_app
    _patched = True


_STATUS = {"notFound": 404, "duplicate": 409, "accessDenied": 403}


async def _fail_failed_queries(request, call_next):
    """Return a failed synchronous query as an HTTP error carrying its error result."""
    from starlette.responses import JSONResponse, Response

    response = await call_next(request)
    if request.method != "POST" or not request.url.path.endswith("/queries"):
        return response
    body = b"".join([chunk async for chunk in response.body_iterator])
    payload = json.loads(body or b"{}")
    errors = payload.get("errors") if isinstance(payload, dict) else None
    if response.status_code == 200 and errors and not payload.get("schema", {}).get("fields"):
        first = errors[0]
        code = _STATUS.get(first.get("reason"), 400)
        error = {"code": code, "message": first.get("message", ""), "errors": errors}
        return JSONResponse({"error": error}, status_code=code)
    headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
    return Response(body, status_code=response.status_code, headers=headers)


@contextmanager
def running_emulator(project: str = "runbook-emulator") -> Iterator[str]:
    """Start bqemulator on 127.0.0.1 on a free port; yield its REST endpoint URL."""
    _patch_bqemulator()
    from bqemulator.config import LogLevel, PersistenceMode, Settings
    from bqemulator.testing._thread_runner import ThreadedEmulator

    settings = Settings(
        persistence_mode=PersistenceMode.EPHEMERAL,
        rest_host="127.0.0.1",
        rest_port=0,
        grpc_host="127.0.0.1",
        grpc_port=0,
        default_project_id=project,
        # The avro extension would also be downloaded; load jobs here use Parquet.
        enable_format_extensions=False,
        log_level=LogLevel.WARNING,
    )
    server = ThreadedEmulator(settings)
    try:
        server.start()
        endpoint = server.server.rest_url
        log.info("bqemulator listening on %s", endpoint)
        yield endpoint
    finally:
        server.stop()


def client_for(endpoint: str, project: str) -> bigquery.Client:
    """Return a BigQuery client for `project` that talks to the emulator at `endpoint`."""
    return bigquery.Client(
        project=project,
        credentials=AnonymousCredentials(),
        client_options=ClientOptions(api_endpoint=endpoint),
    )
