"""The fork server process (forkserver.py explains why): preload, then fork on request.

`python -m runbook_lib.run.forkserver_process SOCKET SETUP_JSON`. It imports only the standard
library until it preloads. A request is one JSON line: a kernel (`argv` for ipykernel's
launcher) or a module run (`module`, `argv`, `output`); the answer is `{"pid": N}` or
`{"refused": why}`.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import threading
import time

from runbook_lib.run.forkserver import (
    KERNEL_NAME,
    PROCESS_NAME,
    SERVER_NAME,
    die_with_parent,
    name_process,
    read_line,
    readable,
)

# Environment keys jupyter_client adds when it launches a kernel: a forked kernel may differ
# from the server in them, and in the keys the runner names per kernel (`per_kernel`).
LAUNCH_ENV_PREFIX = "JPY_"
# What a kernel sets in its own environment as it starts (ipykernel's shell; debugpy, which its
# debugger imports): a process a kernel asks for has them, and no preloaded module reads them.
KERNEL_SET_ENV = (
    "TERM",
    "CLICOLOR",
    "FORCE_COLOR",
    "CLICOLOR_FORCE",
    "PAGER",
    "GIT_PAGER",
    "PYDEVD_USE_FRAME_EVAL",
)
# Modules that do set-up at import when an IPython shell exists (ipywidgets registers its comm
# targets, the inline backend its figure hooks): imported in the server, where there is no
# shell, they would skip it in every kernel. The server never preloads them.
SHELL_AWARE = ("ipywidgets", "matplotlib_inline", "tqdm.auto")


def _serve(socket_path: str, setup: dict) -> None:
    """Preload the setup's imports and fork a kernel per request, until killed.

    The first stage of imports is loaded before the first fork; the later ones one module at
    a time between requests once two kernels are forked (the runner asks for the second as
    soon as the first phase starts), a request waiting never longer than one module's import.
    """
    die_with_parent()
    if os.getppid() != setup["parent"]:  # the runner died before the signal was armed
        sys.exit(0)
    name_process(SERVER_NAME)
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
    served = 0
    while True:
        if later and served >= 2 and not readable(listener.fileno(), 0):
            state.preload([later.pop(0)])  # nobody waiting: load the next module
            continue
        conn, _ = listener.accept()
        served += 1
        with conn:
            try:
                request = json.loads(read_line(conn))
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
            except Exception as e:  # noqa: BLE001 - half-imported: fork nothing from it
                self.unusable = f"importing {name} failed in the fork server: {e}"
                return
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
        allowed = self.allowed
        if "module" in request:  # asked for by a kernel: its shell's variables, the module's own
            allowed = allowed | set(KERNEL_SET_ENV) | set(request.get("runtime_env", ()))
        imported = self._imported_env()
        differ = sorted(
            k
            for k in set(env) | set(self.start_env)
            if env.get(k) != self.start_env.get(k)
            and k not in allowed
            and not k.startswith(LAUNCH_ENV_PREFIX)
            and not (k in imported and env.get(k) in (None, imported[k]))
        )
        if differ:
            return (
                f"the environment asked for differs from the fork server's in {', '.join(differ)}"
            )
        return ""

    def kernel_env(self, env: dict[str, str]) -> dict[str, str]:
        """Return a forked process's environment: `env` and what the preloaded modules set.

        A module that sets a variable at import (numpy does) would have set it in a process
        that imported it; the requested value wins where there is one.
        """
        return {**self._imported_env(), **env}

    def _imported_env(self) -> dict[str, str]:
        return {
            k: v
            for k, v in os.environ.items()
            if self.start_env.get(k) != v and k not in self.allowed
        }


def _fork(request: dict, listener: socket.socket, conn: socket.socket) -> int:
    """Fork the requested process; return its pid once it leads a process group of its own."""
    ready, told = os.pipe()
    pid = os.fork()
    if pid:
        os.close(told)
        os.read(ready, 1)  # the asker may signal its group as soon as it has the pid
        os.close(ready)
        return pid
    # The child: become the phase's kernel or the module's run, never return into the loop.
    code = 1
    try:
        os.close(ready)
        os.setsid()  # its own session and process group, as jupyter_client launches kernels
        os.write(told, b"!")
        os.close(told)
        listener.close()
        conn.close()
        _become_process(request)
        _run_module(request) if "module" in request else _become_kernel(request)
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 0 if e.code is None else 1
    except BaseException:  # noqa: BLE001 - reported on stderr like a process that failed
        import traceback

        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        if "output" in request:  # its parent here is the server: the asker reads the status
            with open(f"{request['output']}.exit", "w") as f:
                f.write(str(code))
        os._exit(code)
    return 0  # unreachable


def _become_process(request: dict) -> None:
    """Make the child a process of the request's: signals, folder, environment."""
    for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    if "numpy.random" in sys.modules:  # `random` reseeds itself after a fork; numpy does not
        sys.modules["numpy.random"].seed()


def _run_module(request: dict) -> None:
    """Run the module as `python -m` would, its output to the request's files."""
    import runpy

    name_process(PROCESS_NAME)
    for fd, suffix in ((1, "out"), (2, "err")):
        target = os.open(f"{request['output']}.{suffix}", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(target, fd)
        os.close(target)
    sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115 - the process's own stdout
    sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
    sys.path.insert(0, os.getcwd())  # `python -m` puts the folder it runs in first
    sys.argv = [request["module"], *request["argv"]]
    runpy.run_module(request["module"], run_name="__main__", alter_sys=True)


def _become_kernel(request: dict) -> None:
    name_process(KERNEL_NAME)
    # Its parent is this server, not the runner: ipykernel watches the pid it is given and
    # exits when it goes (the server dies with the runner). ipykernel read JPY_PARENT_PID when
    # the server imported it, so the pid is also given on the command line.
    os.environ["JPY_PARENT_PID"] = str(os.getppid())
    sys.argv = [
        "ipykernel_launcher",
        *request["argv"],
        f"--IPKernelApp.parent_handle={os.getppid()}",
    ]
    from ipykernel import kernelapp

    kernelapp.launch_new_instance()


if __name__ == "__main__":
    _serve(sys.argv[1], json.loads(sys.argv[2]))
