"""The journal of a phase attempt: append-only, durable, read back after a crash."""

from __future__ import annotations

from runbook_lib.run.journal import Journal, describe, read, summarize


def test_entries_are_appended_in_order_with_their_time(tmp_path):
    """Each call appends one JSON line; a second Journal on the file appends after it."""
    path = tmp_path / "journal" / "02_x.jsonl"
    Journal(path)({"event": "intent", "tables": []})
    Journal(path)({"event": "done"})
    entries = read(path)
    assert [e["event"] for e in entries] == ["intent", "done"] and all("at" in e for e in entries)


def test_a_torn_last_line_is_left_out(tmp_path):
    """A process killed mid-write leaves half a line: the entries before it still count."""
    path = tmp_path / "j.jsonl"
    Journal(path)({"event": "backup", "table": "p.d.t", "backup": "p.d.t_b", "backup_rows": 5})
    with path.open("a") as f:
        f.write('{"event": "dele')
    assert [e["event"] for e in read(path)] == ["backup"]
    assert read(tmp_path / "missing.jsonl") == []


def test_summary_tells_a_delete_that_started_from_one_that_finished():
    """`deleting` with no `deleted` is an unknown outcome; backups carry the intent's cutoff."""
    entries = [
        {"event": "intent", "cutoff": "2025-04-03", "tables": [
            {"table": "p.d.a", "backup": "p.d.a_b", "stale_rows": 3},
            {"table": "p.d.b", "backup": "p.d.b_b", "stale_rows": 2}]},
        {"event": "backup", "table": "p.d.a", "backup": "p.d.a_b", "backup_rows": 9},
        {"event": "backup", "table": "p.d.b", "backup": "p.d.b_b", "backup_rows": 4},
        {"event": "deleting", "table": "p.d.a", "rows": 3},
        {"event": "deleted", "table": "p.d.a", "rows": 3},
        {"event": "deleting", "table": "p.d.b", "rows": 2},
    ]
    summary = summarize(entries)
    assert summary["deleted"] == {"p.d.a": 3} and summary["unknown"] == ["p.d.b"]
    assert [b["cutoff"] for b in summary["backups"]] == ["2025-04-03", "2025-04-03"]
    text = describe(summary)
    assert "deleted 3 rows (3 from p.d.a)" in text and "delete of p.d.b" in text
    assert describe(summarize(entries[:3])).endswith("deleted nothing")
    assert describe(summarize([])) == "its journal records no destructive step"
