"""A pytest plugin: the collected tests run in forked worker processes, reported by this one.

Phase 01's safeguard tests are ~30 small tests, one core's work: `--fork-workers N` forks N
processes after the collection (the imports, the collection and the options are theirs as
they are here: nothing is loaded again), each runs every N-th test with the usual protocol
(fixtures, capture, logging, teardown) and sends each event back as pytest serialises it for
pytest-xdist; this process replays the events through its own hooks, so the terminal, the
summary line and the exit code are pytest's own. A test whose worker ended before reporting
it is reported failed, naming the worker's end. Each worker has its own session- and
module-scoped fixtures (one setup per worker that needs them).

Without the option, with 1 worker, fewer than 2 tests, --collect-only, -x/--maxfail, --pdb,
a collection error, or another Python thread running (a fork copies only the calling thread),
the tests run here in order as usual. The native threads the imports start and leave idle
(numpy's OpenBLAS pool, pyarrow's jemalloc, DuckDB's default instance) are the ones the run's
fork server forks beside too (forkserver.py): no test here has used DuckDB yet.

    python -m pytest -p runbook_lib.run.pytest_fork --fork-workers 2 ...
"""

from __future__ import annotations

import importlib
import json
import os
import selectors
import signal
import threading
import warnings

import pytest

from runbook_lib.run.forkserver import die_with_parent


def pytest_addoption(parser) -> None:
    parser.addoption(
        "--fork-workers",
        type=int,
        default=1,
        help="run the collected tests in N processes forked after the collection",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session):
    """Run the tests in forked workers when asked and possible; else leave the loop to pytest."""
    config = session.config
    workers = min(config.getoption("fork_workers"), len(session.items))
    if (
        workers < 2
        or session.testsfailed
        or config.option.collectonly
        or config.option.maxfail
        or config.option.usepdb
        or not hasattr(os, "fork")
        or threading.active_count() > 1
    ):
        return None
    config._tmp_path_factory.getbasetemp()  # made once here: a worker would empty it
    pipes = []
    try:
        for i in range(workers):
            pipes.append(_fork_worker(session, i, workers))
        _collect(session, pipes)
    except BaseException:  # interrupted: no worker outlives the run
        for pid, *_ in pipes:
            _kill(pid)
        raise
    if session.shouldfail:
        raise session.Failed(session.shouldfail)
    if session.shouldstop:
        raise session.Interrupted(session.shouldstop)
    return True


def _fork_worker(session, index: int, workers: int) -> tuple[int, int, list]:
    """Fork the worker that runs every `workers`-th test from `index`; return (pid, the read end
    of its pipe, its items)."""
    items = session.items[index::workers]
    read, write = os.pipe()
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:  # the worker: run, report, never return into pytest's loop
        os.close(read)
        code = 1
        try:
            die_with_parent()  # a killed run (its pytest killed) leaves no worker running
            if os.getppid() != parent:
                return
            _work(session, items, os.fdopen(write, "w", encoding="utf-8"))
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    return pid, read, items


def _work(session, items: list, out) -> None:
    """Run `items` here (a worker), sending each event to `out` instead of this terminal."""
    config = session.config
    capture = config.pluginmanager.getplugin("capturemanager")
    if capture is not None and capture.is_globally_capturing():
        capture.stop_global_capturing()  # its files are shared with the parent: our own
    devnull = os.open(os.devnull, os.O_WRONLY)
    for fd in (1, 2):  # this terminal is the parent's: a worker shows nothing
        os.dup2(devnull, fd)
    if capture is not None:
        capture.start_global_capturing()
    config.pluginmanager.register(_Sender(config, out), "fork-worker-sender")
    for i, item in enumerate(items):
        nextitem = items[i + 1] if i + 1 < len(items) else None
        item.config.hook.pytest_runtest_protocol(item=item, nextitem=nextitem)
    out.flush()


