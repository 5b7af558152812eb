"""The matplotlib script that draws a chart: `plotting_code(chart)`, every number a literal.

The script defines each panel's data (`labels`, `data`, `points`, `samples`, ... with a
suffix `_1`, `_2` per subplot), builds `fig` at the chart's fixed size, draws each panel
with `envs.charts.drawers` and sets margins that leave room for legends and rotated tick
labels. The same chart always gives the same script, byte for byte.
"""

from __future__ import annotations

from envs.charts.chart import DPI, FIGSIZE, Chart, Panel, axis_title, bin_label
from envs.charts.drawers import HEATMAP_SHARE, draw_panel, tick_style
from envs.numbers import format_number


def _literal(values: list[float], decimals: int) -> str:
    return "[" + ", ".join(format_number(v, decimals) for v in values) + "]"


def _data_lines(panel: Panel, s: str) -> list[str]:
    """The literal data of one panel (variable names end with `s`)."""
    d = panel.decimals
    lines = [f"# {panel.title}: {axis_title(panel.metric, panel.unit)}"]
    if panel.kind == "scatter":
        lines.append(f"# points: ({panel.label_noun}, {panel.x_metric}, {panel.metric}, group)")
        lines.append(f"points{s} = [")
        lines += [
            f"    ({name!r}, {format_number(x, d)}, {format_number(y, d)}, {g!r}),"
            for name, x, y, g in panel.points
        ]
        lines.append("]")
    elif panel.kind == "histogram":
        (samples,) = panel.samples.values()
        lines.append(f"samples{s} = {_literal(samples, d)}")
        lines.append(f"bins{s} = {_literal(panel.bins, 2)}")
    elif panel.kind == "box":
        lines.append(f"samples{s} = {{")
        lines += [f"    {name!r}: {_literal(values, d)}," for name, values in panel.samples.items()]
        lines.append("}")
    else:
        lines.append(f"labels{s} = {panel.labels!r}")
        lines.append(f"data{s} = {{")
        lines += [f"    {name!r}: {_literal(values, d)}," for name, values in panel.data.items()]
        lines.append("}")
        if panel.errors:
            lines.append(f"errors{s} = {{")
            lines += [f"    {name!r}: {_literal(values, d)}," for name, values in panel.errors.items()]
            lines.append("}")
    if panel.colors and panel.kind not in ("heatmap", "histogram"):
        lines.append(f"colors{s} = {panel.colors!r}")
    return lines


def _margins(chart: Chart) -> dict[str, float]:
    panel = chart.panels[0]
    if len(chart.panels) > 1:
        return {"left": 0.1, "right": 0.97, "top": 0.84, "bottom": 0.24, "wspace": 0.35}
    if panel.kind in ("pie", "donut"):
        return {"left": 0.05, "right": 0.95, "top": 0.88, "bottom": 0.05}
    if panel.kind == "radar":
        return {"left": 0.08, "right": 0.72, "top": 0.82, "bottom": 0.08}
    right = 0.97
    keys = list(panel.colors) if panel.kind == "scatter" else list(panel.data)
    if len(keys) > 1 and panel.kind not in ("heatmap",):
        right = 0.97 - (0.1 + 0.0125 * max(len(key) for key in keys))  # room for the legend outside
    left = 0.12
    if panel.kind in ("horizontal_bar", "heatmap"):
        names = panel.labels if panel.kind == "horizontal_bar" else list(panel.data)
        left = min(0.4, 0.06 + 0.013 * max(len(name) for name in names))
        if panel.kind == "heatmap":
            right = 0.98
    labels = [bin_label(a, b) for a, b in zip(panel.bins, panel.bins[1:])] if panel.bins else panel.labels
    width = (right - left) * (HEATMAP_SHARE if panel.kind == "heatmap" else 1.0)  # as `draw_panel` decides
    rotated = bool(tick_style(labels, width)) and panel.kind not in (
        "horizontal_bar",
        "scatter",
        "histogram",
    )
    bottom = 0.12 + (0.01 * max(len(label) for label in labels) if rotated else 0.0)
    return {"left": left, "right": right, "top": 0.9, "bottom": min(bottom, 0.3)}


def plotting_code(chart: Chart) -> str:
    """The matplotlib script that draws `chart` (it builds `fig`; the data are literals)."""
    lines = [
        "import matplotlib.pyplot as plt",
        "import numpy as np",
        "",
        'plt.rcParams.update({"font.size": 8})',
        "",
    ]
    multi = len(chart.panels) > 1
    suffixes = [f"_{i + 1}" if multi else "" for i in range(len(chart.panels))]
    for panel, s in zip(chart.panels, suffixes):
        lines += _data_lines(panel, s) + [""]
    size = f"figsize={FIGSIZE}, dpi={DPI}"
    margins = _margins(chart)
    if multi:
        lines.append(f"fig, axes = plt.subplots(1, {len(chart.panels)}, {size})")
        lines.append(f"fig.suptitle({chart.title!r}, fontsize=10)")
        width = (margins["right"] - margins["left"]) / len(chart.panels)
        for i, (panel, s) in enumerate(zip(chart.panels, suffixes)):
            lines += ["", f"ax = axes[{i}]", f"ax.set_title({panel.title!r}, fontsize=8)"]
            lines += draw_panel(panel, s, width, outside_legend=False)
    else:
        (panel,) = chart.panels
        if panel.kind == "radar":
            lines += [f"fig = plt.figure({size})", 'ax = fig.add_subplot(projection="polar")']
        else:
            lines.append(f"fig, ax = plt.subplots({size})")
        pad = ", pad=14" if panel.kind == "radar" else ""
        lines.append(f"ax.set_title({chart.title!r}, fontsize=10{pad})")
        lines += draw_panel(panel, "", margins["right"] - margins["left"], outside_legend=True)
    adjust = ", ".join(f"{key}={value:.3f}" for key, value in margins.items())
    lines += ["", f"fig.subplots_adjust({adjust})", ""]
    return "\n".join(lines)
