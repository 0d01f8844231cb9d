"""A local BigQuery-API server (bqemulator 1.4.0): in-process for tests and benches, or a process
of its own for the emulator environment (`runbook emulator start|stop`).

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

A fourth change is a pure speed-up: bqemulator parses each query's SQL with sqlglot about 15
times (every rewriter and DDL detector parses the text again), most of a query's time on the
server. Its parses are kept per exact SQL text and each caller gets a copy of the tree.

`start` launches the server in a detached process listening on the params' `bigquery.endpoint`,
its data in a DuckDB file under the params' warehouse_dir, so a seed, a run and the function
served by phase 03 all see the same tables, and they survive a restart. A pid file beside the
data names the process; `stop` ends exactly that process. Run as a module, this file is the
server process itself. bqemulator stays a dev extra, imported only when a server starts.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from runbook_lib.errors import EmulatorError

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
    # Patch 4: each SQL text is parsed once per process (a speed-up; results are unchanged).
    _cache_sqlglot_for_bqemulator()
    _patched = True


PARSE_CACHE_SIZE = 1024


def _cache_sqlglot_for_bqemulator() -> None:
    """Make sqlglot.parse_one and sqlglot.transpile, when bqemulator calls them, remember
    their result per exact SQL text and dialect: parse_one hands out a deep copy of the kept
    tree (callers rewrite trees in place), transpile a new list of its strings. Calls from
    anywhere else, with options or with a dialect object go to sqlglot as before; a text that
    fails to parse is parsed (and fails) again each time."""
    import sqlglot

    parse_one, transpile = sqlglot.parse_one, sqlglot.transpile
    parsed = functools.lru_cache(PARSE_CACHE_SIZE)(lambda sql, read: parse_one(sql, read=read))
    transpiled = functools.lru_cache(PARSE_CACHE_SIZE)(
        lambda sql, read, write, pretty: tuple(
            transpile(sql, read=read, write=write, pretty=pretty)
        )
    )

    def from_bqemulator() -> bool:
        return sys._getframe(2).f_globals.get("__name__", "").startswith("bqemulator.")

    def cached_parse_one(sql, read=None, dialect=None, into=None, **opts):
        if isinstance(sql, str) and isinstance(read, str) and not (dialect or into or opts):
            if from_bqemulator():
                return parsed(sql, read).copy()
        return parse_one(sql, read=read, dialect=dialect, into=into, **opts)

    def cached_transpile(sql, read=None, write=None, identity=True, error_level=None, **opts):
        simple = isinstance(read, str) and isinstance(write, str) and identity and not error_level
        if isinstance(sql, str) and simple and set(opts) <= {"pretty"} and from_bqemulator():
            return list(transpiled(sql, read, write, opts.get("pretty")))
        return transpile(sql, read, write, identity, error_level, **opts)

    cached_parse_one.cache_info = parsed.cache_info
    sqlglot.parse_one, sqlglot.transpile = cached_parse_one, cached_transpile


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
def running_emulator(
    project: str = "runbook-emulator", port: int = 0, data_dir: Path | None = None
) -> Iterator[str]:
    """Start bqemulator on 127.0.0.1 (a free port unless `port`); yield its REST endpoint URL.

    With `data_dir` its data lives in a DuckDB file there and survives a restart (what
    `runbook emulator start` serves); without, in memory for as long as it runs (tests).
    """
    _patch_bqemulator()
    from bqemulator.config import LogLevel, PersistenceMode, Settings
    from bqemulator.testing._thread_runner import ThreadedEmulator

    settings = Settings(
        persistence_mode=PersistenceMode.PERSISTENT if data_dir else PersistenceMode.EPHEMERAL,
        data_dir=data_dir,
        rest_host="127.0.0.1",
        rest_port=port,
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


PID_FILE = "server.json"
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class ServerInfo:
    """A started server: its process, its endpoint and where its data lives."""

    pid: int
    endpoint: str
    data_dir: str
    log: str


def answers(endpoint: str, project: str, timeout: float = 2.0) -> bool:
    """Return whether a BigQuery-API server answers at `endpoint` (lists a project's datasets)."""
    url = f"{endpoint}/bigquery/v2/projects/{project}/datasets"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - loopback only
            return response.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return False


def require(endpoint: str, project: str, env: str) -> None:
    """Raise EmulatorError unless the server of `env` answers at `endpoint`."""
    if not answers(endpoint, project):
        raise EmulatorError(
            endpoint,
            f"no server answers (to fix this, run `runbook emulator start --env {env}`, "
            f"then `runbook seed --env {env}`)",
        )


def _pid_file(data_dir: Path) -> Path:
    return Path(data_dir) / PID_FILE


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def running(data_dir: Path) -> ServerInfo | None:
    """Return the server started for `data_dir` if its process still runs, else None."""
    path = _pid_file(data_dir)
    if not path.exists():
        return None
    info = ServerInfo(**json.loads(path.read_text()))
    return info if _alive(info.pid) else None


def start(endpoint: str, data_dir: Path, project: str) -> tuple[ServerInfo, bool]:
    """Start the server for `endpoint` with its data in `data_dir`; return it and whether it
    was started now (False: it already ran). Wait until it answers."""
    data_dir = Path(data_dir)
    found = running(data_dir)
    if found is not None and found.endpoint == endpoint and answers(endpoint, project):
        return found, False
    if answers(endpoint, project):
        raise EmulatorError(
            endpoint,
            "another server already answers there, not one started for "
            f"{data_dir} (to fix this, stop it, or set bigquery.endpoint to a free port)",
        )
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / "server.log"
    port = urlsplit(endpoint).port
    command = [sys.executable, "-m", __name__, str(port), str(data_dir), project]
    with open(log_path, "ab") as log:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    info = ServerInfo(process.pid, endpoint, str(data_dir), str(log_path))
    _pid_file(data_dir).write_text(json.dumps(info.__dict__))
    deadline = time.monotonic() + START_TIMEOUT_S
    while not answers(endpoint, project, timeout=1.0):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            _pid_file(data_dir).unlink(missing_ok=True)
            raise EmulatorError(
                endpoint,
                f"the server did not start (to fix this, read {log_path}; is the port taken?)",
            )
        time.sleep(0.2)
    return info, True


def stop(data_dir: Path) -> ServerInfo | None:
    """Stop the server started for `data_dir`; return it, or None when none ran."""
    info = running(data_dir)
    _pid_file(data_dir).unlink(missing_ok=True)
    if info is None:
        return None
    os.kill(info.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while _alive(info.pid) and not _reaped(info.pid):
        if time.monotonic() > deadline:
            os.kill(info.pid, signal.SIGKILL)
            break
        time.sleep(0.1)
    return info


def _reaped(pid: int) -> bool:
    """Reap `pid` if it is our exited child (a zombie still answers kill 0)."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return False
    return done == pid


def _serve(port: int, data_dir: Path, project: str) -> None:
    """Serve until SIGTERM or SIGINT (the server process's main)."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    with running_emulator(project, port=port, data_dir=data_dir) as endpoint:
        print(f"bqemulator serving {endpoint}, data in {data_dir}", flush=True)
        signal.sigwait({signal.SIGTERM, signal.SIGINT})


if __name__ == "__main__":
    _serve(int(sys.argv[1]), Path(sys.argv[2]), sys.argv[3])
