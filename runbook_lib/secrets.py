"""What looks secret, by key name and by value shape, and how it is redacted and counted.

The one definition every part uses: the run archive (parameters, overrides, cell outputs,
results, manifest, deployment log, report, any text file of a run dir), the deployment plan's
display of the function's settings, and errors that echo a command's output. Standard library
only, so the Cloud Function bundle can carry it.

A value is secret when its key says so (`SECRET_KEY`: webhook, token, secret, password, API key,
credential, private key ...) or when its shape does, wherever it appears (`VALUE_PATTERNS`): AWS
access key ids, Google API keys and OAuth tokens, GitHub and Slack tokens, JWTs, PEM private keys,
`Bearer` tokens, literals given to secret-named keys, variables or flags, URLs carrying a user
and password before the host, Slack/Discord webhook URLs (their path is the credential) and URLs
with token query parameters (`?token=`, `key=`, `sig=` ...). Only the secret part is replaced:
a URL keeps its scheme and host, a header keeps `Bearer`, so a reader still sees what it was.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

REDACTED = "***redacted***"
# A masked setting for display keeps the scheme and host of a URL: which service, not the secret.
MASK = "****"

SECRET_KEY = re.compile(
    r"webhook|token|secret|passw(?:or)?d|credential|api_?key|private_?key|access_?key"
    r"|auth_?token|authorization",
    re.IGNORECASE,
)

# A secret-named word in running text: `password=`, `api_key:`, `GITHUB_TOKEN=`, `x.token=`.
# A bare "token" is left alone: the cleanup's plan has a column of that name holding no secret.
_ASSIGNED_KEY = (
    r"[A-Za-z0-9_.-]*(?:passw(?:or)?d|secret|api[_-]?key|access[_-]?key|private[_-]?key"
    r"|credentials?|[_.-]token)"
)
# Query parameters that carry a credential in a URL.
_QUERY_KEYS = (
    r"token|access_token|id_token|refresh_token|auth|key|api_key|apikey|sig|signature|secret"
    r"|client_secret|password|code|x-amz-signature|x-amz-credential|x-amz-security-token"
    r"|x-goog-signature|x-goog-credential"
)
_URL_CHARS = r"[^\s\"'<>\\]"
_NOT_B64_BEFORE = r"(?<![A-Za-z0-9+/_-])"
_NOT_B64_AFTER = r"(?![A-Za-z0-9+/=_-])"

# name -> pattern; the group named "secret" (else the whole match) is what gets replaced.
VALUE_PATTERNS: dict[str, re.Pattern] = {
    "pem private key": re.compile(
        r"(?P<secret>-----BEGIN [A-Z ]*PRIVATE KEY-----"
        r"(?:.*?-----END [A-Z ]*PRIVATE KEY-----|[A-Za-z0-9+/=\s\\]*))",
        re.DOTALL,
    ),
    # Exact lengths, and no base64 character on either side: a chart's PNG data is no key.
    "aws access key id": re.compile(
        rf"{_NOT_B64_BEFORE}(?P<secret>(?:AKIA|ASIA|AGPA|AIDA|AROA)[0-9A-Z]{{16}}){_NOT_B64_AFTER}"
    ),
    "google api key": re.compile(
        rf"{_NOT_B64_BEFORE}(?P<secret>AIza[0-9A-Za-z_\-]{{35}}){_NOT_B64_AFTER}"
    ),
    "google oauth token": re.compile(r"\b(?P<secret>ya29\.[0-9A-Za-z_\-]{20,})"),
    "github token": re.compile(r"\b(?P<secret>(?:gh[pousr]_|github_pat_)[A-Za-z0-9_]{30,})"),
    "slack token": re.compile(r"\b(?P<secret>xox[abposr]-[A-Za-z0-9-]{10,})"),
    "json web token": re.compile(
        r"\b(?P<secret>eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,})"
    ),
    "bearer token": re.compile(r"\b[Bb]earer\s+(?P<secret>[A-Za-z0-9\-._~+/]{8,}=*)"),
    "url credentials": re.compile(
        r"\b[a-zA-Z][a-zA-Z0-9+.-]*://(?P<secret>[^\s/@:\"'<>\\]+:[^\s/@\"'<>\\]+)@"
    ),
    "webhook url": re.compile(
        r"https?://(?:hooks\.slack\.com/(?:services|workflows|triggers)"
        r"|(?:[a-z]+\.)?discord(?:app)?\.com/api/webhooks"
        r"|[a-z0-9.-]+\.webhook\.office\.com)"
        rf"/(?P<secret>{_URL_CHARS}+)"
    ),
    "url token parameter": re.compile(
        rf"https?://{_URL_CHARS}*?[?&](?:{_QUERY_KEYS})=(?P<secret>[^&\s\"'<>#\\]+)",
        re.IGNORECASE,
    ),
    # A secret-named key given a literal: `password = "..."`, `"client_secret": "..."`.
    "secret assignment": re.compile(
        rf"\b{_ASSIGNED_KEY}\\?[\"']?\s*[=:]\s*\\?[\"'](?P<secret>[^\s\"'\\]{{8,}})\\?[\"']",
        re.IGNORECASE,
    ),
    # An environment variable (`GITHUB_TOKEN=...`) or a flag (`--x.token=...`, `--password ...`).
    "secret variable": re.compile(
        r"\b[A-Z][A-Z0-9_]*(?:PASSWORD|PASSWD|SECRET|API_KEY|ACCESS_KEY|PRIVATE_KEY|_TOKEN"
        r"|CREDENTIALS?)=(?P<secret>[^\s\"'&;]{8,})"
    ),
    "secret flag": re.compile(
        r"--[\w.-]*(?:password|passwd|secret|token|api[_-]?key)(?:=|\s+)"
        r"(?P<secret>[^\s\"'&;-][^\s\"'&;]{7,})",
        re.IGNORECASE,
    ),
}


def is_secret_key(key: str) -> bool:
    """Return whether a setting's or parameter's name says its value is a secret."""
    return bool(SECRET_KEY.search(str(key)))


def find(text: str) -> list[tuple[str, str]]:
    """Return (pattern name, secret) for every secret-looking value in `text`, in order."""
    found = []
    for name, pattern in VALUE_PATTERNS.items():
        for m in pattern.finditer(text):
            if REDACTED not in m.group("secret"):
                found.append((m.start("secret"), name, m.group("secret")))
    return [(name, secret) for _, name, secret in sorted(found)]


def redact_text(text: str, known: Iterable[str] = ()) -> tuple[str, int]:
    """Return `text` with every secret-looking value and every `known` value redacted, and how many.

    `known` values (those of secret-named settings) are replaced raw and JSON-escaped, as a
    notebook stores them; then each value pattern replaces only its secret part. A value
    already redacted is not counted again.
    """
    count = 0
    for value in sorted({str(v) for v in known if v and len(str(v)) >= 4}, key=len, reverse=True):
        for form in {value, json.dumps(value)[1:-1]}:
            count += text.count(form)
            text = text.replace(form, REDACTED)
    for pattern in VALUE_PATTERNS.values():
        hits = 0

        def replace(m: re.Match) -> str:
            nonlocal hits
            if REDACTED in m.group("secret"):
                return m.group(0)
            hits += 1
            start, end = m.start("secret") - m.start(), m.end("secret") - m.start()
            return m.group(0)[:start] + REDACTED + m.group(0)[end:]

        text = pattern.sub(replace, text)
        count += hits
    return text, count


def redacted(text: str, known: Iterable[str] = ()) -> str:
    """Return `text` with its secrets redacted (see `redact_text`)."""
    return redact_text(text, known)[0]


def scrub(value: Any, known: Iterable[str] = (), by_key: bool = True) -> tuple[Any, int]:
    """Return a copy of JSON-like data with secrets redacted, and how many were.

    With `by_key`, a non-empty string under a secret-named key is redacted whole (settings and
    parameters); every string anywhere is scanned for secret-looking values.
    """
    known = tuple(known)
    if isinstance(value, Mapping):
        out, count = {}, 0
        for key, item in value.items():
            if by_key and is_secret_key(key) and isinstance(item, str) and item:
                out[key], n = (item, 0) if item == REDACTED else (REDACTED, 1)
            else:
                out[key], n = scrub(item, known, by_key)
            count += n
        return out, count
    if isinstance(value, list | tuple):
        items = [scrub(v, known, by_key) for v in value]
        return [v for v, _ in items], sum(n for _, n in items)
    if isinstance(value, str):
        return redact_text(value, known)
    return value, 0


def redact_mapping(mapping: Mapping) -> dict:
    """Return a copy of `mapping` with secret-named and secret-looking values redacted."""
    return scrub(mapping)[0]


def secret_values(mapping: Mapping) -> set[str]:
    """Return the string values under secret-named keys (at any depth), to redact as `known`."""
    found: set[str] = set()
    for key, value in mapping.items():
        if isinstance(value, Mapping):
            found |= secret_values(value)
        elif is_secret_key(key) and isinstance(value, str) and len(value) >= 4:
            found.add(value)
    return found


# Texts this process found clean (sha256 of the text, and the patterns and known values it was
# scanned with), so a file unchanged since its last scan is not scanned again: a run's end scans
# every file of its archive, and each phase's notebook and results were scanned as it ended.
_CLEAN: dict[str, list[tuple[tuple[str, ...], frozenset[str]]]] = {}
_CLEAN_MAX = 4096


def scrub_file(path: Path, known: Iterable[str] = ()) -> int:
    """Redact secrets in a text file in place; return how many (a binary file is left alone).

    A text found clean before is clean again if the patterns are the same and the known values
    are among those it was scanned for; it is not scanned twice.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except (UnicodeDecodeError, FileNotFoundError, IsADirectoryError):
        return 0
    known = frozenset(str(v) for v in known)
    patterns = tuple(p.pattern for p in VALUE_PATTERNS.values())
    digest = hashlib.sha256(text.encode()).hexdigest()
    if any(p == patterns and known <= k for p, k in _CLEAN.get(digest, ())):
        return 0
    clean, count = redact_text(text, known)
    if count:
        path.write_text(clean)  # scanned again next time: only a text found clean is noted
        return count
    if len(_CLEAN) >= _CLEAN_MAX:
        _CLEAN.clear()
    _CLEAN.setdefault(digest, []).append((patterns, known))
    return 0


