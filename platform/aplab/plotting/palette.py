"""The one palette of every figure: a fixed colour, marker and line style per loss, the same in each figure.

A loss keeps its look from one figure to the next (CE is always the same grey circle), and two losses
whose curves coincide (NFL+MAE and NCE+MAE) stay apart by marker and dash. Losses of the paper and its
successors have fixed entries; any other name gets one derived from its text alone (stable anywhere).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

#: matplotlib's tab10, then ten more dark colours (tab20's pale halves are hard to see on white); hex, so
#: picking one needs no matplotlib.
COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf", "#000075", "#800000", "#808000", "#469990", "#f032e6", "#000000", "#aa7700", "#5e3c99",
           "#1b7837", "#fa8072")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "*")
DASHES = ("-", "--", "-.", ":")

#: The fixed entries, in the paper's order (Table 2), then its ablations and the successors.
KNOWN = ("ce", "fl", "gce", "sce", "nce", "nfl", "ngce", "mae", "rce", "nce+rce", "nce+mae", "nfl+rce", "nfl+mae",
         "ngce+rce", "ngce+mae", "nfl+nce", "mae+rce", "nlnl", "anl-ce", "anl-fl", "anl-ce-er", "nce+agce",
         "nce+aul", "nce+ael", "agce", "aul", "ael", "anorm", "nnce", "nnfl")


@dataclass(frozen=True)
class Style:
    """How one loss is drawn in every figure."""

    colour: str
    marker: str
    dash: str

    def line(self) -> dict[str, str]:
        """Keyword arguments of ``Axes.plot`` / ``errorbar`` for this loss."""
        return {"color": self.colour, "marker": self.marker, "linestyle": self.dash}


def _entry(index: int) -> Style:
    # colours cycle fastest; marker and dash advance with different periods, so neighbours differ in all three
    return Style(COLOURS[index % len(COLOURS)], MARKERS[index % len(MARKERS)], DASHES[(index // 2) % len(DASHES)])


def style(method: str) -> Style:
    """The style of a loss, or of a report's method label (``"nce+rce (beta=100)"``: its loss's style)."""
    loss = method.split(" ", 1)[0].lower()
    if loss in KNOWN:
        return _entry(KNOWN.index(loss))
    digest = int(hashlib.sha256(loss.encode()).hexdigest(), 16)
    return _entry(len(KNOWN) + digest % (len(COLOURS) * len(MARKERS)))
