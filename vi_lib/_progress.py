"""Progress bars for every vi_lib loop (no chapter's idea): ``tqdm.auto``, quietly.

In a notebook without ipywidgets ``tqdm.auto`` warns once and falls back to text bars; the text
bars are fine (and what a static page shows), so the warning is only noise and is silenced here.
With the environment variable ``VI_LIB_PROGRESS=text`` the bars are text bars even where
ipywidgets is installed: ``tools/execute_notebooks.py`` sets it, so that the outputs committed
with the chapters, which the site shows, are text.
"""

from __future__ import annotations

import os
import warnings

if os.environ.get("VI_LIB_PROGRESS") == "text":
    from tqdm.std import tqdm
else:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from tqdm.auto import tqdm
from tqdm.std import tqdm as Bar  # every tqdm bar (text, notebook, auto) is one of these

__all__ = ["tqdm", "Bar"]
