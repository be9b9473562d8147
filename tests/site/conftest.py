"""The browser test of the built site: set-up, and how it stays out of the default test run.

The default ``pytest`` run (``make test``: unit tests and notebooks) does not collect this folder:
the site must be built first (``make book``) and a browser must be installed. Run it after the
build, as CI does::

    python -m pytest tests/site

It is collected when a path under ``tests/site`` is named on the command line, or when the
environment variable ``BOOK_SITE_TEST=1`` is set. Settings, all through environment variables:

``BOOK_HTML``         the built site to test (default ``_build/html``)
``BOOK_SCREENSHOTS``  where the screenshots and ``load_times.tsv`` go (default ``_build/screenshots``)
``BOOK_SEARCH_TERM``  the word the search page must find (default: ``Jensen`` once chapter 7 is in
                      the table of contents, ``ancestral`` before that)
``BOOK_CHROMIUM``     the Chromium executable (default ``/usr/bin/chromium``, Debian's ``chromium``)
"""

from __future__ import annotations

import functools
import http.server
import os
import threading
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--no-first-run",
]


def _requested(config) -> bool:
    if os.environ.get("BOOK_SITE_TEST", "") not in ("", "0"):
        return True
    for arg in config.invocation_params.args:
        if arg.startswith("-"):
            continue
        path = (config.invocation_params.dir / arg.split("::")[0]).resolve()
        if path == HERE or HERE in path.parents:
            return True
    return False


def pytest_ignore_collect(collection_path, config):
    if collection_path.parent == HERE and collection_path.suffix == ".py" and not _requested(config):
        return True
    return None


def html_root() -> Path:
    return Path(os.environ.get("BOOK_HTML", ROOT / "_build" / "html")).resolve()


def screenshot_dir() -> Path:
    default = html_root().parent / "screenshots"
    return Path(os.environ.get("BOOK_SCREENSHOTS", default)).resolve()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        pass


LOAD_TIMES = pytest.StashKey[dict]()


@pytest.fixture(scope="session")
def html_dir() -> Path:
    return html_root()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    out = screenshot_dir()
    for view in ("", "390-light", "1280-dark", "390-dark"):  # 1280 px light at the top
        (out / view).mkdir(parents=True, exist_ok=True)
    return out


@pytest.fixture(scope="session")
def load_times(pytestconfig) -> dict:
    """page -> its measurements; filled by the tests, printed at the end of the session."""
    return pytestconfig.stash.setdefault(LOAD_TIMES, {})


@pytest.fixture(scope="session")
def site_url():
    """Serve the built site on a free localhost port for the whole session."""
    root = html_root()
    if not (root / "index.html").is_file():
        pytest.fail(f"no built site in {root}: run `make book` first (or set BOOK_HTML)")
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def browser():
    try:
        from playwright import sync_api
    except ImportError:  # fail, not skip: a skipped browser test would look like a passing one in CI
        pytest.fail("the browser test needs Playwright's Python package: `pip install playwright` "
                    "(never `playwright install`: it uses the system Chromium)")
    executable = os.environ.get("BOOK_CHROMIUM", "/usr/bin/chromium")
    if not Path(executable).exists():
        pytest.fail(f"Chromium not found at {executable}: `apt-get install chromium` (or set BOOK_CHROMIUM)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    measured = config.stash.get(LOAD_TIMES, {})
    if not measured:
        return
    rows = [("page", "HTTP", "loaded (ms)", "math typeset (ms)", "kB (gzip text)", "kB (raw)", "requests")]
    for page, m in measured.items():
        rows.append(
            (
                page,
                str(m.get("status", "-")),
                f"{m['load_ms']:.0f}" if "load_ms" in m else "-",
                f"{m['ready_ms']:.0f}" if "ready_ms" in m else "-",
                f"{m['wire'] / 1e3:.0f}" if "wire" in m else "-",
                f"{m['weight'] / 1e3:.0f}" if "weight" in m else "-",
                str(m.get("requests", "-")),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    terminalreporter.section("pages of the site, as loaded in headless Chromium")
    for row in rows:
        terminalreporter.write_line(
            "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
        )
    out = screenshot_dir()
    out.mkdir(parents=True, exist_ok=True)
    (out / "load_times.tsv").write_text("\n".join("\t".join(r) for r in rows) + "\n")
    terminalreporter.write_line(f"screenshots and load_times.tsv in {out}")
