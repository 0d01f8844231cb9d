"""Who is signing: the authenticated identity recorded next to each typed sign-off name.

A typed name is a claim; outside `local` the account of the Google credentials the run uses
is the evidence beside it (a service account's email, or the user account's email when the
credentials carry it). On `local` there are no credentials, and the OS user is recorded.
"""

from __future__ import annotations

import getpass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runbook_lib.run.params import Params

NO_ACCOUNT = "unknown (credentials carry no account)"
_BIGQUERY_SCOPE = "https://www.googleapis.com/auth/bigquery"


def account_of(credentials: Any) -> str:
    """Return the account Google credentials authenticate as, or NO_ACCOUNT.

    Service-account (and impersonated) credentials name their `service_account_email`; user
    credentials name their `account` when gcloud wrote it into the credentials file.
    """
    for attr in ("service_account_email", "account", "signer_email"):
        value = getattr(credentials, attr, None)
        if isinstance(value, str) and "@" in value:
            return value
    return NO_ACCOUNT


def os_user() -> str:
    """Return the OS user running this process, marked as such."""
    try:
        return f"{getpass.getuser()} (OS user)"
    except (KeyError, OSError):  # no passwd entry, e.g. an arbitrary container uid
        return "unknown (OS user has no name)"


def signer_identity(params: Params, credentials: Any = None) -> str:
    """Return the identity a sign-off records: the credentials' account, or the OS user on local.

    `credentials` defaults to Application Default Credentials, read from local files only (no
    network call); missing credentials are recorded as such rather than failing the sign-off.
    """
    if params.is_local:
        return os_user()
    if credentials is None:
        import google.auth
        from google.auth.exceptions import DefaultCredentialsError

        try:
            credentials, _ = google.auth.default(scopes=[_BIGQUERY_SCOPE])
        except DefaultCredentialsError:
            return "unknown (no Google credentials found)"
    return account_of(credentials)
