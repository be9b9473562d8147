"""The published site, tested as a reader sees it: every page of the table of contents, in Chromium.

Each page is loaded once (headless Chromium, driven by Playwright, with the built ``_build/html``
served on localhost; every request that leaves localhost is blocked, as on an offline machine), a
full-page screenshot is saved, and what the reader would see is collected; the tests below check
it, one property per test so that a failure says what is broken on which page. How to run it and
its settings: ``tests/site/conftest.py``.
"""

from __future__ import annotations

import gzip
import html.parser
import json
import os
import re
import time
from functools import lru_cache
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import pytest
import yaml
from axe_playwright_python.sync_playwright import Axe

from tools.toc import files as _toc_files

ROOT = Path(__file__).resolve().parents[2]
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
TOC = yaml.safe_load((ROOT / "_toc.yml").read_text())

#: No page may make the reader download more than this (HTML, images, scripts, styles, fonts), as
#: served by a static host that compresses text (GitHub Pages, Read the Docs, any nginx): text files
#: count gzip-compressed, images as they are. Uncompressed, the theme and MathJax alone weigh about
#: 2.5-4 MB on every page; the table at the end of the run shows both numbers.
MAX_PAGE_BYTES = 5_000_000
AXE = Axe()
_TEXT_TYPES = {".html", ".js", ".css", ".svg", ".json", ".txt", ".map", ".ipynb"}
#: Give up on a page (or on MathJax, or the search) after this long.
TIMEOUT_MS = 60_000


#: Every page of the table of contents, in reading order (e.g. "notebooks/01_latent_variable_models").
PAGES = [str(Path(f).with_suffix("")) if Path(f).suffix in (".md", ".ipynb") else f for f in _toc_files(TOC)]
NOTEBOOK_PAGES = [p for p in PAGES if (ROOT / f"{p}.ipynb").is_file()]


def _search_term() -> str:
    if os.environ.get("BOOK_SEARCH_TERM"):
        return os.environ["BOOK_SEARCH_TERM"]
    # Chapter 7 derives Jensen's inequality; until it exists, a word from chapter 1.
    return "Jensen" if any(Path(p).name.startswith("07_") for p in PAGES) else "ancestral"


# --------------------------------------------------------------------------------------------
# Loading a page and collecting what a reader sees

