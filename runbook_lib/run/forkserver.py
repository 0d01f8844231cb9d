"""A fork server for phase kernels: each phase still gets a fresh kernel, without the boot.

A kernel boots in ~2.5 s of CPU here (interpreter, IPython, pandas, duckdb, sqlglot, pydantic,
the library), and a run boots seven while the phases run on the same 2 cores. The fork server
is one process started at the beginning of a run that imports those modules once and then,
for each phase, forks a child that becomes the phase's kernel (ipykernel's launcher, with
the connection file jupyter_client wrote). The child is a new process in a session of its own,
with the phase's environment and working directory and a namespace no phase has touched: the
modules are loaded, no notebook code has run, as in a kernel that imported them at start-up.

A fork is refused (and the runner launches a kernel from a new interpreter, as without the
server) when the fork would not be that kernel:
- a module file the server loaded changed on disk since (phase 01's merge can change the
  code under test): the child would run the old code;
- the request's environment differs from the server's beyond what differs per kernel (the
  keys the runner names, what jupyter_client and the kernel set): a module may have read the
  variable at import;
- a different interpreter or launcher, the server is not single-threaded (a fork copies only
  the calling thread), or one of its imports failed.

A kernel may ask for a module run (`python -m module`: phase 01's safeguard pytest, phases 03
and 05's functions-framework server): the child applies what an interpreter reads from the
environment at start-up (PYTHONPATH's entries after the folder, unbuffered output, no bytecode),
drops the preloaded modules of the packages the request names fresh (the function bundle's own
copy of the library is then imported from its folder), and is killed with its process group
when the process that asked for it ends, as a process launched in a kernel's group is. Refused
beyond the above when a preloaded module configured logging (the bundle's basicConfig would do
nothing), or the server's path does not start with its own PYTHONPATH.

The server process is forkserver_process.py; this module is the handles on it: the runner's
(ForkServer: start, kernels, stop) and a kernel's (ForkClient: a process forked to run a module).
Both import only the standard library.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import time
from pathlib import Path

LAUNCHER = ("-m", "ipykernel_launcher")
# Where a kernel forked by the server finds it (to fork a module's run, ForkClient).
SOCKET_ENV = "RUNBOOK_FORKSERVER"
_READY_TIMEOUT = 60.0


# The names `ps -o comm` and /proc/PID/comm show: a forked kernel's command line is still the
# server's (no exec), so the name is how a person or a test tells a kernel from its server.
SERVER_NAME = "rbk-forkserver"
KERNEL_NAME = "rbk-kernel"
PROCESS_NAME = "rbk-forked"  # a module run forked for a kernel (phase 01's pytest)
# What the module runs kernels ask for import before their own code (phases 03 and 05 serve
# their function under functions-framework and gunicorn): the server loads them after every
# kernel's imports, so a run pays only for its own code.
MODULE_RUN_IMPORTS = (
    "functions_framework",
    "functions_framework._cli",
    "functions_framework._http.gunicorn",
    "gunicorn.arbiter",
)
# What the interpreter reads from its environment at start-up, and a forked module run applies
# itself from the environment asked for: the path's head, unbuffered output, no bytecode.
INTERPRETER_ENV = ("PYTHONPATH", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE")


def die_with_parent() -> None:
    """Have Linux SIGKILL this process when the process that started it dies (no-op elsewhere)."""
    _prctl(1, signal.SIGKILL)  # 1: PR_SET_PDEATHSIG


def name_process(name: str) -> None:
    """Set this process's name (/proc/PID/comm) on Linux."""
    _prctl(15, name.encode())  # 15: PR_SET_NAME (15 bytes at most)


def _prctl(option: int, value) -> None:
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(option, value)
    except (OSError, AttributeError):  # not Linux
        pass


class ForkRefused(Exception):  # noqa: N818 - an answer, not a failure: the runner falls back
    """The fork server did not fork this kernel; the message says why."""


