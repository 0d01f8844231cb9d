"""Run ids: one form for every kind of run, sortable by time, safe in a backup's name."""

import datetime as dt
import re

from runbook_lib import clock
from runbook_lib.platform.cleanup_backup import backup_date, backup_id
from runbook_lib.warehouse.ids import TableId

WHEN = dt.datetime(2026, 1, 6, 4, 0, 7, tzinfo=dt.UTC)


def test_run_ids_should_share_one_form_with_an_optional_prefix_and_tail():
    assert re.fullmatch(r"20260106T040007Z-[0-9a-f]{4}", clock.new_run_id(when=WHEN))
    assert clock.new_run_id("backfill", "ab12", WHEN) == "backfill-20260106T040007Z-ab12"
    assert clock.new_run_id(tail="1234567", when=WHEN) == "20260106T040007Z-1234567"


def test_run_ids_should_sort_by_time_whatever_the_time_zone_given():
    later = WHEN.astimezone(dt.timezone(dt.timedelta(hours=-5))) + dt.timedelta(seconds=1)
    assert clock.new_run_id(when=WHEN) < clock.new_run_id(when=later)
    assert clock.new_run_id(when=later).startswith("20260106T040008Z-")


def test_a_backup_named_after_a_run_id_should_still_give_its_date():
    table = TableId("nba-props-platform", "nba_analytics", "upcoming_player_game_context")
    backup = backup_id(table, clock.new_run_id(when=WHEN))
    assert backup_date(backup) == dt.date(2026, 1, 6)


def test_now_should_be_utc():
    assert clock.now().utcoffset() == dt.timedelta(0)
    assert clock.now_iso().endswith("+00:00") and clock.now_iso("milliseconds").count(".") == 1
