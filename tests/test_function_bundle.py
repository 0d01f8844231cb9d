"""The deployed function bundle carries only what the function imports on GCP.

The proof: the bundle is built, and its main module imported, in a plain venv (`python -m venv`,
no system site-packages) holding nothing but the packages of the bundle's requirements.txt,
installed by pip. The venv is built once per requirements file and Python under the temporary
folder, and reused by later sessions.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from runbook_lib.platform.cloud_function.bundle import (
    BACKEND_MODULES,
    ENTRY_MODULE,
    build_bundle,
    module_files,
)

# pip's words when no index answers: only then does the test skip.
NO_INDEX = (
    "NewConnectionError",
    "Temporary failure in name resolution",
    "Name or service not known",
    "Network is unreachable",
    "ProxyError",
    "Max retries exceeded",
)
NOT_SHIPPED = ("yaml", "duckdb", "sqlglot", "runbook_lib.run", "runbook_lib.cli")

PROBE = """
import importlib.util, json, os, sys
os.environ["GCP_PROJECT_ID"] = "nba-props-platform"
import main  # the bundle's entry module, as functions-framework loads it
import runbook_lib
import runbook_lib.warehouse.bigquery_backend  # what warehouse.connect imports on GCP
answer = main.health(None)
body, status = answer if isinstance(answer, tuple) else (answer, 200)
absent = [n for n in sys.argv[1:] if importlib.util.find_spec(n.split(".")[0]) is None
          or (n.startswith("runbook_lib.") and importlib.util.find_spec(n) is None)]
print(json.dumps({"health": body, "status": status, "library": runbook_lib.__file__,
                  "absent": absent}))
"""


@pytest.fixture(scope="module")
def deployed_bundle(tmp_path_factory) -> Path:
    """The bundle `runbook function plan` deploys (the BigQuery backend)."""
    return build_bundle(tmp_path_factory.mktemp("deployed-bundle"))


def clean_venv(requirements: Path) -> Path:
    """Return the python of a plain venv holding exactly these requirements (built once)."""
    key = hashlib.sha256(requirements.read_bytes() + sys.version.encode()).hexdigest()[:16]
    folder = Path(tempfile.gettempdir()) / f"runbook-bundle-venv-{key}"
    python = folder / "bin" / "python"
    if (folder / ".complete").exists():
        return python
    shutil.rmtree(folder, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
    install = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet",
         "--disable-pip-version-check", "-r", str(requirements)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if install.returncode != 0:
        shutil.rmtree(folder, ignore_errors=True)
        if any(marker in install.stderr for marker in NO_INDEX):
            pytest.skip(f"pip cannot reach a package index: {install.stderr.strip()[-300:]}")
        pytest.fail(f"the bundle's requirements do not install: {install.stderr[-2000:]}")
    (folder / ".complete").write_text(requirements.read_text())
    return python


def test_the_deployed_bundle_requires_no_yaml_duckdb_or_sqlglot_and_ships_no_run(deployed_bundle):
    pinned = {
        line.split("==")[0] for line in (deployed_bundle / "requirements.txt").read_text().split()
    }
    assert {"functions-framework", "google-cloud-bigquery", "pandas"} <= pinned
    assert not pinned & {"pyyaml", "duckdb", "sqlglot", "cloudevents", "requests"}
    library = deployed_bundle / "runbook_lib"
    assert not (library / "run").exists() and not (library / "cli").exists()
    assert not (library / "warehouse" / "duckdb_backend.py").exists()


def test_the_deployed_bundle_imports_in_a_plain_venv_with_only_its_requirements(deployed_bundle):
    python = clean_venv(deployed_bundle / "requirements.txt")
    # -E -s: no PYTHON* variables, no user site; the bundle folder is the script's path.
    proc = subprocess.run(
        [str(python), "-E", "-s", "-c", PROBE, *NOT_SHIPPED],
        cwd=deployed_bundle, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert seen["status"] == 200 and seen["health"]["status"] == "healthy"
    assert seen["health"]["project"] == "nba-props-platform"
    assert Path(seen["library"]).is_relative_to(deployed_bundle)
    assert seen["absent"] == list(NOT_SHIPPED)


# What a fresh interpreter holds after importing the entry module and a backend: the oracle for
# the closure build_bundle reads from the sources.
IMPORTED = """
import importlib, json, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
print(json.dumps(sorted(m.__file__ for n, m in list(sys.modules.items())
                        if n.split(".")[0] == "runbook_lib" and getattr(m, "__file__", None))))
"""


@pytest.mark.parametrize("backend", sorted(BACKEND_MODULES))
def test_the_closure_read_from_the_sources_is_what_a_fresh_interpreter_imports(backend):
    imported = subprocess.run(
        [sys.executable, "-c", IMPORTED, ENTRY_MODULE, *BACKEND_MODULES[backend]],
        capture_output=True,
        text=True,
        check=True,
    )
    assert [str(p) for p in module_files(backend)] == json.loads(imported.stdout)
