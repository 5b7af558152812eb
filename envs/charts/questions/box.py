"""Questions on box plots: medians, whiskers, interquartile ranges, outliers."""

from __future__ import annotations

from typing import Any

from envs.charts.chart import Panel, box_stats, plural
from envs.charts.questions.question import Question, in_sentence, pick, term, unique_extreme
from envs.numbers import format_number


def _stats(p: Panel) -> dict[str, dict[str, Any]]:
    return {name: box_stats(values) for name, values in p.samples.items()}


def median_of(rng, p: Panel) -> Question:
    group = pick(rng, list(p.samples))[0]
    answer = format_number(_stats(p)[group]["median"], 2)
    return Question(
        f"What is the median {in_sentence(p.metric)} for {group}?",
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
    index = unique_extreme([stats[n]["median"] for n in names], highest)
    if index is None:
        return None
    word = "highest" if highest else "lowest"
    listing = ", ".join(f"{n} {term(stats[n]['median'])}" for n in names)
    return Question(
        f"Which {p.label_noun} has the {word} median {in_sentence(p.metric)}?",
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
    group = pick(rng, list(p.samples))[0]
    answer = format_number(_stats(p)[group]["high"], 2)
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
    group = pick(rng, list(p.samples))[0]
    st = _stats(p)[group]
    answer = format_number(st["iqr"], 2)
    return Question(
        f"What is the interquartile range (Q3 - Q1) of {group}? Round to two decimals.",
        answer,
        "number",
        "reasoning",
        "iqr",
        f"{term(st['q3'])} - {term(st['q1'])} = {answer}",
        {"group": group},
        p.unit,
    )


def median_difference(rng, p: Panel) -> Question | None:
    stats = _stats(p)
    a, b = pick(rng, list(stats), 2)
    if stats[a]["median"] < stats[b]["median"]:
        a, b = b, a
    if stats[a]["median"] == stats[b]["median"]:
        return None
    answer = format_number(stats[a]["median"] - stats[b]["median"], 2)
    return Question(
        f"How much higher is the median {in_sentence(p.metric)} of {a} than that of {b}?",
        answer,
        "number",
        "reasoning",
        "median_difference",
        f"{term(stats[a]['median'])} - {term(stats[b]['median'])} = {answer}",
        {"a": a, "b": b},
        p.unit,
    )


def outlier_count(rng, p: Panel) -> Question:
    stats = _stats(p)
    if rng.random() < 0.5:
        group = pick(rng, list(stats))[0]
        outliers = stats[group]["outliers"]
        answer = str(len(outliers))
        return Question(
            f"How many outliers (points beyond the whiskers) does {group} have?",
            answer,
            "integer",
            "reasoning",
            "outlier_count",
            f"len([{', '.join(term(x) for x in outliers)}]) = {answer}",
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
    index = unique_extreme([round(stats[n]["iqr"], 9) for n in names], True)
    if index is None:
        return None
    listing = ", ".join(f"{n} {term(stats[n]['iqr'])}" for n in names)
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
