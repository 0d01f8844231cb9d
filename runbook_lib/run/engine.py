"""Kernels and the papermill engine the runner uses: cell progress and kernels started early.

papermill's own engine reports progress only through tqdm; `RunbookEngine` calls a callback
after each cell instead. `start_kernel` launches a phase's kernel before the previous phase
ends, with the modules that phase imports loaded at kernel start (IPKernelApp.exec_lines),
so kernel start-up and heavy imports overlap the previous phase instead of adding to it.
Given a fork server (forkserver.py), the kernel is forked from it with those modules already
loaded; a fork it refuses falls back to a kernel launched from a new interpreter.
"""

from __future__ import annotations

import ast
import atexit
import json
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from queue import Empty

from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from jupyter_client.provisioning import LocalProvisioner
from jupyter_core.utils import ensure_async
from nbclient.util import run_sync
from papermill.clientwrap import PapermillNotebookClient
from papermill.engines import NBClientEngine, NotebookExecutionManager, papermill_engines
from papermill.log import logger as papermill_log
from papermill.utils import merge_kwargs, remove_args

from runbook_lib.run.forkserver import SOCKET_ENV, ForkedProcess, ForkRefused, ForkServer
from runbook_lib.run.notebook_save import NotebookSaver
from runbook_lib.run.phase import ATTEMPT_ENV

PROJECT_KERNEL = "backfill-runbook"
ENGINE_NAME = "runbook"
# Imported in every phase kernel: the in-notebook API and what it pulls in (params, pydantic).
BASE_IMPORTS = ("runbook_lib.run.phase", "runbook_lib.run.interact")
# The backend every phase connects to on first use (duckdb + sqlglot: ~0.4 s, measured), loaded
# while the previous phase runs instead of inside this one.
WAREHOUSE_MODULES = {
    "duckdb": "runbook_lib.warehouse.duckdb_backend",
    "bigquery": "runbook_lib.warehouse.bigquery_backend",
}


def kernel_name() -> str:
    """Return the project's kernel when installed (`make setup` installs it), else python3."""
    return (
        PROJECT_KERNEL if PROJECT_KERNEL in KernelSpecManager().find_kernel_specs() else "python3"
    )