def scrub_tree(folder: Path, known: Iterable[str] = (), skip: Iterable[str] = ()) -> dict[str, int]:
    """Redact secrets in every text file under `folder`; return {relative path: count} of hits."""
    known, skip = tuple(known), set(skip)
    hits = {}
    for path in sorted(Path(folder).rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if path.is_file() and rel not in skip:
            n = scrub_file(path, known)
            if n:
                hits[rel] = n
    return hits


def mask_value(value: str) -> str:
    """Return a secret setting masked for display: a URL keeps scheme and host, else all mask."""
    parts = urlsplit(str(value))
    if parts.scheme and parts.hostname:
        host = parts.hostname + (f":{parts.port}" if parts.port else "")
        return f"{parts.scheme}://{host}/{MASK}"
    return MASK


def masked_env(env: Mapping[str, str]) -> dict[str, str]:
    """Return settings with every secret-named or secret-looking value masked for display."""
    return {
        k: mask_value(v) if v and (is_secret_key(k) or find(str(v))) else v for k, v in env.items()
    }


def redact_known(text: str, env: Mapping[str, str]) -> str:
    """Return `text` (e.g. a command's stderr) with the secret values of `env` shown masked.

    A secret setting echoed back reads as its masked form (scheme and host of a URL); any other
    secret-looking value is redacted.
    """
    for key, value in env.items():
        if value and (is_secret_key(key) or find(str(value))):
            text = text.replace(str(value), mask_value(value))
    return redacted(text)