# Runs in the page once it has loaded: waits for MathJax and for every image (lazy ones included,
# as a reader scrolling down or opening a solution would load them), then reports.
_COLLECT = r"""
async () => {
  const withTimeout = (promise, ms) => Promise.race([promise, new Promise(r => setTimeout(r, ms))]);
  const report = {};

  // MathJax: wait until it has loaded and finished its first typesetting pass.
  const mathjaxScript = document.querySelector('script[src*="mathjax"]');
  report.mathjax = 'absent';
  if (mathjaxScript) {
    const started = await withTimeout(new Promise(resolve => {
      const poll = () => (window.MathJax && MathJax.startup && MathJax.startup.promise)
        ? resolve(true) : setTimeout(poll, 50);
      poll();
    }), 30000);
    if (started) {
      await withTimeout(MathJax.startup.promise, 30000);
      report.mathjax = 'typeset';
    } else {
      report.mathjax = 'did not start';
    }
  }
  // Errors: TeX that did not parse (merror), and undefined macros, which MathJax's noundefined
  // package shows as red text (mtext mathcolor="red") instead of failing.
  report.mathErrors = [...document.querySelectorAll('mjx-merror, .merror, [data-mjx-error]')].map(
    e => (e.getAttribute('data-mjx-error') || '') + ' ' + e.textContent.slice(0, 120));
  if (report.mathjax === 'typeset' && MathJax.startup.document && MathJax.startup.toMML) {
    for (const item of MathJax.startup.document.math) {
      const mml = MathJax.startup.toMML(item.root);
      if (/<merror|mathcolor="red"/.test(mml)) {
        report.mathErrors.push((item.math || '').slice(0, 120) + '  ->  ' +
          (mml.match(/<merror[^]*?<\/merror>|<mtext mathcolor="red"[^>]*>[^<]*/) || [''])[0].replace(/\s+/g, ' ').slice(0, 160));
      }
    }
  }
  report.mathCount = document.querySelectorAll('mjx-container').length;

  // Images: load every one now (lazy ones too) and wait for them.
  const images = [...document.images];
  images.forEach(img => { img.loading = 'eager'; });
  await withTimeout(Promise.all(images.map(img => img.complete ? null : new Promise(r => {
    img.addEventListener('load', r); img.addEventListener('error', r);
  }))), 20000);
  report.images = images.map(img => ({
    src: img.getAttribute('src'), alt: img.getAttribute('alt'), width: img.naturalWidth,
    inOutput: !!img.closest('.cell_output'), inFigure: !!img.closest('figure, div.figure'),
  }));
  report.figures = [...document.querySelectorAll('article figure, article div.figure')].map(f => ({
    id: f.id || (f.querySelector('[id]') || {}).id || '',
    caption: (f.querySelector('figcaption, p.caption') || {textContent: ''}).textContent.trim(),
  }));

  // Text a reader sees outside code, formulas and notebook outputs: must hold no raw TeX.
  const skip = 'script, style, pre, code, textarea, mjx-container, .highlight, .cell_input, .cell_output, .bd-search, #pst-search-dialog';
  const raw = /\$|\\\(|\\\)|\\\[|\\\]|\\(begin|end|frac|mathbf|mathcal|sum|int|log|vx|vz|vmu|mSigma|mI|KL|ELBO|given|Normal|E|R|dd)\b/;
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  report.rawTex = [];
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    if (!node.parentElement || node.parentElement.closest(skip)) continue;
    const text = node.textContent;
    if (raw.test(text)) {
      const where = node.parentElement.closest('[id]');
      report.rawTex.push((where ? '#' + where.id + ': ' : '') + text.trim().slice(0, 120));
    }
  }

  // Notebook outputs.
  report.outputs = [...document.querySelectorAll('.cell_output')].map(o => {
    const copy = o.cloneNode(true);
    copy.querySelectorAll('style, script, button').forEach(e => e.remove());
    return {classes: [...o.querySelectorAll('.output')].map(e => e.className), text: copy.textContent};
  });

  // Wide things: a display equation, code block, output or table wider than the page's content
  // column must sit in a box that scrolls sideways (overflow-x auto or scroll), else it is cut off.
  const column = (document.querySelector('article.bd-article') || document.querySelector('main') || document.body)
    .getBoundingClientRect();
  const scrolls = el => { for (let e = el; e && e !== document.body; e = e.parentElement) {
      const o = getComputedStyle(e).overflowX;
      if ((o === 'auto' || o === 'scroll') && e.getBoundingClientRect().right <= column.right + 1) return true;
    } return false; };
  report.overflow = [];
  for (const el of document.querySelectorAll('article mjx-container[display="true"], article div.math, article pre, article table')) {
    const r = el.getBoundingClientRect();
    const wide = el.scrollWidth > el.clientWidth + 1 || r.right > column.right + 1;
    if (wide && r.width > 0 && !scrolls(el)) {
      const where = el.closest('[id]');
      report.overflow.push(`${el.tagName.toLowerCase()} ${Math.round(el.scrollWidth)} px in ${Math.round(column.width)} px` +
        (where ? ` (#${where.id})` : '') + ': ' + el.textContent.trim().slice(0, 60));
    }
  }

  // Links and launch buttons.
  report.links = [...document.querySelectorAll('a[href]')].map(a => a.href);
  report.colab = [...document.querySelectorAll('a[href*="colab.research.google.com"]')].map(a => a.href);
  report.download = [...document.querySelectorAll('a.btn-download-source-button')].map(a => a.href);
  report.repository = [...document.querySelectorAll('a.btn-source-repository-button')].map(a => a.href);

  // Timing, and every file the page loaded (Resource Timing) with its size.
  const nav = performance.getEntriesByType('navigation')[0];
  report.loadMs = nav.loadEventEnd;
  report.readyMs = performance.now();
  report.files = [[location.href, nav.decodedBodySize]].concat(performance.getEntriesByType('resource')
    .map(r => [r.name, r.decodedBodySize || r.encodedBodySize || 0]));
  return report;
}
"""


