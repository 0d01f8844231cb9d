"""Run the built function bundle under functions-framework on 127.0.0.1 and send it events.

Used by `runbook function serve`, phase 03 on `local` and the tests: a real server process on
a free port serving the bundle folder, and a Pub/Sub CloudEvent posted to it over HTTP in the
binary or the structured content mode. `serve_bundle` starts both targets of the bundle: the
CloudEvent entry point and the `health` HTTP endpoint, each its own process on its own port.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import uuid
from pathlib import Path

from cloudevents.conversion import to_binary, to_structured
from cloudevents.http import CloudEvent

from runbook_lib.errors import DeployError
from runbook_lib.platform import webhook

PUBSUB_TYPE = "google.cloud.pubsub.topic.v1.messagePublished"
CLOUDEVENT_TARGET = "cleanup_upcoming_tables"
HEALTH_TARGET = "health"


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def next_free_port(after: int, tries: int = 100) -> int:
    """Return the first port above `after` on 127.0.0.1 that is free right now."""
    for port in range(after + 1, min(after + 1 + tries, 65536)):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    return free_port()


def _children(pid: int) -> list[str] | None:
    """Return the pids of a process's children, reaped or not, or None where /proc cannot say."""
    try:
        return Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return None


def _kill(pids: list[str]) -> None:
    """Send SIGKILL to each process of `pids` still there (its parent reaps it)."""
    for pid in pids:
        try:
            os.kill(int(pid), signal.SIGKILL)
        except ProcessLookupError:
            continue


def pubsub_event(
    body: dict, topic: str, project: str, message_id: str | None = None
) -> tuple[dict, dict]:
    """Return (attributes, data) of a Pub/Sub `messagePublished` CloudEvent carrying `body`.

    `message_id` (default random) becomes the event's id, which the function turns into the
    tail of its run id: a run triggered by the runbook can then be told from a scheduled one.
    """
    message_id = message_id or str(uuid.uuid4().int)[:16]
    now = dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")
    attributes = {
        "specversion": "1.0",
        "id": message_id,
        "type": PUBSUB_TYPE,
        "time": now,
        "source": f"//pubsub.googleapis.com/projects/{project}/topics/{topic}",
    }
    data = {
        "message": {
            "data": base64.b64encode(json.dumps(body).encode()).decode(),
            "messageId": message_id,
            "publishTime": now,
        },
        "subscription": f"projects/{project}/subscriptions/eventarc-{topic}",
    }
    return attributes, data


def encode_event(attributes: dict, data: dict, mode: str = "binary") -> tuple[dict, bytes]:
    """Return the HTTP headers and body of a JSON CloudEvent in the binary or structured mode."""
    encoders = {"binary": to_binary, "structured": to_structured}
    if mode not in encoders:
        raise ValueError(f"mode must be 'binary' or 'structured', got {mode!r}")
    return encoders[mode](CloudEvent({**attributes, "datacontenttype": "application/json"}, data))


def post(url: str, headers: dict, body: bytes, timeout: float = 120) -> tuple[int, str]:
    """POST to a local URL; return (status, text) for success and error statuses alike."""
    try:
        return webhook.post(url, body, headers, timeout)
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


