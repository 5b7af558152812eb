"""Chart synthesis, after ReachQA's Code-as-Intermediary Translation: the chart's data first.

A chart is structured data first (`Chart`: a topic, panels of labelled series, units),
then the matplotlib script that draws exactly that data (`envs.charts.plotting`: every
number is a literal in the code), then a PNG (`envs.charts.render_workers`). Questions are
written from the data (`envs.charts.questions`), never from the picture;
`envs.charts.table` writes the data as text.

- `make_chart(index, split, chart_type=None, seed=0)`: chart `index` of a split, the same
  on every machine. Chart types cycle through `CHART_TYPES` (minor type -> major type).

See docs/architecture.md for where charts sit.
"""

from __future__ import annotations

import numpy as np

from envs.charts.chart import (
    CHART_TYPES,
    CMAPS,
    MINOR_TYPES,
    PALETTE,
    SPLIT_IDS,
    Chart,
    Panel,
    bin_label,
    plural,
)
from envs.charts.topics import BOX_TOPICS, HISTOGRAM_TOPICS, SCATTER_TOPICS, TABLE_TOPICS, TableTopic


def _round(value: float, decimals: int) -> float:
    return float(round(float(value), decimals))


def _distinct(draw, n: int, tries: int = 20) -> list[float]:
    """`draw()` until its n values are distinct (ties make 'which is largest' ambiguous)."""
    values = draw()
    for _ in range(tries):
        if len(set(values)) == n:
            break
        values = draw()
    return values


def _series(rng: np.random.Generator, topic: TableTopic, n: int, ordered: bool) -> list[float]:
    span = topic.high - topic.low

    def draw() -> list[float]:
        if not ordered:
            return [_round(v, topic.decimals) for v in rng.uniform(topic.low, topic.high, n)]
        value = rng.uniform(topic.low + 0.15 * span, topic.high - 0.15 * span)
        drift = rng.normal(0.0, 0.05)
        values = []
        for _ in range(n):
            values.append(_round(value, topic.decimals))
            value = float(np.clip(value * (1 + drift + rng.normal(0.0, 0.09)), topic.low, topic.high))
        return values

    return _distinct(draw, n)


def _pick_labels(rng: np.random.Generator, pool: tuple[str, ...], n: int, ordered: bool) -> list[str]:
    n = min(n, len(pool))
    if ordered:
        start = int(rng.integers(0, len(pool) - n + 1))
        return list(pool[start : start + n])
    return [pool[i] for i in sorted(rng.choice(len(pool), n, replace=False))]


def _colors(rng: np.random.Generator, keys: list[str]) -> dict[str, str]:
    names = list(PALETTE)
    order = rng.permutation(len(names))
    return {key: names[order[i % len(names)]] for i, key in enumerate(keys)}


def _table_panel(
    rng: np.random.Generator,
    kind: str,
    topic: TableTopic,
    n_labels: tuple[int, int],
    n_series: tuple[int, int],
    ordered: bool | None = None,
) -> Panel:
    ordered = topic.ordered if ordered is None else ordered
    labels = _pick_labels(rng, topic.labels, int(rng.integers(n_labels[0], n_labels[1] + 1)), ordered)
    series = _pick_labels(rng, topic.series, int(rng.integers(n_series[0], n_series[1] + 1)), False)
    data = {name: _series(rng, topic, len(labels), ordered) for name in series}
    return Panel(
        kind=kind,
        title=topic.name,
        metric=topic.metric,
        unit=topic.unit,
        label_noun=topic.axis,
        series_noun=topic.series_noun,
        labels=labels,
        data=data,
        ordered=ordered,
        decimals=topic.decimals,
        colors=_colors(rng, series),
        value_labels=bool(rng.random() < 0.5),
    )


