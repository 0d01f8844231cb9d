"""One definition of what looks secret: each pattern, its near misses, counting, files."""

from __future__ import annotations

import json
import re

import pytest

from runbook_lib import secrets
from runbook_lib.secrets import REDACTED

# Planted values (made up, never real credentials), and what must remain around each.
PEM = (
    "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAx4Zk1nT3stK3y\nQ2V0aGVyZQ==\n"
    "-----END RSA PRIVATE KEY-----"
)
SECRETS = {
    "aws access key id": ("key id AKIAIOSFODNN7EXAMPLE in the log", "key id ", " in the log"),
    "google api key": ("api AIzaSyA1b2C3d4E5f6G7h8I9j0KlMnOpQrStUvW ok", "api ", " ok"),
    "google oauth token": ("ya29.a0AfH6SMBx3EXAMPLEtokenvalue123456", "", ""),
    "github token": ("ghp_abcdefghijklmnopqrstuvwxyz0123456789", "", ""),
    "slack token": ("xoxb-1234567890-abcdefghijkl", "", ""),
    "json web token": ("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJlMTIz", "", ""),
    "pem private key": (f"key:\n{PEM}\ndone", "key:\n", "\ndone"),
    "bearer token": ("Authorization: Bearer abc123DEF456ghi789", "Authorization: Bearer ", ""),
    "url credentials": (
        "postgres://admin:hunter2pass@db.example.com/x",
        "postgres://",
        "@db.example.com/x",
    ),
    "webhook url": (
        "https://hooks.slack.com/services/T000/B000/XXXXsecretXXXX",
        "https://hooks.slack.com/services/",
        "",
    ),
    "url token parameter": (
        "https://api.example.com/v1?user=a&token=s3cr3tv4lue",
        "https://api.example.com/v1?user=a&token=",
        "",
    ),
    "secret assignment": ('password = "correct-horse-42"', "password = ", ""),
    "secret variable": ("export DB_PASSWORD=hunter2hunter2 &&", "export DB_PASSWORD=", " &&"),
    "secret flag": (
        "jupyter lab --IdentityProvider.token=4f2a9c0e1b7d",
        "--IdentityProvider.token=",
        "",
    ),
}
NEAR_MISSES = [
    "sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    "run 20261130T160000Z-ab12 of outputs/local/20261130T160000Z-ab12",
    "nba_analytics.upcoming_player_game_context_backup_20261130T160000Z-ab12",
    "delete 7972 rows from nba_analytics.upcoming_player_game_context (plan 3f9a2c)",
    "a webhook receiver on http://127.0.0.1:8765/alerts (webhook http://127.0.0.1:8765/****)",
    "AKIA is a prefix; AKIAshort and akiaiosfodnn7example are not keys",
    '"token": "delete 3 rows from x", "secrets_redacted": 12, "password": null',
    "Basic information about the bearer of the token",
    "self.expected_token = expected_token; Client(credentials=AnonymousCredentials())",
    '_TOKEN = re.compile(r"delete (\\d+) rows"); credentials, project = google.auth.default()',
    "runbook run --set phases.02_data_cleanup.confirm='delete 3 rows from a.b (plan 3f9a2c)'",
    "https://docs.example.com/page?lang=en&page=2",
    "iVBORw0KGgoAAAANSUhEUgAIzaSyA1b2C3d4E5f6G7h8I9j0KlMnOpQrStUvWAAKIAIOSFODNN7EXAMPLEx",
]


@pytest.mark.parametrize("name", sorted(SECRETS))
def test_each_pattern_redacts_only_the_secret_part(name):
    text, before, after = SECRETS[name]
    clean, count = secrets.redact_text(text)
    assert count == 1 and REDACTED in clean
    assert [n for n, _ in secrets.find(text)] == [name]
    assert before in clean and clean.endswith(after)
    assert secrets.find(clean) == []


@pytest.mark.parametrize("text", NEAR_MISSES)
def test_near_misses_are_left_alone(text):
    assert secrets.redact_text(text) == (text, 0)


def test_redaction_is_idempotent_and_counts_each_secret_once():
    text = " | ".join(t for t, _, _ in SECRETS.values())
    clean, count = secrets.redact_text(text)
    assert count == len(SECRETS)
    assert secrets.redact_text(clean) == (clean, 0)


def test_a_known_value_is_redacted_raw_and_json_escaped():
    value = 'plain"value-1'
    text = f"{value} and {json.dumps({'v': value})}"
    clean, count = secrets.redact_text(text, known={value})
    assert count == 2 and value not in clean and json.dumps(value)[1:-1] not in clean


def test_keys_say_secret_for_webhooks_tokens_passwords_and_keys():
    for key in (
        "webhook_url",
        "ALERT_WEBHOOK_URL",
        "api_token",
        "password",
        "API_KEY",
        "Authorization",
    ):
        assert secrets.is_secret_key(key), key
    for key in ("limit", "confirm", "env", "backups", "today", "author"):
        assert not secrets.is_secret_key(key), key


def test_scrub_redacts_by_key_at_any_depth_and_by_value_anywhere():
    data = {
        "webhook_url": "http://x",
        "a": {"api_token": "t", "note": "AKIAIOSFODNN7EXAMPLE"},
        "limit": 5,
        "password": None,
        "lines": ["ok", "Bearer abcdefgh12345678"],
        "secrets_redacted": 3,
    }
    out, count = secrets.scrub(data)
    assert count == 4
    assert out == {
        "webhook_url": REDACTED,
        "a": {"api_token": REDACTED, "note": REDACTED},
        "limit": 5,
        "password": None,
        "lines": ["ok", f"Bearer {REDACTED}"],
        "secrets_redacted": 3,
    }
    assert secrets.scrub(out) == (out, 0)


