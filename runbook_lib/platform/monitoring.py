"""Coverage monitoring: the seed runbook's Step 4.3 coverage SQL, the alert channels, procedures.

The dashboard and the alert query (Steps 5.1 and 5.2) read the data itself, not only the
metadata table: they are the monitor's SQL (monitor_sql.py), saved as views.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pandas as pd

from runbook_lib.platform import webhook
from runbook_lib.platform.schema import Tables
from runbook_lib.warehouse.base import Warehouse

log = logging.getLogger("runbook.monitoring")


def coverage_sql(tables: Tables) -> str:
    """Return the runbook's Step 4.3 coverage SQL for this environment's tables."""
    return f"""SELECT
  pgs.game_date,
  COUNT(DISTINCT pgs.player_lookup) AS expected,
  COUNT(DISTINCT pcf.player_lookup) AS actual,
  ROUND(COUNT(DISTINCT pcf.player_lookup) / COUNT(DISTINCT pgs.player_lookup) * 100, 1) AS coverage_pct
FROM {tables.pgs.sql} pgs
LEFT JOIN {tables.pcf.sql} pcf
  ON pgs.game_date = pcf.analysis_date AND pgs.player_lookup = pcf.player_lookup
WHERE pgs.game_date IN UNNEST(@dates)
GROUP BY pgs.game_date
ORDER BY pgs.game_date"""


def coverage_for_dates(wh: Warehouse, tables: Tables, dates: list[dt.date]) -> pd.DataFrame:
    """Return expected (PGS) vs actual (PCF) players per date: the runbook's Step 4.3 SQL."""
    df = wh.query(coverage_sql(tables), {"dates": list(dates)})
    df["coverage_pct"] = df["coverage_pct"].astype(float)
    return df


@dataclass
class Receiver:
    """A webhook receiver on 127.0.0.1 that keeps every JSON body posted to it."""

    url: str
    received: list[dict] = field(default_factory=list)
    label: str = "local receiver"
    contacts: str | None = None  # whom each message names (params contacts)

    def send(self, payload: dict) -> int:
        """POST a message to the receiver; return the HTTP status."""
        return webhook.send_alert(self.url, payload, contacts=self.contacts)

    def received_count(self) -> int:
        """Return how many messages arrived."""
        return len(self.received)


@dataclass
class Webhook:
    """A webhook from params: delivery is proven by its HTTP status."""

    url: str = field(repr=False)
    label: str = "webhook"
    contacts: str | None = None  # whom each message names (params contacts)

    def send(self, payload: dict) -> int:
        """POST a message to the webhook; return the HTTP status."""
        return webhook.send_alert(self.url, payload, contacts=self.contacts)

    def received_count(self) -> int | None:
        """Return None: a remote channel's inbox cannot be read, only its HTTP status."""
        return None


@dataclass
class NoAlertChannel:
    """No webhook on a cloud environment: alerts can only be logged, and the phase says so."""

    url: None = None
    label: str = "none (alerts.webhook_url is not set: alerts are only logged)"

    def send(self, payload: dict) -> None:
        """Log the alert; return None (nothing was delivered)."""
        log.warning("ALERT not delivered (no alerts.webhook_url): %s", payload.get("title"))
        return None

    def received_count(self) -> int:
        """Return 0: nothing can be delivered without a webhook."""
        return 0


AlertChannel = Receiver | Webhook | NoAlertChannel


def remote_channel(
    webhook_url: str | None, contacts: str | None = None
) -> Webhook | NoAlertChannel:
    """Return the webhook of a cloud environment (its messages naming `contacts`), or
    NoAlertChannel when none is set."""
    if not webhook_url:
        return NoAlertChannel()
    from runbook_lib.secrets import mask_value

    # The label is archived: a webhook URL's path is its secret, so only the host is shown.
    return Webhook(webhook_url, label=f"webhook {mask_value(webhook_url)}", contacts=contacts)


@contextmanager
def alert_channel(
    webhook_url: str | None, is_local: bool, contacts: str | None = None
) -> Iterator[AlertChannel]:
    """Yield where alerts go: the params' webhook; on local a receiver on 127.0.0.1; else none.

    A receiver on this machine is unreachable from the cloud and proves nothing there, so a
    cloud environment without a webhook gets NoAlertChannel and its checks fail visibly.
    """
    if webhook_url or not is_local:
        yield remote_channel(webhook_url, contacts)
        return
    with local_receiver() as receiver:
        receiver.label, receiver.contacts = f"local receiver {receiver.url}", contacts
        yield receiver


@contextmanager
def local_receiver() -> Iterator[Receiver]:
    """Serve a webhook receiver on a free 127.0.0.1 port for the duration of the block."""
    receiver = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            receiver.received.append(json.loads(body or b"{}"))
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/alerts"
    # shutdown() waits for serve_forever's next poll: every 0.05 s instead of the default 0.5 s,
    # or closing the receiver (phases 03 and 05) waits a quarter of a second on average.
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


PROCEDURES = """\
### Monitoring procedures (backfill coverage)

**Where to look.** The view `nba_orchestration.backfill_coverage_monitor` (the dashboard): one row
per game date of the last 30 days with its games, PGS players, PCF players, coverage and the latest
metadata row; and `nba_orchestration.backfill_coverage_alerts`: one row per problem. `runbook
monitor --env ENV` runs the same checks, alerts, and exits 1 when there is a problem.

**How to read it.** `coverage_pct` = distinct PCF players / distinct PGS players, counted in the
data, so rows lost after a backfill show. 100% is normal. Below 90% alerts. `metadata_status`
FAILED means the date was **not published**; no metadata row yesterday means the nightly backfill
did not run; a game day with 0 PGS players means the box scores never arrived (the backfill fails
it too). Stale upcoming rows mean the daily TTL cleanup did not run.

**When to escalate.** An alert (each names its date, its numbers and the command that repairs it)
or a backfill that exits 1: the on-call data engineer looks the same day. Two or more fallbacks in a week, or a cleanup that deletes more
than 10,000 rows: tell the platform team, something upstream writes stale context.

**Troubleshooting.**
1. `runbook backfill --env ENV --status --start-date D --end-date D` shows failed dates and their errors.
2. Partial UPCG stopped the pre-flight: `runbook cleanup --env ENV --dry-run`, then the cleanup;
   or rerun with `--allow-partial-context` to let the fallback handle it (validation stays on).
3. Coverage failed after a fallback: compare distinct PGS and PCF players for the date (phase 04's
   coverage query); missing PGS rows are an upstream (Phase 3) problem, not a backfill one.
4. Rerun the failed dates: the checkpoint retries them.
"""