def notebook_imports(nb_path: Path) -> list[str]:
    """Return the modules a notebook's code cells import (its own `import` statements)."""
    nb = json.loads(Path(nb_path).read_text())
    found: list[str] = []
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        src = "".join(cell.get("source", []))
        try:
            tree = ast.parse(
                "\n".join(ln for ln in src.splitlines() if not ln.lstrip().startswith(("%", "!")))
            )
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found += [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                # `from pkg import mod` imports pkg.mod when mod is a submodule: preload both
                # (a name that is not a module is skipped at kernel start).
                found += [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
    return list(dict.fromkeys(found))


@dataclass
class Kernel:
    """A started kernel and what it was started for."""

    km: AsyncKernelManager
    phase: str
    attempt: int = 1  # which attempt of the phase it runs (the runner sets it)
    stopped: bool = False

    @property
    def forked(self) -> str:
        """Return how the kernel started: 'forked', or why it was launched from an interpreter."""
        return getattr(self.km.provisioner, "started", "launched")

    def shutdown(self) -> None:
        """Stop the kernel now (graceful shutdown stalls 3.3 s in 1 of 5-15 runs here); idempotent.

        SIGKILL to its process group, then wait for the process itself: jupyter_client's own
        wait polls every 0.1 s, 0.11 s a phase on the critical path. The kernel must be gone
        before the next phase opens the DuckDB file (one process at a time), so it is not left
        to die in the background.
        """
        if self.stopped:
            return
        self.stopped = True
        try:
            process = getattr(self.km.provisioner, "process", None)
            if process is not None and process.poll() is None:
                run_sync(self.km.provisioner.kill)()
                process.wait(timeout=5)  # the kernel is this process's child: back when it is gone
            # Finds the process gone (no poll), then closes its sockets and connection files.
            run_sync(self.km.shutdown_kernel)(now=True)
        except Exception:  # noqa: BLE001 - a kernel that is already gone is what we want
            pass


def start_kernel(
    name: str,
    phase: str,
    env: dict[str, str],
    cwd: Path,
    imports: list[str],
    forks: ForkServer | None = None,
) -> Kernel:
    """Launch a kernel that imports `imports` at start-up; return without waiting for it.

    With `forks`, the kernel is forked from that server when it accepts (see forkserver.py).
    """
    # IPC (Unix sockets) instead of TCP on 127.0.0.1: the kernel is reachable only by this user,
    # and ipykernel no longer warns about unencrypted TCP on every phase.
    km = AsyncKernelManager(
        kernel_name=name,
        transport="ipc",
        ip=str(_ipc_folder() / "k"),
        client_class=f"{__name__}.ReadyClient",
    )
    if forks is not None:
        env = {**env, SOCKET_ENV: forks.socket_path}  # the kernel may fork from it too (pytest)
        km.kernel_id = str(uuid.uuid4())
        km.provisioner = ForkedProvisioner(
            kernel_id=km.kernel_id, kernel_spec=km.kernel_spec, parent=km
        )
        km.provisioner.forks = forks
    # exec_lines run before the kernel answers; import_module binds no name in the
    # notebook's namespace, so a phase sees exactly the globals its own cells create.
    lines = [
        f"try: __import__('importlib').import_module({m!r})\nexcept ImportError: pass"
        for m in imports
    ]
    extra = [f"--IPKernelApp.exec_lines={json.dumps(lines)}"] if lines else []
    run_sync(km.start_kernel)(env={**os.environ, **env}, cwd=str(cwd), extra_arguments=extra)
    return Kernel(km, phase)


def can_fork() -> bool:
    """Return whether kernels can be forked here: fork, and pidfds to watch a non-child."""
    if not (hasattr(os, "fork") and hasattr(os, "pidfd_open")):
        return False
    try:
        os.close(os.pidfd_open(os.getpid()))
    except OSError:  # Linux before 5.3, or a sandbox that denies it
        return False
    return True


def fork_server(name: str, env: dict[str, str], cwd: Path, stages: list[list[str]]) -> ForkServer:
    """Start a fork server for kernels of kernelspec `name` (the same interpreter and flags)."""
    argv = KernelSpecManager().get_kernel_spec(name).argv
    prefix = argv[: argv.index("-m")] if "-m" in argv else argv
    return ForkServer(prefix, {**os.environ, **env}, stages, cwd, per_kernel=(ATTEMPT_ENV,))


class ForkedProvisioner(LocalProvisioner):
    """jupyter_client's local provisioner, forking the kernel from a fork server when it can."""

    forks: ForkServer | None = None
    started = "launched"

    async def launch_kernel(self, cmd: list[str], **kwargs):
        """Fork the kernel from the server; launch it from a new interpreter if refused."""
        try:
            pid = self.forks.fork(cmd, kwargs.get("env", dict(os.environ)), kwargs.get("cwd"))
        except ForkRefused as e:
            self.started = f"launched (fork refused: {e})"
            return await super().launch_kernel(cmd, **kwargs)
        self.process = ForkedProcess(pid)
        self.pid = self.pgid = pid  # its own session: the group is the kernel and its children
        self.cwd = kwargs.get("cwd")
        self.started = "forked"
        return self.connection_info

    async def kill(self, restart: bool = False) -> None:
        """Kill the kernel's process group (LocalProvisioner's), noting that it was killed."""
        if isinstance(self.process, ForkedProcess):
            self.process.killed = True
        await super().kill(restart)


class ReadyClient(AsyncKernelClient):
    """jupyter_client's kernel client, ready as soon as the kernel answered on both channels.

    Its wait_for_ready ends by listening to IOPub until 0.2 s pass without a message, and waits
    0.2 s more whenever the subscription missed the kernel's first status message (ZeroMQ's
    slow joiner): 0.21 s before every phase's first cell, measured. This one is ready at the
    kernel's idle status for a kernel_info request of its own (the last message the kernel
    sends for it; every earlier message precedes it on IOPub), asking again after 1 s without
    a reply or 0.05 s without that status. A message that arrives later belongs to no cell:
    nbclient keeps only a cell's own.
    """

    async def _async_wait_for_ready(self, timeout: float | None = None) -> None:
        deadline = time.monotonic() + (float("inf") if timeout is None else timeout)
        asked: set[str] = set()  # every kernel_info sent: a slow kernel answers them in turn
        while True:
            asked.add(self.kernel_info())
            try:
                reply = await ensure_async(self.shell_channel.get_msg(timeout=1))
            except Empty:
                reply = None
            if reply and reply["msg_type"] == "kernel_info_reply" and await self._idle(asked):
                self._handle_kernel_info_reply(reply)
                return
            if not await self._async_is_alive():
                raise RuntimeError("Kernel died before replying to kernel_info")
            if time.monotonic() > deadline:
                raise RuntimeError(f"Kernel didn't respond in {timeout:.0f} seconds")

    wait_for_ready = _async_wait_for_ready  # AsyncKernelClient binds the name to the base's

    def start_channels(self, shell=True, iopub=True, stdin=True, hb=True, control=True) -> None:
        """Start the channels but the heartbeat's: whether the kernel lives is asked of its
        manager (this client's parent), and the heartbeat's thread would outlive the phase."""
        super().start_channels(shell=shell, iopub=iopub, stdin=stdin, hb=False, control=control)

    async def _idle(self, asked: set[str]) -> bool:
        """Read IOPub up to an idle status for a request in `asked`; False after 0.05 s of
        silence (the subscription missed it: ask again)."""
        while True:
            try:
                msg = await ensure_async(self.iopub_channel.get_msg(timeout=0.05))
            except Empty:
                return False
            if (
                msg["msg_type"] == "status"
                and msg["content"].get("execution_state") == "idle"
                and msg["parent_header"].get("msg_id") in asked
            ):
                return True


def _ipc_folder() -> Path:
    # One short folder per kernel: Unix socket paths are limited to ~108 bytes, and two kernels
    # started at once in one folder can pick the same socket names (seen as "Invalid Signature").
    folder = Path(tempfile.mkdtemp(prefix="rbk-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


class _ProgressManager(NotebookExecutionManager):
    """papermill's execution manager, reporting each finished cell to a callback.

    papermill saves the notebook at every cell's start and end, markdown cells included, and
    each save sits between two cells, where the kernel waits for the next one. A save here is
    made where the notebook on disk must move on: a code cell's start (with everything before
    it, now complete), a long cell's autosave, the notebook's end. A cell's end is saved with
    the next code cell's start, a few milliseconds later; a markdown cell runs instantly.
    A run killed at any point leaves the notebook as it was when its running cell started.
    """

    progress: Callable[[dict], None] | None = None
    phase = ""
    saver: NotebookSaver | None = None
    _defer = False  # the next save is made at the next code cell's start or the notebook's end

    def save(self, **kwargs):
        """Save the notebook as it runs: the bytes papermill writes, replaced whole, without
        validating the notebook at each save.

        papermill's save validates the whole notebook against its schema every time: 244 saves
        took 3.8 s of a run on the critical path. papermill validates it when it writes the
        finished notebook. The text is nbformat's, re-encoding only the cells that changed
        (notebook_save.py). Replacing the file (instead of rewriting it in place) means a run
        killed mid-save leaves the previous save, never half a notebook.
        """
        if self._defer:
            self._defer = False
            return
        if self.output_path:
            self.saver = self.saver or NotebookSaver()
            path = Path(self.output_path)
            part = path.with_name(f".{path.name}.part")
            part.write_text(self.saver.writes(self.nb), encoding="utf-8")
            part.replace(path)
        self.last_save_time = self.now()

    def cell_start(self, cell, cell_index=None, **kwargs):
        self._defer = cell.get("cell_type") != "code"
        super().cell_start(cell, cell_index=cell_index, **kwargs)

    def cell_complete(self, cell, cell_index=None, **kwargs):
        self._defer = True
        super().cell_complete(cell, cell_index=cell_index, **kwargs)
        if self.progress and cell_index is not None:
            self.progress(
                {
                    "event": "cell",
                    "phase": self.phase,
                    "cell": cell_index + 1,
                    "cells": len(self.nb.cells),
                }
            )


class RunbookEngine(NBClientEngine):
    """nbclient engine with a per-cell progress callback (no tqdm)."""

    @classmethod
    def execute_notebook(
        cls,
        nb,
        kernel_name,
        output_path=None,
        progress_bar=False,
        log_output=False,
        autosave_cell_every=30,
        progress=None,
        phase="",
        **kwargs,
    ):
        """Execute `nb` like papermill's Engine, reporting cells to `progress`."""
        nb_man = _ProgressManager(
            nb,
            output_path=output_path,
            progress_bar=False,
            log_output=log_output,
            autosave_cell_every=autosave_cell_every,
        )
        nb_man.progress, nb_man.phase = progress, phase
        nb_man.notebook_start()
        try:
            cls.execute_managed_notebook(nb_man, kernel_name, log_output=log_output, **kwargs)
        finally:
            nb_man.cleanup_pbar()
            nb_man.notebook_complete()
        return nb_man.nb

    @classmethod
    def execute_managed_notebook(
        cls, nb_man, kernel_name, log_output=False, start_timeout=60, execution_timeout=None, **kw
    ):
        """Execute as papermill's engine does, then stop the client's channels.

        papermill hands nbclient a kernel manager of its own (ours), so nbclient leaves the
        client's channels open: each phase's sockets, ZeroMQ context and heartbeat thread (still
        pinging the stopped kernel) lived until the runner exited.
        """
        timeout = execution_timeout or kw.get("timeout")
        kw = remove_args(["input_path", "timeout", "startup_timeout"], **kw)
        client = PapermillNotebookClient(
            nb_man,
            **merge_kwargs(
                kw,
                timeout=timeout,
                startup_timeout=start_timeout,
                kernel_name=kernel_name,
                log=papermill_log,
                log_output=log_output,
            ),
        )
        try:
            return client.execute()
        finally:
            if client.kc is not None:
                client.kc.stop_channels()


papermill_engines.register(ENGINE_NAME, RunbookEngine)
