"""The code that draws one panel on the axes `ax`, one drawer per panel kind (`DRAWERS`).

A drawer gets the panel, the suffix `s` of its data variables (`labels{s}`, `data{s}`, ...,
written by `envs.charts.plotting`) and the keyword arguments that rotate its x tick labels
when they do not fit; it returns the lines of code. `draw_panel` adds the legend and grid
that every kind shares.
"""

from __future__ import annotations

from collections.abc import Callable

from envs.charts.chart import Panel, axis_title, plural

HEATMAP_SHARE = 0.65  # of the plot width left to a heatmap beside its colorbar

Drawer = Callable[[Panel, str, str], list[str]]


def tick_style(labels: list[str], width: float) -> str:
    """Rotate x tick labels when they would not fit side by side in `width` (figure fraction)."""
    if sum(len(label) + 2 for label in labels) * 0.0125 > width:
        return ', rotation=30, ha="right"'
    return ""


def _value_format(p: Panel) -> str:
    return f'"%.{p.decimals}f"'


def _y_title(p: Panel) -> str:
    return repr(axis_title(p.metric, p.unit))


def _side_by_side_bars(p: Panel, s: str, ticks: str) -> list[str]:
    bar, pos = ("barh", "y") if p.kind == "horizontal_bar" else ("bar", "x")
    out = [
        f"{pos} = np.arange(len(labels{s}))",
        f"size = 0.8 / len(data{s})",
        f"for i, (name, values) in enumerate(data{s}.items()):",
        f"    offset = (i - (len(data{s}) - 1) / 2) * size",
        f"    bars = ax.{bar}({pos} + offset, values, size, label=name, color=colors{s}[name])",
    ]
    if p.value_labels:
        out.append(f"    ax.bar_label(bars, fmt={_value_format(p)}, fontsize=6, padding=1)")
    if p.kind == "horizontal_bar":
        return [*out, f"ax.set_yticks(y, labels{s})", "ax.invert_yaxis()", f"ax.set_xlabel({_y_title(p)})"]
    return [*out, f"ax.set_xticks(x, labels{s}{ticks})", f"ax.set_ylabel({_y_title(p)})"]


def _stacked_bars(p: Panel, s: str, ticks: str) -> list[str]:
    out = [
        f"x = np.arange(len(labels{s}))",
        f"bottom = np.zeros(len(labels{s}))",
        f"for name, values in data{s}.items():",
        f"    bars = ax.bar(x, values, 0.6, bottom=bottom, label=name, color=colors{s}[name])",
    ]
    if p.value_labels:
        out.append(f'    ax.bar_label(bars, fmt={_value_format(p)}, label_type="center", fontsize=6)')
    return [
        *out,
        "    bottom += np.array(values)",
        f"ax.set_xticks(x, labels{s}{ticks})",
        f"ax.set_ylabel({_y_title(p)})",
    ]


def _percentage_bars(p: Panel, s: str, ticks: str) -> list[str]:
    return [
        f"x = np.arange(len(labels{s}))",
        f"values = np.array(list(data{s}.values()), dtype=float)",
        "shares = values / values.sum(axis=0) * 100",
        f"bottom = np.zeros(len(labels{s}))",
        f"for name, share in zip(data{s}, shares):",
        f"    bars = ax.bar(x, share, 0.6, bottom=bottom, label=name, color=colors{s}[name])",
        '    ax.bar_label(bars, fmt="%.1f%%", label_type="center", fontsize=6)',
        "    bottom += share",
        f"ax.set_xticks(x, labels{s}{ticks})",
        "ax.set_ylim(0, 100)",
        f"ax.set_ylabel({'Share of ' + p.metric.lower() + ' (%)'!r})",
    ]


def _line_annotations(p: Panel, s: str) -> list[str]:
    """Inside the loop over series: the peak of each of several series, or every value of one."""
    d = p.decimals
    if len(p.data) > 1:
        return [
            "    peak = int(np.argmax(values))",
            f'    ax.annotate(f"peak {{values[peak]:.{d}f}}", (x[peak], values[peak]), '
            'textcoords="offset points", xytext=(0, 6), ha="center", fontsize=6, color=colors'
            f"{s}[name])",
        ]
    return [
        "    for xi, value in zip(x, values):",
        f'        ax.annotate(f"{{value:.{d}f}}", (xi, value), textcoords="offset points", '
        'xytext=(0, 5), ha="center", fontsize=6)',
    ]


