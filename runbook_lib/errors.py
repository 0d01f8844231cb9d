"""Every error the runbook raises: one root, specific subclasses that carry their facts.

Each message says what was wrong and how to fix it, so a person reading it in an archived
notebook knows the next command to type.
"""

from __future__ import annotations


class RunbookError(Exception):
    """Root of every error the runbook raises on purpose."""


class ParamsError(RunbookError):
    """A params file or a parameter value is wrong (unknown, duplicate, missing, mistyped)."""

    def __init__(self, source: str, key: str, problem: str, fix: str):
        self.source, self.key, self.problem, self.fix = source, key, problem, fix
        super().__init__(f"{source}: {key}: {problem} (to fix this, {fix})")


class UnknownEnvironmentError(RunbookError):
    """The environment named has no params file."""

    def __init__(self, env: str, known: list[str]):
        self.env, self.known = env, known
        super().__init__(
            f"unknown environment {env!r}: there is no params/{env}.yaml "
            f"(to fix this, use one of {', '.join(known)} or create params/{env}.yaml)"
        )


class EnvironmentMismatchError(RunbookError):
    """A client, warehouse or command points at another project than the params name."""

    def __init__(self, expected: str, actual: str, what: str = "project"):
        self.expected, self.actual = expected, actual
        super().__init__(
            f"{what} mismatch: params name {expected!r} but got {actual!r} "
            f"(to fix this, point the credentials or command at {expected!r}, or use the params "
            f"file of the environment you meant)"
        )


class InvalidIdentifierError(RunbookError):
    """A project, dataset or table name is not a plain identifier."""

    def __init__(self, kind: str, value: str, rule: str, source: str | None = None):
        # `source` says where the name came from (e.g. "--backup"); names default to the params.
        self.kind, self.value, self.source = kind, value, source
        where = f"{source}: " if source else ""
        fix = f"correct the name given to {source}" if source else "correct the name in the params file"
        super().__init__(
            f"{where}invalid {kind} name {value!r}: it must match {rule} (to fix this, {fix})"
        )


class WarehouseError(RunbookError):
    """The warehouse refused an operation."""


class TableExistsError(WarehouseError):
    """A copy or create would overwrite a table that already exists."""

    def __init__(self, table: str):
        self.table = table
        super().__init__(
            f"table {table} already exists and is never overwritten here "
            f"(to fix this, pick another backup name or drop {table} after checking it)"
        )


class JobExistsError(WarehouseError):
    """A BigQuery job id is already taken: a retried request whose first attempt was accepted."""

    def __init__(self, job: str):
        self.job = job
        super().__init__(
            f"job {job} already exists: a retried request whose first attempt BigQuery had "
            f"already accepted, not a table that exists (to fix this, look the job up with "
            f"`bq show -j {job.split('.')[-1]}` before running the step again: it may have done "
            f"its work)"
        )


class TableNotFoundError(WarehouseError):
    """A table that must exist does not."""

    def __init__(self, table: str, hint: str = "run `runbook seed --env local` for the local warehouse"):
        self.table = table
        super().__init__(f"table {table} does not exist (to fix this, {hint})")


class DeleteCountMismatchError(WarehouseError):
    """A delete would remove a different number of rows than the plan said; nothing was deleted."""

    def __init__(self, table: str, expected_rows: int, actual_rows: int):
        self.table, self.expected_rows, self.actual_rows = table, expected_rows, actual_rows
        super().__init__(
            f"delete on {table} refused: the plan said {expected_rows:,} rows but "
            f"{actual_rows:,} now match; nothing was deleted "
            f"(to fix this, preview again and confirm the new count)"
        )


class DeleteContentMismatchError(DeleteCountMismatchError):
    """The rows a delete would remove are as many as planned but not the planned ones."""

    def __init__(self, table: str, rows: int):
        self.table, self.expected_rows, self.actual_rows = table, rows, rows
        WarehouseError.__init__(
            self,
            f"delete on {table} refused: {rows:,} rows match, as planned, but they are not the "
            f"planned rows (some were replaced since the preview); nothing was deleted "
            f"(to fix this, preview again and confirm the new plan)",
        )


