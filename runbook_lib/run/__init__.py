"""The runbook machinery: params, phases, runner, manifest and audit chain, reports."""

import sys

# jsonschema (imported by nbformat, so by papermill and nbconvert) loads rfc3987_syntax when it
# is installed (JupyterLab's jupyter-events brings it), which builds ~40 lark grammars at import:
# measured here, `import papermill` takes 1.3 s with it and 0.36 s without. Nothing the runbook
# validates uses the IRI formats it provides, so the runner never loads it.
sys.modules.setdefault("rfc3987_syntax", None)
