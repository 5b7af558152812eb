"""Choosing a chart's questions: `templates_for(chart)` and `pick_questions(chart)`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from envs.charts.chart import MINOR_TYPES, SPLIT_IDS, Chart
from envs.charts.questions.box import BOX_TEMPLATES
from envs.charts.questions.histogram import HISTOGRAM_TEMPLATES
from envs.charts.questions.pie import PIE_TEMPLATES, pie_view
from envs.charts.questions.question import QA_TYPES, Question
from envs.charts.questions.scatter import SCATTER_TEMPLATES
from envs.charts.questions.table_reasoning import REASONING
from envs.charts.questions.table_recognition import RECOGNITION
from envs.charts.questions.table_view import table_view

Template = Callable[[np.random.Generator, Any], "Question | None"]
TABLE_TEMPLATES = {"recognition": RECOGNITION, "reasoning": REASONING}


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