def test_scrub_tree_cleans_every_text_file_and_leaves_binary_ones(tmp_path):
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "journal.jsonl").write_text('{"k": "AKIAIOSFODNN7EXAMPLE"}\n')
    (tmp_path / "notes.txt").write_text("token ghp_abcdefghijklmnopqrstuvwxyz0123456789\n")
    (tmp_path / "clean.md").write_text("nothing here\n")
    (tmp_path / "blob.bin").write_bytes(b"\xff\xfeAKIAIOSFODNN7EXAMPLE\x00")
    hits = secrets.scrub_tree(tmp_path)
    assert hits == {"notes.txt": 1, "results/journal.jsonl": 1}
    assert "AKIA" not in (tmp_path / "results" / "journal.jsonl").read_text()
    assert (tmp_path / "blob.bin").read_bytes().startswith(b"\xff\xfeAKIA")


def test_a_file_found_clean_is_scanned_again_only_when_text_known_values_or_patterns_change(
    tmp_path, monkeypatch
):
    """A run's end scans every file, most already scanned as their phase ended: a text found
    clean with the same patterns and (a superset of) the same known values is skipped."""
    scans = []
    redact_text = secrets.redact_text
    monkeypatch.setattr(
        secrets,
        "redact_text",
        lambda text, known=(): scans.append(text) or redact_text(text, known),
    )
    path = tmp_path / "phase.ipynb"
    path.write_text('{"text": "hook at hunter2-long-value"}')
    assert secrets.scrub_file(path, {"other-known-value", "third-value"}) == 0
    assert secrets.scrub_file(path, {"other-known-value"}) == 0  # fewer known values: skipped
    assert len(scans) == 1
    # A known value it was not scanned for, an edit, a new pattern: each is scanned for again.
    assert secrets.scrub_file(path, {"hunter2-long-value"}) == 1
    assert "hunter2" not in path.read_text()
    path.write_text("token ghp_abcdefghijklmnopqrstuvwxyz0123456789\n")
    assert secrets.scrub_file(path) == 1
    path.write_text("planted-value-xyz")
    assert secrets.scrub_file(path) == 0
    patterns = {**secrets.VALUE_PATTERNS, "planted": re.compile(r"(?P<secret>planted-\S+)")}
    monkeypatch.setattr(secrets, "VALUE_PATTERNS", patterns)
    assert secrets.scrub_file(path) == 1
    assert path.read_text() == REDACTED


def test_masked_env_keeps_scheme_and_host_of_a_secret_url():
    env = {"ALERT_WEBHOOK_URL": "https://hooks.example.com/T0/B0/x", "GCP_PROJECT": "p"}
    assert secrets.masked_env(env) == {
        "ALERT_WEBHOOK_URL": "https://hooks.example.com/****",
        "GCP_PROJECT": "p",
    }
    echoed = "ERROR: bad value https://hooks.example.com/T0/B0/x"
    assert secrets.redact_known(echoed, env) == "ERROR: bad value https://hooks.example.com/****"


# -- a real run: planted secrets never reach the archive ------------------------------------------

PLANTED = ("AKIAIOSFODNN7EXAMPLE", "hunter2pass", "abcdefgh12345678", "s3cr3tv4lue")


def test_a_run_archives_none_of_the_secrets_a_phase_was_given_or_printed(tmp_path):
    """Secret-looking values under a plain key reach no archived file, and are counted."""
    from runbook_lib.run import manifest, runner
    from tests.phase_notebooks import write_phase

    folder = tmp_path / "nb"
    write_phase(
        folder,
        "00_leaky",
        [
            "print(note)",
            "from IPython.display import HTML, display\ndisplay(HTML(f'<b>{note}</b>'))",
            # Built in the kernel: no parameter or setting holds it, only its shape tells.
            'print("Authorization: Bearer " + "abcdefgh" + "12345678")',
            "phase.record('note', note)",
            "phase.check('printed', True, note)",
            "from pathlib import Path\n(Path(run_dir) / 'extra.txt').write_text(note)",
        ],
        params='note = ""\n',
    )
    note = (
        "key AKIAIOSFODNN7EXAMPLE, db postgres://ops:hunter2pass@db.example.com/x, "
        "hook https://api.example.com/hook?token=s3cr3tv4lue"
    )
    result = runner.run(
        "local",
        notebooks_dir=folder,
        out_root=tmp_path / "out",
        overrides={"phases.00_leaky.note": note},
    )
    run_dir = result.run_dir
    leaks = {
        p.relative_to(run_dir).as_posix(): [s for s in PLANTED if s in p.read_text()]
        for p in run_dir.rglob("*")
        if p.is_file()
    }
    assert {k: v for k, v in leaks.items() if v} == {}
    man = manifest.load(run_dir)
    assert REDACTED in man["header"]["overrides"]["phases.00_leaky.note"]
    phase, archive = man["records"]
    # notebook: source (injected parameter), stream, html, plain (x3 each) and the Bearer line;
    # results: the record and the check's detail.
    assert phase["secrets_redacted"] >= 3 * 4 + 1 + 3 * 2
    assert phase["results"]["note"].startswith(f"key {REDACTED}, db postgres://{REDACTED}@")
    assert archive["secrets_redacted"] >= 3  # extra.txt, found by the scan of every file
    assert runner.verify(run_dir).ok
