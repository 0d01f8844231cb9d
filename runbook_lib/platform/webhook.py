"""POST to a webhook or a local server: the library's one HTTP client and its one alert sender.

Standard library only, so the function bundle carries nothing for it. Used by the monitoring
phase's alert channels, the Cloud Function's own alerts, and the runbook's posts of a CloudEvent
to the function it serves locally.
"""

from __future__ import annotations

import json
import urllib.request


def post(url: str, body: bytes, headers: dict, timeout: float) -> tuple[int, str]:
    """POST `body` to `url`; return (status, text).

    An HTTP error status raises urllib.error.HTTPError, and nothing answering an OSError
    (HTTPError is one too), so a caller that only wants delivered or not catches OSError.
    """
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - URL from params
        return response.status, response.read().decode()


def send_alert(url: str, payload: dict, timeout: float = 10.0, contacts: str | None = None) -> int:
    """POST an alert as JSON to a webhook and return the HTTP status (an error status raises).

    `contacts` (params `contacts`, ContactsConfig.named()) says whom to call: it goes in the
    payload as `contacts` and as a last line of a Slack-style `text`, so the message names them.
    """
    if contacts:
        payload = {**payload, "contacts": contacts}
        if isinstance(payload.get("text"), str):
            payload["text"] = f"{payload['text']}\nContacts: {contacts}"
    body = json.dumps(payload, default=str).encode()
    return post(url, body, {"Content-Type": "application/json"}, timeout)[0]
