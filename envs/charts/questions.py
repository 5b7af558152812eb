"""Questions written from a chart's data, never from its picture, each with its exact answer.

Every `Question` carries its answer (formatted), its answer type (`number`, `integer` or
`label`), the computation that gives the answer (a string ending in `= <answer>`), the
QA type of ReachQA (`recognition`: read a value, count, find the largest, compare, read
the legend; `reasoning`: differences, ratios, shares, trends, aggregates across series
and subplots, multi-step) and `args`, what the question picked (series, labels, ...), so
that anyone can re-derive the answer from the data.

`pick_questions(chart)` chooses, reproducibly, two questions of each QA type per chart.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from envs.charts.synth import (
    MINOR_TYPES,
    PALETTE,
    SPLIT_IDS,
    Chart,
    Panel,
    bin_label,
    box_stats,
    format_number,
    histogram_counts,
    plural,
)

QA_TYPES = ("recognition", "reasoning")
ANSWER_TYPES = ("number", "integer", "label")
POSITIONS = ("left", "right")


@dataclass(frozen=True)
class Question:
    question: str
    answer: str
    answer_type: str
    qa_type: str
    template: str
    computation: str
    args: dict[str, Any] = field(default_factory=dict)
    unit: str = ""  # the unit of a numeric answer ("%" for shares)
    noun: str = ""  # what a label answer names ("country", "month", ...)


def _lower(metric: str) -> str:
    """A metric inside a sentence: 'Generation' -> 'generation', 'PM2.5' stays."""
    return metric if metric[1:2].isupper() else metric[:1].lower() + metric[1:]


def _n(value: float) -> str:
    return format_number(value, 4)


def _number(value: float, decimals: int = 2) -> str:
    return format_number(value, decimals)


def _unique_extreme(values: list[float], highest: bool) -> int | None:
    """The index of the single highest (lowest) value, or None on a tie."""
    target = max(values) if highest else min(values)
    hits = [i for i, v in enumerate(values) if v == target]
    return hits[0] if len(hits) == 1 else None


def _pick(rng: np.random.Generator, items: list[Any], k: int = 1) -> list[Any]:
    return [items[i] for i in rng.choice(len(items), k, replace=False)]


# ---- table charts: bars, lines, areas, heatmap, radar, overlays, subplots -------------
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


def _value_phrase(v: TableView, name: str, label: str) -> str:
    if v.percent:
        return f"the share of {name} in the total {_lower(v.metric)} of {label}"
    return f"the {_lower(v.metric)} of {v.ref(name)} for {v.label_noun} {label}"


def read_value(rng, v: TableView) -> Question:
    name, j = _pick(rng, list(v.series))[0], int(rng.integers(len(v.labels)))
    value = v.series[name][j]
    label = v.labels[j]
    question = f"What is {_value_phrase(v, name, label)}?"
    computation = f"{name} at {label} = {_n(value)}" + (" % of the column" if v.percent else "")
    answer = _number(value)
    return Question(
        question,
        answer,
        "number",
        "recognition",
        "read_value",
        f"{computation} = {answer}",
        {"series": name, "label": label},
        v.value_unit,
    )


def count_labels(rng, v: TableView) -> Question:
    n = len(v.labels)
    return Question(
        f"How many {plural(v.label_noun)} does the chart show?",
        str(n),
        "integer",
        "recognition",
        "count_labels",
        f"len({v.labels}) = {n}",
    )


def count_series(rng, v: TableView) -> Question | None:
    if len(v.series) < 2:
        return None
    n = len(v.series)
    scope = " across both subplots" if v.panels > 1 else ""
    return Question(
        f"How many {plural(v.series_noun)} does the chart show{scope}?",
        str(n),
        "integer",
        "recognition",
        "count_series",
        f"len({list(v.series)}) = {n}",
    )


def extreme_label(rng, v: TableView) -> Question | None:
    name = _pick(rng, list(v.series))[0]
    highest = bool(rng.random() < 0.5)
    index = _unique_extreme(v.series[name], highest)
    if index is None:
        return None
    word = "highest" if highest else "lowest"
    what = "share" if v.percent else _lower(v.metric)
    listing = ", ".join(f"{lab} {_n(x)}" for lab, x in zip(v.labels, v.series[name]))
    answer = v.labels[index]
    return Question(
        f"For which {v.label_noun} does {v.ref(name)} have its {word} {what}?",
        answer,
        "label",
        "recognition",
        f"{word}_label",
        f"{'max' if highest else 'min'}({listing}) = {answer}",
        {"series": name, "highest": highest},
        noun=v.label_noun,
    )


def compare_series(rng, v: TableView) -> Question | None:
    if len(v.series) < 2:
        return None
    a, b = _pick(rng, list(v.series), 2)
    j = int(rng.integers(len(v.labels)))
    x, y = v.series[a][j], v.series[b][j]
    if x == y:
        return None
    answer = a if x > y else b
    what = "a larger share" if v.percent else f"the higher {_lower(v.metric)}"
    return Question(
        f"For {v.label_noun} {v.labels[j]}, which has {what}: {v.ref(a)} or {v.ref(b)}?",
        answer,
        "label",
        "recognition",
        "compare_series",
        f"{a} {_n(x)} vs {b} {_n(y)} = {answer}",
        {"a": a, "b": b, "label": v.labels[j]},
        noun=v.series_noun,
    )


def compare_labels(rng, v: TableView) -> Question | None:
    name = _pick(rng, list(v.series))[0]
    i, j = (int(k) for k in rng.choice(len(v.labels), 2, replace=False))
    x, y = v.series[name][i], v.series[name][j]
    if x == y:
        return None
    answer = v.labels[i] if x > y else v.labels[j]
    subject = f"the share of {name}" if v.percent else f"the {_lower(v.metric)} of {v.ref(name)}"
    return Question(
        f"Is {subject} higher for {v.labels[i]} or for {v.labels[j]}? Answer with the {v.label_noun}.",
        answer,
        "label",
        "recognition",
        "compare_labels",
        f"{v.labels[i]} {_n(x)} vs {v.labels[j]} {_n(y)} = {answer}",
        {"series": name, "a": v.labels[i], "b": v.labels[j]},
        noun=v.label_noun,
    )


def legend_color(rng, v: TableView) -> Question | None:
    if not v.colors:
        return None
    name = _pick(rng, list(v.colors))[0]
    color = v.colors[name]
    return Question(
        f"Which {v.series_noun} is drawn in {color}?",
        name,
        "label",
        "recognition",
        "legend_color",
        f"legend: {color} -> {name} = {name}",
        {"color": color},
        noun=v.series_noun,
    )


def top_series_at(rng, v: TableView) -> Question | None:
    if len(v.series) < 2 or v.panels > 1:
        return None
    j = int(rng.integers(len(v.labels)))
    names = list(v.series)
    values = [v.series[n][j] for n in names]
    highest = bool(rng.random() < 0.5)
    index = _unique_extreme(values, highest)
    if index is None:
        return None
    word = "highest" if highest else "lowest"
    listing = ", ".join(f"{n} {_n(x)}" for n, x in zip(names, values))
    return Question(
        f"Which {v.series_noun} has the {word} value for {v.label_noun} {v.labels[j]}?",
        names[index],
        "label",
        "recognition",
        f"{word}_series",
        f"{'max' if highest else 'min'}({listing}) = {names[index]}",
        {"label": v.labels[j], "highest": highest},
        noun=v.series_noun,
    )


def drawn_as_line(rng, v: TableView) -> Question | None:
    if len(v.lines) != 1:
        return None
    (name,) = v.lines
    return Question(
        f"Which {v.series_noun} is drawn as a line rather than as {'bars' if v.kind == 'bar_line' else 'an area'}?",
        name,
        "label",
        "recognition",
        "drawn_as_line",
        f"plotted with ax.plot: {name} = {name}",
        noun=v.series_noun,
    )


def error_margin(rng, v: TableView) -> Question | None:
    if not v.errors:
        return None
    name = _pick(rng, list(v.errors))[0]
    j = int(rng.integers(len(v.labels)))
    answer = _number(v.errors[name][j])
    return Question(
        f"What is the size of the error bar (±) of {name} for {v.label_noun} {v.labels[j]}?",
        answer,
        "number",
        "recognition",
        "error_margin",
        f"errors[{name}] at {v.labels[j]} = {answer}",
        {"series": name, "label": v.labels[j]},
        v.unit,
    )


def difference(rng, v: TableView) -> Question | None:
    if len(v.series) >= 2 and rng.random() < 0.6:
        a, b = _pick(rng, list(v.series), 2)
        j = int(rng.integers(len(v.labels)))
        x, y = v.series[a][j], v.series[b][j]
        if x < y:
            a, b, x, y = b, a, y, x
        label = v.labels[j]
        question = (
            f"By how many percentage points does the share of {a} exceed that of {b} for {label}?"
            if v.percent
            else f"By how much does the {_lower(v.metric)} of {v.ref(a)} exceed that of {v.ref(b)} "
            f"for {v.label_noun} {label}?"
        )
        args = {"a": a, "b": b, "label": label}
    else:
        name = _pick(rng, list(v.series))[0]
        i, j = (int(k) for k in rng.choice(len(v.labels), 2, replace=False))
        x, y = v.series[name][i], v.series[name][j]
        if x < y:
            i, j, x, y = j, i, y, x
        subject = f"the share of {name}" if v.percent else f"the {_lower(v.metric)} of {v.ref(name)}"
        question = f"How much higher is {subject} for {v.labels[i]} than for {v.labels[j]}?"
        args = {"series": name, "a": v.labels[i], "b": v.labels[j]}
    if x == y:
        return None
    answer = _number(x - y)
    return Question(
        question,
        answer,
        "number",
        "reasoning",
        "difference",
        f"{_n(x)} - {_n(y)} = {answer}",
        args,
        v.value_unit,
    )


def ratio(rng, v: TableView) -> Question | None:
    if len(v.series) < 2:
        return None
    a, b = _pick(rng, list(v.series), 2)
    j = int(rng.integers(len(v.labels)))
    x, y = v.series[a][j], v.series[b][j]
    if y == 0:
        return None
    answer = _number(x / y)
    subject = "the share" if v.percent else f"the {_lower(v.metric)}"
    return Question(
        f"For {v.label_noun} {v.labels[j]}, what is the ratio of {subject} of {v.ref(a)} to that of "
        f"{v.ref(b)}? Round to two decimals.",
        answer,
        "number",
        "reasoning",
        "ratio",
        f"{_n(x)} / {_n(y)} = {answer}",
        {"a": a, "b": b, "label": v.labels[j]},
    )


def share(rng, v: TableView) -> Question | None:
    if len(v.series) < 2 or v.percent:
        return None
    name = _pick(rng, list(v.series))[0]
    j = int(rng.integers(len(v.labels)))
    column = [values[j] for values in v.series.values()]
    value = v.series[name][j] / sum(column) * 100
    answer = _number(value)
    scope = " (both subplots)" if v.panels > 1 else ""
    return Question(
        f"For {v.label_noun} {v.labels[j]}, what percentage of the total over all {plural(v.series_noun)}"
        f"{scope} does {name} account for? Round to two decimals.",
        answer,
        "number",
        "reasoning",
        "share",
        f"{_n(v.series[name][j])} / ({' + '.join(_n(c) for c in column)}) * 100 = {answer}",
        {"series": name, "label": v.labels[j]},
        "%",
    )


def change(rng, v: TableView) -> Question | None:
    if not v.ordered or v.percent:
        return None
    name = _pick(rng, list(v.series))[0]
    first, last = v.series[name][0], v.series[name][-1]
    answer = _number((last - first) / first * 100)
    return Question(
        f"By what percentage did the {_lower(v.metric)} of {v.ref(name)} change from {v.labels[0]} to "
        f"{v.labels[-1]}? Give a negative number for a fall; round to two decimals.",
        answer,
        "number",
        "reasoning",
        "percent_change",
        f"({_n(last)} - {_n(first)}) / {_n(first)} * 100 = {answer}",
        {"series": name},
        "%",
    )


def rises(rng, v: TableView) -> Question | None:
    if not v.ordered:
        return None
    name = _pick(rng, list(v.series))[0]
    values = v.series[name]
    up = [v.labels[i] for i in range(1, len(values)) if values[i] > values[i - 1]]
    answer = str(len(up))
    subject = f"the share of {name}" if v.percent else f"the {_lower(v.metric)} of {v.ref(name)}"
    return Question(
        f"In how many {plural(v.label_noun)} did {subject} rise compared with the {v.label_noun} before?",
        answer,
        "integer",
        "reasoning",
        "count_rises",
        f"rises at [{', '.join(up)}] = {answer}",
        {"series": name},
    )


def total(rng, v: TableView) -> Question | None:
    if v.percent:
        return None
    name = _pick(rng, list(v.series))[0]
    values = v.series[name]
    answer = _number(sum(values))
    return Question(
        f"What is the total {_lower(v.metric)} of {v.ref(name)} over all {plural(v.label_noun)} shown?",
        answer,
        "number",
        "reasoning",
        "total",
        f"{' + '.join(_n(x) for x in values)} = {answer}",
        {"series": name},
        v.unit,
    )


def average(rng, v: TableView) -> Question:
    name = _pick(rng, list(v.series))[0]
    values = v.series[name]
    answer = _number(sum(values) / len(values))
    subject = f"share of {name}" if v.percent else f"{_lower(v.metric)} of {v.ref(name)}"
    return Question(
        f"What is the average {subject} over all {plural(v.label_noun)} shown? Round to two decimals.",
        answer,
        "number",
        "reasoning",
        "average",
        f"({' + '.join(_n(x) for x in values)}) / {len(values)} = {answer}",
        {"series": name},
        v.value_unit,
    )


def largest_total(rng, v: TableView) -> Question | None:
    if len(v.series) < 2 or v.percent:
        return None
    totals = [sum(values[j] for values in v.series.values()) for j in range(len(v.labels))]
    highest = bool(rng.random() < 0.5)
    index = _unique_extreme([round(t, 6) for t in totals], highest)
    if index is None:
        return None
    word = "largest" if highest else "smallest"
    scope = ", counting both subplots" if v.panels > 1 else ""
    listing = ", ".join(f"{lab} {_n(t)}" for lab, t in zip(v.labels, totals))
    return Question(
        f"Which {v.label_noun} has the {word} combined {_lower(v.metric)} of all {plural(v.series_noun)}{scope}?",
        v.labels[index],
        "label",
        "reasoning",
        f"{word}_total",
        f"{'max' if highest else 'min'}({listing}) = {v.labels[index]}",
        {"highest": highest},
        noun=v.label_noun,
    )


def value_range(rng, v: TableView) -> Question:
    name = _pick(rng, list(v.series))[0]
    values = v.series[name]
    answer = _number(max(values) - min(values))
    subject = f"share of {name}" if v.percent else f"{_lower(v.metric)} of {v.ref(name)}"
    return Question(
        f"What is the difference between the highest and the lowest {subject}?",
        answer,
        "number",
        "reasoning",
        "range",
        f"{_n(max(values))} - {_n(min(values))} = {answer}",
        {"series": name},
        v.value_unit,
    )


def above_average(rng, v: TableView) -> Question | None:
    name = _pick(rng, list(v.series))[0]
    values = v.series[name]
    mean = sum(values) / len(values)
    above = [lab for lab, x in zip(v.labels, values) if x > mean]
    if any(abs(x - mean) < 1e-9 for x in values):
        return None
    answer = str(len(above))
    subject = f"share of {name}" if v.percent else f"{_lower(v.metric)} of {v.ref(name)}"
    return Question(
        f"For how many {plural(v.label_noun)} is the {subject} above its average over all "
        f"{plural(v.label_noun)} shown?",
        answer,
        "integer",
        "reasoning",
        "above_average",
        f"mean {_n(mean)}; above: [{', '.join(above)}] = {answer}",
        {"series": name},
    )


def largest_growth(rng, v: TableView) -> Question | None:
    if not v.ordered or v.percent or len(v.series) < 2:
        return None
    names = list(v.series)
    growth = [round(v.series[n][-1] - v.series[n][0], 6) for n in names]
    index = _unique_extreme(growth, True)
    if index is None:
        return None
    listing = ", ".join(f"{n} {_n(g)}" for n, g in zip(names, growth))
    return Question(
        f"Which {v.series_noun} grew the most (or fell the least) in absolute terms from {v.labels[0]} to "
        f"{v.labels[-1]}?",
        names[index],
        "label",
        "reasoning",
        "largest_growth",
        f"max(last - first: {listing}) = {names[index]}",
        noun=v.series_noun,
    )


def largest_gap(rng, v: TableView) -> Question | None:
    if len(v.series) < 2:
        return None
    a, b = _pick(rng, list(v.series), 2)
    gaps = [round(abs(x - y), 6) for x, y in zip(v.series[a], v.series[b])]
    index = _unique_extreme(gaps, True)
    if index is None:
        return None
    listing = ", ".join(f"{lab} {_n(g)}" for lab, g in zip(v.labels, gaps))
    return Question(
        f"For which {v.label_noun} is the gap between {v.ref(a)} and {v.ref(b)} the largest?",
        v.labels[index],
        "label",
        "reasoning",
        "largest_gap",
        f"max(|{a} - {b}|: {listing}) = {v.labels[index]}",
        {"a": a, "b": b},
        noun=v.label_noun,
    )


def error_upper(rng, v: TableView) -> Question | None:
    if not v.errors:
        return None
    name = _pick(rng, list(v.errors))[0]
    j = int(rng.integers(len(v.labels)))
    x, e = v.series[name][j], v.errors[name][j]
    answer = _number(x + e)
    return Question(
        f"What is the upper end of the error bar of {name} for {v.label_noun} {v.labels[j]}?",
        answer,
        "number",
        "reasoning",
        "error_upper",
        f"{_n(x)} + {_n(e)} = {answer}",
        {"series": name, "label": v.labels[j]},
        v.unit,
    )


def across_subplots(rng, v: TableView) -> Question | None:
    if v.panels < 2:
        return None
    left = [n for n, w in v.where.items() if POSITIONS[0] in w]
    right = [n for n, w in v.where.items() if POSITIONS[1] in w]
    a, b = _pick(rng, left)[0], _pick(rng, right)[0]
    j = int(rng.integers(len(v.labels)))
    x, y = v.series[a][j], v.series[b][j]
    answer = _number(x + y)
    return Question(
        f"What is the combined {_lower(v.metric)} of {v.ref(a)} and {v.ref(b)} for {v.label_noun} "
        f"{v.labels[j]}?",
        answer,
        "number",
        "reasoning",
        "across_subplots",
        f"{_n(x)} + {_n(y)} = {answer}",
        {"a": a, "b": b, "label": v.labels[j]},
        v.unit,
    )


TABLE_TEMPLATES = {
    "recognition": [
        read_value,
        count_labels,
        count_series,
        extreme_label,
        compare_series,
        compare_labels,
        legend_color,
        top_series_at,
        drawn_as_line,
        error_margin,
    ],
    "reasoning": [
        difference,
        ratio,
        share,
        change,
        rises,
        total,
        average,
        largest_total,
        value_range,
        above_average,
        largest_growth,
        largest_gap,
        error_upper,
        across_subplots,
    ],
}


# ---- pie and donut --------------------------------------------------------------------
@dataclass
class PieView:
    labels: list[str]
    values: list[float]
    shares: list[float]
    noun: str
    whole: str
    metric: str
    unit: str
    donut: bool
    colors: dict[str, str]


def pie_view(chart: Chart) -> PieView:
    (panel,) = chart.panels
    ((whole, values),) = panel.data.items()
    total_value = sum(values)
    return PieView(
        labels=list(panel.labels),
        values=list(values),
        shares=[x / total_value * 100 for x in values],
        noun=panel.label_noun,
        whole=whole,
        metric=panel.metric,
        unit=panel.unit,
        donut=panel.kind == "donut",
        colors={label: PALETTE[c] for label, c in panel.colors.items()},
    )


def slice_share(rng, v: PieView) -> Question:
    j = int(rng.integers(len(v.labels)))
    answer = _number(v.shares[j], 1)
    return Question(
        f"What percentage of the whole does {v.labels[j]} account for? Round to one decimal.",
        answer,
        "number",
        "recognition",
        "slice_share",
        f"{_n(v.values[j])} / {_n(sum(v.values))} * 100 = {answer}",
        {"label": v.labels[j]},
        "%",
    )


def extreme_slice(rng, v: PieView) -> Question | None:
    highest = bool(rng.random() < 0.5)
    index = _unique_extreme(v.values, highest)
    if index is None:
        return None
    word = "largest" if highest else "smallest"
    listing = ", ".join(f"{lab} {_n(x)}" for lab, x in zip(v.labels, v.values))
    return Question(
        f"Which {v.noun} has the {word} share?",
        v.labels[index],
        "label",
        "recognition",
        f"{word}_slice",
        f"{'max' if highest else 'min'}({listing}) = {v.labels[index]}",
        {"highest": highest},
        noun=v.noun,
    )


def count_slices(rng, v: PieView) -> Question:
    n = len(v.labels)
    return Question(
        f"Into how many {plural(v.noun)} is the chart divided?",
        str(n),
        "integer",
        "recognition",
        "count_slices",
        f"len({v.labels}) = {n}",
    )


def slice_color(rng, v: PieView) -> Question:
    label = _pick(rng, v.labels)[0]
    color = v.colors[label]
    return Question(
        f"Which {v.noun} is shown in {color}?",
        label,
        "label",
        "recognition",
        "legend_color",
        f"{color} -> {label} = {label}",
        {"color": color},
        noun=v.noun,
    )


def donut_total(rng, v: PieView) -> Question | None:
    if not v.donut:
        return None
    answer = _number(sum(v.values))
    return Question(
        f"What total {_lower(v.metric)} does the centre of the donut show?",
        answer,
        "number",
        "recognition",
        "donut_total",
        f"{' + '.join(_n(x) for x in v.values)} = {answer}",
        unit=v.unit,
    )


def share_ratio(rng, v: PieView) -> Question:
    i, j = (int(k) for k in rng.choice(len(v.labels), 2, replace=False))
    if v.values[i] < v.values[j]:
        i, j = j, i
    answer = _number(v.values[i] / v.values[j])
    return Question(
        f"How many times larger is the share of {v.labels[i]} than that of {v.labels[j]}? Round to two decimals.",
        answer,
        "number",
        "reasoning",
        "share_ratio",
        f"{_n(v.values[i])} / {_n(v.values[j])} = {answer}",
        {"a": v.labels[i], "b": v.labels[j]},
    )


def combined_share(rng, v: PieView) -> Question:
    i, j = (int(k) for k in rng.choice(len(v.labels), 2, replace=False))
    answer = _number(v.shares[i] + v.shares[j], 1)
    return Question(
        f"What percentage of the whole do {v.labels[i]} and {v.labels[j]} account for together? "
        "Round to one decimal.",
        answer,
        "number",
        "reasoning",
        "combined_share",
        f"({_n(v.values[i])} + {_n(v.values[j])}) / {_n(sum(v.values))} * 100 = {answer}",
        {"a": v.labels[i], "b": v.labels[j]},
        "%",
    )


def share_gap(rng, v: PieView) -> Question:
    i, j = (int(k) for k in rng.choice(len(v.labels), 2, replace=False))
    if v.values[i] < v.values[j]:
        i, j = j, i
    answer = _number(v.shares[i] - v.shares[j], 1)
    return Question(
        f"By how many percentage points does the share of {v.labels[i]} exceed that of {v.labels[j]}? "
        "Round to one decimal.",
        answer,
        "number",
        "reasoning",
        "share_gap",
        f"{_n(v.shares[i])} - {_n(v.shares[j])} = {answer}",
        {"a": v.labels[i], "b": v.labels[j]},
        "%",
    )


def above_equal_share(rng, v: PieView) -> Question | None:
    fair = 100 / len(v.labels)
    if any(abs(s - fair) < 1e-9 for s in v.shares):
        return None
    above = [lab for lab, s in zip(v.labels, v.shares) if s > fair]
    answer = str(len(above))
    return Question(
        f"How many {plural(v.noun)} have a larger share than they would if the whole were split equally "
        f"among all {plural(v.noun)}?",
        answer,
        "integer",
        "reasoning",
        "above_equal_share",
        f"equal share 100 / {len(v.labels)} = {_n(fair)}; above: [{', '.join(above)}] = {answer}",
    )


def slice_value(rng, v: PieView) -> Question | None:
    if not v.donut:
        return None
    j = int(rng.integers(len(v.labels)))
    answer = _number(v.values[j])
    return Question(
        f"Using the total in the centre of the donut, what is the {_lower(v.metric)} of {v.labels[j]}?",
        answer,
        "number",
        "reasoning",
        "slice_value",
        f"{_n(v.shares[j])}% of {_n(sum(v.values))} = {answer}",
        {"label": v.labels[j]},
        v.unit,
    )


PIE_TEMPLATES = {
    "recognition": [slice_share, extreme_slice, count_slices, slice_color, donut_total],
    "reasoning": [share_ratio, combined_share, share_gap, above_equal_share, slice_value],
}


# ---- scatter --------------------------------------------------------------------------
def _scatter_axes(panel: Panel) -> dict[str, tuple[str, str, int]]:
    """axis -> (metric, unit, index in a point tuple)."""
    return {"x": (panel.x_metric, panel.x_unit, 1), "y": (panel.metric, panel.unit, 2)}


def point_value(rng, p: Panel) -> Question:
    point = p.points[int(rng.integers(len(p.points)))]
    axis = "x" if rng.random() < 0.5 else "y"
    metric, unit, k = _scatter_axes(p)[axis]
    answer = _number(point[k])
    return Question(
        f"What is the {_lower(metric)} of {point[0]}?",
        answer,
        "number",
        "recognition",
        "point_value",
        f"{point[0]}: {axis} = {answer}",
        {"name": point[0], "axis": axis},
        unit,
    )


def extreme_point(rng, p: Panel) -> Question | None:
    axis = "x" if rng.random() < 0.5 else "y"
    highest = bool(rng.random() < 0.5)
    metric, _, k = _scatter_axes(p)[axis]
    values = [point[k] for point in p.points]
    index = _unique_extreme(values, highest)
    if index is None:
        return None
    word = "highest" if highest else "lowest"
    listing = ", ".join(f"{point[0]} {_n(point[k])}" for point in p.points)
    return Question(
        f"Which {p.label_noun} has the {word} {_lower(metric)}?",
        p.points[index][0],
        "label",
        "recognition",
        f"{word}_point",
        f"{'max' if highest else 'min'}({listing}) = {p.points[index][0]}",
        {"axis": axis, "highest": highest},
        noun=p.label_noun,
    )


def count_group(rng, p: Panel) -> Question:
    group = _pick(rng, list(p.colors))[0]
    members = [point[0] for point in p.points if point[3] == group]
    return Question(
        f"How many {plural(p.label_noun)} belong to the group {group}?",
        str(len(members)),
        "integer",
        "recognition",
        "count_group",
        f"len([{', '.join(members)}]) = {len(members)}",
        {"group": group},
    )


def group_color(rng, p: Panel) -> Question | None:
    if len(p.colors) < 2:
        return None
    group = _pick(rng, list(p.colors))[0]
    color = PALETTE[p.colors[group]]
    return Question(
        f"Which group do the {color} points belong to?",
        group,
        "label",
        "recognition",
        "legend_color",
        f"legend: {color} -> {group} = {group}",
        {"color": color},
        noun="group",
    )


def point_difference(rng, p: Panel) -> Question:
    a, b = _pick(rng, p.points, 2)
    axis = "x" if rng.random() < 0.5 else "y"
    metric, unit, k = _scatter_axes(p)[axis]
    if a[k] < b[k]:
        a, b = b, a
    answer = _number(a[k] - b[k])
    return Question(
        f"How much higher is the {_lower(metric)} of {a[0]} than that of {b[0]}?",
        answer,
        "number",
        "reasoning",
        "point_difference",
        f"{_n(a[k])} - {_n(b[k])} = {answer}",
        {"a": a[0], "b": b[0], "axis": axis},
        unit,
    )


def group_mean(rng, p: Panel) -> Question:
    group = _pick(rng, list(p.colors))[0]
    axis = "x" if rng.random() < 0.5 else "y"
    metric, unit, k = _scatter_axes(p)[axis]
    values = [point[k] for point in p.points if point[3] == group]
    answer = _number(sum(values) / len(values))
    return Question(
        f"What is the average {_lower(metric)} of the {plural(p.label_noun)} in the group {group}? "
        "Round to two decimals.",
        answer,
        "number",
        "reasoning",
        "group_mean",
        f"({' + '.join(_n(x) for x in values)}) / {len(values)} = {answer}",
        {"group": group, "axis": axis},
        unit,
    )


def best_ratio(rng, p: Panel) -> Question | None:
    ratios = [round(point[2] / point[1], 9) for point in p.points]
    index = _unique_extreme(ratios, True)
    if index is None:
        return None
    listing = ", ".join(f"{point[0]} {_n(r)}" for point, r in zip(p.points, ratios))
    return Question(
        f"Which {p.label_noun} has the highest ratio of {_lower(p.metric)} to {_lower(p.x_metric)}?",
        p.points[index][0],
        "label",
        "reasoning",
        "best_ratio",
        f"max(y / x: {listing}) = {p.points[index][0]}",
        noun=p.label_noun,
    )


def quadrant_count(rng, p: Panel) -> Question | None:
    xs, ys = [pt[1] for pt in p.points], [pt[2] for pt in p.points]
    tx, ty = float(np.median(xs)), float(np.median(ys))
    tx, ty = float(format_number(tx, p.decimals)), float(format_number(ty, p.decimals))
    if tx in xs or ty in ys:
        return None
    x_word, y_word = (
        ("above" if rng.random() < 0.5 else "below"),
        ("above" if rng.random() < 0.5 else "below"),
    )
    hits = [
        pt[0]
        for pt in p.points
        if (pt[1] > tx if x_word == "above" else pt[1] < tx)
        and (pt[2] > ty if y_word == "above" else pt[2] < ty)
    ]
    answer = str(len(hits))
    return Question(
        f"How many {plural(p.label_noun)} have a {_lower(p.x_metric)} {x_word} {format_number(tx)} and a "
        f"{_lower(p.metric)} {y_word} {format_number(ty)}?",
        answer,
        "integer",
        "reasoning",
        "quadrant_count",
        f"[{', '.join(hits)}] = {answer}",
        {"x": tx, "y": ty, "x_above": x_word == "above", "y_above": y_word == "above"},
    )


SCATTER_TEMPLATES = {
    "recognition": [point_value, extreme_point, count_group, group_color],
    "reasoning": [point_difference, group_mean, best_ratio, quadrant_count],
}


# ---- histogram ------------------------------------------------------------------------
def _bins(p: Panel) -> list[tuple[float, float, int]]:
    (samples,) = p.samples.values()
    counts = histogram_counts(samples, p.bins)
    return [(a, b, c) for a, b, c in zip(p.bins[:-1], p.bins[1:], counts)]


def _unit(p: Panel) -> str:
    return f" {p.unit}" if p.unit else ""


def bin_count(rng, p: Panel) -> Question:
    a, b, c = _bins(p)[int(rng.integers(len(p.bins) - 1))]
    return Question(
        f"How many {plural(p.series_noun)} fall in the bin from {format_number(a)} to {format_number(b)}{_unit(p)}?",
        str(c),
        "integer",
        "recognition",
        "bin_count",
        f"count({format_number(a)} <= value < {format_number(b)}) = {c}",
        {"low": a, "high": b},
    )


def extreme_bin(rng, p: Panel) -> Question | None:
    bins = _bins(p)
    highest = bool(rng.random() < 0.5)
    index = _unique_extreme([c for _, _, c in bins], highest)
    if index is None:
        return None
    word = "most" if highest else "fewest"
    answer = bin_label(bins[index][0], bins[index][1])
    listing = ", ".join(f"{bin_label(a, b)}: {c}" for a, b, c in bins)
    return Question(
        f"Which bin holds the {word} {plural(p.series_noun)}? Answer with its range, as in 10-20.",
        answer,
        "label",
        "recognition",
        f"{word}_bin",
        f"{'max' if highest else 'min'}({listing}) = {answer}",
        {"highest": highest},
        noun="bin",
    )


def count_bins(rng, p: Panel) -> Question:
    n = len(p.bins) - 1
    return Question(
        "How many bins does the histogram have?",
        str(n),
        "integer",
        "recognition",
        "count_bins",
        f"len({p.bins}) - 1 = {n}",
    )


def below_count(rng, p: Panel) -> Question:
    bins = _bins(p)
    k = int(rng.integers(1, len(bins)))
    edge = bins[k][0]
    c = sum(count for _, _, count in bins[:k])
    return Question(
        f"How many {plural(p.series_noun)} have a {_lower(p.metric)} below {format_number(edge)}{_unit(p)}?",
        str(c),
        "integer",
        "reasoning",
        "below_count",
        f"{' + '.join(str(count) for _, _, count in bins[:k])} = {c}",
        {"edge": edge},
    )


def range_share(rng, p: Panel) -> Question:
    bins = _bins(p)
    i = int(rng.integers(0, len(bins) - 1))
    j = int(rng.integers(i + 2, len(bins) + 1))
    inside = sum(c for _, _, c in bins[i:j])
    n = sum(c for _, _, c in bins)
    answer = _number(inside / n * 100)
    low, high = bins[i][0], bins[j - 1][1]
    return Question(
        f"What percentage of the {plural(p.series_noun)} have a {_lower(p.metric)} from {format_number(low)} "
        f"up to {format_number(high)}{_unit(p)}? Round to two decimals.",
        answer,
        "number",
        "reasoning",
        "range_share",
        f"({' + '.join(str(c) for _, _, c in bins[i:j])}) / {n} * 100 = {answer}",
        {"low": low, "high": high},
        "%",
    )


def bin_difference(rng, p: Panel) -> Question | None:
    bins = _bins(p)
    i, j = (int(k) for k in rng.choice(len(bins), 2, replace=False))
    if bins[i][2] < bins[j][2]:
        i, j = j, i
    if bins[i][2] == bins[j][2]:
        return None
    a, b = bins[i], bins[j]
    answer = str(a[2] - b[2])
    return Question(
        f"How many more {plural(p.series_noun)} are in the {bin_label(a[0], a[1])} bin than in the "
        f"{bin_label(b[0], b[1])} bin?",
        answer,
        "integer",
        "reasoning",
        "bin_difference",
        f"{a[2]} - {b[2]} = {answer}",
        {"a": [a[0], a[1]], "b": [b[0], b[1]]},
    )


def total_count(rng, p: Panel) -> Question:
    bins = _bins(p)
    n = sum(c for _, _, c in bins)
    return Question(
        f"Adding up all bins, how many {plural(p.series_noun)} does the histogram count?",
        str(n),
        "integer",
        "reasoning",
        "total_count",
        f"{' + '.join(str(c) for _, _, c in bins)} = {n}",
    )


HISTOGRAM_TEMPLATES = {
    "recognition": [bin_count, extreme_bin, count_bins],
    "reasoning": [below_count, range_share, bin_difference, total_count],
}


# ---- box ------------------------------------------------------------------------------
def _stats(p: Panel) -> dict[str, dict[str, Any]]:
    return {name: box_stats(values) for name, values in p.samples.items()}


def median_of(rng, p: Panel) -> Question:
    group = _pick(rng, list(p.samples))[0]
    answer = _number(_stats(p)[group]["median"])
    return Question(
        f"What is the median {_lower(p.metric)} for {group}?",
        answer,
        "number",
        "recognition",
        "median",
        f"median({group}) = {answer}",
        {"group": group},
        p.unit,
    )


def extreme_median(rng, p: Panel) -> Question | None:
    stats = _stats(p)
    names = list(stats)
    highest = bool(rng.random() < 0.5)
    index = _unique_extreme([stats[n]["median"] for n in names], highest)
    if index is None:
        return None
    word = "highest" if highest else "lowest"
    listing = ", ".join(f"{n} {_n(stats[n]['median'])}" for n in names)
    return Question(
        f"Which {p.label_noun} has the {word} median {_lower(p.metric)}?",
        names[index],
        "label",
        "recognition",
        f"{word}_median",
        f"{'max' if highest else 'min'}({listing}) = {names[index]}",
        {"highest": highest},
        noun=p.label_noun,
    )


def count_groups(rng, p: Panel) -> Question:
    n = len(p.samples)
    return Question(
        f"How many {plural(p.label_noun)} does the box plot compare?",
        str(n),
        "integer",
        "recognition",
        "count_groups",
        f"len({list(p.samples)}) = {n}",
    )


def upper_whisker(rng, p: Panel) -> Question:
    group = _pick(rng, list(p.samples))[0]
    answer = _number(_stats(p)[group]["high"])
    return Question(
        f"Where does the upper whisker of {group} end?",
        answer,
        "number",
        "recognition",
        "upper_whisker",
        f"max({group} values <= Q3 + 1.5 * IQR) = {answer}",
        {"group": group},
        p.unit,
    )


def iqr_of(rng, p: Panel) -> Question:
    group = _pick(rng, list(p.samples))[0]
    st = _stats(p)[group]
    answer = _number(st["iqr"])
    return Question(
        f"What is the interquartile range (Q3 - Q1) of {group}? Round to two decimals.",
        answer,
        "number",
        "reasoning",
        "iqr",
        f"{_n(st['q3'])} - {_n(st['q1'])} = {answer}",
        {"group": group},
        p.unit,
    )


def median_difference(rng, p: Panel) -> Question | None:
    stats = _stats(p)
    a, b = _pick(rng, list(stats), 2)
    if stats[a]["median"] < stats[b]["median"]:
        a, b = b, a
    if stats[a]["median"] == stats[b]["median"]:
        return None
    answer = _number(stats[a]["median"] - stats[b]["median"])
    return Question(
        f"How much higher is the median {_lower(p.metric)} of {a} than that of {b}?",
        answer,
        "number",
        "reasoning",
        "median_difference",
        f"{_n(stats[a]['median'])} - {_n(stats[b]['median'])} = {answer}",
        {"a": a, "b": b},
        p.unit,
    )


def outlier_count(rng, p: Panel) -> Question:
    stats = _stats(p)
    if rng.random() < 0.5:
        group = _pick(rng, list(stats))[0]
        outliers = stats[group]["outliers"]
        answer = str(len(outliers))
        return Question(
            f"How many outliers (points beyond the whiskers) does {group} have?",
            answer,
            "integer",
            "reasoning",
            "outlier_count",
            f"len([{', '.join(_n(x) for x in outliers)}]) = {answer}",
            {"group": group},
        )
    counts = {name: len(st["outliers"]) for name, st in stats.items()}
    answer = str(sum(counts.values()))
    return Question(
        f"How many outliers (points beyond the whiskers) does the chart show over all {plural(p.label_noun)}?",
        answer,
        "integer",
        "reasoning",
        "outlier_total",
        f"{' + '.join(str(c) for c in counts.values())} = {answer}",
    )


def widest_box(rng, p: Panel) -> Question | None:
    stats = _stats(p)
    names = list(stats)
    index = _unique_extreme([round(stats[n]["iqr"], 9) for n in names], True)
    if index is None:
        return None
    listing = ", ".join(f"{n} {_n(stats[n]['iqr'])}" for n in names)
    return Question(
        f"Which {p.label_noun} has the widest interquartile range?",
        names[index],
        "label",
        "reasoning",
        "widest_box",
        f"max(Q3 - Q1: {listing}) = {names[index]}",
        noun=p.label_noun,
    )


BOX_TEMPLATES = {
    "recognition": [median_of, extreme_median, count_groups, upper_whisker],
    "reasoning": [iqr_of, median_difference, outlier_count, widest_box],
}


# ---- choosing -------------------------------------------------------------------------
Template = Callable[[np.random.Generator, Any], "Question | None"]


def templates_for(chart: Chart) -> tuple[dict[str, list[Template]], Any]:
    """The question templates that apply to `chart` and the view of the data they read."""
    kind = chart.panels[0].kind
    if chart.minor in ("pie", "donut"):
        return PIE_TEMPLATES, pie_view(chart)
    if kind == "scatter":
        return SCATTER_TEMPLATES, chart.panels[0]
    if kind == "histogram":
        return HISTOGRAM_TEMPLATES, chart.panels[0]
    if kind == "box":
        return BOX_TEMPLATES, chart.panels[0]
    return TABLE_TEMPLATES, table_view(chart)


def pick_questions(chart: Chart, per_type: int = 2) -> dict[str, list[Question]]:
    """`per_type` questions of each QA type for `chart`, from distinct templates, reproducibly."""
    templates, view = templates_for(chart)
    rng = np.random.default_rng(
        [chart.seed, SPLIT_IDS[chart.split], chart.index, MINOR_TYPES.index(chart.minor), 1]
    )
    picked: dict[str, list[Question]] = {}
    for qa_type in QA_TYPES:
        chosen: list[Question] = []
        for i in rng.permutation(len(templates[qa_type])):
            question = templates[qa_type][int(i)](rng, view)
            if question is not None:
                chosen.append(question)
            if len(chosen) == per_type:
                break
        if not chosen:
            raise RuntimeError(f"no {qa_type} question applies to chart {chart.index} ({chart.minor})")
        picked[qa_type] = chosen
    return picked


def chart_vocabulary(chart: Chart) -> list[str]:
    """Every name the chart shows (labels, series, groups, bins, points): the valid label answers."""
    names: list[str] = []
    for panel in chart.panels:
        names += panel.labels + list(panel.data) + list(panel.samples) + [p[0] for p in panel.points]
        names += list(panel.colors)
    return list(dict.fromkeys(names))