class ForkClient:
    """A handle on a running fork server: ask it to fork a process."""

    process: subprocess.Popen | None = None  # the server, when this process started it
    Refused = ForkRefused  # what a refusal raises, for callers that may not import this module

    def __init__(self, socket_path: str):
        self.socket_path = socket_path

    @classmethod
    def from_env(cls) -> ForkClient | None:
        """Return the server of the run this process belongs to (a forked kernel), or None."""
        path = os.environ.get(SOCKET_ENV)
        return cls(path) if path else None

    def run_module(
        self,
        module: str,
        args: list[str],
        cwd: Path,
        env: dict[str, str],
        output: Path,
        runtime_env: tuple[str, ...] = (),
        *,
        log: Path | None = None,
        fresh: tuple[str, ...] = (),
    ) -> ForkedProcess:
        """Fork a process that runs `python -m module *args` in `cwd` with `env`.

        Its stdout and stderr go to `output`.out and `output`.err (both to `log` when given, as
        `2>&1` would), its exit status to `output`.exit. `runtime_env` names variables the
        module reads only when it runs (they may differ from the server's). What the
        interpreter reads from `env` at start-up (INTERPRETER_ENV: PYTHONPATH, unbuffered
        output, no bytecode) the child applies itself. `fresh` names packages whose modules the
        server preloaded and the child drops, so they are imported again from its path (a
        function bundle's own copy of the library). Raise ForkRefused with the reason.
        """
        request = {  # paths absolute: the server does not run in this process's folder
            "module": module,
            "argv": list(args),
            "cwd": os.path.abspath(cwd),
            "env": dict(env),
            "output": os.path.abspath(output),
            "runtime_env": list(runtime_env),
            "fresh": list(fresh),
        }
        if log is not None:
            request["stdout"] = request["stderr"] = os.path.abspath(log)
        return ForkedProcess(self._pid(request), Path(f"{request['output']}.exit"))

    def _pid(self, request: dict) -> int:
        try:
            reply = self._ask(request)
        except OSError as e:
            raise ForkRefused(f"fork server unavailable: {e}") from None
        if "pid" not in reply:
            raise ForkRefused(reply.get("refused", f"unexpected reply {reply}"))
        return int(reply["pid"])

    def _ask(self, request: dict) -> dict:
        deadline = time.monotonic() + _READY_TIMEOUT
        while True:  # the socket exists once the server runs; it answers once it has preloaded
            if self.process is not None and self.process.poll() is not None:
                raise OSError(f"fork server exited with {self.process.returncode}")
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
                    conn.connect(self.socket_path)
                    conn.sendall(json.dumps(request).encode() + b"\n")
                    conn.settimeout(max(deadline - time.monotonic(), 0.1))
                    return json.loads(read_line(conn))
            except (FileNotFoundError, ConnectionRefusedError):
                # Only the process that started the server waits for it to come up: a kernel
                # was forked by it, so for a kernel a missing server is a gone one.
                if self.process is None or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)


