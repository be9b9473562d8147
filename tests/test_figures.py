"""Quality of the book's figures and cross-references, checked on the committed notebooks (fast).

What a reader needs from every figure, and what the browser test (tests/site) cannot see from the
rendered page: the figure cell carries a caption, a label and alt text in its ``mystnb`` metadata;
its axes are labelled; it uses the book's colour-blind-safe palette; its image is light. Some of
these are judged from the cell's source, by the heuristics documented at each test.
Cross-references use labels ({numref}, {eq}, {doc}), never hard-coded numbers.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path

import nbformat
import pytest

from tools import exercises
from vi_lib import plotting

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
PAGES = sorted((ROOT / "book").glob("*.md"))

#: Largest image a figure may have: pages stay light (plotting.set_theme's dpi keeps them ~100 kB).
MAX_IMAGE_BYTES = 500_000


def _figure_cells():
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            images = [
                base64.b64decode(o.data[mime]) if mime == "image/png" else o.data[mime].encode()
                for o in cell.outputs
                if "data" in o
                for mime in o.data
                if mime in ("image/png", "image/jpeg", "image/svg+xml")
            ]
            if images:
                yield pytest.param(cell, images, id=f"{path.stem}-cell{index}")


FIGURE_CELLS = list(_figure_cells())


def test_the_book_has_figures():
    assert FIGURE_CELLS, "no figure cells found in notebooks/"


@pytest.mark.parametrize("cell, images", FIGURE_CELLS)
def test_figure_has_caption_label_and_alt_text(cell, images):
    mystnb = cell.metadata.get("mystnb", {})
    figure, image = mystnb.get("figure", {}), mystnb.get("image", {})
    assert str(figure.get("caption", "")).strip(), "the figure cell has no mystnb.figure.caption metadata"
    assert str(figure.get("name", "")).startswith("fig-"), (
        "the figure cell needs a label in mystnb.figure.name, starting with 'fig-'"
    )
    alt = str(image.get("alt", "")).strip()
    assert alt, "the figure cell has no mystnb.image.alt metadata (alt text for readers who cannot see it)"
    assert alt != figure["caption"].strip(), "the alt text should describe the image, not repeat the caption"


@pytest.mark.parametrize("cell, images", FIGURE_CELLS)
def test_one_light_figure_per_cell(cell, images):
    assert len(images) == 1, f"the cell shows {len(images)} images: one figure per cell"
    assert len(images[0]) <= MAX_IMAGE_BYTES, (
        f"the figure's image is {len(images[0]) / 1e3:.0f} kB, more than {MAX_IMAGE_BYTES / 1e3:.0f} kB: "
        "keep set_theme's dpi, draw fewer points (or rasterize=True for big scatters)"
    )


# A figure's axes are labelled when its cell's source sets both an x and a y label (ax.set_xlabel,
# plt.xlabel, ax.set(xlabel=...), fig.supxlabel, ...), or draws with a seaborn figure-level
# function that labels axes from the data frame's columns (pairplot, jointplot, relplot, ...), or
# turns its axes off (an image grid, e.g. MNIST digits, has no axes to label). Units cannot be
# checked from the source: reviewers check them on the screenshots of tests/site.
_XLABEL = re.compile(r"set_xlabel\(|\bxlabel\s*[(=]|supxlabel\(|set_axis_labels\(")
_YLABEL = re.compile(r"set_ylabel\(|\bylabel\s*[(=]|supylabel\(|set_axis_labels\(")
_SELF_LABELLING = re.compile(r"\b(pairplot|jointplot|relplot|displot|catplot|lmplot|PairGrid|JointGrid)\(")
# Panels of images (digits, samples) have no axes with units: axes turned off, or ticks removed.
_AXES_OFF = re.compile(
    r"""axis\(\s*["']off["']\s*\)|set_axis_off\(\)|axis\s*=\s*["']off["']|set_xticks\(\[\]\)|xticks=\[\]"""
)


@pytest.mark.parametrize("cell, images", FIGURE_CELLS)
def test_figure_axes_are_labelled(cell, images):
    source = cell.source
    labelled = (_XLABEL.search(source) and _YLABEL.search(source)) or _SELF_LABELLING.search(source)
    assert labelled or _AXES_OFF.search(source), (
        "the figure cell sets no axis labels: label both axes, with units where there are units "
        "(ax.set_xlabel / ax.set_ylabel or ax.set(xlabel=..., ylabel=...))"
    )


# Colours come from vi_lib.plotting (PALETTE, palette(n), EXACT_COLOR, SEQUENTIAL_CMAP) or from the
# theme's colour cycle ("C0", "C1", ... which set_theme makes the book's palette). A literal colour
# in a figure cell must be one of the palette's hex codes or a neutral grey; a literal colour map
# must be the sequential one, or a grey scale for images.
_COLOUR_ARG = re.compile(
    r"""\b(?:color|colors|c|facecolor|edgecolor|fc|ec|markerfacecolor|markeredgecolor)\s*=\s*["']([^"']+)["']"""
)
_CMAP_ARG = re.compile(r"""\b(?:cmap|palette)\s*=\s*["']([^"']+)["']""")
_NEUTRAL = re.compile(
    r"^(k|w|black|white|(light|dark|dim)?gr[ae]y|silver|gainsboro|whitesmoke|none|0?\.\d+|1(\.0)?|C\d)$", re.I
)
_PALETTE = {c.lower() for c in plotting.PALETTE} | {plotting.EXACT_COLOR.lower()}
_CMAPS = {plotting.SEQUENTIAL_CMAP, "gray", "grey", "Greys", "binary", "gray_r", "grey_r", "Greys_r", "binary_r"}


@pytest.mark.parametrize("cell, images", FIGURE_CELLS)
def test_figure_uses_the_book_palette(cell, images):
    foreign = [c for c in _COLOUR_ARG.findall(cell.source) if c.lower() not in _PALETTE and not _NEUTRAL.match(c)]
    foreign += [m for m in _CMAP_ARG.findall(cell.source) if m not in _CMAPS]
    assert not foreign, (
        f"colours outside the book's colour-blind-safe palette: {foreign}; use vi_lib.plotting "
        "(PALETTE, palette(n), EXACT_COLOR, SEQUENTIAL_CMAP)"
    )


# Cross-references. Numbers change whenever a chapter, figure or exercise is added or moved; labels
# do not. Flag "Figure 3.2", "Fig. 4", "Exercise 6.1", "eq. (4.2)", "Equation 7", "Table 2",
# "Section 3.1" in prose (code and math removed first). Chapters are referred to with {doc}.
_HARD_CODED = re.compile(
    r"\b(Fig(?:ure)?s?\.?|Exercises?|Eqs?\.|Equations?|Tables?|Sections?|§)\s*\(?\d+(?:\.\d+)*\)?",
    re.I,
)
_NOT_PROSE = re.compile(
    # a citation together with the table or figure of the cited work it points at is not a
    # cross-reference of ours ("{cite:t}`burda2015importance`, Table 1")
    r"\{cite(?::[a-z]+)?\}`[^`]*`(?:,\s*(?:Table|Figure|Fig\.|Section)\s*\d+)?|"
    r"```.*?```|~~~.*?~~~|\$\$.*?\$\$|\$[^$\n]+\$|`[^`\n]+`|\{[a-z:-]+\}`[^`]*`|<!--.*?-->|\(eq-[\w-]+\)",
    re.S,
)


def _markdown_sources():
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        text = exercises.without_headings("\n\n".join(c.source for c in nb.cells if c.cell_type == "markdown"))
        text += "\n\n" + "\n\n".join(
            str(c.metadata.get("mystnb", {}).get("figure", {}).get("caption", "")) for c in nb.cells
        )
        yield pytest.param(text, id=path.stem)
    for path in PAGES:
        yield pytest.param(path.read_text(), id=f"book-{path.stem}")


@pytest.mark.parametrize("text", list(_markdown_sources()))
def test_cross_references_use_labels(text):
    prose = _NOT_PROSE.sub(" ", text)
    found = sorted({m.group(0) for m in _HARD_CODED.finditer(prose)})
    assert not found, (
        f"hard-coded cross-references {found}: refer by label instead, {{numref}}`fig-...`, "
        "{numref}`ex-...`, {eq}`eq-...`, {doc}`...` (numbers change when chapters are renumbered)"
    )


def test_hard_coded_reference_detector():
    """The detector above flags what it should and leaves labels, code and math alone."""
    flagged = ["as Figure 3.2 shows", "see Fig. 4", "in Exercise 6.1", "by eq. (4.2)", "Equation 7", "table 2"]
    fine = [
        "as {numref}`fig-ocean-shuffled` shows",
        "by {eq}`eq-elbo`",
        "`Figure 3` in code",
        "$x^{Figure 2}$",
        "an exercise for 2 people",
        "three figures",
    ]
    for text in flagged:
        assert _HARD_CODED.search(_NOT_PROSE.sub(" ", text)), text
    for text in fine:
        assert not _HARD_CODED.search(_NOT_PROSE.sub(" ", text)), text


def test_palette_heuristic():
    ok = 'ax.plot(x, y, color=plotting.PALETTE[0]); ax.axhline(0, color="grey"); ax.scatter(x, y, c="#0072B2")'
    bad = 'ax.plot(x, y, color="red"); ax.imshow(z, cmap="jet")'
    assert not [c for c in _COLOUR_ARG.findall(ok) if c.lower() not in _PALETTE and not _NEUTRAL.match(c)]
    assert [c for c in _COLOUR_ARG.findall(bad) if c.lower() not in _PALETTE and not _NEUTRAL.match(c)] == ["red"]
    assert [m for m in _CMAP_ARG.findall(bad) if m not in _CMAPS] == ["jet"]


def test_road_map_is_up_to_date(tmp_path):
    """book/images/road_map.svg is what tools/draw_road_map.py draws (re-run it after editing it)."""
    import subprocess
    import sys

    out = tmp_path / "road_map.svg"
    subprocess.run([sys.executable, "-m", "tools.draw_road_map", "--output", str(out)],
                   check=True, capture_output=True, cwd=ROOT)
    assert out.read_bytes() == (ROOT / "book" / "images" / "road_map.svg").read_bytes(), (
        "book/images/road_map.svg is stale: run `python -m tools.draw_road_map`"
    )


def test_road_map_labels_the_parts_of_the_table_of_contents(monkeypatch):
    """The road map's part labels are the captions of the parts of _toc.yml that hold chapters,
    and it refuses to draw when its stations are not the chapters of _toc.yml."""
    from tools import draw_road_map, toc

    captions = [caption for caption, pages in toc.parts() if any(p.startswith("notebooks/") for p in pages)]
    assert [label for label, _, _, _ in draw_road_map.toc_parts()] == captions
    monkeypatch.setattr(draw_road_map, "STATIONS", draw_road_map.STATIONS[:-1])
    with pytest.raises(ValueError, match="edit STATIONS"):
        draw_road_map.toc_parts()


# ---------------------------------------------------------------------------------------
# The figure cells of chapters 5-7, found by their source: a figure cell whose output is missing
# is checked too: it carries a caption, a ``fig-`` label and alt text, and shows one figure.
# ---------------------------------------------------------------------------------------

FIGURE_CHAPTERS = {int(path.name[:2]): path for path in sorted((ROOT / "notebooks").glob("0[5-7]_*.ipynb"))}


@pytest.mark.parametrize("chapter", sorted(FIGURE_CHAPTERS))
def test_chapter_figures_have_caption_name_and_alt_text(chapter):
    nb = nbformat.read(FIGURE_CHAPTERS[chapter], as_version=4)
    figures = [c for c in nb.cells if c.cell_type == "code" and "plt.show()" in c.source]
    assert figures
    for cell in figures:
        meta = cell.metadata.get("mystnb", {})
        assert meta.get("figure", {}).get("caption") and meta["figure"].get("name", "").startswith("fig-")
        assert meta.get("image", {}).get("alt")
        assert cell.source.count("plt.show()") == 1
