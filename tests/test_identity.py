"""Sign-offs record who is authenticated next to the typed name (no network: local key files)."""

from __future__ import annotations

import getpass
import json

import pytest
from google.oauth2.credentials import Credentials as UserCredentials

from runbook_lib.run import interact
from runbook_lib.run.identity import NO_ACCOUNT, account_of, signer_identity
from runbook_lib.run.params import load_params
from runbook_lib.run.phase import Phase


def _service_account_info(email: str) -> dict:
    """A service-account key file's content with a freshly generated key (never sent anywhere)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return {
        "type": "service_account",
        "project_id": "nba-props-staging",
        "private_key_id": "0" * 40,
        "private_key": pem,
        "client_email": email,
        "client_id": "1",
        "token_uri": "https://oauth2.googleapis.com/token",
    }


@pytest.fixture
def adc(tmp_path, monkeypatch):
    """Point Application Default Credentials at a file this test writes; return a writer."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))

    def write(info: dict) -> None:
        path = tmp_path / "adc.json"
        path.write_text(json.dumps(info))
        monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(path))
        monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "nba-props-staging")

    return write


USER = {
    "type": "authorized_user",
    "client_id": "runbook-test.apps.googleusercontent.com",
    "client_secret": "not-a-secret",
    "refresh_token": "not-a-token",
}


def test_the_account_is_the_service_accounts_email_or_the_users_account():
    from google.oauth2 import service_account

    sa = service_account.Credentials.from_service_account_info(
        _service_account_info("deployer@nba-props-staging.iam.gserviceaccount.com")
    )
    assert account_of(sa) == "deployer@nba-props-staging.iam.gserviceaccount.com"
    assert account_of(UserCredentials(token=None, account="ann@example.com")) == "ann@example.com"
    assert account_of(UserCredentials(token=None)) == NO_ACCOUNT


def test_outside_local_the_identity_comes_from_the_default_credentials_file(adc):
    staging = load_params("staging")
    adc(_service_account_info("ci@nba-props-staging.iam.gserviceaccount.com"))
    assert signer_identity(staging) == "ci@nba-props-staging.iam.gserviceaccount.com"
    adc({**USER, "account": "ann@example.com"})
    assert signer_identity(staging) == "ann@example.com"
    adc(USER)
    assert signer_identity(staging) == NO_ACCOUNT


def test_on_local_the_identity_is_the_os_user(adc):
    adc({**USER, "account": "ann@example.com"})  # ignored: local uses no credentials
    assert signer_identity(load_params("local")) == f"{getpass.getuser()} (OS user)"


def test_a_staging_sign_off_records_the_typed_name_and_the_authenticated_account(adc, tmp_path):
    """Headless approvals outside local: each recorded entry names who typed and who is signed in."""
    adc({**USER, "account": "ann@example.com"})
    phase = Phase("00_preflight", load_params("staging"), tmp_path / "run", "run")
    items = ["Code review completed", "Permissions verified"]
    signed = interact.approvals(items, {i: "Ann Lee" for i in items}).require(phase=phase)
    recorded = json.loads(phase.results_path.read_text())["results"]["approvals"]
    assert signed == recorded
    assert [(e["name"], e["identity"]) for e in recorded] == [("Ann Lee", "ann@example.com")] * 2


def test_a_confirmation_outside_local_records_the_credentials_account(adc, tmp_path):
    """Who answers a form or confirms: the signed-in account outside local, the OS user on local."""
    adc({**USER, "account": "ann@example.com"})
    for env, expected in (("staging", "ann@example.com"), ("local", "(OS user)")):
        phase = Phase("02_data_cleanup", load_params(env), tmp_path / env, "run")
        assert expected in interact.who(phase)
    assert interact.who(None).endswith("(OS user)")
