"""Contacts: every FAILED phase, the deployment log and each alert say whom to call."""

from __future__ import annotations

import getpass
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from runbook_lib import paths
from runbook_lib.errors import PhaseFailedError
from runbook_lib.platform import webhook
from runbook_lib.run import manifest, runner
from runbook_lib.run.params import load_params
from tests.phase_notebooks import FAULTS, write_phase

NAMED = {"contacts.on_call": ["Ana Ruiz (pager nba-data)"], "contacts.escalation": "Bo Chen"}


@pytest.fixture
def nbdir(tmp_params_dir, tmp_path, monkeypatch):
    """A notebook folder whose phase 01 raises."""
    monkeypatch.setattr(paths, "ROOT", tmp_path)
    write_phase(tmp_path / "nb", "00_ok", ['phase.check("fine", True)'])
    write_phase(tmp_path / "nb", "01_broken", [FAULTS["raises"]])
    return tmp_path / "nb"


def test_a_failed_phase_names_the_contacts_in_its_error_record_and_log(nbdir, tmp_path):
    """The error the CLI prints, the manifest record and the log's Support Contacts name them."""
    with pytest.raises(PhaseFailedError) as caught:
        runner.run("local", notebooks_dir=nbdir, out_root=tmp_path / "out", overrides=NAMED)
    text = str(caught.value)
    assert "contacts: on-call Ana Ruiz (pager nba-data); escalate to Bo Chen" in text
    run_dir = caught.value.result.run_dir
    latest = manifest.latest_status(manifest.load(run_dir))
    assert "Ana Ruiz" in latest["01_broken"]["reason"]
    assert "Ana Ruiz" not in (
        latest["00_ok"]["reason"] or ""
    )  # a phase that succeeded calls nobody
    log = (run_dir / "deployment_log.md").read_text()
    support = log.split("## Support Contacts", 1)[1].split("## Sign-Off", 1)[0]
    assert "Whom to call: on-call Ana Ruiz (pager nba-data); escalate to Bo Chen" in support
    assert f"runbook rollback --run outputs/local/{caught.value.result.run_id}" in support


def test_local_without_contacts_names_the_os_user(nbdir, tmp_path):
    """Local params name nobody: the OS user is the contact."""
    with pytest.raises(PhaseFailedError) as caught:
        runner.run("local", notebooks_dir=nbdir, out_root=tmp_path / "out")
    assert f"on-call {getpass.getuser()} (the OS user" in str(caught.value)
    assert f"escalate to {getpass.getuser()} (the OS user" in str(caught.value)


def test_shipped_staging_and_prod_name_on_call_and_escalation():
    """Outside local, params hold an on-call line and an escalation."""
    for env in ("staging", "prod"):
        contacts = load_params(env).contacts
        assert contacts.on_call and contacts.escalation


class _Keep(BaseHTTPRequestHandler):
    bodies: list = []

    def do_POST(self):  # noqa: N802 - http.server's name
        self.bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_an_alert_names_the_contacts_in_its_text_and_payload():
    """send_alert with contacts: a Slack `text` gets a Contacts line and the payload a field."""
    server = HTTPServer(("127.0.0.1", 0), _Keep)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/hook"
    try:
        named = load_params("prod").contacts.named()
        assert (
            webhook.send_alert(url, {"text": "coverage 62% on 2026-01-09"}, contacts=named) == 200
        )
        assert webhook.send_alert(url, {"title": "no text"}) == 200
    finally:
        server.shutdown()
        server.server_close()
    first, second = _Keep.bodies[-2:]
    assert first["text"] == f"coverage 62% on 2026-01-09\nContacts: {named}"
    assert first["contacts"] == named and "contacts" not in second