@lru_cache(maxsize=None)
def _gzipped_size(path: Path) -> int:
    return len(gzip.compress(path.read_bytes(), compresslevel=6))


def _wire_bytes(root: Path, site_url: str, url: str, size: int) -> int:
    """Bytes a compressing static host sends for one file of the page."""
    if not url.startswith(site_url):
        return size
    path = _local_file(root, urlsplit(url).path)
    if path.suffix not in _TEXT_TYPES or not path.is_file():
        return size
    return _gzipped_size(path)


def _screenshot_name(page: str) -> str:
    return page.replace("/", "__") + ".png"


@pytest.fixture(scope="session")
def visit(browser, site_url, load_times, screenshots, html_dir):
    """visit(page) -> what the reader saw on that page (loaded once per session, cached)."""
    cache: dict[str, dict] = {}

    def _visit(page: str) -> dict:
        if page in cache:
            return cache[page]
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        tab = context.new_page()
        seen = {"console_errors": [], "page_errors": [], "failed": [], "external": []}

        def route(r):
            if r.request.url.startswith(site_url):
                r.continue_()
            else:
                seen["external"].append(r.request.url)
                r.abort()

        tab.route("**/*", route)
        tab.on("pageerror", lambda error: seen["page_errors"].append(str(error)))
        tab.on(
            "console",
            lambda m: seen["console_errors"].append(f"{m.text} ({m.location.get('url', '')})")
            if m.type == "error" and m.location.get("url", "").startswith(site_url)
            else None,
        )
        tab.on(
            "requestfailed",
            lambda r: seen["failed"].append(f"{r.url}: {r.failure}")
            if r.url.startswith(site_url) and not r.url.endswith("/favicon.ico")
            else None,
        )
        # (The browser's own request for /favicon.ico is not the page's: the book has no favicon.)
        tab.on(
            "response",
            lambda r: seen["failed"].append(f"{r.url}: HTTP {r.status}")
            if r.status >= 400 and not r.url.endswith("/favicon.ico")
            else None,
        )
        url = urljoin(site_url, f"{page}.html")
        start = time.perf_counter()
        response = tab.goto(url, wait_until="load", timeout=TIMEOUT_MS)
        seen["status"] = response.status if response else None
        if seen["status"] == 200:
            seen.update(tab.evaluate(_COLLECT))
        seen["wall_ms"] = (time.perf_counter() - start) * 1e3
        if "files" in seen:
            seen["weight"] = sum(size for _, size in seen["files"])
            seen["wire"] = sum(_wire_bytes(html_dir, site_url, f, size) for f, size in seen["files"])
            seen["requests"] = len(seen["files"])
        if seen["status"] == 200:
            seen["axe"] = [
                {"rule": v["id"], "impact": v["impact"], "help": v["help"],
                 "targets": [" ".join(map(str, n["target"])) for n in v["nodes"]]}
                # preload off: axe would fetch the theme's @import-ed CSS from the wrong folder (a 404)
                for v in AXE.run(tab, options={"resultTypes": ["violations"], "preload": False}).response["violations"]
            ]
        shot = screenshots / _screenshot_name(page)
        tab.screenshot(path=str(shot), full_page=True)
        context.close()
        # what a phone and a dark-mode reader see, for a person to look at (saved, not compared)
        for name, options in [("390-light", {"viewport": {"width": 390, "height": 844}, "color_scheme": "light"}),
                              ("1280-dark", {"viewport": {"width": 1280, "height": 900}, "color_scheme": "dark"}),
                              ("390-dark", {"viewport": {"width": 390, "height": 844}, "color_scheme": "dark"})]:
            other = browser.new_context(**options)
            view = other.new_page()
            view.route("**/*", lambda r: r.continue_() if r.request.url.startswith(site_url) else r.abort())
            view.add_init_script(f"localStorage.setItem('mode', '{options['color_scheme']}');"
                                 f"localStorage.setItem('theme', '{options['color_scheme']}');")
            view.goto(url, wait_until="load", timeout=TIMEOUT_MS)
            view.wait_for_timeout(300)
            view.screenshot(path=str(screenshots / name / _screenshot_name(page)), full_page=True)
            other.close()
        seen["url"], seen["page"], seen["screenshot"] = url, page, shot
        load_times[page] = {
            "status": seen["status"],
            **(
                {"load_ms": seen["loadMs"], "ready_ms": seen["readyMs"], "weight": seen["weight"],
                 "wire": seen["wire"], "requests": seen["requests"]}
                if "loadMs" in seen
                else {}
            ),
        }
        cache[page] = seen
        return seen

    return _visit


