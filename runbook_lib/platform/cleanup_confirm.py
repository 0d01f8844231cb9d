"""The one definition of a cleanup's confirmation line: how it is built, read and checked.

A confirmation echoes the plan per table with stale rows, for example
``delete 7972 rows from nba_analytics.upcoming_player_game_context (plan 3f9a2c)``; the line a
person types joins those tokens with "; ". A table whose delete would exceed the cap
(cleanup.max_delete_fraction) has a token that names the share and the cap, for example
``delete 9100 rows (91%, over the 50% cap) from nba_analytics.upcoming_player_game_context (plan
3f9a2c)``: the cap is a safety net that a person can pass on purpose (the first purge of a table
that was never cleaned), never by accident, and never the unattended daily function. The plan id is the first 6 hex digits of a sha256
over the environment, the full table id (so the project), the cutoff and the stale rows' key
digest, which the warehouse computes in SQL (`Warehouse.rows_digest`). So a token is refused
when the stale set changed since the preview even at the same count (one row swapped for
another), and when it was previewed on another environment or project. Outside local a token
must come from the command line or the form, never from a params file; `auto` (the previewed
plan, nobody to ask) is accepted only on local.

The plan id binds what a person saw to what the check sees; what the DELETE removes is bound
again, in full, by `Warehouse.delete_exact` (see `cleanup.apply_cleanup`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

from runbook_lib.errors import ConfirmationRequired

if TYPE_CHECKING:
    import datetime as dt

    from runbook_lib.platform.cleanup_plan import CleanupPlan
    from runbook_lib.warehouse.base import RowsDigest
    from runbook_lib.warehouse.ids import TableId

AUTO = "auto"
SEPARATOR = "; "
PLAN_ID_LENGTH = 6
# Where a confirmation came from: only these two are accepted outside local.
COMMAND_LINE, FORM = "command line", "form"
PARAMS_FILE, NOTEBOOK_DEFAULT = "params file", "notebook default"
_TOKEN = re.compile(
    r"delete (\d+) rows(?: \((\S+), over the (\S+) cap\))? from (\S+?)(?: \(plan ([0-9a-f]+)\))?"
)


def plan_id(env: str, table: TableId, cutoff: dt.date, digest: RowsDigest) -> str:
    """Return the short id of one table's plan: env, table, cutoff and stale rows' digest."""
    text = "\n".join(
        [
            env,
            str(table),
            cutoff.isoformat(),
            str(digest.rows),
            str(digest.xor),
            str(digest.low_sum),
        ]
    )
    return hashlib.sha256(text.encode()).hexdigest()[:PLAN_ID_LENGTH]


def token(short: str, rows: int, plan: str, over_cap: tuple[float, float] | None = None) -> str:
    """Return the token of one table: `delete N rows from dataset.table (plan abc123)`.

    `over_cap` is (share of the table, cap) when the delete exceeds the cap: the token then names
    both, `delete N rows (91%, over the 50% cap) from ...`, so typing it says "I saw the share".
    """
    if over_cap is None:
        return f"delete {rows} rows from {short} (plan {plan})"
    share, cap = (percent(f, other) for f, other in (over_cap, over_cap[::-1]))
    return f"delete {rows} rows ({share}, over the {cap} cap) from {short} (plan {plan})"


def percent(fraction: float, other: float) -> str:
    """Return `fraction` as a whole percentage, with a decimal where it would read as `other`."""
    whole = f"{fraction:.0%}"
    return whole if whole != f"{other:.0%}" else f"{fraction:.1%}"


def given_tokens(confirm) -> set[str]:
    """Return every token in `confirm` (a line, lines, or a mapping table -> token), normalised."""
    if isinstance(confirm, Mapping):
        return {_norm(v) for v in confirm.values()}
    return set(split_line(confirm))


def join_tokens(tokens) -> str:
    """Return tokens as the one line a person types or reads: joined by "; "."""
    return SEPARATOR.join(tokens)


def confirmation_line(plan: CleanupPlan) -> str:
    """Return the one line a person types to confirm `plan` (empty when nothing is stale)."""
    return join_tokens(plan.tokens.values())


def split_line(text) -> list[str]:
    """Return the tokens of a typed line (or of a list of lines), whitespace normalised."""
    items = [text] if isinstance(text, str) else list(text or [])
    return [t for t in (_norm(t) for item in items for t in str(item).split(";")) if t]


def _norm(text) -> str:
    # Whitespace is forgiven (a double space typed at 4 a.m.); every other character must match.
    return " ".join(str(text).split())


def resolve_confirmation(plan: CleanupPlan, given, source: str, is_local: bool) -> list[str]:
    """Return the tokens to check against `plan` from what was given and where it came from.

    `auto` stands for the previewed plan and is accepted only on local (the embedded demo,
    nobody to ask). Outside local a token read from a params file is refused: a file can be
    committed, copied or left over, so it proves nobody looked at this preview.
    """
    value = join_tokens(split_line(given))
    line = confirmation_line(plan)
    if value == AUTO:
        if not is_local:
            raise ConfirmationRequired(
                line, AUTO, problem=f"'auto' is accepted only on local, not on {plan.env}"
            )
        if plan.over_cap:
            raise ConfirmationRequired(
                line,
                AUTO,
                problem=f"'auto' never confirms a delete over the cap "
                f"({', '.join(p.table.short for p in plan.over_cap)})",
            )
        return list(plan.tokens.values())
    if value and source not in (COMMAND_LINE, FORM) and not is_local:
        raise ConfirmationRequired(
            line,
            value,
            problem=f"on {plan.env} a confirmation from the {source} is not accepted; it must "
            f"be typed after seeing the preview",
            fix=f"remove it from the params file and pass it on the command line, "
            f"--set phases.02_data_cleanup.confirm='{line}' (or `runbook cleanup --confirm`), "
            f"or type it in the form",
        )
    return split_line(value)


def check_confirmation(plan: CleanupPlan, confirm) -> None:
    """Accept `confirm` only if it echoes the plan's token of every table with stale rows.

    `confirm` is one of:
      - a line of tokens separated by ";" (what the preview and its errors print);
      - a sequence of such lines, e.g. one per table (a repeated --confirm), in any order;
      - a mapping of `dataset.table` (or full table id) -> that table's token.
    A missing token, another count, another plan id (the stale rows changed, or the token is
    another environment's or project's) or an unknown token raises ConfirmationRequired saying
    what differs and the fresh line to type; nothing is changed. A plan with no stale rows needs
    no confirmation.
    """
    expected = plan.tokens
    if not expected:
        return
    if isinstance(confirm, Mapping):
        given, offending = _mapped_tokens(plan, confirm), []
    else:
        given, offending = _listed_tokens(plan, split_line(confirm))
    wrong = [short for short, tok in expected.items() if given.get(short) != tok]
    if not wrong and not offending:
        return
    problem = "; ".join(
        [*(_differs(plan, s, given.get(s)) for s in wrong), *map(_unknown, offending)]
    )
    shown = next(iter(offending), None) or next((given[s] for s in wrong if s in given), None)
    if isinstance(confirm, Mapping):
        # Each answer is bound to its table: ask again only for the tables answered wrongly.
        raise ConfirmationRequired(
            join_tokens(expected[s] for s in wrong), shown, problem=problem
        )
    raise ConfirmationRequired(confirmation_line(plan), shown, problem=problem)


def _differs(plan: CleanupPlan, short: str, typed: str | None) -> str:
    """Return what differs between a typed token and the plan's, in words."""
    p = plan.preview(short)
    match = _TOKEN.fullmatch(typed or "")
    if typed is None or match is None:
        return f"no confirmation for {short}"
    rows, typed_id = int(match.group(1)), match.group(5)
    if rows != p.stale_rows:
        return f"{short} had {rows:,} stale rows in the confirmed preview, {p.stale_rows:,} now"
    if p.over_cap(plan.max_delete_fraction) and typed != p.token:
        return (
            f"{short} would lose {p.fraction:.1%} of its rows, over the "
            f"{plan.max_delete_fraction:.0%} cap: its token names the share and the cap"
        )
    if typed_id is None:
        return f"the token of {short} lacks its plan id (plan {p.plan_id})"
    return (
        f"{short}: still {rows:,} stale rows but plan {typed_id} is not plan {p.plan_id}: the stale "
        f"rows changed since that preview, or it was previewed on another environment or project "
        f"(this is {plan.env}, project {p.table.project}, cutoff {plan.cutoff})"
    )


def _unknown(token_text: str) -> str:
    return f"{token_text!r} is not a token of this plan"


def _mapped_tokens(plan: CleanupPlan, confirm: Mapping) -> dict[str, str]:
    out = {}
    for key, typed in confirm.items():
        try:
            out[plan.preview(key).table.short] = _norm(typed)
        except KeyError:
            raise ConfirmationRequired(
                confirmation_line(plan), str(key), problem=_unknown(str(key))
            ) from None
    return out


def _listed_tokens(plan: CleanupPlan, tokens: list[str]) -> tuple[dict[str, str], list[str]]:
    """Return table -> token for the tokens naming a table of the plan, and the other tokens."""
    given: dict[str, str] = {}
    offending: list[str] = []
    for typed in tokens:
        match = _TOKEN.fullmatch(typed)
        try:
            short = plan.preview(match.group(4)).table.short if match else None
        except KeyError:
            short = None
        if short is None or given.get(short, typed) != typed:
            offending.append(typed)  # names no table of the plan, or contradicts another token
        else:
            given[short] = typed
    return given, offending
