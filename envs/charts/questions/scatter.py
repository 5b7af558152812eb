"""Questions on scatter plots: points, extremes, groups, means, ratios, quadrants."""

from __future__ import annotations

import numpy as np

from envs.charts.chart import PALETTE, Panel, plural
from envs.charts.questions.question import Question, in_sentence, pick, term, unique_extreme
from envs.numbers import format_number


def _scatter_axes(panel: Panel) -> dict[str, tuple[str, str, int]]:
    """axis -> (metric, unit, index in a point tuple)."""
    return {"x": (panel.x_metric, panel.x_unit, 1), "y": (panel.metric, panel.unit, 2)}


def point_value(rng, p: Panel) -> Question:
    point = p.points[int(rng.integers(len(p.points)))]
    axis = "x" if rng.random() < 0.5 else "y"
    metric, unit, k = _scatter_axes(p)[axis]
    answer = format_number(point[k], 2)
    return Question(
        f"What is the {in_sentence(metric)} of {point[0]}?",
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
    index = unique_extreme(values, highest)
    if index is None:
        return None
    word = "highest" if highest else "lowest"
    listing = ", ".join(f"{point[0]} {term(point[k])}" for point in p.points)
    return Question(
        f"Which {p.label_noun} has the {word} {in_sentence(metric)}?",
        p.points[index][0],
        "label",
        "recognition",
        f"{word}_point",
        f"{'max' if highest else 'min'}({listing}) = {p.points[index][0]}",
        {"axis": axis, "highest": highest},
        noun=p.label_noun,
    )


def count_group(rng, p: Panel) -> Question:
    group = pick(rng, list(p.colors))[0]
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
    group = pick(rng, list(p.colors))[0]
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
    a, b = pick(rng, p.points, 2)
    axis = "x" if rng.random() < 0.5 else "y"
    metric, unit, k = _scatter_axes(p)[axis]
    if a[k] < b[k]:
        a, b = b, a
    answer = format_number(a[k] - b[k], 2)
    return Question(
        f"How much higher is the {in_sentence(metric)} of {a[0]} than that of {b[0]}?",
        answer,
        "number",
        "reasoning",
        "point_difference",
        f"{term(a[k])} - {term(b[k])} = {answer}",
        {"a": a[0], "b": b[0], "axis": axis},
        unit,
    )


def group_mean(rng, p: Panel) -> Question:
    group = pick(rng, list(p.colors))[0]
    axis = "x" if rng.random() < 0.5 else "y"
    metric, unit, k = _scatter_axes(p)[axis]
    values = [point[k] for point in p.points if point[3] == group]
    answer = format_number(sum(values) / len(values), 2)
    return Question(
        f"What is the average {in_sentence(metric)} of the {plural(p.label_noun)} in the group {group}? "
        "Round to two decimals.",
        answer,
        "number",
        "reasoning",
        "group_mean",
        f"({' + '.join(term(x) for x in values)}) / {len(values)} = {answer}",
        {"group": group, "axis": axis},
        unit,
    )


def best_ratio(rng, p: Panel) -> Question | None:
    ratios = [round(point[2] / point[1], 9) for point in p.points]
    index = unique_extreme(ratios, True)
    if index is None:
        return None
    listing = ", ".join(f"{point[0]} {term(r)}" for point, r in zip(p.points, ratios))
    return Question(
        f"Which {p.label_noun} has the highest ratio of {in_sentence(p.metric)} to {in_sentence(p.x_metric)}?",
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
        f"How many {plural(p.label_noun)} have a {in_sentence(p.x_metric)} {x_word} {format_number(tx, 2)} and a "
        f"{in_sentence(p.metric)} {y_word} {format_number(ty, 2)}?",
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