class _Sender:
    """A worker's plugin: each event, serialised, to the parent."""

    def __init__(self, config, out):
        self.config, self.out = config, out

    def _send(self, event: str, **kwargs) -> None:
        self.out.write(json.dumps({"event": event, **kwargs}) + "\n")
        self.out.flush()

    def pytest_runtest_logstart(self, nodeid, location) -> None:
        self._send("pytest_runtest_logstart", nodeid=nodeid, location=list(location))

    def pytest_runtest_logreport(self, report) -> None:
        data = self.config.hook.pytest_report_to_serializable(config=self.config, report=report)
        self._send("pytest_runtest_logreport", report=data)

    def pytest_runtest_logfinish(self, nodeid, location) -> None:
        self._send("pytest_runtest_logfinish", nodeid=nodeid, location=list(location))

    def pytest_warning_recorded(self, warning_message, when, nodeid, location) -> None:
        category = warning_message.category
        self._send(
            "warning",
            category=f"{category.__module__}:{category.__qualname__}",
            message=str(warning_message.message),
            filename=warning_message.filename,
            lineno=warning_message.lineno,
            when=when,
            nodeid=nodeid,
            location=list(location) if location else None,
        )


def _collect(session, pipes: list) -> None:
    """Replay each worker's events through this process's hooks as they come; then report
    failed every test a worker ended without reporting."""
    config = session.config
    selector = selectors.DefaultSelector()
    buffers, finished = {}, set()
    for pid, read, _ in pipes:
        selector.register(read, selectors.EVENT_READ, pid)
        buffers[read] = b""
    while selector.get_map():
        for key, _ in selector.select():
            chunk = os.read(key.fd, 1 << 16)
            if not chunk:
                selector.unregister(key.fd)
                os.close(key.fd)
                continue
            *lines, buffers[key.fd] = (buffers[key.fd] + chunk).split(b"\n")
            for line in lines:
                finished |= _replay(config, json.loads(line))
    for pid, _, items in pipes:
        _, status = os.waitpid(pid, 0)
        for item in items:
            if item.nodeid not in finished:
                _report_lost(config, item, pid, status)


def _replay(config, event: dict) -> set:
    """Call this process's hooks with one worker event; return the test it finished, if any."""
    name = event.pop("event")
    if name == "warning":
        _replay_warning(config, event)
        return set()
    if name == "pytest_runtest_logreport":
        report = config.hook.pytest_report_from_serializable(config=config, data=event["report"])
        config.hook.pytest_runtest_logreport(report=report)
        return set()
    getattr(config.hook, name)(nodeid=event["nodeid"], location=tuple(event["location"]))
    return {event["nodeid"]} if name == "pytest_runtest_logfinish" else set()


def _replay_warning(config, event: dict) -> None:
    module, _, qualname = event["category"].partition(":")
    try:
        category = getattr(importlib.import_module(module), qualname)
    except (ImportError, AttributeError):
        category = UserWarning
    message = warnings.WarningMessage(
        category(event["message"]), category, event["filename"], event["lineno"]
    )
    location = tuple(event["location"]) if event["location"] else None
    config.hook.pytest_warning_recorded.call_historic(
        kwargs=dict(
            warning_message=message, when=event["when"], nodeid=event["nodeid"], location=location
        )
    )


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):  # already ended and reaped
        pass


def _report_lost(config, item, pid: int, status: int) -> None:
    """Report `item` failed: its worker ended before reporting it (e.g. killed, or exited)."""
    how = (
        f"killed by signal {os.WTERMSIG(status)}"
        if os.WIFSIGNALED(status)
        else f"exited with code {os.waitstatus_to_exitcode(status)}"
    )
    report = pytest.TestReport(
        item.nodeid,
        item.location,
        {name: 1 for name in item.keywords},
        "failed",
        f"the worker process running this test (pid {pid}) {how} before reporting it",
        "call",
    )
    config.hook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
    config.hook.pytest_runtest_logreport(report=report)
    config.hook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