class LocalFunctionServer:
    """A functions-framework process serving one target of a bundle on 127.0.0.1."""

    def __init__(
        self,
        bundle_dir: str | Path,
        target: str,
        signature_type: str,
        env: dict[str, str],
        port: int | None = None,
    ):
        self.bundle_dir = Path(bundle_dir)
        self.target, self.signature_type, self.env = target, signature_type, env
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.process: subprocess.Popen | None = None  # or the fork server's ForkedProcess
        self.started = ""  # "forked", "launched", or "launched (fork refused: why)"
        self._final_output: str | None = None
        self._listening = False
        self._unanswered = 0  # posts of this object's sent and not (yet) answered
        # A file, not a pipe: an unread pipe would block a chatty server once its buffer fills.
        self.log_path = Path(tempfile.mkstemp(prefix="function-server-", suffix=".log")[1])

    def command(self) -> list[str]:
        """Return the functions-framework command line serving the bundle."""
        return [
            sys.executable,
            "-m",
            "functions_framework",
            "--target",
            self.target,
            "--source",
            str(self.bundle_dir / "main.py"),
            "--signature-type",
            self.signature_type,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
        ]

    def launch(self, forks=None) -> LocalFunctionServer:
        """Start the server process and return at once, while it boots (about a second).

        The caller does other work meanwhile; `post` (or `wait_listening`) waits for the port.
        With `forks` (a run's fork server: run/forkserver.ForkClient), the process is forked
        from it, its imports already loaded, as `python -m functions_framework` with the same
        command line, folder, environment and log; the bundle's own copy of the library is
        imported afresh. A refused fork launches it from a new interpreter.
        """
        # The bundle goes first on the path so the server runs the bundle's copy of the library.
        # Unbuffered: every line the function prints is in the log the moment it is printed,
        # whatever way the process ends. No bytecode written: the bundle a run archives stays the
        # files it was built with, not __pycache__ folders left by serving it.
        env = {
            **os.environ,
            **self.env,
            "PYTHONPATH": str(self.bundle_dir),
            "PYTHONUNBUFFERED": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        self.started = "launched"
        if forks is not None:
            try:
                _, _, module, *args = self.command()
                self.process = forks.run_module(
                    module,
                    args,
                    self.bundle_dir,
                    env,
                    self.log_path,
                    runtime_env=tuple(self.env),  # the function reads them as it runs
                    log=self.log_path,
                    fresh=self._bundled(),
                )
                self.started = "forked"
                return self
            except forks.Refused as e:
                self.started = f"launched (fork refused: {e})"
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                self.command(), cwd=self.bundle_dir, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        return self

    def _bundled(self) -> tuple[str, ...]:
        """Return the modules and packages at the top of the bundle: first on the path, they are
        what the server imports under those names, never a copy the fork server preloaded."""
        return tuple(
            sorted(
                p.stem if p.suffix == ".py" else p.name
                for p in self.bundle_dir.iterdir()
                if p.suffix == ".py" or (p / "__init__.py").is_file()
            )
        )

    def wait_listening(self, timeout: float = 30) -> LocalFunctionServer:
        """Wait until the launched server's port accepts connections; stop it if it never does."""
        deadline = time.monotonic() + timeout
        while not self._listening and time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.stop()
                raise DeployError(f"functions-framework exited: {self.output()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                self._listening = True
            except OSError:  # a refused connect to 127.0.0.1 costs microseconds: poll often
                time.sleep(0.01)
        if not self._listening:
            self.stop()
            raise DeployError(f"functions-framework did not listen on {self.url} within {timeout}s")
        return self

    def start(self, timeout: float = 30) -> LocalFunctionServer:
        """Start the server and wait until its port accepts connections."""
        return self.launch().wait_listening(timeout)

    def post(self, headers: dict, body: bytes, timeout: float = 120) -> tuple[int, str]:
        """POST to the server once it listens; return (status, text), errors included."""
        self._unanswered += 1
        answer = post(self.wait_listening().url, headers, body, timeout)
        self._unanswered -= 1  # not on an error: the request may still be running
        return answer

    def stop(self, answered: bool = False) -> None:
        """Stop the server process (the one this object started) and remove its log file.

        answered: the caller has had the answer of every request it sent (phases 03 and 05:
        their server's port is theirs alone), so nothing of the function is left to run and its
        workers are killed, instead of each pausing 0.1 s and tearing its interpreter down
        (0.3-1 s on 2 cores). A post of this object's that got no answer (an error, a timeout)
        makes it the quick shutdown all the same.
        """
        if self.process and self.process.poll() is None:
            workers = _children(self.process.pid)
            # gunicorn's quick shutdown: its graceful one (SIGTERM) idles ~0.9 s in the worker's
            # poll loop. Phases 03 and 05 stop a server once its answer is back, and the output
            # is unbuffered, so nothing is cut short. Before gunicorn has set its handlers,
            # SIGINT is Python's KeyboardInterrupt: the process ends all the same.
            self._signal_master(signal.SIGINT)
            if workers:
                if answered and not self._unanswered:
                    _kill(workers)  # after the SIGINT: the master, stopping, starts none again
                self._end_master_once_alone(timeout=10)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process:
            self._kill_stragglers()
        if self._final_output is None:
            self._final_output = self.output()  # kept in memory: output() works after stop()
            self.log_path.unlink(missing_ok=True)
            Path(f"{self.log_path}.exit").unlink(missing_ok=True)  # a forked one's exit status

    def _signal_master(self, sig: int) -> None:
        """Signal gunicorn's master only (a forked server leads a process group of its own with
        its workers: the master stops them itself, as in a launched one)."""
        if self.started == "forked":
            self.process.send_signal(sig, group=False)
        else:
            self.process.send_signal(sig)

    def _kill_stragglers(self) -> None:
        """Kill any process still running this server's command line once its master is gone.

        A stop that lands while gunicorn boots can leave a worker behind (seen in the suite: the
        worker forked just before the quick shutdown, not yet answering signals of its own,
        outlived its master and kept serving the port). Such a worker keeps the master's command
        line, which names this server's own bundle and port and no other process's. A forked
        server's command line is its fork server's: its workers are found as the members of the
        process group its master led (a group lives on while any member does).
        """
        if self.started == "forked":
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except OSError:  # nobody left in the group
                pass
            return
        wanted = "\0".join(self.command()[1:]).encode()
        for proc in Path("/proc").glob("[0-9]*"):
            try:
                if wanted in (proc / "cmdline").read_bytes():
                    os.kill(int(proc.name), signal.SIGKILL)
            except OSError:  # gone meanwhile, or not ours to read: nothing left to stop
                continue

    def _end_master_once_alone(self, timeout: float) -> None:
        """Kill gunicorn's master once it has reaped its workers, instead of waiting out its exit.

        The workers exit on the quick shutdown and the master reaps them (none is started in
        their place: the master is stopping); what it has left to do is its interpreter's
        teardown, 0.3-0.7 s on 2 cores, which ends nothing of the function's. Killed only with
        no child left, so no worker is orphaned. Where /proc cannot list children, stop waits.
        """
        deadline = time.monotonic() + timeout
        while self.process.poll() is None and time.monotonic() < deadline:
            left = _children(self.process.pid)
            if left is None:
                return
            if not left:
                self.process.kill()
                return
            time.sleep(0.01)

    def output(self) -> str:
        """Return what the server has printed so far (its log lines and JSON summaries)."""
        if self._final_output is not None:
            return self._final_output
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __enter__(self) -> LocalFunctionServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def serve_bundle(
    bundle_dir: str | Path, env: dict[str, str], port: int | None = None
) -> list[LocalFunctionServer]:
    """Start the bundle's CloudEvent target and its `health` target on the next free port."""
    # functions-framework serves one target per process, so health needs a second server.
    events = LocalFunctionServer(bundle_dir, CLOUDEVENT_TARGET, "cloudevent", env, port).start()
    try:
        health = LocalFunctionServer(
            bundle_dir, HEALTH_TARGET, "http", env, next_free_port(events.port)
        ).start()
    except BaseException:
        events.stop()
        raise
    return [events, health]
