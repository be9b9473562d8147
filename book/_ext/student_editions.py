"""Publish each chapter's student edition with the site and link it from the chapter.

At the end of an HTML build, ``tools.make_student_editions`` writes the student edition of
every chapter notebook of the book into ``student/`` of the built site, next to the pages, so the
site and the editions always come from the same commit and no generated file is committed. Each
chapter page gets a short box at the start of its "Exercises" section linking its edition, and
a ``{container} student-editions-list`` in any page (the instructor guide has one) is filled with
the list of all editions.

The book loads it as ``book._ext.student_editions`` with the repository root as its path
(``sphinx.local_extensions`` in ``_config.yml``), which is what makes ``tools`` importable here.

Optional: ``student_editions_colab_branch`` (Sphinx config, empty by default) names a branch of
the book's repository whose ``student/`` folder holds the generated editions; when set, the
boxes also link each edition on Colab.
"""

from __future__ import annotations

import re
from pathlib import Path

from docutils import nodes
from sphinx import addnodes
from sphinx.util import logging
from sphinx.util.osutil import relative_uri

from tools import make_student_editions

logger = logging.getLogger(__name__)

FOLDER = "student"
LIST_CLASS = "student-editions-list"
COLAB = "https://colab.research.google.com/github"


def _chapters(app) -> list[str]:
    """Docnames of the book's notebooks (in notebooks/), in file-name order."""
    return sorted(
        d for d in app.env.found_docs
        if d.startswith("notebooks/") and str(app.env.doc2path(d)).endswith(".ipynb")
    )


def _target(docname: str) -> str:
    return f"{FOLDER}/{docname.split('/')[-1]}.ipynb"


def _colab(app, docname: str) -> str | None:
    branch = app.config.student_editions_colab_branch
    repo = (app.config.html_theme_options or {}).get("repository_url", "")
    m = re.match(r"https://github\.com/([^/]+/[^/]+?)/?$", repo or "")
    if not branch or not m:
        return None
    return f"{COLAB}/{m.group(1)}/blob/{branch}/{_target(docname)}"


def _links(app, docname: str, here: str) -> list[nodes.Node]:
    uri = relative_uri(app.builder.get_target_uri(here), _target(docname))
    out: list[nodes.Node] = [nodes.reference("", "download the notebook", refuri=uri)]
    colab = _colab(app, docname)
    if colab:
        out += [nodes.Text(" or "), nodes.reference("", "open it on Colab", refuri=colab)]
    return out


def _box(app, docname: str) -> nodes.Node:
    box = nodes.admonition(classes=["tip", "student-edition"])
    box += nodes.title(text="Work on these exercises without the solutions")
    para = nodes.paragraph()
    para += nodes.Text("The student edition of this chapter has the solutions removed and the "
                       "self-checks kept: ")
    para += _links(app, docname, docname)
    para += nodes.Text(". Teaching with it? See the ")
    ref = addnodes.pending_xref(
        "", refdomain="std", reftype="doc", reftarget="/book/instructor_guide", refexplicit=True,
        refdoc=docname,
    )
    ref += nodes.inline(text="instructor guide")
    para += ref
    para += nodes.Text(".")
    box += para
    return box


def _doctree_read(app, doctree):
    docname = app.env.docname
    if app.builder.format != "html" or not docname.startswith("notebooks/"):
        return
    if not str(app.env.doc2path(docname)).endswith(".ipynb"):
        return
    for section in doctree.findall(nodes.section):
        title = section.next_node(nodes.title)
        if title is not None and title.astext().strip().lower() == "exercises":
            section.insert(section.index(title) + 1, _box(app, docname))
            return


def _doctree_resolved(app, doctree, docname):
    if app.builder.format != "html":
        return
    for container in list(doctree.findall(nodes.container)):
        if LIST_CLASS not in container["classes"]:
            continue
        items = nodes.bullet_list()
        for chapter in _chapters(app):
            title = app.env.titles.get(chapter)
            m = re.match(r"(\d+)", chapter.split("/")[-1])
            para = nodes.paragraph()
            label = f"Chapter {int(m.group(1))}: " if m else ""
            para += nodes.Text(label + (title.astext() if title is not None else chapter) + " — ")
            para += _links(app, chapter, docname)
            items += nodes.list_item("", para)
        container.children = []
        container += items


def _build_finished(app, exception):
    if exception is not None or app.builder.format != "html":
        return
    out = Path(app.outdir) / FOLDER
    for docname in _chapters(app):
        try:
            make_student_editions.generate(Path(app.env.doc2path(docname)), out)
        except Exception as error:  # noqa: BLE001 - any failure is reported as a build warning
            logger.warning(f"student edition of {docname} not generated: {error}")


def setup(app):
    app.add_config_value("student_editions_colab_branch", "", "html")
    app.connect("doctree-read", _doctree_read)
    app.connect("doctree-resolved", _doctree_resolved)
    app.connect("build-finished", _build_finished)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
