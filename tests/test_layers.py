"""The layers contract (pyproject.toml, [tool.importlinter]) holds, and breaks on an upward import."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from runbook_lib import paths

LINT_IMPORTS = str(Path(sys.executable).parent / "lint-imports")


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [LINT_IMPORTS, "--no-cache"], cwd=root, capture_output=True, text=True, check=False
    )


def test_the_layers_contract_is_kept():
    proc = lint_imports(paths.SOURCE_ROOT)
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert "1 kept, 0 broken" in proc.stdout


def copy_project(tmp_path: Path) -> Path:
    shutil.copy(paths.SOURCE_ROOT / "pyproject.toml", tmp_path)
    shutil.copytree(
        paths.PACKAGE_DIR, tmp_path / "runbook_lib", ignore=shutil.ignore_patterns("__pycache__")
    )
    return tmp_path


def test_an_import_of_a_higher_layer_breaks_the_contract(tmp_path):
    copy_project(tmp_path)
    with open(tmp_path / "runbook_lib" / "platform" / "coverage.py", "a") as f:
        f.write("\nfrom runbook_lib.run import params  # noqa: E402, F401\n")
    proc = lint_imports(tmp_path)
    assert proc.returncode == 1
    assert "runbook_lib.platform is not allowed to import runbook_lib.run" in proc.stdout
    assert "runbook_lib.platform.coverage -> runbook_lib.run.params" in proc.stdout


def test_a_module_in_no_layer_breaks_the_contract(tmp_path):
    (copy_project(tmp_path) / "runbook_lib" / "helpers.py").write_text("X = 1\n")
    proc = lint_imports(tmp_path)
    assert proc.returncode == 1
    assert "runbook_lib.helpers" in proc.stdout and "not listed as layers" in proc.stdout
