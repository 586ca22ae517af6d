"""The paper's published numbers (Tables 2-5 of Ma et al., ICML 2020), shipped with the package.

Reports put each of our cells beside the paper's: same dataset, noise kind and rate, and loss.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .. import noise as noise_module
from ..errors import ConfigError

if TYPE_CHECKING:  # pandas loads when a number is looked up: pipelines import TABLE_ORDER to validate files
    import pandas as pd

PAPER_CSV = Path(__file__).with_name("paper_results.csv")
#: The paper's row order of methods (Tables 2-4); other losses follow in the order they appear.
PAPER_ROW_ORDER = ("ce", "fl", "gce", "nlnl", "sce", "nfl+mae", "nfl+rce", "nce+mae", "nce+rce", "ngce+mae", "ngce+rce")
#: Noise kinds the paper reports (real = WebVision's own noise, compared with our runs without added noise).
PAPER_KINDS = ("clean", "symmetric", "asymmetric")
TABLE_ORDER = ("table2", "table3", "table4", "table5")


@dataclass(frozen=True)
class PaperCell:
    """One published number: the table it is in, mean and sample std over the paper's seeds (in %)."""

    table: str
    mean: float
    std: float | None


@functools.cache
def paper_results() -> pd.DataFrame:
    """Every number of the paper's Tables 2-5 (columns table, dataset, noise_type, noise_rate, loss, test_acc_*)."""
    import pandas as pd

    return pd.read_csv(PAPER_CSV)


def noise_key(spec: str) -> tuple[str, float]:
    """A noise spec as a table column: ("clean", 0.0), ("symmetric", 0.4), ("asymmetric:<map>", 0.2), ..."""
    try:
        parsed = noise_module.parse_spec(spec, noise_module.available())
    except ConfigError:
        return (str(spec), math.nan)
    if parsed.label_set is not None:  # human labels: one column per label set, its rate is the file's
        return (str(parsed), math.nan)
    if parsed.kind == "none" or parsed.rate == 0.0:
        return ("clean", 0.0)
    kind = parsed.kind + (f":{parsed.map_name}" if parsed.map_name else "")
    return (kind, float(parsed.rate))


def lookup(dataset: str, kind: str, rate: float, loss: str, prefer: str | None = None) -> PaperCell | None:
    """The paper's number for this cell, from table ``prefer`` when it has one, else the first table that does."""
    if kind not in PAPER_KINDS:
        return None
    table = paper_results()
    rows = table[(table["dataset"] == dataset) & (table["loss"] == loss)]
    if kind == "clean":
        matched = rows[rows["noise_type"] == "clean"]
        if matched.empty:
            matched = rows[rows["noise_type"] == "real"]  # WebVision: its own noise, none added
    else:
        matched = rows[(rows["noise_type"] == kind) & ((rows["noise_rate"] - rate).abs() < 1e-9)]
    if matched.empty:
        return None
    order = {name: i for i, name in enumerate(TABLE_ORDER)}
    ranked = sorted(matched.itertuples(index=False), key=lambda r: (r.table != prefer, order.get(r.table, 99)))
    best = ranked[0]
    std = None if math.isnan(best.test_acc_std) else float(best.test_acc_std)
    return PaperCell(str(best.table), float(best.test_acc_mean), std)