def _lines(p: Panel, s: str, ticks: str) -> list[str]:
    out = [f"x = np.arange(len(labels{s}))", f"for name, values in data{s}.items():"]
    if p.kind == "errorbar_line":
        out.append(
            f'    ax.errorbar(x, values, yerr=errors{s}[name], marker="o", markersize=3, capsize=3, '
            f"label=name, color=colors{s}[name])"
        )
    else:
        out.append(f'    ax.plot(x, values, marker="o", markersize=3, label=name, color=colors{s}[name])')
    if p.kind == "annotated_line":
        out += _line_annotations(p, s)
    out += [f"ax.set_xticks(x, labels{s}{ticks})", f"ax.set_ylabel({_y_title(p)})"]
    if p.kind == "annotated_line":
        out.append("ax.margins(x=0.08, y=0.15)")
    return out


def _stacked_area(p: Panel, s: str, ticks: str) -> list[str]:
    return [
        f"x = np.arange(len(labels{s}))",
        f"ax.stackplot(x, *data{s}.values(), labels=list(data{s}), "
        f"colors=[colors{s}[name] for name in data{s}], alpha=0.85)",
        f"ax.set_xticks(x, labels{s}{ticks})",
        f"ax.set_xlim(0, len(labels{s}) - 1)",
        f"ax.set_ylabel({_y_title(p)})",
    ]


def _overlay(p: Panel, s: str, ticks: str) -> list[str]:
    """Bars (or areas) under lines: `p.bars` names the series drawn under."""
    out = [f"x = np.arange(len(labels{s}))", f"under = {p.bars!r}"]
    if p.kind == "bar_line":
        out += [
            "size = 0.8 / len(under)",
            "for i, name in enumerate(under):",
            "    offset = (i - (len(under) - 1) / 2) * size",
            f"    bars = ax.bar(x + offset, data{s}[name], size, label=name, color=colors{s}[name])",
        ]
        if p.value_labels:
            out.append(f"    ax.bar_label(bars, fmt={_value_format(p)}, fontsize=6, padding=1)")
    else:
        out += [
            "for name in under:",
            f"    ax.fill_between(x, data{s}[name], alpha=0.4, label=name, color=colors{s}[name])",
        ]
    return [
        *out,
        f"for name, values in data{s}.items():",
        "    if name not in under:",
        f'        ax.plot(x, values, marker="o", linewidth=2, label=name, color=colors{s}[name])',
        f"ax.set_xticks(x, labels{s}{ticks})",
        f"ax.set_ylabel({_y_title(p)})",
    ]


def _pie(p: Panel, s: str, ticks: str) -> list[str]:
    (whole,) = p.data
    ring = ", wedgeprops={'width': 0.45}, pctdistance=0.78" if p.kind == "donut" else ""
    out = [
        f"ax.pie(data{s}[{whole!r}], labels=labels{s}, colors=[colors{s}[label] for label in labels{s}], "
        f'autopct="%1.1f%%", startangle=90, counterclock=False, textprops={{"fontsize": 7}}{ring})',
        'ax.axis("equal")',
    ]
    if p.kind == "donut":
        out.append(
            f'ax.text(0, 0, f"Total\\n{{sum(data{s}[{whole!r}]):.{p.decimals}f}} {p.unit}", '
            'ha="center", va="center", fontsize=8)'
        )
    return out


def _heatmap(p: Panel, s: str, ticks: str) -> list[str]:
    return [
        f"matrix = np.array(list(data{s}.values()), dtype=float)",
        f'image = ax.imshow(matrix, cmap="{p.cmap}", aspect="auto")',
        f"ax.set_xticks(range(len(labels{s})), labels{s}{ticks})",
        f"ax.set_yticks(range(len(data{s})), list(data{s}))",
        "dark = matrix.min() + 0.6 * (matrix.max() - matrix.min())",
        "for i, row in enumerate(matrix):",
        "    for j, value in enumerate(row):",
        f'        ax.text(j, i, f"{{value:.{p.decimals}f}}", ha="center", va="center", fontsize=6, '
        'color="white" if value > dark else "black")',
        f"fig.colorbar(image, ax=ax, label={_y_title(p)})",
    ]


