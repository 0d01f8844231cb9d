"""`runbook followup RUN`: turn a deployment's PENDING checks into PASS or FAIL on later evidence.

A day (or a week) after a deployment, the nightly backfills, the daily monitor's runs and the
scheduled cleanups have left evidence dated after it. Following up reruns phase 06 on the same
run: a new attempt chained into the run's manifest (so `runbook verify` still accepts the run),
the deployment log and the report regenerated, the verdict DEPLOYED until every check passes,
then VERIFIED. The daily monitor follows up the latest deployment of its environment.
"""

from __future__ import annotations

from pathlib import Path

from runbook_lib import paths
from runbook_lib.run import manifest, report, runner
from runbook_lib.statuses import RunVerdict

POST_DEPLOYMENT = "06"


def followup(
    run_dir: Path, overrides: dict | None = None, progress=None, break_stale_lock: bool = False
) -> runner.RunResult:
    """Verify the run, then rerun its phase 06 on today's evidence; return the resumed run."""
    return runner.resume(
        Path(run_dir),
        overrides=overrides,
        progress=progress,
        break_stale_lock=break_stale_lock,
        rerun=[POST_DEPLOYMENT],
    )


def verdict(run_dir: Path) -> tuple[str, str]:
    """Return the run's verdict (FAILED, INCOMPLETE, DEPLOYED or VERIFIED) and why."""
    return report.verdict(manifest.load(Path(run_dir)))


def latest_deployed(env: str, out_root: Path | None = None) -> Path | None:
    """Return the newest run of `env` whose verdict is DEPLOYED (waiting for evidence), if any."""
    for folder in sorted((Path(out_root or paths.OUTPUTS_DIR) / env).glob("*/"), reverse=True):
        if not (folder / manifest.MANIFEST).exists():
            continue
        try:
            word, _ = verdict(folder)
        except Exception:  # noqa: BLE001 - a broken copy is not a deployment to follow up
            continue
        if word == RunVerdict.DEPLOYED:
            return folder
    return None
