"""Questions written from a chart's data, never from its picture, each with its exact answer.

Every `Question` carries its answer (formatted), its answer type (`number`, `integer` or
`label`), the computation that gives the answer (a string ending in `= <answer>`), the
QA type of ReachQA (`recognition`: read a value, count, find the largest, compare, read
the legend; `reasoning`: differences, ratios, shares, trends, aggregates across series
and subplots, multi-step) and `args`, what the question picked (series, labels, ...), so
that anyone can re-derive the answer from the data.

`pick_questions(chart)` chooses, reproducibly, two questions of each QA type per chart.
One module per chart kind holds its templates (`table_recognition`, `table_reasoning`,
`pie`, `scatter`, `histogram`, `box`); `selection` chooses among them.
"""

from envs.charts.questions.question import ANSWER_TYPES, QA_TYPES, Question, chart_vocabulary
from envs.charts.questions.selection import Template, pick_questions, templates_for

__all__ = [
    "ANSWER_TYPES",
    "QA_TYPES",
    "Question",
    "Template",
    "chart_vocabulary",
    "pick_questions",
    "templates_for",
]
