"""Serve MathJax from the site itself instead of a CDN.

Sphinx loads MathJax from cdn.jsdelivr.net by default, so formulas stay raw TeX wherever that CDN
cannot be reached (an offline build machine, a classroom behind a firewall, a reader reading a
downloaded copy). This extension copies MathJax 3 (shipped as static files by the PyPI package
``django-static-mathjax``, which has no dependencies) into ``_static/mathjax`` of the built site
and points ``mathjax_path`` at it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

# What tex-mml-chtml.js loads on demand: TeX extensions (\boldsymbol, ...), fonts, the menu, a11y.
_PARTS = ("tex-mml-chtml.js", "input", "output/chtml", "ui", "a11y", "adaptors")


def _es5() -> Path:
    try:
        import mathjax  # the django-static-mathjax package
    except ImportError as error:
        raise RuntimeError(
            "MathJax is not installed: `pip install django-static-mathjax` (part of the book's "
            "extras: `pip install -e '.[book]'`)."
        ) from error
    return Path(mathjax.__file__).parent / "static" / "mathjax" / "es5"


def _config_inited(app, config):
    _es5()  # fail early, with the message above
    config.mathjax_path = "mathjax/tex-mml-chtml.js"


def _build_finished(app, exception):
    if exception is not None or app.builder.format != "html":
        return
    source, target = _es5(), Path(app.outdir) / "_static" / "mathjax"
    for part in _PARTS:
        src, dst = source / part, target / part
        if src.is_dir():
            shutil.copytree(src, dst, dirs_exist_ok=True)
        else:
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)


def setup(app):
    app.connect("config-inited", _config_inited)
    app.connect("build-finished", _build_finished)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
