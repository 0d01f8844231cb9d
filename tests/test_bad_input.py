"""Bad input gets exit 2 and a message that says how to fix it, never a traceback; nothing is
written: not a run folder, not a lock, not the warehouse (every path points into tmp_path)."""

from __future__ import annotations

import subprocess

import pytest

from runbook_lib.cli import main
from runbook_lib.run import lock
from tests.conftest import RUNBOOK_PROCESS

RUNBOOK = RUNBOOK_PROCESS


@pytest.fixture
def sandbox(tmp_params_dir):
    """Params, outputs and the warehouse all under tmp_path; return the params folder."""
    return tmp_params_dir


def _tree(root) -> dict:
    """Every file under `root` with its size and modification time."""
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _refused(capsys, tmp_path, *argv: str) -> str:
    """Run `runbook argv`; assert exit 2, no traceback and no file changed; return stderr."""
    before = _tree(tmp_path)
    code = main(list(argv))
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("error: ") and "to fix this" in err and "Traceback" not in err
    assert _tree(tmp_path) == before
    return err


# -- run folders ---------------------------------------------------------------------------------


def _run_folder(tmp_path, manifest: str | None):
    folder = tmp_path / "outputs" / "local" / "20250410T000000Z-abcd"
    folder.mkdir(parents=True)
    if manifest is not None:
        (folder / "manifest.json").write_text(manifest)
    return str(folder)


@pytest.mark.parametrize("command", ["verify", "resume", "rollback"])
@pytest.mark.parametrize(
    "manifest,problem",
    [
        (None, "holds no manifest.json"),
        ('{"header": {"run_id": "x", "env": "lo', "not valid JSON"),
        ("[1, 2]", "no run header and records"),
        ('{"header": {"run_id": "x"}, "records": []}', "no run header and records"),
    ],
    ids=["missing", "truncated", "not-a-manifest", "header-without-env"],
)
def test_a_run_folder_without_a_readable_manifest_is_bad_input(
    sandbox, tmp_path, capsys, command, manifest, problem
):
    folder = _run_folder(tmp_path, manifest)
    argv = [command, "--run", folder] if command == "rollback" else [command, folder]
    err = _refused(capsys, tmp_path, *argv)
    assert folder in err and problem in err


@pytest.mark.parametrize("command", ["verify", "resume", "rollback"])
def test_a_missing_run_folder_is_bad_input(sandbox, tmp_path, capsys, command):
    folder = str(tmp_path / "outputs" / "local" / "no-such-run")
    argv = [command, "--run", folder] if command == "rollback" else [command, folder]
    assert "no such run folder" in _refused(capsys, tmp_path, *argv)


# -- --set and phase parameters --------------------------------------------------------------------


@pytest.mark.parametrize(
    "item,problem",
    [
        ("*=1", "is not a params key"),
        ("phases.02_data_cleanup.*=1", "is not a params key"),
        ("cleanup..ttl_days=1", "is not a params key"),
        ("cleanup.ttl_days.hours=1", "cleanup.ttl_days is a single value (7)"),
        ("alerts.webhook_url.path=x", "alerts.webhook_url is a single value (null)"),
        ("cleanup.nope.deeper=1", "cleanup.nope: unknown key"),
    ],
)
def test_a_set_with_a_bad_or_unknown_nested_key_is_bad_input(
    sandbox, tmp_path, capsys, item, problem
):
    err = _refused(capsys, tmp_path, "run", "--env", "local", "--set", item)
    assert err.startswith(f"error: --set {item}: ") and problem in err


def test_a_phase_parameter_of_the_wrong_type_is_bad_input(sandbox, tmp_path, capsys):
    """`dry_run="false"` is a string: true to Python, so a real cleanup would run as a dry run."""
    err = _refused(
        capsys, tmp_path, "run", "--env", "local", "--set", 'phases.02_data_cleanup.dry_run="false"'
    )
    assert "declares dry_run as bool" in err and "given str 'false'" in err
    assert "--set phases.02_data_cleanup.dry_run=false" in err


@pytest.mark.parametrize("timeout", ["0", "-5"])
def test_a_cell_timeout_below_one_second_is_bad_input(sandbox, tmp_path, capsys, timeout):
    err = _refused(capsys, tmp_path, "run", "--env", "local", "--cell-timeout", timeout)
    assert f"--cell-timeout: must be 1 or more seconds, got {timeout}" in err


# -- backfill dates --------------------------------------------------------------------------------


def test_dates_together_with_a_range_is_bad_input(sandbox, tmp_path, capsys):
    err = _refused(
        capsys, tmp_path, "backfill", "--env", "local",
        "--dates", "2023-02-23", "--start-date", "2023-02-23", "--end-date", "2023-02-24",
    )  # fmt: skip
    assert "--dates was given together with --start-date" in err


@pytest.mark.parametrize("dates", ["2023-02-23,,2023-02-24", "2023-02-23,", ","])
def test_an_empty_entry_in_dates_is_bad_input(sandbox, tmp_path, capsys, dates):
    err = _refused(capsys, tmp_path, "backfill", "--env", "local", "--dates", dates)
    assert "has an empty entry" in err and "remove the extra comma" in err


def test_bad_dates_are_bad_input_even_while_another_writer_holds_the_lock(
    sandbox, tmp_path, capsys
):
    """Input is checked before the lock: exit 2 (fix the command), not 1 (wait for a holder)."""
    from runbook_lib.run.params import load_params

    params = load_params("local")
    held = lock.acquire(params, "someone-else")
    try:
        _refused(capsys, tmp_path, "backfill", "--env", "local", "--dates", "2023-02-23,,")
    finally:
        lock.release(params, held)


# -- params files ------------------------------------------------------------------------------------


def test_two_merge_keys_in_one_mapping_is_bad_input(sandbox, tmp_path, capsys):
    """YAML forbids a repeated key, `<<` included; PyYAML would silently let one win."""
    path = sandbox / "local.yaml"
    path.write_text(
        path.read_text()
        + "phases:\n  02_data_cleanup: &quiet\n    dry_run: true\n"
        + "  03_cloud_function:\n    <<: *quiet\n    <<: {dry_run: false}\n"
    )
    err = _refused(capsys, tmp_path, "run", "--env", "local")
    assert "phases.03_cloud_function.<<: duplicate merge key" in err
    assert "<<: [*first, *second]" in err


# -- the real command, in its own process -----------------------------------------------------------


def test_the_runbook_process_exits_2_with_one_line_and_no_traceback(sandbox, tmp_path):
    """The same refusals through the installed entry point, as a person types them."""
    folder = _run_folder(tmp_path, "{not json")
    before = _tree(tmp_path)
    for argv in (
        ["resume", folder],
        ["run", "--env", "local", "--set", "*=1"],
        ["backfill", "--env", "local", "--dates", "2023-02-23,,2023-02-24"],
    ):
        done = subprocess.run([*RUNBOOK, *argv], capture_output=True, text=True, timeout=300)
        assert done.returncode == 2, done.stderr
        assert done.stderr.startswith("error: ") and "Traceback" not in done.stderr
        assert done.stderr.count("\n") == 1 and done.stdout == ""
    assert _tree(tmp_path) == before