class BackupVerificationError(WarehouseError):
    """A backup's row count differs from its source."""

    def __init__(self, table: str, expected_rows: int, actual_rows: int):
        self.table, self.expected_rows, self.actual_rows = table, expected_rows, actual_rows
        super().__init__(
            f"backup {table} holds {actual_rows:,} rows but its source held {expected_rows:,}; "
            f"nothing was deleted (to fix this, inspect {table}, drop it and run the backup again)"
        )


class BackupMissingError(WarehouseError):
    """A backup a rollback needs is gone or holds fewer rows than were recorded when it was made."""

    def __init__(self, backup: str, table: str, expected_rows: int | None, actual_rows: int | None):
        self.backup, self.table = backup, table
        self.expected_rows, self.actual_rows = expected_rows, actual_rows
        found = "is missing" if actual_rows is None else f"holds {actual_rows:,} rows"
        recorded = f" (recorded with {expected_rows:,} rows)" if expected_rows is not None else ""
        super().__init__(
            f"backup {backup} of {table} {found}{recorded}; nothing was restored, no table "
            f"changed (to fix this, find the backup, e.g. in BigQuery's time travel or another "
            f"copy, recreate it under that name, and run the rollback again; or restore the other "
            f"tables one by one with `runbook restore`)"
        )


class ConfirmationRequired(RunbookError):
    """A destructive step needs a confirmation token that echoes its plan."""

    def __init__(
        self,
        expected_token: str,
        given: str | None = None,
        fix: str | None = None,
        problem: str | None = None,
    ):
        # `fix` replaces the default advice where the caller knows better (e.g. no terminal);
        # `problem` says what differs (another count, another plan id, a params-file token).
        self.expected_token, self.given = expected_token, given
        if not given:
            problem = problem or "no confirmation was given for the previewed plan"
        elif problem:
            problem = f"the confirmation {given!r} is refused: {problem}"
        else:
            problem = f"the confirmation {given!r} does not match the previewed plan"
        fix = fix or f"review the preview and confirm with exactly: {expected_token!r}"
        super().__init__(f"{problem}; nothing was changed (to fix this, {fix})")


class SignOffRequired(ConfirmationRequired):
    """A phase needs human sign-offs (item and name) that were not given."""

    def __init__(self, missing: list[str]):
        self.missing, self.expected_token, self.given = missing, None, None
        RunbookError.__init__(
            self,
            f"{len(missing)} sign-off(s) still open: {', '.join(missing)}; nothing was changed "
            f"(to fix this, tick each item with your name in the form above, or pass "
            f"approvals={{item: name}} as a parameter of a headless run)",
        )


class WaitingForInput(RunbookError):
    """A person must answer the form above before the phase can go on (an interactive run).

    Raised by the form's own cell so JupyterLab's Run All stops there (the kernel aborts the
    cells queued after an error) instead of running on into a red ConfirmationRequired. IPython
    shows what `_render_traceback_` returns instead of a traceback: one line saying what to do.
    """

    def __init__(self, what: str):
        self.what = what
        super().__init__(
            f"Paused: {what} in the form above (to go on, choose Run > Run Selected Cell and "
            f"All Below with this cell selected, or Run All again)"
        )

    def _render_traceback_(self) -> list[str]:
        return [f"\u23f8 {self}"]


class DateRangeError(RunbookError):
    """A date or date range is malformed, reversed, in the future or too wide."""

    def __init__(self, problem: str, fix: str):
        super().__init__(f"{problem} (to fix this, {fix})")


