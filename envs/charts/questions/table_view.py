"""The series of a table chart (bars, lines, areas, heatmap, radar, overlays, subplots) as questions see them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from envs.charts.chart import PALETTE, Chart

POSITIONS = ("left", "right")


@dataclass
class TableView:
    """The series of a table chart as the questions see them (subplots merged)."""

    kind: str
    labels: list[str]
    series: dict[str, list[float]]
    label_noun: str
    series_noun: str
    metric: str
    unit: str
    ordered: bool
    percent: bool  # percentage bars: the values are shares of each label's total
    colors: dict[str, str]
    where: dict[str, str]  # series -> " in the left subplot" (subplots only)
    panels: int
    errors: dict[str, list[float]]
    lines: list[str]  # overlay: the series drawn as lines

    def ref(self, name: str) -> str:
        return name + self.where.get(name, "")

    @property
    def value_unit(self) -> str:
        return "%" if self.percent else self.unit


def table_view(chart: Chart) -> TableView:
    panels = chart.panels
    series: dict[str, list[float]] = {}
    colors: dict[str, str] = {}
    where: dict[str, str] = {}
    for i, panel in enumerate(panels):
        for name, values in panel.data.items():
            series[name] = list(values)
            if len(panels) > 1:
                where[name] = f" in the {POSITIONS[i]} subplot"
        if panel.kind not in ("heatmap", "pie", "donut"):
            colors.update({name: PALETTE[c] for name, c in panel.colors.items() if name in panel.data})
    first = panels[0]
    percent = first.kind == "percentage_bar"
    if percent:
        totals = np.sum(list(series.values()), axis=0)
        series = {name: [v / t * 100 for v, t in zip(values, totals)] for name, values in series.items()}
    lines = [name for name in first.data if name not in first.bars] if first.bars else []
    return TableView(
        kind=first.kind,
        labels=list(first.labels),
        series=series,
        label_noun=first.label_noun,
        series_noun=first.series_noun,
        metric=first.metric,
        unit=first.unit,
        ordered=first.ordered,
        percent=percent,
        colors=colors if len(colors) > 1 else {},
        where=where,
        panels=len(panels),
        errors=dict(first.errors),
        lines=lines,
    )
