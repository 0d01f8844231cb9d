"""Build small phase notebooks for runner tests: they call runbook_lib.run.phase, no warehouse."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

FAULTS = {
    "raises": 'raise ValueError("planted fault")',
    "sys_exit_0": "import sys\nsys.exit(0)",
    "kernel_dies": "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)",
}


def write_phase(folder: Path, name: str, cells: list[str], params: str = "") -> Path:
    """Write `<folder>/<name>.ipynb`: parameters, open_phase, `cells`, finish."""
    folder.mkdir(parents=True, exist_ok=True)
    head = 'env = "local"\nrun_dir = ""\ntoday = ""\n' + params
    nb = new_notebook(
        cells=[
            new_markdown_cell(f"# {name}"),
            new_code_cell(head, metadata={"tags": ["parameters"]}),
            new_code_cell(
                "from runbook_lib.run.phase import open_phase\n"
                f'phase = open_phase("{name}", env=env, run_dir=run_dir, today=today)'
            ),
            *[new_code_cell(c) for c in cells],
            new_code_cell("phase.finish()"),
        ]
    )
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    path = folder / f"{name}.ipynb"
    nbformat.write(nb, path)
    return path
