"""The Colab setup cell installs vi_lib into an environment that lacks it, and the chapter runs.

A fresh virtual environment stands in for a Colab runtime: it has what Colab preinstalls (torch,
numpy, matplotlib, seaborn, pandas, tqdm, a Jupyter kernel), installed offline from our wheels
with constraints.txt, and no vi_lib. Chapter 1 then runs there, in a kernel of that environment:

1. its setup cell, as committed, on a runtime that is not Colab: it installs nothing;
2. the same cell with ``google.colab`` present and the install target (the one string that
   ``tools.sync_notebooks`` derives from ``_config.yml``) pointed at a copy of this checkout:
   it pip-installs vi_lib into the kernel's environment, and the rest of the chapter runs and
   prints the same checked numbers as the committed notebook.

It needs no network but installs torch into the venv (about a minute and a half in all). Set
``VI_BOOK_SKIP_COLAB_TEST=1`` to skip it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from tools import sync_notebooks

ROOT = Path(__file__).resolve().parents[1]

CHAPTER = ROOT / "notebooks" / "01_latent_variable_models.ipynb"
#: What a Colab runtime has before the setup cell runs (the chapter also imports pandas).
PREINSTALLED = ["torch==2.13.0", "numpy", "matplotlib", "seaborn", "pandas", "tqdm", "ipykernel", "nbclient", "nbformat"]
KERNEL = "vi-colab-test"

pytestmark = pytest.mark.skipif(
    os.environ.get("VI_BOOK_SKIP_COLAB_TEST") == "1", reason="VI_BOOK_SKIP_COLAB_TEST=1"
)

_RUNNER = """\
import sys
import nbformat
from nbclient import NotebookClient

nb = nbformat.read(sys.argv[1], as_version=4)
NotebookClient(nb, timeout=600, kernel_name=sys.argv[3], resources={"metadata": {"path": sys.argv[4]}}).execute()
nbformat.write(nb, sys.argv[2])
"""

PROBE_ABSENT = (
    "import importlib.util\n"
    "print('vi_lib importable:', importlib.util.find_spec('vi_lib') is not None)"
)
FAKE_COLAB = (
    "# stand in for Colab: the setup cell only looks for this module\n"
    "import sys, types\n"
    "sys.modules['google'] = types.ModuleType('google')\n"
    "sys.modules['google.colab'] = types.ModuleType('google.colab')"
)
PROBE_INSTALLED = (
    "import importlib, vi_lib\n"
    "importlib.invalidate_caches()\n"
    "print('vi_lib from:', vi_lib.__file__)"
)


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env["PYTHONNOUSERSITE"] = "1"
    return env


def _run(cmd, **kwargs):
    kwargs.setdefault("cwd", "/")  # not the repository, whose vi_lib/ would be importable
    result = subprocess.run(cmd, capture_output=True, text=True, env=_env(), **kwargs)
    assert result.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def _text(cell) -> str:
    parts = []
    for out in cell.get("outputs", []):
        if out.output_type == "stream":
            parts.append(out.text)
        elif out.output_type in ("execute_result", "display_data"):
            parts.append(out.get("data", {}).get("text/plain", ""))
    return "".join(parts)


@pytest.fixture(scope="module")
def colab_like(tmp_path_factory):
    """A fresh venv with Colab's preinstalled packages and without vi_lib, plus its kernel."""
    base = tmp_path_factory.mktemp("colab")
    venv = base / "venv"
    _run([sys.executable, "-m", "venv", str(venv)])
    python = venv / "bin" / "python"
    _run([python, "-m", "pip", "install", "--quiet", "--constraint", ROOT / "constraints.txt", *PREINSTALLED])
    _run([python, "-m", "ipykernel", "install", "--prefix", venv, "--name", KERNEL])
    missing = subprocess.run([python, "-c", "import vi_lib"], capture_output=True, env=_env(), cwd=base)
    assert missing.returncode != 0, "the fresh environment must not have vi_lib"
    # the checkout that the setup cell installs from (a copy, so pip's build leaves no files here)
    checkout = base / "checkout"
    checkout.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, checkout / name)
    shutil.copytree(ROOT / "vi_lib", checkout / "vi_lib", ignore=shutil.ignore_patterns("__pycache__"))
    return base, python, checkout


def test_chapter_runs_in_a_fresh_environment_after_the_setup_cell(colab_like):
    base, python, checkout = colab_like
    config = sync_notebooks.load_config()
    nb = nbformat.read(CHAPTER, as_version=4)
    (setup_index,) = [i for i, c in enumerate(nb.cells) if sync_notebooks.SETUP_TAG in c.metadata.get("tags", [])]
    setup = nb.cells[setup_index]
    target = sync_notebooks.install_target(config)
    assert setup.source == sync_notebooks.setup_source(config)
    assert setup.source.count(target) == 1, "the install target appears once, derived from _config.yml"
    local = setup.source.replace(target, f"vi_lib @ {checkout.as_uri()}")

    cell = nbformat.v4.new_code_cell
    test_nb = nbformat.v4.new_notebook(metadata=nb.metadata)
    head = [
        cell(PROBE_ABSENT),
        cell(setup.source),  # not on Colab: does nothing
        cell(PROBE_ABSENT),
        cell(FAKE_COLAB),
        cell(local),  # on "Colab": installs vi_lib from the checkout
        cell(PROBE_INSTALLED),
    ]
    rest = [c for c in nb.cells[setup_index + 1 :] if c.cell_type == "code"]
    test_nb.cells = head + [cell(c.source) for c in rest]
    src, out = base / "chapter.ipynb", base / "chapter.out.ipynb"
    nbformat.write(test_nb, src)
    (base / "run.py").write_text(_RUNNER)
    workdir = base / "work"  # not the repository: vi_lib must come from the install
    workdir.mkdir(exist_ok=True)
    _run([python, base / "run.py", src, out, KERNEL, workdir], timeout=900)

    ran = nbformat.read(out, as_version=4)
    assert _text(ran.cells[0]).strip() == "vi_lib importable: False"
    assert _text(ran.cells[2]).strip() == "vi_lib importable: False", "the setup cell installed off Colab"
    installed = _text(ran.cells[5])
    assert "site-packages" in installed and str(ROOT) not in installed, installed
    for original, rerun in zip(rest, ran.cells[len(head) :]):
        errors = [o for o in rerun.outputs if o.output_type == "error"]
        assert not errors or "raises-exception" in original.metadata.get("tags", []), json.dumps(errors[0])
        if "nbval-check-output" in original.metadata.get("tags", []):
            assert _text(rerun) == _text(original), f"different output in the fresh environment:\n{original.source}"