def _table_chart(rng: np.random.Generator, minor: str) -> tuple[str, str, list[Panel]]:
    ordered_topics = [t for t in TABLE_TOPICS if t.ordered]
    topics = ordered_topics if minor in ("stacked_area", "area_line", "errorbar_line") else TABLE_TOPICS
    topic = topics[int(rng.integers(len(topics)))]
    shapes = {  # (labels, series) ranges per minor type
        "grouped_bar": ((4, 6), (2, 3)),
        "stacked_bar": ((4, 7), (2, 4)),
        "horizontal_bar": ((4, 7), (1, 3)),
        "percentage_bar": ((4, 6), (2, 4)),
        "line": ((5, 9), (2, 4)),
        "annotated_line": ((5, 8), (1, 3)),
        "errorbar_line": ((5, 8), (1, 2)),
        "stacked_area": ((6, 10), (2, 4)),
        "heatmap": ((4, 7), (3, 5)),
        "radar": ((5, 7), (2, 3)),
        "bar_line": ((4, 7), (2, 3)),
        "area_line": ((5, 9), (2, 2)),
    }
    if minor in ("pie", "donut"):
        # Slices are the topic's series (the parts) of one label (the whole).
        whole = topic.labels[int(rng.integers(len(topic.labels)))]
        slices = _pick_labels(rng, topic.series, int(rng.integers(3, 6)), False)
        values = _distinct(
            lambda: [_round(v, topic.decimals) for v in rng.uniform(topic.low, topic.high, len(slices))],
            len(slices),
        )
        panel = Panel(
            kind=minor,
            title=f"{topic.name}: {whole}",
            metric=topic.metric,
            unit=topic.unit,
            label_noun=topic.series_noun,
            series_noun=topic.axis,
            labels=slices,
            data={whole: values},
            decimals=topic.decimals,
            colors=_colors(rng, slices),
        )
        return topic.name, panel.title, [panel]
    if minor == "subplots":
        return _subplots(rng, topic)
    labels_range, series_range = shapes[minor]
    panel = _table_panel(rng, minor, topic, labels_range, series_range)
    if minor == "errorbar_line":
        panel.errors = {
            name: [
                max(_round(v * rng.uniform(0.04, 0.12), topic.decimals), 10.0**-topic.decimals)
                for v in values
            ]
            for name, values in panel.data.items()
        }
    if minor in ("bar_line", "area_line"):
        panel.bars = list(panel.data)[:-1]
    if minor == "heatmap":
        panel.cmap = CMAPS[int(rng.integers(len(CMAPS)))]
    if minor == "radar":
        panel.title = f"{topic.name} by {topic.axis}"
    return topic.name, panel.title, [panel]


def _subplots(rng: np.random.Generator, topic: TableTopic) -> tuple[str, str, list[Panel]]:
    """Two panels over the same labels; each draws its own series of the topic."""
    full = _table_panel(rng, "grouped_bar", topic, (4, 5), (2, 4))
    names = list(full.data)
    split_at = int(rng.integers(1, len(names)))
    kinds = [str(k) for k in rng.permutation(["grouped_bar", "line", "pie"])[:2]]
    panels = []
    for kind, group in zip(kinds, (names[:split_at], names[split_at:])):
        if kind == "pie" and len(group) > 1:
            kind = "line" if "line" not in kinds else "grouped_bar"
        panel = Panel(
            kind=kind,
            title=group[0] if len(group) == 1 else ", ".join(group[:-1]) + " and " + group[-1],
            metric=topic.metric,
            unit=topic.unit,
            label_noun=topic.axis,
            series_noun=topic.series_noun,
            labels=list(full.labels),
            data={name: full.data[name] for name in group},
            ordered=full.ordered,
            decimals=topic.decimals,
            colors=_colors(rng, list(full.labels)) if kind == "pie" else {n: full.colors[n] for n in group},
        )
        panels.append(panel)
    return topic.name, topic.name, panels


def _scatter(rng: np.random.Generator) -> tuple[str, str, list[Panel]]:
    topic = SCATTER_TOPICS[int(rng.integers(len(SCATTER_TOPICS)))]
    names = _pick_labels(rng, topic.entities, int(rng.integers(7, 12)), False)
    groups = list(topic.groups[: int(rng.integers(2, len(topic.groups) + 1))])
    (x_low, x_high), (y_low, y_high) = topic.x_range, topic.y_range
    slope = rng.choice([-1.0, 1.0]) * rng.uniform(0.3, 0.9)

    def draw() -> list[float]:
        return [_round(v, topic.decimals) for v in rng.uniform(x_low, x_high, len(names))]

    xs = _distinct(draw, len(names))
    ys_raw = [
        (y_low + y_high) / 2 + slope * (x - (x_low + x_high) / 2) * (y_high - y_low) / (x_high - x_low)
        for x in xs
    ]
    ys = _distinct(
        lambda: [
            _round(np.clip(y + rng.normal(0, 0.15 * (y_high - y_low)), y_low, y_high), topic.decimals)
            for y in ys_raw
        ],
        len(names),
    )
    group_of = [groups[i % len(groups)] for i in rng.permutation(len(names))]
    panel = Panel(
        kind="scatter",
        title=topic.name,
        metric=topic.y_metric,
        unit=topic.y_unit,
        label_noun=topic.entity,
        series_noun="group",
        labels=list(names),
        points=[(n, x, y, g) for n, x, y, g in zip(names, xs, ys, group_of)],
        x_metric=topic.x_metric,
        x_unit=topic.x_unit,
        decimals=topic.decimals,
        colors=_colors(rng, groups),
    )
    return topic.name, topic.name, [panel]


