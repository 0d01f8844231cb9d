"""Mask the function's secret-looking settings wherever a plan or an error shows them.

A Slack-style webhook URL carries its credential in the path (`/services/T0/B0/<secret>`), so a
secret URL keeps only its scheme and host: enough to tell which service it points at.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import urlsplit

SECRET_KEY = re.compile(r"WEBHOOK|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|API_?KEY", re.IGNORECASE)
MASK = "****"


def is_secret(key: str) -> bool:
    """Return whether a setting's name says its value is a secret."""
    return bool(SECRET_KEY.search(key))


def mask_value(value: str) -> str:
    """Return a secret value masked: a URL keeps scheme and host, anything else is all mask."""
    parts = urlsplit(str(value))
    if parts.scheme and parts.hostname:
        host = parts.hostname + (f":{parts.port}" if parts.port else "")
        return f"{parts.scheme}://{host}/{MASK}"
    return MASK


def masked_env(env: Mapping[str, str]) -> dict[str, str]:
    """Return the settings with every secret-looking value masked."""
    return {k: mask_value(v) if is_secret(k) and v else v for k, v in env.items()}


def redact(text: str, env: Mapping[str, str]) -> str:
    """Return `text` with every secret value of `env` replaced by its masked form."""
    for key, value in env.items():
        if is_secret(key) and value:
            text = text.replace(str(value), mask_value(value))
    return text
