"""google-cloud-bigquery, imported without the notebook progress bar the runbook never shows.

google-cloud-bigquery's table module imports tqdm.notebook at import, for
`progress_bar_type="tqdm_notebook"`, and tqdm.notebook imports ipywidgets: 0.3 s, and a module
that sets itself up when it is imported in a kernel. A run's fork server never preloads such a
module, and refuses to fork kernels once one is loaded, so with the BigQuery backend preloaded
every phase's kernel (and the function server of phases 03 and 05) was launched from a new
interpreter, importing everything again. Here tqdm.notebook is unavailable only while
google-cloud-bigquery is imported: its notebook progress bar is then off (the runbook never asks
for a progress bar), and tqdm.notebook and ipywidgets stay importable by anything else.
"""

from __future__ import annotations

import sys

_NOTEBOOK_BAR = "tqdm.notebook"
_held_off = _NOTEBOOK_BAR not in sys.modules
if _held_off:
    sys.modules[_NOTEBOOK_BAR] = None  # `import tqdm.notebook` raises ImportError meanwhile
try:
    from google.cloud import bigquery
finally:
    if _held_off and sys.modules.get(_NOTEBOOK_BAR, 0) is None:
        del sys.modules[_NOTEBOOK_BAR]

__all__ = ["bigquery"]
