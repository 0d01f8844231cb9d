"""The client of a BigQuery-API server on this machine (bqemulator): anonymous credentials.

`warehouse.connect` builds its client with `client_for` when the params name a
`bigquery.endpoint` (`--env emulator`) or RUNBOOK_BIGQUERY_EMULATOR names one (tests). The server
itself, with its offline patches, is warehouse/emulator_server.py: this module stays free of
bqemulator, so the function's bundle carries it when it is served against the emulator.
"""

from __future__ import annotations

from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials

from runbook_lib.warehouse.bigquery_import import bigquery


def client_for(endpoint: str, project: str) -> bigquery.Client:
    """Return a BigQuery client for `project` that talks to the emulator at `endpoint`."""
    return bigquery.Client(
        project=project,
        credentials=AnonymousCredentials(),
        client_options=ClientOptions(api_endpoint=endpoint),
    )
