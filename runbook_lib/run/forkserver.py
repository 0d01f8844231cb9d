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
- the request's environment differs from the server's beyond the per-phase keys
  (`PER_KERNEL_ENV`): a module may have read the variable at import;
- a different interpreter or launcher, or the server is not single-threaded (a fork copies
  only the calling thread).

This module runs as the server (`python -m runbook_lib.run.forkserver SOCKET SETUP_JSON`): it
imports only the standard library until it preloads.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

LAUNCHER = ("-m", "ipykernel_launcher")
# Environment keys jupyter_client adds when it launches a kernel: a forked kernel may differ
# from the server in them, and in the keys the runner names per kernel (`per_kernel`).
LAUNCH_ENV_PREFIX = "JPY_"
# Modules that do set-up at import when an IPython shell exists (ipywidgets registers its comm
# targets, the inline backend its figure hooks): imported in the server, where there is no
# shell, they would skip it in every kernel. The server never preloads them.
SHELL_AWARE = ("ipywidgets", "matplotlib_inline", "tqdm.auto")
_READY_TIMEOUT = 60.0


# The names `ps -o comm` and /proc/PID/comm show: a forked kernel's command line is still the
# server's (no exec), so the name is how a person or a test tells a kernel from its server.
SERVER_NAME = "rbk-forkserver"
KERNEL_NAME = "rbk-kernel"


def die_with_parent() -> None:
    """Have Linux SIGKILL this process when the process that started it dies (no-op elsewhere)."""
    _prctl(1, signal.SIGKILL)  # 1: PR_SET_PDEATHSIG


def _name_process(name: str) -> None:
    _prctl(15, name.encode())  # 15: PR_SET_NAME (/proc/PID/comm, 15 bytes at most)


def _prctl(option: int, value) -> None:
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(option, value)
    except (OSError, AttributeError):  # not Linux
        pass


class ForkServer:
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
        fork (names that are not modules are skipped).
        """
        self.prefix = list(prefix)
        self.env = dict(env)
        self._dir = Path(_short_tempdir())
        self.socket_path = str(self._dir / "s")
        setup = {"stages": [list(stage) for stage in stages], "per_kernel": list(per_kernel)}
        self.process = subprocess.Popen(
            [*self.prefix, "-m", __name__, self.socket_path, json.dumps(setup)],
            env=self.env,
            cwd=str(cwd),
            stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent,  # noqa: PLW1509 - a run killed by SIGKILL takes it along
        )

    def fork(self, cmd: list[str], env: dict[str, str], cwd: str) -> int:
        """Return the pid of a kernel forked for `cmd`; raise ForkRefused with the reason."""
        if list(cmd[: len(self.prefix) + 2]) != [*self.prefix, *LAUNCHER]:
            raise ForkRefused(f"not this server's kernel command: {cmd[: len(self.prefix) + 2]}")
        request = {"argv": list(cmd[len(self.prefix) + 2 :]), "env": env, "cwd": str(cwd)}
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
            if self.process.poll() is not None:
                raise OSError(f"fork server exited with {self.process.returncode}")
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
                    conn.connect(self.socket_path)
                    conn.sendall(json.dumps(request).encode() + b"\n")
                    conn.settimeout(max(deadline - time.monotonic(), 0.1))
                    return json.loads(_read_line(conn))
            except (FileNotFoundError, ConnectionRefusedError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    def stop(self) -> None:
        """Kill the server (kernels it forked live on until their own shutdown); idempotent."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        for path in self._dir.glob("*"):
            path.unlink(missing_ok=True)
        self._dir.rmdir()


class ForkRefused(Exception):  # noqa: N818 - an answer, not a failure: the runner falls back
    """The fork server did not fork this kernel; the message says why."""


def _short_tempdir() -> str:
    import tempfile

    # Unix socket paths are limited to ~108 bytes: a short folder of its own.
    return tempfile.mkdtemp(prefix="rbk-fs-", dir="/tmp" if os.path.isdir("/tmp") else None)