def _radar(p: Panel, s: str, ticks: str) -> list[str]:
    return [
        f"angles = np.linspace(0, 2 * np.pi, len(labels{s}), endpoint=False).tolist()",
        f"for name, values in data{s}.items():",
        "    ax.plot(angles + angles[:1], values + values[:1], linewidth=1.5, label=name, "
        f"color=colors{s}[name])",
        f"    ax.fill(angles + angles[:1], values + values[:1], alpha=0.12, color=colors{s}[name])",
        "ax.set_theta_offset(np.pi / 2)",
        "ax.set_theta_direction(-1)",
        f"ax.set_xticks(angles, labels{s})",
        'ax.tick_params(axis="y", labelsize=6)',
    ]


def _scatter(p: Panel, s: str, ticks: str) -> list[str]:
    return [
        f"for group in colors{s}:",
        f"    xs = [p[1] for p in points{s} if p[3] == group]",
        f"    ys = [p[2] for p in points{s} if p[3] == group]",
        f"    ax.scatter(xs, ys, s=25, label=group, color=colors{s}[group])",
        f"for name, xv, yv, _ in points{s}:",
        '    ax.annotate(name, (xv, yv), textcoords="offset points", xytext=(3, 3), fontsize=6)',
        f"ax.set_xlabel({axis_title(p.x_metric, p.x_unit)!r})",
        f"ax.set_ylabel({_y_title(p)})",
    ]


def _histogram(p: Panel, s: str, ticks: str) -> list[str]:
    (color,) = p.colors.values()
    return [
        f'counts, edges, bars = ax.hist(samples{s}, bins=bins{s}, color="{color}", edgecolor="white")',
        "ax.bar_label(bars, fontsize=7)",
        "ax.yaxis.get_major_locator().set_params(integer=True)",
        f"ax.set_xticks(bins{s})",
        f"ax.set_xlabel({axis_title(p.metric, p.unit)!r})",
        f"ax.set_ylabel({'Number of ' + plural(p.series_noun)!r})",
    ]


def _box(p: Panel, s: str, ticks: str) -> list[str]:
    return [
        f"parts = ax.boxplot(list(samples{s}.values()), patch_artist=True, widths=0.5)",
        f"for box, name in zip(parts['boxes'], samples{s}):",
        f"    box.set_facecolor(colors{s}[name])",
        "    box.set_alpha(0.7)",
        f"ax.set_xticks(range(1, len(samples{s}) + 1), list(samples{s}){ticks})",
        f"ax.set_ylabel({_y_title(p)})",
    ]


DRAWERS: dict[str, Drawer] = {
    "grouped_bar": _side_by_side_bars,
    "horizontal_bar": _side_by_side_bars,
    "stacked_bar": _stacked_bars,
    "percentage_bar": _percentage_bars,
    "line": _lines,
    "annotated_line": _lines,
    "errorbar_line": _lines,
    "stacked_area": _stacked_area,
    "bar_line": _overlay,
    "area_line": _overlay,
    "pie": _pie,
    "donut": _pie,
    "heatmap": _heatmap,
    "radar": _radar,
    "scatter": _scatter,
    "histogram": _histogram,
    "box": _box,
}


def _legend(outside: bool) -> str:
    if outside:
        return 'ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)'
    return 'ax.legend(fontsize=6, loc="best")'


def draw_panel(panel: Panel, s: str, width: float, outside_legend: bool) -> list[str]:
    """Code drawing one panel on the axes `ax` (`width`: its plot width, a figure fraction)."""
    k = panel.kind
    if k not in DRAWERS:
        raise ValueError(f"no drawing code for panel kind {k!r}")
    ticks = tick_style(panel.labels, width * HEATMAP_SHARE if k == "heatmap" else width)
    out = DRAWERS[k](panel, s, ticks)
    many = len(panel.data) > 1
    if (many and k not in ("pie", "donut", "heatmap")) or (k == "scatter" and len(panel.colors) > 1):
        out.append(_legend(outside_legend))
    if k not in ("pie", "donut") and k != "radar":
        out.append('ax.grid(axis="y", alpha=0.3)' if k != "heatmap" else "ax.grid(False)")
    return out
