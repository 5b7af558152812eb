"""Reasoning questions on table charts: differences, ratios, shares, trends, aggregates, across subplots."""

from __future__ import annotations

from envs.charts.chart import plural
from envs.charts.questions.question import Question, in_sentence, pick, term, unique_extreme
from envs.charts.questions.table_view import POSITIONS, TableView
from envs.numbers import format_number


def difference(rng, v: TableView) -> Question | None:
    if len(v.series) >= 2 and rng.random() < 0.6:
        a, b = pick(rng, list(v.series), 2)
        j = int(rng.integers(len(v.labels)))
        x, y = v.series[a][j], v.series[b][j]
        if x < y:
            a, b, x, y = b, a, y, x
        label = v.labels[j]
        question = (
            f"By how many percentage points does the share of {a} exceed that of {b} for {label}?"
            if v.percent
            else f"By how much does the {in_sentence(v.metric)} of {v.ref(a)} exceed that of {v.ref(b)} "
            f"for {v.label_noun} {label}?"
        )
        args = {"a": a, "b": b, "label": label}
    else:
        name = pick(rng, list(v.series))[0]
        i, j = (int(k) for k in rng.choice(len(v.labels), 2, replace=False))
        x, y = v.series[name][i], v.series[name][j]
        if x < y:
            i, j, x, y = j, i, y, x
        subject = f"the share of {name}" if v.percent else f"the {in_sentence(v.metric)} of {v.ref(name)}"
        question = f"How much higher is {subject} for {v.labels[i]} than for {v.labels[j]}?"
        args = {"series": name, "a": v.labels[i], "b": v.labels[j]}
    if x == y:
        return None
    answer = format_number(x - y, 2)
    return Question(
        question,
        answer,
        "number",
        "reasoning",
        "difference",
        f"{term(x)} - {term(y)} = {answer}",
        args,
        v.value_unit,
    )


def ratio(rng, v: TableView) -> Question | None:
    if len(v.series) < 2:
        return None
    a, b = pick(rng, list(v.series), 2)
    j = int(rng.integers(len(v.labels)))
    x, y = v.series[a][j], v.series[b][j]
    if y == 0:
        return None
    answer = format_number(x / y, 2)
    subject = "the share" if v.percent else f"the {in_sentence(v.metric)}"
    return Question(
        f"For {v.label_noun} {v.labels[j]}, what is the ratio of {subject} of {v.ref(a)} to that of "
        f"{v.ref(b)}? Round to two decimals.",
        answer,
        "number",
        "reasoning",
        "ratio",
        f"{term(x)} / {term(y)} = {answer}",
        {"a": a, "b": b, "label": v.labels[j]},
    )


def share(rng, v: TableView) -> Question | None:
    if len(v.series) < 2 or v.percent:
        return None
    name = pick(rng, list(v.series))[0]
    j = int(rng.integers(len(v.labels)))
    column = [values[j] for values in v.series.values()]
    value = v.series[name][j] / sum(column) * 100
    answer = format_number(value, 2)
    scope = " (both subplots)" if v.panels > 1 else ""
    return Question(
        f"For {v.label_noun} {v.labels[j]}, what percentage of the total over all {plural(v.series_noun)}"
        f"{scope} does {name} account for? Round to two decimals.",
        answer,
        "number",
        "reasoning",
        "share",
        f"{term(v.series[name][j])} / ({' + '.join(term(c) for c in column)}) * 100 = {answer}",
        {"series": name, "label": v.labels[j]},
        "%",
    )


def change(rng, v: TableView) -> Question | None:
    if not v.ordered or v.percent:
        return None
    name = pick(rng, list(v.series))[0]
    first, last = v.series[name][0], v.series[name][-1]
    answer = format_number((last - first) / first * 100, 2)
    return Question(
        f"By what percentage did the {in_sentence(v.metric)} of {v.ref(name)} change from {v.labels[0]} to "
        f"{v.labels[-1]}? Give a negative number for a fall; round to two decimals.",
        answer,
        "number",
        "reasoning",
        "percent_change",
        f"({term(last)} - {term(first)}) / {term(first)} * 100 = {answer}",
        {"series": name},
        "%",
    )


def rises(rng, v: TableView) -> Question | None:
    if not v.ordered:
        return None
    name = pick(rng, list(v.series))[0]
    values = v.series[name]
    up = [v.labels[i] for i in range(1, len(values)) if values[i] > values[i - 1]]
    answer = str(len(up))
    subject = f"the share of {name}" if v.percent else f"the {in_sentence(v.metric)} of {v.ref(name)}"
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
    name = pick(rng, list(v.series))[0]
    values = v.series[name]
    answer = format_number(sum(values), 2)
    return Question(
        f"What is the total {in_sentence(v.metric)} of {v.ref(name)} over all {plural(v.label_noun)} shown?",
        answer,
        "number",
        "reasoning",
        "total",
        f"{' + '.join(term(x) for x in values)} = {answer}",
        {"series": name},
        v.unit,
    )


