"""The chart's data as Markdown tables (`chart_table`): what a chart-to-table reader would extract."""

from __future__ import annotations

from envs.charts.chart import Chart, axis_title, box_stats, histogram_counts, plural
from envs.numbers import format_number


def _markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def chart_table(chart: Chart) -> str:
    """The chart's data as Markdown tables: what a chart-to-table reader would extract.

    Table kinds list every value (rows = labels, columns = series); scatter lists the
    points; histogram the bin counts; box the five-number summary and outliers of each group.
    """
    parts = [f"Chart: {chart.title} ({chart.major} chart, {chart.minor.replace('_', ' ')})"]
    for i, panel in enumerate(chart.panels):
        if len(chart.panels) > 1:
            parts.append(
                f"Subplot {i + 1} of {len(chart.panels)} ({panel.kind.replace('_', ' ')}): {panel.title}"
            )
        unit = f" ({panel.unit})" if panel.unit else ""
        d = panel.decimals
        if panel.kind == "scatter":
            header = [
                panel.label_noun,
                axis_title(panel.x_metric, panel.x_unit),
                panel.metric + unit,
                "group",
            ]
            rows = [[n, format_number(x, d), format_number(y, d), g] for n, x, y, g in panel.points]
        elif panel.kind == "histogram":
            (samples,) = panel.samples.values()
            header = [f"{panel.metric}{unit} bin", f"number of {plural(panel.series_noun)}"]
            counts = histogram_counts(samples, panel.bins)
            rows = [[label, str(c)] for label, c in zip(panel.labels, counts)]
        elif panel.kind == "box":
            header = [panel.label_noun, "lower whisker", "Q1", "median", "Q3", "upper whisker", "outliers"]
            rows = []
            for name, values in panel.samples.items():
                st = box_stats(values)
                stats = [format_number(st[key], 2) for key in ("low", "q1", "median", "q3", "high")]
                rows.append([name, *stats, ", ".join(format_number(v, 2) for v in st["outliers"]) or "none"])
            parts.append(f"{panel.metric}{unit}")
        else:
            header = [panel.label_noun, *(f"{name}{unit}" for name in panel.data)]
            rows = [
                [label, *(format_number(values[j], d) for values in panel.data.values())]
                for j, label in enumerate(panel.labels)
            ]
            if panel.errors:
                header += [f"{name} error (±)" for name in panel.errors]
                for j, row in enumerate(rows):
                    row += [format_number(values[j], d) for values in panel.errors.values()]
            if panel.bars:
                drawn = "area" if panel.kind == "area_line" else "bars"
                parts.append(f"Drawn as {drawn}: {', '.join(panel.bars)}; the rest as lines.")
        parts.append(_markdown(header, rows))
    return "\n\n".join(parts)
