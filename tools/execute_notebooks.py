"""Execute chapter notebooks in place, each in a fresh kernel, top to bottom.

This is the only way notebook outputs are produced: the site shows them and CI re-executes the same
notebooks with nbval. It prints each notebook's wall time, records it in the notebook's metadata
(``vi_book.execution``), and fails if a notebook raises or runs longer than the book's limit.
Progress bars are written as text (``VI_LIB_PROGRESS=text``, see ``vi_lib._progress``), which is
what the static site can show, even where ipywidgets is installed, and each as its final line.

    python -m tools.execute_notebooks [NOTEBOOK ...]     # default: every notebook in notebooks/
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbconvert.preprocessors import CoalesceStreamsPreprocessor

from . import exercises, sync_notebooks

ROOT = Path(__file__).resolve().parents[1]

#: Each chapter must run within this many seconds on the book's 2-core CPU machine.
LIMIT_SECONDS = {"default": 180, "08_convolutional_vae": 300}


def tidy_outputs(nb) -> None:
    """Merge each cell's consecutive stream outputs and keep what a terminal would show of them.

    nbconvert's ``CoalesceStreamsPreprocessor``: a progress bar that redraws itself with carriage
    returns becomes its last state, one line, as Jupyter shows it (the site would show every redraw).
    """
    CoalesceStreamsPreprocessor().preprocess(nb, {})


def execute(path: Path, timeout: int = 900) -> float:
    nb = nbformat.read(path, as_version=4)
    sync_notebooks.sync(nb, sync_notebooks.load_config(), exercises.chapter_number(path))
    os.environ["VI_LIB_PROGRESS"] = "text"  # inherited by the kernel
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    start = time.perf_counter()
    client.execute()
    seconds = time.perf_counter() - start
    nb.metadata.pop("widgets", None)  # no widget state: the outputs are text (VI_LIB_PROGRESS above)
    tidy_outputs(nb)
    nb.metadata["vi_book"] = {
        "execution": {
            "seconds": round(seconds, 1),
            "cpus": os.cpu_count(),
            "machine": platform.machine(),
        }
    }
    nbformat.write(nb, path)
    return seconds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path)
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted((ROOT / "notebooks").glob("*.ipynb"))
    failed = []
    for path in paths:
        print(f"executing {path} ...", flush=True)
        try:
            seconds = execute(path)
        except Exception as error:  # report every failing notebook, then fail
            print(f"  FAILED: {type(error).__name__}: {str(error)[-2000:]}", flush=True)
            failed.append(path)
            continue
        limit = LIMIT_SECONDS.get(path.stem, LIMIT_SECONDS["default"])
        status = "ok" if seconds <= limit else f"OVER the {limit} s limit"
        print(f"  {seconds:7.1f} s  {status}", flush=True)
        if seconds > limit:
            failed.append(path)
    if failed:
        print("failed:", *failed, sep="\n  ")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
