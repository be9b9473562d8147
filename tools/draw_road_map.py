"""Draw the road through the book, the figure of the landing page (book/intro.md).

    python -m tools.draw_road_map            # writes book/images/road_map.svg

Eight stations, one per chapter, from the joint distribution p(x, z) to a convolutional VAE,
grouped in the parts of the table of contents that hold chapters, each labelled with its caption
in ``_toc.yml``, and the goal: what the reader can do at the end. Colours are the book's palette
(vi_lib.plotting). The SVG is deterministic (no date, fixed ids), so re-running the script on an
unchanged list leaves the committed file unchanged. When chapters are added, renamed or moved,
edit STATIONS below and re-run; when parts are, re-run.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402

from vi_lib.plotting import PALETTE  # noqa: E402

from . import toc  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "book" / "images" / "road_map.svg"

#: (chapter, title, what it adds), in reading order.
STATIONS = [
    (1, "Latent-variable\nmodels", r"$p(x, z) = p(z)\,p(x \mid z)$"),
    (2, "Representing\ndistributions", "Gaussians,\ncounting parameters"),
    (3, "Maximum\nlikelihood", "max log p(x)\n= min KL"),
    (4, "Naive\nMonte Carlo", "average p(x | z) over\nthe prior: the curse\nof dimensionality"),
    (5, "Importance\nsampling", "sample where it\nmatters, reweight"),
    (6, "A guide for the\nlatent space", r"an encoder $q(z \mid x)$" + "\nguides the samples"),
    (7, "The evidence\nlower bound", "Jensen, the ELBO,\nreparameterisation,\nIWAE, a first VAE"),
    (8, "Convolutional\nVAE on MNIST", "a real model,\njudged by its test\nlog-likelihood"),
]



def toc_parts() -> list[tuple[str, int, int, int]]:
    """The parts of ``_toc.yml`` that hold chapters: (caption, first chapter, last chapter, colour index).

    A chapter is a notebook (``notebooks/NN_name``, chapter NN); colours follow PALETTE in part order.
    """
    found = []
    for caption, pages in toc.parts():
        chapters = [int(Path(page).name[:2]) for page in pages if page.startswith("notebooks/")]
        if chapters:
            found.append((caption, min(chapters), max(chapters), len(found)))
    drawn = sorted(chapter for chapter, _, _ in STATIONS)
    listed = sorted(c for _, first, last, _ in found for c in range(first, last + 1))
    if drawn != listed:
        raise ValueError(f"the chapters of _toc.yml are {listed} but STATIONS draws {drawn}: edit STATIONS")
    return found

GOAL = (
    "At the end you can:\n"
    "derive the ELBO and the importance-weighted bound,\n"
    "implement and train a VAE in PyTorch,\n"
    "and measure it honestly: log p(x) on held-out data."
)

# Layout: stations 1-4 left to right on the top row, 5-8 right to left on the bottom row (the road
# turns at the right edge), the goal at the end of the road on the bottom left.
COLUMN_X = [1.4, 3.8, 6.2, 8.6]
ROW_Y = [3.55, 1.05]
RADIUS = 0.36


def _position(chapter: int) -> tuple[float, float]:
    i = chapter - 1
    if i < 4:
        return COLUMN_X[i], ROW_Y[0]
    return COLUMN_X[3 - (i - 4)], ROW_Y[1]


def draw() -> plt.Figure:
    plt.rcParams.update({"svg.hashsalt": "vi-book-road-map", "font.family": "DejaVu Sans"})
    fig, ax = plt.subplots(figsize=(8.0, 5.0))
    ax.set_xlim(0, 10)
    ax.set_ylim(-1.65, 5.0)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(r"The road through the book: from $p(x, z)$ to a convolutional VAE", fontsize=13,
                 fontweight="bold", pad=6)

    # The road: one grey band through all stations, turning at the right edge.
    points = [_position(c) for c, _, _ in STATIONS]
    road = dict(color="#D0D0D0", linewidth=14, solid_capstyle="round", zorder=0)
    ax.plot([p[0] for p in points[:4]], [p[1] for p in points[:4]], **road)
    ax.plot([p[0] for p in points[4:]], [p[1] for p in points[4:]], **road)
    ax.add_patch(FancyArrowPatch(points[3], points[4], connectionstyle="arc3,rad=-0.75",
                                 arrowstyle="-", color="#D0D0D0", linewidth=14, zorder=0,
                                 capstyle="round"))
    # The last stretch, to the goal.
    ax.add_patch(FancyArrowPatch((points[7][0] - RADIUS, points[7][1]), (0.62, -0.42),
                                 connectionstyle="arc3,rad=0.45",
                                 arrowstyle="-|>,head_length=0.5,head_width=0.35", mutation_scale=14,
                                 color="#909090", linewidth=2.5, zorder=0))

    # Part labels above (top row) or below (bottom row) their stations.
    parts = toc_parts()
    for label, first, last, colour in parts:
        xs = [_position(c)[0] for c in range(first, last + 1)]
        y = _position(first)[1]
        text_y = y + 1.2 if y == ROW_Y[0] else y + 1.18
        ax.text((min(xs) + max(xs)) / 2, text_y, label, ha="center", va="center", fontsize=10.5,
                fontstyle="italic", color=PALETTE[colour], fontweight="bold")
        if len(xs) > 1:
            ax.plot([min(xs) - 0.5, max(xs) + 0.5], [text_y - 0.2] * 2, color=PALETTE[colour],
                    linewidth=1.5)

    for chapter, title, detail in STATIONS:
        x, y = _position(chapter)
        colour = PALETTE[next(c for _, first, last, c in parts if first <= chapter <= last)]
        ax.add_patch(plt.Circle((x, y), RADIUS, facecolor=colour, edgecolor="white", linewidth=2,
                                zorder=2))
        ax.text(x, y, str(chapter), ha="center", va="center", color="white", fontsize=14,
                fontweight="bold", zorder=3)
        ax.text(x, y + RADIUS + 0.12, title, ha="center", va="bottom", fontsize=10,
                fontweight="bold", linespacing=1.05)
        ax.text(x, y - RADIUS - 0.1, detail, ha="center", va="top", fontsize=8.6,
                color="#333333", linespacing=1.15)

    ax.add_patch(FancyBboxPatch((0.7, -1.45), 6.2, 1.05, boxstyle="round,pad=0.08",
                                facecolor="white", edgecolor=PALETTE[7], linewidth=1.2, zorder=1))
    ax.text(0.85, -0.91, GOAL, ha="left", va="center", fontsize=9, linespacing=1.25, zorder=2)
    fig.subplots_adjust(left=0.01, right=0.99, top=0.94, bottom=0.01)
    return fig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    fig = draw()
    fig.savefig(args.output, format="svg", metadata={"Date": None})
    plt.close(fig)
    print(f"wrote {args.output.relative_to(ROOT) if args.output.is_relative_to(ROOT) else args.output}"
          f" ({args.output.stat().st_size / 1e3:.0f} kB)")


if __name__ == "__main__":
    main()