def average(rng, v: TableView) -> Question:
    name = pick(rng, list(v.series))[0]
    values = v.series[name]
    answer = format_number(sum(values) / len(values), 2)
    subject = f"share of {name}" if v.percent else f"{in_sentence(v.metric)} of {v.ref(name)}"
    return Question(
        f"What is the average {subject} over all {plural(v.label_noun)} shown? Round to two decimals.",
        answer,
        "number",
        "reasoning",
        "average",
        f"({' + '.join(term(x) for x in values)}) / {len(values)} = {answer}",
        {"series": name},
        v.value_unit,
    )


def largest_total(rng, v: TableView) -> Question | None:
    if len(v.series) < 2 or v.percent:
        return None
    totals = [sum(values[j] for values in v.series.values()) for j in range(len(v.labels))]
    highest = bool(rng.random() < 0.5)
    index = unique_extreme([round(t, 6) for t in totals], highest)
    if index is None:
        return None
    word = "largest" if highest else "smallest"
    scope = ", counting both subplots" if v.panels > 1 else ""
    listing = ", ".join(f"{lab} {term(t)}" for lab, t in zip(v.labels, totals))
    return Question(
        f"Which {v.label_noun} has the {word} combined {in_sentence(v.metric)} of all {plural(v.series_noun)}{scope}?",
        v.labels[index],
        "label",
        "reasoning",
        f"{word}_total",
        f"{'max' if highest else 'min'}({listing}) = {v.labels[index]}",
        {"highest": highest},
        noun=v.label_noun,
    )


def value_range(rng, v: TableView) -> Question:
    name = pick(rng, list(v.series))[0]
    values = v.series[name]
    answer = format_number(max(values) - min(values), 2)
    subject = f"share of {name}" if v.percent else f"{in_sentence(v.metric)} of {v.ref(name)}"
    return Question(
        f"What is the difference between the highest and the lowest {subject}?",
        answer,
        "number",
        "reasoning",
        "range",
        f"{term(max(values))} - {term(min(values))} = {answer}",
        {"series": name},
        v.value_unit,
    )


def above_average(rng, v: TableView) -> Question | None:
    name = pick(rng, list(v.series))[0]
    values = v.series[name]
    mean = sum(values) / len(values)
    above = [lab for lab, x in zip(v.labels, values) if x > mean]
    if any(abs(x - mean) < 1e-9 for x in values):
        return None
    answer = str(len(above))
    subject = f"share of {name}" if v.percent else f"{in_sentence(v.metric)} of {v.ref(name)}"
    return Question(
        f"For how many {plural(v.label_noun)} is the {subject} above its average over all "
        f"{plural(v.label_noun)} shown?",
        answer,
        "integer",
        "reasoning",
        "above_average",
        f"mean {term(mean)}; above: [{', '.join(above)}] = {answer}",
        {"series": name},
    )


def largest_growth(rng, v: TableView) -> Question | None:
    if not v.ordered or v.percent or len(v.series) < 2:
        return None
    names = list(v.series)
    growth = [round(v.series[n][-1] - v.series[n][0], 6) for n in names]
    index = unique_extreme(growth, True)
    if index is None:
        return None
    listing = ", ".join(f"{n} {term(g)}" for n, g in zip(names, growth))
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
    a, b = pick(rng, list(v.series), 2)
    gaps = [round(abs(x - y), 6) for x, y in zip(v.series[a], v.series[b])]
    index = unique_extreme(gaps, True)
    if index is None:
        return None
    listing = ", ".join(f"{lab} {term(g)}" for lab, g in zip(v.labels, gaps))
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
    name = pick(rng, list(v.errors))[0]
    j = int(rng.integers(len(v.labels)))
    x, e = v.series[name][j], v.errors[name][j]
    answer = format_number(x + e, 2)
    return Question(
        f"What is the upper end of the error bar of {name} for {v.label_noun} {v.labels[j]}?",
        answer,
        "number",
        "reasoning",
        "error_upper",
        f"{term(x)} + {term(e)} = {answer}",
        {"series": name, "label": v.labels[j]},
        v.unit,
    )


def across_subplots(rng, v: TableView) -> Question | None:
    if v.panels < 2:
        return None
    left = [n for n, w in v.where.items() if POSITIONS[0] in w]
    right = [n for n, w in v.where.items() if POSITIONS[1] in w]
    a, b = pick(rng, left)[0], pick(rng, right)[0]
    j = int(rng.integers(len(v.labels)))
    x, y = v.series[a][j], v.series[b][j]
    answer = format_number(x + y, 2)
    return Question(
        f"What is the combined {in_sentence(v.metric)} of {v.ref(a)} and {v.ref(b)} for {v.label_noun} "
        f"{v.labels[j]}?",
        answer,
        "number",
        "reasoning",
        "across_subplots",
        f"{term(x)} + {term(y)} = {answer}",
        {"a": a, "b": b, "label": v.labels[j]},
        v.unit,
    )


REASONING = [
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
]