class ForkServer(ForkClient):
    """The runner's handle on a fork server process: start it, ask it for kernels, stop it."""

    def __init__(
        self,
        prefix: list[str],
        env: dict[str, str],
        stages: list[list[str]],
        cwd: Path,
        per_kernel: tuple[str, ...] = (),
    ):
        """Start the server: `prefix` is the kernel command before `-m ipykernel_launcher`.

        Kernels get `env` except for the keys in `per_kernel`, set per request. The server
        preloads `stages` of imports: the first before its first fork, each next one after a
        fork (names that are not modules are skipped), then MODULE_RUN_IMPORTS.
        """
        self._dir = Path(_short_tempdir())
        super().__init__(str(self._dir / "s"))
        self.prefix = list(prefix)
        # Its kernels find it through SOCKET_ENV: the server has it too, so theirs matches.
        self.env = {**env, SOCKET_ENV: self.socket_path}
        per_kernel = (*per_kernel, SOCKET_ENV)
        setup = {
            "stages": [*(list(stage) for stage in stages), list(MODULE_RUN_IMPORTS)],
            "per_kernel": list(per_kernel),
            "parent": os.getpid(),
        }
        # No preexec_fn: it forces a plain fork of this process, unsafe beside its threads (with
        # gRPC loaded the child died before exec); the server arms its own death signal.
        self.process = subprocess.Popen(
            [
                *self.prefix,
                "-m",
                f"{__package__}.forkserver_process",
                self.socket_path,
                json.dumps(setup),
            ],
            env=self.env,
            cwd=str(cwd),
            stdin=subprocess.DEVNULL,
        )

    def fork(self, cmd: list[str], env: dict[str, str], cwd: str) -> int:
        """Return the pid of a kernel forked for `cmd`; raise ForkRefused with the reason."""
        if list(cmd[: len(self.prefix) + 2]) != [*self.prefix, *LAUNCHER]:
            raise ForkRefused(f"not this server's kernel command: {cmd[: len(self.prefix) + 2]}")
        request = {"argv": list(cmd[len(self.prefix) + 2 :]), "env": env, "cwd": str(cwd)}
        return self._pid(request)

    def stop(self) -> None:
        """Kill the server (kernels it forked live on until their own shutdown); idempotent."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        for path in self._dir.glob("*"):
            path.unlink(missing_ok=True)
        self._dir.rmdir()


def _short_tempdir() -> str:
    import tempfile

    # Unix socket paths are limited to ~108 bytes: a short folder of its own.
    return tempfile.mkdtemp(prefix="rbk-fs-", dir="/tmp" if os.path.isdir("/tmp") else None)


class ForkedProcess:
    """What a Popen offers, for a process that is the fork server's child, not this one's.

    Its exit is seen through a pidfd. Its exit status belongs to its parent (the server): it
    is read from `exit_file` when the process wrote one, else it is -SIGKILL when this side
    killed it and 0 otherwise once it is gone.
    """

    stdin = stdout = stderr = None

    def __init__(self, pid: int, exit_file: Path | None = None):
        self.pid = pid
        self.exit_file = exit_file
        self.returncode: int | None = None
        self.killed = False
        try:
            self._fd: int | None = os.pidfd_open(pid)
        except ProcessLookupError:  # already gone
            self._fd = None
            self._ended()

    def poll(self) -> int | None:
        return self.wait(timeout=0, raise_timeout=False)

    def wait(self, timeout: float | None = None, raise_timeout: bool = True) -> int | None:
        if self.returncode is None and readable(self._fd, timeout):
            os.close(self._fd)
            self._ended()
        if self.returncode is None and raise_timeout:
            raise subprocess.TimeoutExpired(f"process {self.pid}", timeout)
        return self.returncode

    def _ended(self) -> None:
        try:
            self.returncode = int(self.exit_file.read_text())
        except (AttributeError, OSError, ValueError):  # none written: killed, or not asked
            self.returncode = -signal.SIGKILL if self.killed else 0

    def send_signal(self, sig: int, group: bool = True) -> None:
        """Signal its process group (what it started goes too), or with group=False only it."""
        if self.returncode is None:
            self.killed |= sig == signal.SIGKILL
            if group:
                os.killpg(self.pid, sig)  # its own process group, led by it
            else:
                signal.pidfd_send_signal(self._fd, sig)  # never another process with its pid

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)


def readable(fd: int, timeout: float | None) -> bool:
    """Return whether `fd` becomes readable within `timeout` seconds (None: wait for it).

    poll, not select: select refuses a descriptor numbered 1024 or more, which a long-lived
    process holding many files reaches (seen in the test suite's workers).
    """
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(None if timeout is None else int(timeout * 1000)))


def read_line(conn: socket.socket) -> bytes:
    """Return one newline-ended message from `conn` (the fork server's protocol)."""
    data = b""
    while not data.endswith(b"\n"):
        chunk = conn.recv(65536)
        if not chunk:
            raise OSError("fork server closed the connection without an answer")
        data += chunk
    return data
