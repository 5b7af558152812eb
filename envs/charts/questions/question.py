"""A question and what every question template shares: formatting terms, picking, names.

Every `Question` carries its answer (formatted), its answer type (`number`, `integer` or
`label`), the computation that gives the answer (a string ending in `= <answer>`), the
QA type of ReachQA (`recognition` or `reasoning`) and `args`, what the question picked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from envs.charts.chart import Chart
from envs.numbers import format_number

QA_TYPES = ("recognition", "reasoning")
ANSWER_TYPES = ("number", "integer", "label")


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


def in_sentence(metric: str) -> str:
    """A metric inside a sentence: 'Generation' -> 'generation', 'PM2.5' stays."""
    return metric if metric[1:2].isupper() else metric[:1].lower() + metric[1:]


def term(value: float) -> str:
    """A value inside a computation (to four decimals)."""
    return format_number(value, 4)


def unique_extreme(values: list[float], highest: bool) -> int | None:
    """The index of the single highest (lowest) value, or None on a tie."""
    target = max(values) if highest else min(values)
    hits = [i for i, v in enumerate(values) if v == target]
    return hits[0] if len(hits) == 1 else None


def pick(rng: np.random.Generator, items: list[Any], k: int = 1) -> list[Any]:
    return [items[i] for i in rng.choice(len(items), k, replace=False)]


def chart_vocabulary(chart: Chart) -> list[str]:
    """Every name the chart shows (labels, series, groups, bins, points): the valid label answers."""
    names: list[str] = []
    for panel in chart.panels:
        names += panel.labels + list(panel.data) + list(panel.samples) + [p[0] for p in panel.points]
        names += list(panel.colors)
    return list(dict.fromkeys(names))
