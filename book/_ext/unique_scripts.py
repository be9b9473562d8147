"""Drop the duplicate inline scripts that sphinx-thebe and sphinx-togglebutton add to every page.

Both extensions add an inline script (``const THEBE_JS_URL = ...``, ``var togglebuttonSelector =
...``) in a way that Sphinx 7.4 registers twice (once with filename ``""``, once with ``None``), so
every page declares ``THEBE_JS_URL`` twice and the browser reports "Identifier 'THEBE_JS_URL' has
already been declared" (found by tests/site). Keep the first of identical scripts.
"""


def _unique_scripts(app, pagename, templatename, context, doctree):
    seen, unique = set(), []
    for script in context.get("script_files", []):
        key = (getattr(script, "filename", script) or None,
               tuple(sorted(getattr(script, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique


def setup(app):
    app.connect("html-page-context", _unique_scripts, priority=1000)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