def _histogram(rng: np.random.Generator) -> tuple[str, str, list[Panel]]:
    topic = HISTOGRAM_TOPICS[int(rng.integers(len(HISTOGRAM_TOPICS)))]
    bins = [_round(v, 2) for v in np.arange(topic.low, topic.high + topic.width / 2, topic.width)]
    n = int(rng.integers(40, 90))
    center = rng.uniform(
        topic.low + 0.3 * (topic.high - topic.low), topic.high - 0.3 * (topic.high - topic.low)
    )
    spread = rng.uniform(0.15, 0.25) * (topic.high - topic.low)
    # Why the margin: a value exactly at the top edge falls in the last bin in numpy but reads ambiguously.
    top = topic.high - 10.0**-topic.decimals
    samples = [_round(np.clip(v, topic.low, top), topic.decimals) for v in rng.normal(center, spread, n)]
    panel = Panel(
        kind="histogram",
        title=f"{topic.name} ({n} {plural(topic.item)})",
        metric=topic.metric,
        unit=topic.unit,
        label_noun="bin",
        series_noun=topic.item,
        labels=[bin_label(a, b) for a, b in zip(bins[:-1], bins[1:])],
        samples={topic.item: samples},
        bins=bins,
        decimals=topic.decimals,
        colors={topic.item: list(PALETTE)[int(rng.integers(len(PALETTE)))]},
    )
    return topic.name, panel.title, [panel]


def _box(rng: np.random.Generator) -> tuple[str, str, list[Panel]]:
    topic = BOX_TOPICS[int(rng.integers(len(BOX_TOPICS)))]
    groups = _pick_labels(rng, topic.groups, int(rng.integers(3, 6)), False)
    span = topic.high - topic.low
    samples = {}
    for group in groups:
        center = rng.uniform(topic.low + 0.3 * span, topic.high - 0.3 * span)
        spread = rng.uniform(0.04, 0.1) * span
        values = list(rng.normal(center, spread, int(rng.integers(12, 25))))
        values += list(center + rng.choice([-1, 1], int(rng.integers(0, 3))) * rng.uniform(4, 6) * spread)
        samples[group] = [_round(np.clip(v, topic.low, topic.high), topic.decimals) for v in values]
    panel = Panel(
        kind="box",
        title=topic.name,
        metric=topic.metric,
        unit=topic.unit,
        label_noun=topic.group,
        series_noun=topic.group,
        labels=groups,
        samples=samples,
        decimals=topic.decimals,
        colors=_colors(rng, groups),
    )
    return topic.name, topic.name, [panel]


def make_chart(index: int, split: str = "train", chart_type: str | None = None, seed: int = 0) -> Chart:
    """Chart `index` of `split` (type `MINOR_TYPES[index % 18]` unless `chart_type` names one).

    The same arguments give the same chart everywhere; train and test draw from disjoint
    random streams; `seed` selects another family of charts (0 is the env's).
    """
    if split not in SPLIT_IDS:
        raise ValueError(f"split must be one of {list(SPLIT_IDS)}, got {split!r}")
    minor = chart_type or MINOR_TYPES[index % len(MINOR_TYPES)]
    if minor not in CHART_TYPES:
        raise ValueError(f"unknown chart type {minor!r}; known: {', '.join(MINOR_TYPES)}")
    rng = np.random.default_rng([seed, SPLIT_IDS[split], index, MINOR_TYPES.index(minor)])
    if minor == "scatter":
        topic, title, panels = _scatter(rng)
    elif minor == "histogram":
        topic, title, panels = _histogram(rng)
    elif minor == "box":
        topic, title, panels = _box(rng)
    else:
        topic, title, panels = _table_chart(rng, minor)
    return Chart(minor, CHART_TYPES[minor], topic, title, panels, split, index, seed)
