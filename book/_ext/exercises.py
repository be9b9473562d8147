"""Write each chapter's exercises as sphinx-exercise directives while Sphinx reads the notebook.

The notebooks keep their exercises as plain Markdown and code cells with roles in their metadata
(``tools.exercises`` describes them), so Jupyter and Colab show no directive fences. On the
``source-read`` event this extension rewrites a chapter notebook's JSON with
``tools.exercises.to_myst``: each statement becomes an ``{exercise}``, each answer a ``{solution}``
dropdown (or a gated ``{solution-start}`` ... ``{solution-end}`` around code), which is what
``sphinx-exercise`` numbers and renders. A notebook that breaks the conventions fails the build
with the reason.

Loaded as ``book._ext.exercises`` with the repository root as its path (``_config.yml``).
"""

from __future__ import annotations

import nbformat
from sphinx.errors import ExtensionError

from tools import exercises


def _source_read(app, docname: str, source: list[str]) -> None:
    path = app.env.doc2path(docname)
    if not str(path).endswith(".ipynb") or not docname.startswith("notebooks/"):
        return
    nb = nbformat.reads(source[0], as_version=4)
    try:
        site = exercises.to_myst(nb, exercises.chapter_number(path))
    except exercises.ExerciseError as error:
        raise ExtensionError(f"{docname}: {error}") from None
    source[0] = nbformat.writes(site)


def setup(app):
    app.connect("source-read", _source_read)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
