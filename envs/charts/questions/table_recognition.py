"""Recognition questions on table charts: read a value, count, find the largest, compare, read the legend."""

from __future__ import annotations

from envs.charts.chart import plural
from envs.charts.questions.question import Question, in_sentence, pick, term, unique_extreme
from envs.charts.questions.table_view import TableView
from envs.numbers import format_number


def _value_phrase(v: TableView, name: str, label: str) -> str:
    if v.percent:
        return f"the share of {name} in the total {in_sentence(v.metric)} of {label}"
    return f"the {in_sentence(v.metric)} of {v.ref(name)} for {v.label_noun} {label}"


def read_value(rng, v: TableView) -> Question:
    name, j = pick(rng, list(v.series))[0], int(rng.integers(len(v.labels)))
    value = v.series[name][j]
    label = v.labels[j]
    question = f"What is {_value_phrase(v, name, label)}?"
    computation = f"{name} at {label} = {term(value)}" + (" % of the column" if v.percent else "")
    answer = format_number(value, 2)
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
    name = pick(rng, list(v.series))[0]
    highest = bool(rng.random() < 0.5)
    index = unique_extreme(v.series[name], highest)
    if index is None:
        return None
    word = "highest" if highest else "lowest"
    what = "share" if v.percent else in_sentence(v.metric)
    listing = ", ".join(f"{lab} {term(x)}" for lab, x in zip(v.labels, v.series[name]))
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
    a, b = pick(rng, list(v.series), 2)
    j = int(rng.integers(len(v.labels)))
    x, y = v.series[a][j], v.series[b][j]
    if x == y:
        return None
    answer = a if x > y else b
    what = "a larger share" if v.percent else f"the higher {in_sentence(v.metric)}"
    return Question(
        f"For {v.label_noun} {v.labels[j]}, which has {what}: {v.ref(a)} or {v.ref(b)}?",
        answer,
        "label",
        "recognition",
        "compare_series",
        f"{a} {term(x)} vs {b} {term(y)} = {answer}",
        {"a": a, "b": b, "label": v.labels[j]},
        noun=v.series_noun,
    )


def compare_labels(rng, v: TableView) -> Question | None:
    name = pick(rng, list(v.series))[0]
    i, j = (int(k) for k in rng.choice(len(v.labels), 2, replace=False))
    x, y = v.series[name][i], v.series[name][j]
    if x == y:
        return None
    answer = v.labels[i] if x > y else v.labels[j]
    subject = f"the share of {name}" if v.percent else f"the {in_sentence(v.metric)} of {v.ref(name)}"
    return Question(
        f"Is {subject} higher for {v.labels[i]} or for {v.labels[j]}? Answer with the {v.label_noun}.",
        answer,
        "label",
        "recognition",
        "compare_labels",
        f"{v.labels[i]} {term(x)} vs {v.labels[j]} {term(y)} = {answer}",
        {"series": name, "a": v.labels[i], "b": v.labels[j]},
        noun=v.label_noun,
    )


def legend_color(rng, v: TableView) -> Question | None:
    if not v.colors:
        return None
    name = pick(rng, list(v.colors))[0]
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
    index = unique_extreme(values, highest)
    if index is None:
        return None
    word = "highest" if highest else "lowest"
    listing = ", ".join(f"{n} {term(x)}" for n, x in zip(names, values))
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
    name = pick(rng, list(v.errors))[0]
    j = int(rng.integers(len(v.labels)))
    answer = format_number(v.errors[name][j], 2)
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


RECOGNITION = [
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
]
