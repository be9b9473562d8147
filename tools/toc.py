"""The book's table of contents, ``_toc.yml``: its pages in reading order and its parts.

Read by the road-map figure (``tools.draw_road_map``, which labels the chapters with the part
captions) and by the tests that check the notebooks and the site against the table of contents.
"""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
TOC = ROOT / "_toc.yml"


def load(path: Path = TOC) -> dict:
    """The table of contents as written in ``path`` (a jupyter-book ``_toc.yml``)."""
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def files(node: dict | list | None = None) -> list[str]:
    """Every page (``root`` and each ``file``) of ``node``, in reading order, as written there.

    ``node`` is the table of contents (default: ``load()``) or a piece of it, such as one part;
    pages are named without suffix, as in ``_toc.yml`` (``"notebooks/01_latent_variable_models"``).
    """
    node = load() if node is None else node
    if isinstance(node, list):
        return [page for item in node for page in files(item)]
    if not isinstance(node, dict):
        return []
    return [node[key] for key in ("root", "file") if key in node] + files(list(node.values()))


def parts(toc: dict | None = None) -> list[tuple[str, list[str]]]:
    """The parts of the table of contents, in order: ``(caption, pages of the part)``."""
    toc = load() if toc is None else toc
    return [(part["caption"], files(part)) for part in toc.get("parts", [])]
