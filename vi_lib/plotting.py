"""Every chapter: the book's figure style, one seaborn theme and one colour-blind-safe palette.

Every chapter starts with :func:`set_theme`, so that all figures share fonts, sizes and colours.
The palette is Okabe & Ito's (2008), designed to stay distinguishable under the common forms of
colour-vision deficiency; seaborn ships it as ``"colorblind"`` in a slightly different order, we fix
the order here so that a colour means the same thing in every chapter (e.g. biome 0 is always blue).
"""

from __future__ import annotations

import matplotlib as mpl
import seaborn as sns

from vi_lib import _validation

__all__ = ["PALETTE", "EXACT_COLOR", "SEQUENTIAL_CMAP", "set_theme", "palette"]

#: Okabe-Ito colours, in the order the book uses them (black is kept last, for reference lines).
PALETTE = (
    "#0072B2",  # blue
    "#E69F00",  # orange
    "#009E73",  # bluish green
    "#CC79A7",  # reddish purple
    "#56B4E9",  # sky blue
    "#D55E00",  # vermillion
    "#F0E442",  # yellow
    "#000000",  # black
)

#: Colour for exact answers and reference lines drawn over estimates.
EXACT_COLOR = "#000000"

#: Sequential colour map for densities and heat maps (perceptually uniform, colour-blind safe).
SEQUENTIAL_CMAP = "viridis"


def set_theme(dpi: int = 100) -> None:
    """Apply the book's theme to matplotlib and seaborn (call once at the top of a chapter).

    ``dpi`` sets the resolution of figures as they appear in the notebook and on the site: 100
    keeps pages light (each figure well under 200 kB).
    """
    sns.set_theme(context="notebook", style="whitegrid", palette=list(PALETTE))
    mpl.rcParams.update(
        {
            "figure.dpi": dpi,
            "savefig.dpi": dpi,
            "figure.figsize": (6.4, 4.0),
            "axes.titlesize": "medium",
            "axes.titleweight": "bold",
            "image.cmap": SEQUENTIAL_CMAP,
            "legend.frameon": False,
        }
    )


def palette(n: int) -> list[str]:
    """The first ``n`` colours of the book's palette (at most ``len(PALETTE)``)."""
    n = _validation.integer("n", n, hint="The number of categories to colour.")
    if n > len(PALETTE):
        raise ValueError(
            f"palette(n) needs an int n between 1 and {len(PALETTE)}, got {n!r}; "
            f"for more categories, use a sequential map ({SEQUENTIAL_CMAP!r}) instead."
        )
    return list(PALETTE[:n])