class CleanupCapExceededError(RunbookError):
    """One run would delete a larger share of a table than the params allow, unconfirmed.

    `token` is the confirmation that passes the cap on purpose (it names the share and the cap);
    None where nobody can give it (the unattended daily function).
    """

    def __init__(self, table: str, rows: int, total: int, cap: float, token: str | None = None):
        self.table, self.rows, self.total, self.cap, self.token = table, rows, total, cap, token
        if token is None:
            fix = (
                "the daily function never deletes over the cap: check the cutoff; if the "
                "deletion is right (a first purge), run `runbook cleanup` once by hand and "
                "confirm the line that names the share"
            )
        else:
            fix = (
                f"check the cutoff; if the deletion is right (a first purge), confirm it with the "
                f"token that names the share: '{token}', or raise cleanup.max_delete_fraction"
            )
        super().__init__(
            f"refusing to delete {rows:,} of {total:,} rows ({rows / max(total, 1):.1%}) from "
            f"{table}: the cap is {cap:.0%} of a table per run, unless confirmed by the token "
            f"that names the share (to fix this, {fix})"
        )


class VerificationFailedError(RunbookError):
    """A post-condition check found the warehouse not in the state it must be in."""


class SafeguardMissingError(VerificationFailedError):
    """Exercising a safeguard in the code that will run showed it missing or broken (phase 01)."""

    def __init__(self, safeguard: str, evidence: str):
        self.safeguard, self.evidence = safeguard, evidence
        super().__init__(
            f"safeguard {safeguard!r} is missing or broken: {evidence} (to fix this, run "
            f"`pytest -m safeguard` on the code being deployed, fix what fails, then rerun phase 01)"
        )


class PreflightFailedError(RunbookError):
    """The backfill's pre-flight coverage check found partial UPCG dates."""

    def __init__(self, issues: list[dict]):
        self.issues = issues
        listed = ", ".join(
            f"{i['game_date']} (UPCG {i['upcg_players']}/{i['pgs_players']} PGS)" for i in issues
        )
        super().__init__(
            f"pre-flight coverage check found partial UPCG on {len(issues)} date(s): {listed} "
            f"(to fix this, run `runbook cleanup` to purge stale rows, or pass "
            f"--allow-partial-context to let the fallback build context from PGS)"
        )


class CoverageValidationError(RunbookError):
    """One or more dates failed coverage validation and were not published to PCF."""

    def __init__(self, failed: dict[str, str]):
        self.failed = failed
        listed = "; ".join(f"{d}: {e}" for d, e in sorted(failed.items()))
        super().__init__(
            f"{len(failed)} date(s) failed and were not published: {listed} "
            f"(to fix this, read the errors, fix the cause, then rerun: failed dates are retried)"
        )


class CheckpointError(RunbookError):
    """A backfill checkpoint file cannot be read or is not a valid checkpoint."""

    def __init__(self, path: str, problem: str):
        self.path, self.problem = path, problem
        super().__init__(
            f"checkpoint {path} is unusable: {problem} (to fix this, inspect or move the file "
            f"away, or rerun with --no-resume to start a fresh checkpoint)"
        )


class LockHeldError(RunbookError):
    """Another run holds the warehouse's lock (one writer per warehouse)."""

    def __init__(
        self, owner: str, run_id: str, since: str, path: str, host: str = "?", pid="?",
        lock_id: str = "?", env: str = "<env>", stale: bool = False,
    ):  # fmt: skip
        self.owner, self.run_id, self.since, self.path = owner, run_id, since, path
        self.host, self.pid, self.lock_id, self.env, self.stale = host, pid, lock_id, env, stale
        if stale:
            fix = (
                f"its process is gone (stale lock): rerun with --break-stale-lock, or "
                f"`runbook unlock --env {env} --lock-id {lock_id}`"
            )
        else:
            fix = (
                f"wait for that run to end; if its host is gone, release it with "
                f"`runbook unlock --env {env} --lock-id {lock_id}`"
            )
        super().__init__(
            f"the warehouse is locked by {owner} on host {host} (pid {pid}, run {run_id}, "
            f"since {since}, lock id {lock_id}; {path}){' and is STALE' if stale else ''}; "
            f"nothing was changed (to fix this, {fix})"
        )


