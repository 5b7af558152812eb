"""Questions on pie and donut charts: slices, shares, totals, ratios."""

from __future__ import annotations

from dataclasses import dataclass

from envs.charts.chart import PALETTE, Chart, plural
from envs.charts.questions.question import Question, in_sentence, pick, term, unique_extreme
from envs.numbers import format_number


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
    answer = format_number(v.shares[j], 1)
    return Question(
        f"What percentage of the whole does {v.labels[j]} account for? Round to one decimal.",
        answer,
        "number",
        "recognition",
        "slice_share",
        f"{term(v.values[j])} / {term(sum(v.values))} * 100 = {answer}",
        {"label": v.labels[j]},
        "%",
    )


def extreme_slice(rng, v: PieView) -> Question | None:
    highest = bool(rng.random() < 0.5)
    index = unique_extreme(v.values, highest)
    if index is None:
        return None
    word = "largest" if highest else "smallest"
    listing = ", ".join(f"{lab} {term(x)}" for lab, x in zip(v.labels, v.values))
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
    label = pick(rng, v.labels)[0]
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
    answer = format_number(sum(v.values), 2)
    return Question(
        f"What total {in_sentence(v.metric)} does the centre of the donut show?",
        answer,
        "number",
        "recognition",
        "donut_total",
        f"{' + '.join(term(x) for x in v.values)} = {answer}",
        unit=v.unit,
    )


def share_ratio(rng, v: PieView) -> Question:
    i, j = (int(k) for k in rng.choice(len(v.labels), 2, replace=False))
    if v.values[i] < v.values[j]:
        i, j = j, i
    answer = format_number(v.values[i] / v.values[j], 2)
    return Question(
        f"How many times larger is the share of {v.labels[i]} than that of {v.labels[j]}? Round to two decimals.",
        answer,
        "number",
        "reasoning",
        "share_ratio",
        f"{term(v.values[i])} / {term(v.values[j])} = {answer}",
        {"a": v.labels[i], "b": v.labels[j]},
    )


def combined_share(rng, v: PieView) -> Question:
    i, j = (int(k) for k in rng.choice(len(v.labels), 2, replace=False))
    answer = format_number(v.shares[i] + v.shares[j], 1)
    return Question(
        f"What percentage of the whole do {v.labels[i]} and {v.labels[j]} account for together? "
        "Round to one decimal.",
        answer,
        "number",
        "reasoning",
        "combined_share",
        f"({term(v.values[i])} + {term(v.values[j])}) / {term(sum(v.values))} * 100 = {answer}",
        {"a": v.labels[i], "b": v.labels[j]},
        "%",
    )


def share_gap(rng, v: PieView) -> Question:
    i, j = (int(k) for k in rng.choice(len(v.labels), 2, replace=False))
    if v.values[i] < v.values[j]:
        i, j = j, i
    answer = format_number(v.shares[i] - v.shares[j], 1)
    return Question(
        f"By how many percentage points does the share of {v.labels[i]} exceed that of {v.labels[j]}? "
        "Round to one decimal.",
        answer,
        "number",
        "reasoning",
        "share_gap",
        f"{term(v.shares[i])} - {term(v.shares[j])} = {answer}",
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
        f"equal share 100 / {len(v.labels)} = {term(fair)}; above: [{', '.join(above)}] = {answer}",
    )


def slice_value(rng, v: PieView) -> Question | None:
    if not v.donut:
        return None
    j = int(rng.integers(len(v.labels)))
    answer = format_number(v.values[j], 2)
    return Question(
        f"Using the total in the centre of the donut, what is the {in_sentence(v.metric)} of {v.labels[j]}?",
        answer,
        "number",
        "reasoning",
        "slice_value",
        f"{term(v.shares[j])}% of {term(sum(v.values))} = {answer}",
        {"label": v.labels[j]},
        v.unit,
    )


PIE_TEMPLATES = {
    "recognition": [slice_share, extreme_slice, count_slices, slice_color, donut_total],
    "reasoning": [share_ratio, combined_share, share_gap, above_equal_share, slice_value],
}
