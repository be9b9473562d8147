"""The book's authoring tools, run from the repository root as ``python -m tools.<name>``.

- ``execute_notebooks``: re-execute chapter notebooks in place (``make execute``);
- ``sync_notebooks``: the Colab setup and notation cells of every notebook, from ``_config.yml`` (``make sync``);
- ``make_student_editions``: the student edition of every chapter (``make student``; the site
  build publishes them through ``book/_ext/student_editions.py``);
- ``render_results``: the MNIST results page from ``book/results/*.json``;
- ``draw_road_map``: the road-map figure of the landing page, from the parts of ``_toc.yml``;
- ``toc``: the table of contents (``_toc.yml``) as the tools and tests read it.

Nothing here is installed: ``python -m`` finds the package in the current directory, pytest
through ``pythonpath`` in ``pyproject.toml``, and the site build through the path declared for
the student-editions extension in ``_config.yml``.
"""
