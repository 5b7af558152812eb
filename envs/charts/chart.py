"""What a chart is: its types, `Panel` (one axes and the data it draws) and `Chart`.

Also the names and statistics a chart shows that the generator, the plotting code, the
table and the questions must agree on: bin labels, plurals, axis titles, matplotlib's box
statistics and histogram counts. See docs/architecture.md for where charts sit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from envs.numbers import format_number

CHART_TYPES: dict[str, str] = {
    "grouped_bar": "bar",
    "stacked_bar": "bar",
    "horizontal_bar": "bar",
    "percentage_bar": "bar",
    "line": "line",
    "annotated_line": "line",
    "errorbar_line": "line",
    "pie": "pie",
    "donut": "pie",
    "scatter": "scatter",
    "stacked_area": "area",
    "histogram": "histogram",
    "box": "box",
    "heatmap": "heatmap",
    "radar": "radar",
    "bar_line": "overlay",
    "area_line": "overlay",
    "subplots": "subplots",
}
MINOR_TYPES = tuple(CHART_TYPES)
SPLIT_IDS = {"train": 0, "test": 1}
FIGSIZE = (4.8, 3.6)
DPI = 100
IMAGE_SHAPE = (360, 480)  # (height, width) of every rendered chart
PALETTE = {
    "tab:blue": "blue",
    "tab:orange": "orange",
    "tab:green": "green",
    "tab:red": "red",
    "tab:purple": "purple",
    "tab:brown": "brown",
    "tab:pink": "pink",
    "tab:gray": "gray",
}
CMAPS = ("YlGnBu", "OrRd", "Blues", "Greens", "PuRd")


@dataclass
class Panel:
    """One axes of a chart and the data it draws.

    `kind` is the minor type of the axes. Table kinds (bars, lines, areas, pie, heatmap,
    radar, overlays) use `labels` (x categories, slices, spokes, heatmap columns) and
    `data` (series name -> one value per label). Scatter uses `points` (name, x, y, group);
    histogram uses `samples` (one entry) and `bins` (edges); box uses `samples` (group ->
    observations). `colors` maps what a legend names (series, slices, groups) to a colour.
    """

    kind: str
    title: str
    metric: str
    unit: str
    label_noun: str
    series_noun: str = "series"
    labels: list[str] = field(default_factory=list)
    data: dict[str, list[float]] = field(default_factory=dict)
    ordered: bool = False
    decimals: int = 1
    colors: dict[str, str] = field(default_factory=dict)
    errors: dict[str, list[float]] = field(default_factory=dict)
    bars: list[str] = field(default_factory=list)  # overlay: series drawn as bars (or area); others as lines
    points: list[tuple[str, float, float, str]] = field(default_factory=list)
    x_metric: str = ""
    x_unit: str = ""
    samples: dict[str, list[float]] = field(default_factory=dict)
    bins: list[float] = field(default_factory=list)
    value_labels: bool = False
    cmap: str = "YlGnBu"


@dataclass
class Chart:
    """A synthesised chart: its types, topic, title and panels (one, or two for subplots)."""

    minor: str
    major: str
    topic: str
    title: str
    panels: list[Panel]
    split: str = "train"
    index: int = 0
    seed: int = 0


# ---- what a chart shows ---------------------------------------------------------------
def axis_title(metric: str, unit: str) -> str:
    return f"{metric} ({unit})" if unit else metric


def plural(noun: str) -> str:
    if noun.endswith(("species", "series")):
        return noun
    if noun.endswith("y") and noun[-2:-1] not in "aeiou":
        return noun[:-1] + "ies"
    if noun.endswith(("s", "x", "ch", "sh")):
        return noun + "es"
    return noun + "s"


def bin_label(low: float, high: float) -> str:
    return f"{format_number(low, 2)}-{format_number(high, 2)}"


def box_stats(samples: list[float]) -> dict[str, Any]:
    """Matplotlib's box statistics (linear quartiles, whiskers at 1.5 IQR) of `samples`."""
    x = np.asarray(samples, dtype=float)
    q1, median, q3 = np.percentile(x, [25, 50, 75])
    iqr = q3 - q1
    low_whisker = float(x[x >= q1 - 1.5 * iqr].min())
    high_whisker = float(x[x <= q3 + 1.5 * iqr].max())
    outliers = sorted(float(v) for v in x if v < low_whisker or v > high_whisker)
    return {
        "q1": float(q1),
        "median": float(median),
        "q3": float(q3),
        "iqr": float(iqr),
        "low": low_whisker,
        "high": high_whisker,
        "outliers": outliers,
    }


def histogram_counts(samples: list[float], bins: list[float]) -> list[int]:
    counts, _ = np.histogram(np.asarray(samples, dtype=float), bins=np.asarray(bins, dtype=float))
    return [int(c) for c in counts]
