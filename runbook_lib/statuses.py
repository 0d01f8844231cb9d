"""Every status the runbook records, one Enum per kind, each value the string it always stored.

`StrEnum` members are strings: they compare equal to, serialise as (JSON, warehouse rows,
manifest records, results files) and format as exactly the text written before they existed,
so archived manifests and metadata rows read and verify as they did.
"""

from __future__ import annotations

from enum import StrEnum


class DateStatus(StrEnum):
    """A backfilled date's outcome, as its backfill metadata row records it."""

    COMPLETE = "COMPLETE"  # published, coverage at or above the warning band
    INCOMPLETE = "INCOMPLETE"  # published, coverage in the warning band
    FAILED = "FAILED"  # not published
    SKIPPED = "SKIPPED"  # nothing expected (off-day, bootstrap)
    WOULD_BUILD = "WOULD_BUILD"  # a dry run's date


PUBLISHED = (DateStatus.COMPLETE, DateStatus.INCOMPLETE)


class PhaseStatus(StrEnum):
    """A phase attempt, in its results file and its manifest record."""

    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    SKIPPED = "SKIPPED"
    # Killed before anything recorded its outcome; recorded by the next runner entry on the run.
    INTERRUPTED = "INTERRUPTED"
    # The record a resume or rollback chains when it reopens a sealed run (not a phase).
    STARTED = "STARTED"


class Verification(StrEnum):
    """What `runbook verify` says of a run's archive."""

    VERIFIED = "VERIFIED"
    INCOMPLETE = "INCOMPLETE"
    TAMPERED = "TAMPERED"


class CheckStatus(StrEnum):
    """A post-deployment check of phase 06: PENDING until its window has evidence."""

    PASS = "PASS"
    FAIL = "FAIL"
    PENDING = "PENDING"


class RunVerdict(StrEnum):
    """The report's headline verdict on a run."""

    FAILED = "FAILED"
    INCOMPLETE = "INCOMPLETE"
    DEPLOYED = "DEPLOYED"
    VERIFIED = "VERIFIED"
    ROLLED_BACK = "ROLLED_BACK"  # a `runbook rollback` of the run succeeded (shown "ROLLED BACK")
