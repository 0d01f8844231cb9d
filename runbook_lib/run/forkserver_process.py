"""The fork server process (forkserver.py explains why): preload, then fork on request.

`python -m runbook_lib.run.forkserver_process SOCKET SETUP_JSON`. It imports only the standard
library until it preloads. A request is one JSON line: a kernel (`argv` for ipykernel's
launcher) or a module run (`module`, `argv`, `output`); the answer is `{"pid": N}` or
`{"refused": why}`.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import sys
import threading
import time

from runbook_lib.run.forkserver import (
    INTERPRETER_ENV,
    KERNEL_NAME,
    PROCESS_NAME,
    SERVER_NAME,
    die_with_parent,
    name_process,
    read_line,
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
    askers = _Askers()
    served = 0
    while True:
        idle = 0 if later and served >= 2 else None
        if not askers.wait_for(listener, idle):
            state.preload([later.pop(0)])  # nobody waiting: load the next module
            continue
        conn, _ = listener.accept()
        served += 1
        with conn:
            conn.sendall(json.dumps(_answer(conn, state, listener, askers)).encode() + b"\n")


def _answer(conn: socket.socket, state: _Loaded, listener: socket.socket, askers: _Askers) -> dict:
    """Read one request from `conn`; return the answer: the forked pid, or why not."""
    try:
        request = json.loads(read_line(conn))
        refused = state.refusal(request)
        if refused:
            return {"refused": refused}
        if "module" in request:  # the interpreter's own path, after PYTHONPATH's
            request["path_rest"] = state.path_rest()
        request["env"] = state.kernel_env(request["env"])
        pid = _fork(request, [listener, conn, askers])
    except Exception as e:  # noqa: BLE001 - a bad request is answered, never fatal
        return {"refused": f"{type(e).__name__}: {e}"}
    if "module" in request:
        askers.watch(_peer_pid(conn), pid)
    return {"pid": pid}


def _peer_pid(conn: socket.socket) -> int:
    import struct

    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", creds)[0]


class _Askers:
    """The processes that asked for module runs, each watched through a pidfd: when one ends,
    the runs it asked for end too (SIGKILL to each run's process group), as a process launched
    in a kernel's process group ends when the kernel is killed."""

    def __init__(self):
        self.runs: dict[int, int] = {}  # a pidfd of an asker (one per request) -> the run

    def watch(self, asker: int, run: int) -> None:
        try:
            self.runs[os.pidfd_open(asker)] = run
        except OSError:  # gone already
            _kill_group(run)

    def wait_for(self, listener: socket.socket, timeout: float | None) -> bool:
        """Return whether `listener` has a connection within `timeout` (None: wait for one),
        ending the runs of every asker that ends meanwhile."""
        while True:
            poller = select.poll()
            for fd in (listener.fileno(), *self.runs):
                poller.register(fd, select.POLLIN)
            ready = [fd for fd, _ in poller.poll(None if timeout is None else int(timeout * 1000))]
            for fd in set(ready) & set(self.runs):
                _kill_group(self.runs.pop(fd))
                os.close(fd)
            if listener.fileno() in ready or not ready:
                return bool(ready)

    def close(self) -> None:
        for fd in self.runs:
            os.close(fd)


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:  # the run and what it started are gone
        pass


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
            refused = self._module_refusal(request)
            if refused:
                return refused
            allowed |= set(INTERPRETER_ENV)  # the child applies them as an interpreter would
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

    def _module_refusal(self, request: dict) -> str:
        """Return why the child could not start as `python -m` with the request's environment."""
        if request.get("fresh") and logging_configured():
            # A module the child imports again would find logging already set up (its
            # basicConfig would do nothing) where a launched interpreter has none.
            return "logging was configured in the fork server"
        if self.path_rest() is None:
            return "the fork server's path does not start with its PYTHONPATH"
        return ""

    def path_rest(self) -> list[str] | None:
        """Return the server's path after its own PYTHONPATH's entries, None if it does not
        start with them (the cwd the server was started in is already dropped)."""
        own = self.start_env.get("PYTHONPATH")
        head = [os.path.abspath(p) for p in own.split(os.pathsep)] if own else []
        return sys.path[len(head) :] if sys.path[: len(head)] == head else None

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


def _fork(request: dict, inherited: list) -> int:
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
    child = os.getpid()  # a process the module forks in turn unwinds through here too
    try:
        os.close(ready)
        os.setsid()  # its own session and process group, as jupyter_client launches kernels
        os.write(told, b"!")
        os.close(told)
        for thing in inherited:  # the server's listener, connection and watched pidfds
            thing.close()
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
        # Its parent here is the server: the asker reads the status. Only this child's: a
        # process it forked (a gunicorn worker) exits through here as well.
        if "output" in request and os.getpid() == child:
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
    _redirect(request)
    _start_as_interpreter(request)
    sys.argv = [request["module"], *request["argv"]]
    runpy.run_module(request["module"], run_name="__main__", alter_sys=True)


def _redirect(request: dict) -> None:
    """Point stdout and stderr at the request's files, buffered as the environment says."""
    output = request["output"]
    paths = {1: request.get("stdout", f"{output}.out"), 2: request.get("stderr", f"{output}.err")}
    opened: dict[str, int] = {}
    for fd, path in paths.items():
        if path not in opened:  # one file for both (2>&1): one description, one offset
            opened[path] = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(opened[path], fd)
    for target in opened.values():
        os.close(target)
    unbuffered = bool(request["env"].get("PYTHONUNBUFFERED"))
    sys.stdout = _text_stream(1, sys.stdout, unbuffered, line_buffering=False)
    sys.stderr = _text_stream(2, sys.stderr, unbuffered, line_buffering=True)


def _text_stream(fd: int, old, unbuffered: bool, line_buffering: bool):
    """Return a text stream on `fd` as the interpreter makes it (-u: every write goes out)."""
    import io

    raw = open(fd, "wb", buffering=0 if unbuffered else -1, closefd=False)  # noqa: SIM115
    return io.TextIOWrapper(
        raw,
        encoding=old.encoding,
        errors=old.errors,
        line_buffering=line_buffering and not unbuffered,
        write_through=unbuffered,
    )


def _start_as_interpreter(request: dict) -> None:
    """Apply what an interpreter reads at start-up (the path, -B), and drop the `fresh` packages'
    preloaded modules so they are imported again from that path."""
    import importlib

    env = request["env"]
    sys.dont_write_bytecode = bool(env.get("PYTHONDONTWRITEBYTECODE"))
    # As `python -m` in this folder: the folder, PYTHONPATH's entries made absolute, the rest.
    head = (
        [os.path.abspath(p) for p in env["PYTHONPATH"].split(os.pathsep)]
        if env.get("PYTHONPATH")
        else []
    )
    sys.path[:] = [os.getcwd(), *head, *request["path_rest"]]
    fresh = set(request.get("fresh", ()))
    for name in [m for m in sys.modules if m.split(".")[0] in fresh]:
        del sys.modules[name]
    importlib.invalidate_caches()


def logging_configured() -> bool:
    """Return whether a preloaded module gave the root logger a handler (nothing is loaded
    when logging is not)."""
    return "logging" in sys.modules and bool(sys.modules["logging"].root.handlers)


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