class LockIdMismatchError(RunbookError):
    """`runbook unlock` was given a lock id that is not the one held."""

    def __init__(self, env: str, given: str, held: dict):
        self.env, self.given, self.held = env, given, held
        super().__init__(
            f"lock id {given!r} does not match the lock on {env}'s warehouse, held by "
            f"{held.get('owner', '?')} on host {held.get('host', '?')} (run "
            f"{held.get('run_id', '?')}, since {held.get('since', '?')}, lock id "
            f"{held.get('lock_id', '?')}); nothing changed (to fix this, check that this is "
            f"the lock you mean, then pass --lock-id {held.get('lock_id', '?')})"
        )


class RunDirError(RunbookError):
    """A run folder named on the command line is missing or holds no readable manifest."""

    def __init__(self, path: str, problem: str):
        self.path, self.problem = path, problem
        super().__init__(
            f"{path}: {problem}; nothing was changed (to fix this, name the folder of a run as "
            f"`runbook run` printed it, e.g. outputs/local/<run_id>, and check that its "
            f"manifest.json is the one the run wrote)"
        )


class PhaseFailedError(RunbookError):
    """A phase of a run failed."""

    def __init__(self, phase: str, reason: str, notebook: str):
        self.phase, self.reason, self.notebook = phase, reason, notebook
        super().__init__(
            f"phase {phase} FAILED: {reason} (see {notebook}; fix the cause, then "
            f"`runbook resume` the run directory)"
        )


class AuditChainError(RunbookError):
    """An archived run does not verify: a record, file or anchor changed; it is not trusted."""

    def __init__(self, run_dir, command: str, problems: list[str]):
        self.run_dir, self.command, self.problems = run_dir, command, list(problems)
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(
            f"refusing to {command} {run_dir}: its archive does not verify, first problem: "
            f"{problems[0]}{more}; nothing was written or locked (to fix this, run `runbook "
            f"verify {run_dir}` to see every problem: a changed record or file means the folder "
            f"cannot be trusted, so restore it from a trusted copy or start a new run; an anchor "
            f"that could not be read needs its warehouse reachable, then retry)"
        )


class AnchorError(RunbookError):
    """A run's head could not be anchored in the warehouse's runs table; the run is not sealed."""

    def __init__(self, run_id: str, where: str, cause: Exception):
        self.run_id, self.where = run_id, where
        super().__init__(
            f"run {run_id} is archived but not sealed: its head could not be anchored in "
            f"{where}: {cause} (to fix this, make the warehouse reachable and writable, then "
            f"`runbook resume` the run directory: it seals the run without rerunning a phase)"
        )


class DeployError(RunbookError):
    """A Cloud Function deployment plan cannot be built or applied."""


class PromotionRefusedError(RunbookError):
    """A run of a gated environment has no VERIFIED run of the same commit in its gating one."""

    def __init__(self, env: str, gated_by: str, commit: str, rejected: list[str]):
        self.env, self.gated_by, self.commit, self.rejected = env, gated_by, commit, list(rejected)
        seen = "; ".join(rejected) if rejected else f"no {gated_by} run at all"
        super().__init__(
            f"refusing to start a {env} run of commit {commit[:12]}: no {gated_by} run of that "
            f"commit verifies with every phase SUCCEEDED ({seen}); nothing was written or locked "
            f"(to fix this, run `runbook run --env {gated_by}` on this commit and check it with "
            f"`runbook verify`, then run {env} again; or, only with a reason a reviewer accepts, "
            f"--set promotion.skip_staging_reason='...', which the manifest and the deployment "
            f"log record)"
        )


class EmulatorError(WarehouseError):
    """The emulator environment's BigQuery-API server did not start, stop or answer."""

    def __init__(self, endpoint: str, problem: str):
        self.endpoint, self.problem = endpoint, problem
        super().__init__(f"BigQuery-API server at {endpoint}: {problem}")


class MonitorDemoError(RunbookError):
    """Phase 05 found no place in the window to plant its three problems."""

    def __init__(self, night, window_days: int):
        self.night, self.window_days = night, window_days
        super().__init__(
            f"cannot plant the monitor's three problems: the {window_days} days up to {night} "
            f"need {night} to be a game day, another backfilled game day and an off-day "
            "(to fix this, run phase 05 with the nightly backfill on (simulate_nightly_days "
            "30), or with a `today` just after a game day in the season)"
        )