def _read_line(conn: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = conn.recv(65536)
        if not chunk:
            raise OSError("fork server closed the connection without an answer")
        data += chunk
    return data


# -- The server process ---------------------------------------------------------------------


def _serve(socket_path: str, setup: dict) -> None:
    """Preload the setup's imports and fork a kernel per request, until killed.

    The first stage of imports is loaded before the first fork; the later ones one module at
    a time between requests, a request waiting never longer than one module's import.
    """
    die_with_parent()
    _name_process(SERVER_NAME)
    if sys.path and sys.path[0] in ("", os.getcwd()):
        del sys.path[0]  # as ipykernel_launcher does: imports never come from the cwd
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(socket_path)
    listener.listen(8)
    state = _Loaded(set(setup["per_kernel"]))
    stages = setup["stages"] or [[]]
    state.preload(["ipykernel.kernelapp", *stages[0]])
    later = [name for stage in stages[1:] for name in stage]
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernels are reaped as they exit
    while True:
        if later and not select.select([listener], [], [], 0)[0]:
            state.preload([later.pop(0)])  # nobody waiting: load the next module
            continue
        conn, _ = listener.accept()
        with conn:
            try:
                request = json.loads(_read_line(conn))
                refused = state.refusal(request)
                if not refused:
                    request["env"] = state.kernel_env(request["env"])
                reply = {"refused": refused} if refused else {"pid": _fork(request, listener, conn)}
            except Exception as e:  # noqa: BLE001 - a bad request is answered, never fatal
                reply = {"refused": f"{type(e).__name__}: {e}"}
            conn.sendall(json.dumps(reply).encode() + b"\n")


class _Loaded:
    """What the server has loaded: module files as read, the environment it changed."""

    def __init__(self, per_kernel: set[str]):
        self.start_env = dict(os.environ)
        self.allowed = per_kernel | {"MPLBACKEND"}  # MPLBACKEND: set as ipykernel does
        self.files: dict[str, tuple[int, int]] = {}
        self.unusable = ""

    def preload(self, imports: list[str]) -> None:
        """Import `imports`; note why forks became unusable, if so."""
        import importlib

        # ipykernel sets this before a kernel imports anything; matplotlib reads it at import.
        if not os.environ.get("MPLBACKEND"):
            os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
        began = time.time_ns()
        for name in imports:
            if name.startswith(SHELL_AWARE):
                continue
            try:
                importlib.import_module(name)
            except ImportError:  # a name that is not a module (`from m import func`)
                pass
        self._note_files(began)
        loaded = [m for m in sys.modules if m.startswith(SHELL_AWARE)]
        if loaded:
            self.unusable = f"the server imported {loaded[0]}, which sets itself up in a kernel"
        elif threading.active_count() != 1:
            self.unusable = f"the server runs {threading.active_count()} threads"

    def _note_files(self, began: int) -> None:
        for module in list(sys.modules.values()):
            path = getattr(module, "__file__", None)
            if not path or path in self.files:
                continue
            try:
                st = os.stat(path)
            except OSError:
                continue
            # A file written while it was being imported may hold other code than was read.
            self.files[path] = (st.st_mtime_ns, st.st_size) if st.st_mtime_ns < began else (0, 0)

    def refusal(self, request: dict) -> str:
        """Return why a kernel forked now would differ from a freshly launched one, or ''."""
        if self.unusable:
            return self.unusable
        for path, stamp in self.files.items():
            try:
                st = os.stat(path)
            except OSError:
                return f"{path} was removed since the fork server loaded it"
            if (st.st_mtime_ns, st.st_size) != stamp:
                return f"{path} changed since the fork server loaded it"
        env = request["env"]
        differ = sorted(
            k
            for k in set(env) | set(self.start_env)
            if env.get(k) != self.start_env.get(k)
            and k not in self.allowed
            and not k.startswith(LAUNCH_ENV_PREFIX)
        )
        if differ:
            return f"the kernel's environment differs from the fork server's in {', '.join(differ)}"
        return ""

    def kernel_env(self, env: dict[str, str]) -> dict[str, str]:
        """Return a forked kernel's environment: `env` and what the preloaded modules set.

        A module that sets a variable at import (numpy does) would have set it in a kernel
        that imported it; the requested value wins where there is one.
        """
        imported = {
            k: v
            for k, v in os.environ.items()
            if self.start_env.get(k) != v and k not in self.allowed
        }
        return {**imported, **env}


def _fork(request: dict, listener: socket.socket, conn: socket.socket) -> int:
    pid = os.fork()
    if pid:
        return pid
    # The child: become the phase's kernel, never return into the server's loop.
    code = 1
    try:
        listener.close()
        conn.close()
        _become_kernel(request)
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 0 if e.code is None else 1
    except BaseException:  # noqa: BLE001 - reported on stderr like a kernel that failed to start
        import traceback

        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return 0  # unreachable


def _become_kernel(request: dict) -> None:
    os.setsid()  # its own session and process group, as jupyter_client launches kernels
    _name_process(KERNEL_NAME)
    for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    # Its parent is this server, not the runner: ipykernel watches the pid it is given and
    # exits when it goes (the server dies with the runner). ipykernel read JPY_PARENT_PID when
    # the server imported it, so the pid is also given on the command line.
    os.environ["JPY_PARENT_PID"] = str(os.getppid())
    if "numpy.random" in sys.modules:  # `random` reseeds itself after a fork; numpy does not
        sys.modules["numpy.random"].seed()
    sys.argv = [
        "ipykernel_launcher",
        *request["argv"],
        f"--IPKernelApp.parent_handle={os.getppid()}",
    ]
    from ipykernel import kernelapp

    kernelapp.launch_new_instance()


if __name__ == "__main__":
    _serve(sys.argv[1], json.loads(sys.argv[2]))
