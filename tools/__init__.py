"""The book's authoring tools, run from the repository root as ``python -m tools.<name>``.

- ``execute_notebooks``: re-execute chapter notebooks in place (``make execute``);
- ``exercises``: the exercises' cell roles (statement, answer, self-check, autograder test), their
  nbgrader metadata, and their sphinx-exercise directives for the site (``book/_ext/exercises.py``);
- ``sync_notebooks``: the Colab setup and notation cells of every notebook, from ``_config.yml``,
  and the exercises' nbgrader metadata (``make sync``);
- ``make_student_editions``: the student edition of every chapter, made by nbgrader's
  preprocessors (``make student``; the site build publishes them through
  ``book/_ext/student_editions.py``);
- ``render_results``: the MNIST results page from ``book/results/*.json``;
- ``draw_road_map``: the road-map figure of the landing page, from the parts of ``_toc.yml``;
- ``toc``: the table of contents (``_toc.yml``) as the tools and tests read it.

Nothing here is installed: ``python -m`` finds the package in the current directory, pytest
through ``pythonpath`` in ``pyproject.toml``, and the site build through the path declared for
the book's extensions in ``_config.yml``.
"""
