"""Phase 01's safeguard probes: each finds its safeguard in the imported code, and a broken one
is reported missing with its name and evidence, under `python -O` too (no `assert` to vanish)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from runbook_lib import paths
from runbook_lib.errors import SafeguardMissingError
from runbook_lib.platform import coverage
from runbook_lib.run import safeguards

FALLBACK, VALIDATION, CHECKPOINT, BACKFILL_OPTIONS = (
    "fallback to PGS below 90%",
    "coverage validation (90% fail / 95% warn)",
    "checkpoint keeps errors, retries failures",
    "explicit --allow-partial-context, guarded --dates",
)

# Three safeguards broken the way a regression would break them: the decision ignores the
# coverage, every verdict passes, a failed date is never retried. The probes run after it.
BREAK = """
import dataclasses
from runbook_lib.platform import checkpoint, coverage

real_decide, real_judge = coverage.decide, coverage.judge
coverage.decide = lambda *a, **k: (real_decide(*a, **k), coverage.UPCG)[1]
coverage.judge = lambda *a, **k: dataclasses.replace(real_judge(*a, **k), passed=True)
checkpoint.Checkpoint.pending = lambda self, dates: []
"""

PROBE = """
import json
from runbook_lib.run import safeguards

rows = safeguards.inspect_safeguards().to_dict("records")
print(json.dumps({"optimized": not __debug__, "rows": rows}))
"""


def test_every_safeguard_should_be_found_working_in_this_code():
    found = safeguards.inspect_safeguards()
    assert list(found["safeguard"]) == list(safeguards.PROBES)
    assert found["present"].all(), found.loc[~found["present"]].to_dict("records")


def test_a_broken_fallback_should_raise_with_the_safeguard_name_and_its_evidence(monkeypatch):
    real = coverage.decide
    monkeypatch.setattr(coverage, "decide", lambda *a, **k: (real(*a, **k), coverage.UPCG)[1])
    with pytest.raises(SafeguardMissingError) as err:
        safeguards.exercise(FALLBACK)
    assert err.value.safeguard == FALLBACK
    assert err.value.evidence == "decisions for 1/187, 0/187, 187/187 UPCG: UPCG, UPCG, UPCG"
    assert FALLBACK in str(err.value) and "to fix this" in str(err.value)


def test_a_probe_that_cannot_even_run_should_report_its_safeguard_missing(monkeypatch):
    def gone(*args, **kwargs):
        raise ImportError("cannot import name 'judge'")

    monkeypatch.setattr(coverage, "judge", gone)
    found = safeguards.inspect_safeguards().set_index("safeguard")
    assert not found.loc[VALIDATION, "present"]
    assert found.loc[VALIDATION, "evidence"] == "ImportError: cannot import name 'judge'"


def _probe_in(*flags: str) -> dict:
    """Run the probes in a fresh interpreter with `flags`, three safeguards broken first."""
    out = subprocess.run(
        [sys.executable, *flags, "-c", BREAK + PROBE],
        cwd=paths.SOURCE_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("flags", [("-O",), ()], ids=["python -O", "python"])
def test_broken_safeguards_should_be_reported_missing_with_or_without_asserts(flags):
    result = _probe_in(*flags)
    assert result["optimized"] is bool(flags)  # asserts really were stripped under -O
    present = {r["safeguard"]: r["present"] for r in result["rows"]}
    # The backfill's own run on 1/20 UPCG goes through the broken decision and validation too.
    missing = {FALLBACK, VALIDATION, CHECKPOINT, BACKFILL_OPTIONS}
    assert {name for name, ok in present.items() if not ok} == missing
    evidence = {r["safeguard"]: r["evidence"] for r in result["rows"]}
    assert evidence[CHECKPOINT].startswith("dates to retry: []")