@pytest.fixture
def seen(visit, request):
    report = visit(request.param)
    if report["status"] != 200 and request.function.__name__ != "test_page_loads":
        pytest.skip(f"{request.param}: HTTP {report['status']}, reported by test_page_loads")
    return report


def _pages(pages):
    return pytest.mark.parametrize("seen", pages, ids=pages, indirect=True)


# --------------------------------------------------------------------------------------------
# Static facts about the built files (links and anchors are checked against these)


class _Ids(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name == "id" or (tag == "a" and name == "name"):
                self.ids.add(value)


@lru_cache(maxsize=None)
def _ids_in(path: Path) -> frozenset[str]:
    parser = _Ids()
    parser.feed(path.read_text(encoding="utf-8", errors="replace"))
    return frozenset(parser.ids)


def _local_file(root: Path, url_path: str) -> Path:
    path = root / unquote(url_path).lstrip("/")
    return path / "index.html" if path.is_dir() else path


# --------------------------------------------------------------------------------------------
# The tests


def test_table_of_contents_lists_pages():
    assert PAGES, "no pages found in _toc.yml"
    assert "notebooks/01_latent_variable_models" in PAGES


@_pages(PAGES)
def test_page_loads(seen):
    assert seen["status"] == 200, f"{seen['url']}: HTTP {seen['status']}; is the page in the last build?"
    assert not seen["failed"], "requests for the site's own files failed:\n" + "\n".join(seen["failed"])
    assert not seen["page_errors"], "JavaScript errors:\n" + "\n".join(seen["page_errors"])
    assert not seen["console_errors"], "errors in the browser console:\n" + "\n".join(seen["console_errors"])
    assert seen["screenshot"].is_file(), f"no screenshot saved at {seen['screenshot']}"


@_pages(PAGES)
def test_page_needs_nothing_outside_the_site(seen):
    """Readers offline (or behind a firewall) see the same page: nothing is fetched from elsewhere."""
    assert not seen["external"], "the page requested files from outside the site:\n" + "\n".join(
        sorted(set(seen["external"]))
    )


@_pages(PAGES)
def test_math_is_typeset_without_errors(seen):
    assert seen["mathjax"] in ("typeset", "absent"), f"MathJax {seen['mathjax']}"
    assert not seen["mathErrors"], "MathJax could not typeset:\n" + "\n".join(seen["mathErrors"])
    assert not seen["rawTex"], "raw TeX left in the text the reader sees:\n" + "\n".join(seen["rawTex"])


@_pages(PAGES)
def test_images_load_and_have_alt_text(seen):
    broken = [i["src"] for i in seen["images"] if not i["width"]]
    no_alt = [
        i["src"]
        for i in seen["images"]
        if not (i["alt"] or "").strip() or re.search(r"\.(png|jpe?g|svg|gif)$", i["alt"].strip(), re.I)
    ]
    problems = [f"did not load (natural width 0): {src}" for src in broken]
    problems += [f"no alt text: {src}" for src in no_alt]
    assert not problems, (
        "images that readers cannot see or that screen readers cannot describe (an alt that is a "
        "file name is the default for a figure cell without `mystnb: image: alt` metadata):\n"
        + "\n".join(problems)
    )


@_pages(PAGES)
def test_figures_have_captions(seen):
    uncaptioned = [f["id"] or "(no id)" for f in seen["figures"] if not f["caption"]]
    assert not uncaptioned, "figures without a caption: " + ", ".join(uncaptioned)
    bare = [i["src"] for i in seen["images"] if i["inOutput"] and not i["inFigure"]]
    assert not bare, (
        "notebook figures shown without a caption (the cell has no `mystnb: figure: caption` "
        "metadata):\n" + "\n".join(bare)
    )


_ERROR_TEXT = re.compile(
    r"Traceback \(most recent call last\)|^\s*(?:\w+\.)*[A-Z][a-z]\w*(?:Error|Exception|Warning|Interrupt):|"
    r"\b[A-Z]\w*Warning: |An error occurred while executing",
    re.M,
)


@_pages(PAGES)
def test_cell_outputs_show_no_errors(seen):
    problems = []
    for number, output in enumerate(seen.get("outputs", []), start=1):
        kinds = " ".join(output["classes"])
        if "traceback" in kinds or re.search(r"\berror\b", kinds):
            problems.append(f"output {number} is an error output: {' '.join(output['text'].split())[:300]}")
        elif match := _ERROR_TEXT.search(output["text"]):
            problems.append(f"output {number} shows {match.group(0).strip()!r}: {' '.join(output['text'].split())[:300]}")
    assert not problems, "\n".join(problems)


@_pages(PAGES)
def test_internal_links_and_anchors_resolve(seen, site_url, html_dir):
    dead = []
    for href in sorted(set(seen["links"])):
        if not href.startswith(site_url):
            continue  # other sites: not reachable from here
        parts = urlsplit(href)
        target = _local_file(html_dir, parts.path)
        if not target.is_file():
            dead.append(f"{href}: no such file")
        elif parts.fragment and target.suffix == ".html" and unquote(parts.fragment) not in _ids_in(target):
            dead.append(f"{href}: no anchor #{unquote(parts.fragment)} in {target.name}")
    assert not dead, "dead links:\n" + "\n".join(dead)


@_pages(NOTEBOOK_PAGES)
def test_launch_buttons_point_at_this_notebook(seen, site_url, html_dir):
    page = seen["page"]
    repository = CONFIG["repository"]["url"].rstrip("/")
    branch = CONFIG["repository"].get("branch", "main")
    path_to_book = (CONFIG["repository"].get("path_to_book") or "").strip("/")
    in_repo = "/".join(p for p in (path_to_book, f"{page}.ipynb") if p)
    colab = CONFIG["launch_buttons"]["colab_url"].rstrip("/")
    github = urlsplit(repository).path.strip("/")
    expected = f"{colab}/github/{github}/blob/{branch}/{in_repo}"
    assert seen["colab"] == [expected], f"Colab button: expected [{expected}], found {seen['colab']}"
    assert (ROOT / in_repo).is_file(), f"the Colab button opens {in_repo}, which is not in the repository"
    assert seen["repository"] and all(h.rstrip("/") == repository for h in seen["repository"]), (
        f"repository button: expected {repository}, found {seen['repository']}"
    )
    assert len(seen["download"]) == 1, f"expected one download button, found {seen['download']}"
    download = seen["download"][0]
    assert download.startswith(site_url) and download.endswith(f"/{page}.ipynb"), (
        f"the download button offers {download}, not {page}.ipynb"
    )
    notebook = _local_file(html_dir, urlsplit(download).path)
    assert notebook.is_file(), f"the download button's file is missing: {download}"
    cells = json.loads(notebook.read_text())["cells"]
    assert cells, f"the downloadable {page}.ipynb has no cells"


@_pages(PAGES)
def test_page_weight(seen):
    assert seen["wire"] <= MAX_PAGE_BYTES, (
        f"the page loads {seen['wire'] / 1e6:.1f} MB ({seen['requests']} requests, text compressed; "
        f"{seen['weight'] / 1e6:.1f} MB uncompressed), more than "
        f"{MAX_PAGE_BYTES / 1e6:.0f} MB: make its figures smaller (lower dpi, fewer points, JPEG for photos)"
    )


def test_search_finds_a_term_of_the_book(browser, site_url, html_dir, screenshots):
    term = _search_term()
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    tab.route("**/*", lambda r: r.continue_() if r.request.url.startswith(site_url) else r.abort())
    tab.goto(urljoin(site_url, f"search.html?q={term}"), wait_until="load", timeout=TIMEOUT_MS)
    tab.wait_for_selector("#search-results .search-summary", timeout=TIMEOUT_MS)
    hits = tab.eval_on_selector_all("#search-results ul.search li a", "links => links.map(a => a.href)")
    tab.screenshot(path=str(screenshots / "search.png"), full_page=True)
    context.close()
    assert hits, f"the search page found nothing for {term!r}"
    for href in hits:
        assert _local_file(html_dir, urlsplit(href).path).is_file(), f"search result {href} does not exist"


def test_landing_page_shows_the_road_through_the_book(visit):
    seen = visit(PAGES[0])
    road = [i for i in seen["images"] if i["src"] and i["src"].endswith("road_map.svg")]
    assert road, f"the landing page ({PAGES[0]}) does not show the road map (book/images/road_map.svg)"
    assert road[0]["width"] and len(road[0]["alt"] or "") > 100, "the road map must load and be described in its alt text"



# --------------------------------------------------------------------------------------------
# Accessibility (axe-core) and layout at the page's width


#: axe-core rules broken by markup that is not the book's (the theme's, or a library's), with the
#: element and why it is allowed: {rule: [(page or "" for every page, selector part, reason)]}.
THEME_VIOLATIONS = {
    "label-content-name-mismatch": [("", ".search-button", "sphinx-book-theme's search button: its accessible "
                                     "name ('Search') differs from its visible text (a magnifier and Ctrl+K)")],
    "region": [("", "", "sphinx-book-theme's skip link and top bar sit outside its landmark regions")],
    "label": [("notebooks/07_elbo", "_anim_slider", "matplotlib's HTML animation (FuncAnimation.to_jshtml) "
               "draws its frame slider as an unlabelled range input")],
    "aria-allowed-role": [("book/references", "", "sphinxcontrib-bibtex marks each entry role=doc-biblioentry")],
    "aria-deprecated-role": [("book/references", "", "sphinxcontrib-bibtex marks each entry role=doc-biblioentry, "
                              "deprecated in ARIA 1.3")],
    "aria-required-children": [("book/references", ".citation-list", "sphinxcontrib-bibtex's list "
                                "(role=doc-bibliography) holds those doc-biblioentry items")],
}


@_pages(PAGES)
def test_page_has_no_accessibility_violations_of_its_own(seen):
    """axe-core finds nothing on the page that the book's content causes (the theme's own: THEME_VIOLATIONS)."""
    own = []
    for v in seen["axe"]:
        allowed = [part for page, part, _ in THEME_VIOLATIONS.get(v["rule"], []) if page in ("", seen["page"])]
        targets = [t for t in v["targets"] if not any(part in t for part in allowed)]
        if targets:
            own.append(f"{v['rule']} ({v['impact']}): {v['help']}: {targets[:4]}")
    assert not own, f"{seen['page']}: accessibility violations:\n" + "\n".join(own)


@_pages(PAGES)
def test_nothing_is_cut_off_at_the_right(seen):
    """No display equation, code block, output or table is wider than the column without a scrollbar."""
    assert not seen["overflow"], f"{seen['page']} at 1280 px:\n" + "\n".join(seen["overflow"])


_BAR = re.compile(r"^(.*?)\s*\d{1,3}%\|")


@_pages(NOTEBOOK_PAGES)
def test_each_progress_bar_shows_one_line(seen):
    """An output shows a progress bar as its final state, not every redraw."""
    for output in seen["outputs"]:
        bars = [m.group(1).strip() for line in output["text"].split("\n") if (m := _BAR.match(line.strip()))]
        repeated = {b for b in bars if bars.count(b) > 1}
        assert not repeated, f"{seen['page']}: a progress bar shows {bars.count(next(iter(repeated)))} lines:\n{output['text'][:400]}"


def test_only_the_chapters_are_numbered(html_dir):
    """The sidebar numbers the eight chapter notebooks and nothing else (the results page was "9.")."""
    numbered = re.findall(r'<a class="reference internal" href="([^"]+)">(\d+)\. ', (html_dir / "book" / "intro.html").read_text())
    pages = [href.rsplit("/", 1)[-1].removesuffix(".html") for href, _ in numbered]
    assert pages == [Path(p).name for p in NOTEBOOK_PAGES], numbered
