"""`evol/ChartQA-v0`: questions about synthesised charts, with plotting code as the intermediary."""

from __future__ import annotations

import functools
import io
import re
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from envs.charts.chart import CHART_TYPES, IMAGE_SHAPE
from envs.charts.judge import AnswerJudge, as_answer_judge, judge_reason
from envs.charts.plotting import plotting_code
from envs.charts.questions import Question, chart_vocabulary, pick_questions
from envs.charts.records import load_reachqa
from envs.charts.render_workers import shared_renderer
from envs.charts.synth import make_chart
from envs.charts.table import chart_table
from envs.core import MAX_TASK, RENDER_MODE, TextEnv, turns_param
from envs.errors import TaskOptionError
from envs.numbers import format_number
from envs.params import Param, choice_param, task_param

MODES = ("image", "code", "table")
QA_TYPES = ("recognition", "reasoning")
TASKS_PER_SPLIT = {"train": 1_000_000, "test": 2_000}
QUESTIONS_PER_CHART = 4  # tasks 4c, 4c+1: recognition; 4c+2, 4c+3: reasoning (as ReachQA's test set)
MAX_ABS_TOL = 1e6
JUDGE_REPLY_KEPT = 1000  # characters of a judge's reply kept in info
MAX_JUDGE_TOKENS = 4096

INSTRUCTION = """\
You answer a question about a chart. {source}

Reply with your answer on a line of its own, as `Answer: <answer>` (you may reason before that \
line). Numbers: digits, optionally with a sign, decimals, a trailing % or unit; no words before the \
number. A number counts as right within {rel_tol}% of the exact answer (or {abs_tol} from it); a \
count must be exact. Names (labels, series, groups, bins) must be written as on the chart; case does \
not matter. Your first well-formed answer ends the episode. A malformed answer (empty, not a number \
where one is asked, a name the chart does not show) is explained and you may answer again, within \
{max_turns} turns."""

SOURCES = {
    "image": "You see the chart as an image; the text gives the question and the answer format.",
    "code": "You do not see the chart: you read the matplotlib code that draws it (every number it plots "
    "is written in the code), then the question and the answer format.",
    "table": "You do not see the chart: you read its data as tables (what the chart plots), then the "
    "question and the answer format.",
}

# No two `\s*` side by side around an optional part: they split a run of spaces every way (quadratic).
_ANSWER_LINE = re.compile(r"answer(?:\s*is)?\s*[:=]\s*(.*)$", re.IGNORECASE)
_NUMBER = re.compile(r"^([-+−]?)\s*(?:[$€£]\s*)?(\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)(.*)$")
_HEDGE = re.compile(r"^(?:about|approximately|approx\.?|around|roughly|~|≈)\s*", re.IGNORECASE)


def extract_answer(action: str) -> str:
    """The answer in a reply: after the last `Answer:`, else the last non-empty line; unwrapped."""
    lines = [line.strip() for line in action.strip().splitlines() if line.strip()]
    text = ""
    for line in reversed(lines):
        match = _ANSWER_LINE.search(line)
        if match:
            text = match.group(1)
            break
    else:
        text = lines[-1] if lines else ""
    previous = None
    while text != previous:  # unwrap '**Germany**.', '"12.5".', '`7`'
        previous = text
        text = text.strip().strip("*`\"'").strip()
        if text.endswith(".") and not text.endswith(".."):
            text = text[:-1]
    return text


def parse_number(text: str) -> float | None:
    """The number an answer states ('-12.5', '1,234', '$3.2', '45%', '12 TWh'), else None."""
    match = _NUMBER.match(_HEDGE.sub("", text.strip()))
    if match is None:
        return None
    sign, digits, rest = match.groups()
    rest = rest.strip()
    if re.search(r"(?<![A-Za-z])\d", rest) or len(rest) > 40:
        return None  # another number ('3 or 4'), or prose: not one number ('Mt CO2' is a unit)
    value = float(digits.replace(",", ""))
    return -value if sign in ("-", "−") else value


def normalize_label(text: str) -> str:
    """A name for comparison: lower case, plain dashes, single spaces, no leading article."""
    text = text.lower().strip().strip("*`\"'.").strip()
    text = re.sub(r"[‐‑‒–—−]", "-", text)
    text = re.sub(r"(\d)\s*(?:-|to)\s*(\d)", r"\1-\2", text)
    text = re.sub(r"\s+", " ", text)
    return text.removeprefix("the ").strip()


def code_text(code: str) -> str:
    """What code mode shows of a chart: its plotting code, fenced."""
    return f"The chart is drawn by this matplotlib code:\n```python\n{code.rstrip()}\n```"


def fit_image(image: Image.Image, shape: tuple[int, int] = IMAGE_SHAPE) -> np.ndarray:
    """`image` as an RGB array of exactly `shape` (scaled to fit, centred on white)."""
    height, width = shape
    image = image.convert("RGB")
    if image.size != (width, height):
        scale = min(width / image.width, height / image.height)
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        canvas = Image.new("RGB", (width, height), "white")
        canvas.paste(
            image.resize(size, Image.Resampling.LANCZOS), ((width - size[0]) // 2, (height - size[1]) // 2)
        )
        image = canvas
    return np.asarray(image, dtype=np.uint8)


@functools.lru_cache(maxsize=32)
def chart_image(split: str, index: int, chart_type: str | None) -> np.ndarray:
    """The rendered chart as a read-only array (cached: resets often replay a chart)."""
    png = shared_renderer().render(make_chart(index, split, chart_type))
    array = fit_image(Image.open(io.BytesIO(png)))
    array.setflags(write=False)
    return array


class ChartQAEnv(TextEnv):
    """
    ChartQA: answer a question about a chart, seen as an image, as plotting code, or as a table.

    ## Description

    After ReachQA and Code-as-Intermediary Translation (He et al. 2024): every chart is
    synthesised as data first, then as a matplotlib script with the data written in it,
    then rendered headless to a 480x360 PNG; questions are written from the data, never
    from the picture, each with its exact answer and the computation behind it. 18 chart
    types under 11 major types: bar (grouped, stacked, horizontal, percentage), line
    (plain, annotated, error bars), pie and donut, scatter, area (stacked), histogram, box,
    heatmap, radar, overlay (bars + line, area + line on one axes) and subplots (two axes
    of different types over the same labels), over some 50 topics. Questions are
    recognition (read a value, count, find the largest or smallest, compare, read the
    legend) or reasoning (differences, ratios, shares, trends, totals and averages,
    aggregates across series and subplots, multi-step counts). Modes:

    | `mode` | observation text | observation image |
    |---|---|---|
    | `image` (default) | the question and the answer format | the chart |
    | `code` | the plotting code, the question and the answer format | blank (zeros) |
    | `table` | the chart's data as Markdown tables, the question, the format | blank (zeros) |

    `code` is CIT's intermediary for text-only models; `table` is what a chart-to-table
    reader extracts (histograms: bin counts; box plots: the five numbers and outliers).
    Observations are always `{"text", "image"}` with a 360x480x3 uint8 image, so the
    observation space never changes with the mode. The expert answers from the data.
    Charts are rendered (headless, Agg) in worker subprocesses that write and run the
    plotting code themselves under a 10 s limit (`EVOL_CHART_RENDERERS` workers per
    process, default 2); images are cached per chart.

    With `data=PATH` (a JSONL or JSON list of ReachQA records: `question`, `answer`,
    `image` (path, relative to the file), `code` (the code, or the path of its `.py` file,
    relative to the file, as ReachQA stores it), `QA_type` (or ReachQA's `split`),
    `major_chart_type`, `minor_chart_type`) the env serves those records instead (task k =
    record k; images are scaled to fit 360x480; code mode shows the code file's text;
    `table` mode needs synthesised charts). Every image and code file is checked when the
    file loads: a file the `mode` kwarg needs that is missing or unreadable is refused then
    (a ValueError with the count and the first few by record index and `id`); a reset of a
    record without what its mode needs is a `TaskOptionError` naming the record.
    Messages name files as the records write them, never by a folder of the server.

    ## Instruction and action format

    `info["instruction"]` says what the agent sees and the format: one reply whose answer
    follows the last `Answer:` (a bare answer works too). Each question's answer format
    is a number (a unit or % may follow), a whole number (counts), or a name shown on the
    chart. An empty reply, a non-number where a number is asked, or a name the chart does
    not show is invalid: the observation explains it, `info["invalid"]` is true, the turn
    counts, and the agent may answer again.

    ## Rewards

    1.0 for a right answer, else 0.0. Numbers are right within `rel_tol` (default 5%,
    ChartQA's relaxed accuracy) of the exact answer or `abs_tol` (default 0.01) from it;
    counts must be exact; names match after normalisation (case, spaces, dashes, a
    leading "the"). Free-text answers of loaded records match after the same normalisation,
    or, with a `judge` model (ReachQA grades with an LLM judge; `envs.charts.judge`), are
    right when the judge says so: exact/numeric match is the first pass (a match never asks
    the judge); an answer it rejects goes to the judge (`envs.charts.judge.JUDGE_PROMPT`:
    the question, the reference answer, the answer; no chart), whose last `Verdict:
    Correct|Wrong` line decides. A reply without one counts as wrong (the exact-match grade
    stands). `info` at the end says `graded_by` ("exact" or "judge") and, when the judge
    was asked, `judge_verdict` (true, false or null), `judge_reason` (the judge's reasoning
    before its verdict, or why an unreadable reply counts as wrong) and `judge_reply`.
    Synthesised charts have exact answers (numbers, counts, names): their grade is exact
    match only, judge or not.

    ## Success

    The answer is right (reward 1.0).

    ## Termination

    Terminated by the first well-formed answer, right or wrong; then `info` carries
    `answer` (the gold answer), `computation`, `given` and `correct`. Truncated after
    `max_turns` turns (default 4) of malformed answers. `info` at reset carries `QA_type`,
    `major_chart_type`, `minor_chart_type`, `answer_type`, `mode`, `topic` and the task.

    ## Task options

    `reset(seed, options={"task": k, "split": "train" | "test", "mode": ..., "chart_type":
    minor type, "qa_type": "recognition" | "reasoning"})`. Task k (below 1,000,000 in train,
    2,000 in test: 500 charts and 1,000 questions of each QA type, as ReachQA's test set)
    is question k % 4 of chart k // 4; chart c has type c mod 18 unless `chart_type` names
    one; questions 0-1 are recognition, 2-3 reasoning, unless `qa_type` picks. Train and
    test charts come from disjoint random streams. Without `task`, k is drawn from the
    env's seeded generator. Constructor kwargs: `mode`, `data`, `judge` ("exact", the
    default, or a model: any agent, `evol serve --counterpart judge=SPEC`),
    `judge_max_tokens` (default 256), `rel_tol`, `abs_tol`, `max_turns`, `render_mode`.

    ## Registered configurations

    - `evol/ChartQA-v0`: synthesised charts, image mode, 4 turns.
    """

    reward_range = (0.0, 1.0)
    max_turns = 4
    success_rule = "the answer is right (numbers within the tolerance, names after normalisation)"
    multimodal = True
    image_shape = IMAGE_SHAPE
    splits = ("train", "test")
    max_action_length = 2048
    max_observation_length = 65536
    kwarg_params = {
        "mode": choice_param(MODES, default="image", help="what shows the chart: image, code or table"),
        "data": Param("object", of=(str, Path), server_only=True, help="a local ReachQA-format JSONL file"),
        "judge": Param(
            "object",
            choices=("exact",),
            help='"exact" (default); locally or via --counterpart judge=SPEC, a model judging free-text answers',
        ),
        "judge_max_tokens": Param(
            "int",
            default=256,
            minimum=1,
            maximum=MAX_JUDGE_TOKENS,
            help="tokens the judge may write per reply",
        ),
        "rel_tol": Param(
            "float", default=0.05, minimum=0.0, maximum=1.0, help="relative tolerance of numbers"
        ),
        "abs_tol": Param("float", default=0.01, minimum=0.0, maximum=MAX_ABS_TOL, help="absolute tolerance"),
        "max_turns": turns_param(4, maximum=100),
        "render_mode": RENDER_MODE,
    }
    option_params = {
        "task": task_param(MAX_TASK, "task index (synthesised: below 1,000,000 in train, 2,000 in test)"),
        "split": choice_param(splits, help='"train" (default) or "test"'),
        "mode": choice_param(MODES, help="default: the mode kwarg"),
        "chart_type": choice_param(tuple(CHART_TYPES), help="the chart's minor type (default: by task)"),
        "qa_type": choice_param(QA_TYPES, help="recognition or reasoning (default: by task)"),
    }

    def __init__(
        self,
        mode: str = "image",
        data: str | None = None,
        judge: Any = None,
        judge_max_tokens: int = 256,
        rel_tol: float = 0.05,
        abs_tol: float = 0.01,
        max_turns: int | None = None,
        render_mode: str | None = None,
    ):
        super().__init__(max_turns=max_turns, render_mode=render_mode)
        self.mode = mode
        self.rel_tol = float(rel_tol)
        self.abs_tol = float(abs_tol)
        if data and mode == "table":
            raise ValueError("table mode needs synthesised charts (ReachQA records carry no table)")
        self.data = load_reachqa(data, mode) if data else None
        self.records = self.data.records if self.data is not None else None
        self.judge: AnswerJudge | None = as_answer_judge(judge, max_new_tokens=judge_max_tokens)
        self._question: Question | None = None
        self._choices: dict[str, str] = {}
        self._prompt = ""
        self._correct = False
        self._record_images: OrderedDict[int, np.ndarray] = OrderedDict()

    # ---- episode ----------------------------------------------------------------------
    def _reset(self, options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        for key in ("split", "mode", "chart_type", "qa_type"):
            if options.get(key) is None:
                options.pop(key, None)
        mode = self.select_choice(options, "mode", MODES, self.mode)
        split = self.select_choice(options, "split", self.splits, "train")
        self._correct = False
        if self.records is not None:
            if mode == "table":
                raise TaskOptionError("table mode needs synthesised charts (ReachQA records carry no table)")
            task = self.select_task(options, len(self.records))
            observation, info = self._reset_record(task, mode)
        else:
            task = self.select_task(options, TASKS_PER_SPLIT[split])
            observation, info = self._reset_chart(task, split, mode, options)
        info = {
            "instruction": INSTRUCTION.format(
                source=SOURCES[mode],
                rel_tol=format_number(self.rel_tol * 100, 2),
                abs_tol=format_number(self.abs_tol, 6),
                max_turns=self.max_turns,
            ),
            "question": self._question.question,
            "answer_type": self._question.answer_type,
            "mode": mode,
            "split": split,
            "task": task,
            **info,
        }
        return observation, info

    def _reset_chart(self, task: int, split: str, mode: str, options: dict[str, Any]):
        chart_type = options.get("chart_type")
        index, slot = divmod(task, QUESTIONS_PER_CHART)
        qa_type = self.select_choice(options, "qa_type", QA_TYPES, QA_TYPES[slot // 2])
        chart = make_chart(index, split, chart_type)
        candidates = pick_questions(chart)[qa_type]
        self._question = candidates[slot % len(candidates)]
        self._choices = {normalize_label(name): name for name in chart_vocabulary(chart)}
        if mode == "image":
            image = chart_image(split, index, chart_type)
            self._prompt = self._question_text()
        else:
            image = np.zeros((*self.image_shape, 3), dtype=np.uint8)
            if mode == "code":
                self._prompt = f"{code_text(plotting_code(chart))}\n\n{self._question_text()}"
            else:
                self._prompt = f"The chart's data:\n{chart_table(chart)}\n\n{self._question_text()}"
        info = {
            "QA_type": qa_type,
            "major_chart_type": chart.major,
            "minor_chart_type": chart.minor,
            "topic": chart.topic,
            "chart": index,
        }
        return {"text": self._prompt, "image": image.copy()}, info

    def _reset_record(self, task: int, mode: str):
        record = self.records[task]
        gold = record["answer"].strip()
        answer_type = record.get("answer_type")
        if answer_type not in ("number", "integer", "label", "text") or (
            answer_type in ("number", "integer") and parse_number(gold) is None
        ):
            answer_type = "number" if parse_number(gold) is not None else "text"
        self._question = Question(
            question=str(record["question"]),
            answer=gold,
            answer_type=answer_type,
            qa_type=str(record.get("QA_type") or ""),
            template=str(record.get("template") or "reachqa"),
            noun=str(record.get("noun") or ""),
            computation=str(record.get("computation") or ""),
            unit=str(record.get("unit") or ""),
        )
        self._choices = {}
        problem = self.data.problem(task, mode)
        if problem:
            raise TaskOptionError(f"record {task} cannot be shown in {mode} mode: {problem}")
        if mode == "code":
            image = np.zeros((*self.image_shape, 3), dtype=np.uint8)
            self._prompt = f"{code_text(record['code'])}\n\n{self._question_text()}"
        else:
            image = self._record_image(task)
            self._prompt = self._question_text()
        info = {
            "QA_type": self._question.qa_type,
            "major_chart_type": record.get("major_chart_type"),
            "minor_chart_type": record.get("minor_chart_type"),
        }
        return {"text": self._prompt, "image": image.copy()}, info

    def _record_image(self, task: int) -> np.ndarray:
        if task not in self._record_images:
            with Image.open(self.records[task]["image"]) as image:
                array = fit_image(image, self.image_shape)
            array.setflags(write=False)
            self._record_images[task] = array
            if len(self._record_images) > 16:
                self._record_images.popitem(last=False)
        return self._record_images[task]

    def _question_text(self) -> str:
        q = self._question
        if q.answer_type == "integer":
            fmt = "a whole number, as in `Answer: 7`."
        elif q.answer_type == "number":
            unit = " (a percentage)" if q.unit == "%" else f" (in {q.unit})" if q.unit else ""
            fmt = f"a number{unit}, as in `Answer: 12.5`."
        elif q.answer_type == "label":
            fmt = (
                f"a {q.noun or 'name'} exactly as written on the chart, as in `Answer: <{q.noun or 'name'}>`."
            )
        else:
            fmt = "a short answer, as in `Answer: <answer>`."
        return f"Question: {q.question}\nAnswer format: {fmt}"

    def _step(self, action: str) -> tuple[dict[str, Any], float, bool, dict[str, Any]]:
        q = self._question
        given = extract_answer(action)
        if not given:
            return self._invalid("the reply holds no answer")
        if q.answer_type in ("number", "integer"):
            value = parse_number(given)
            if value is None:
                what = "a whole number" if q.answer_type == "integer" else "a number"
                return self._invalid(f"{given!r} is not {what} (write digits, as in `Answer: 12.5`)")
            gold = float(parse_number(q.answer))
            if q.answer_type == "integer":
                correct = value == gold
            else:
                correct = abs(value - gold) <= max(self.abs_tol, self.rel_tol * abs(gold))
        elif q.answer_type == "label":
            name = normalize_label(given)
            if self._choices and name not in self._choices:
                return self._invalid(
                    f"{given!r} is not a name shown on the chart; write the {q.noun} as labelled"
                )
            correct = name == normalize_label(q.answer)
        else:
            gold_number, value = parse_number(q.answer), parse_number(given)
            if gold_number is not None and value is not None:
                correct = abs(value - gold_number) <= max(self.abs_tol, self.rel_tol * abs(gold_number))
            else:
                correct = normalize_label(given) == normalize_label(q.answer)
        graded: dict[str, Any] = {"graded_by": "exact"}
        if not correct and q.answer_type == "text" and self.judge is not None:
            verdict, reply = self.judge.judge(q.question, q.answer, given)
            graded = {"graded_by": "judge" if verdict is not None else "exact"}
            graded |= {
                "judge_verdict": verdict,
                "judge_reason": judge_reason(reply),
                "judge_reply": reply[:JUDGE_REPLY_KEPT],
            }
            correct = bool(verdict)  # an unreadable reply: wrong, as exact match graded it
        self._correct = bool(correct)
        verdict = "Correct." if correct else f"Wrong: the answer is {q.answer}."
        info = {"correct": self._correct, "given": given, "answer": q.answer, "computation": q.computation}
        return self.observation_with_text(verdict), float(correct), True, info | graded

    def _invalid(self, reason: str) -> tuple[Any, float, bool, dict[str, Any]]:
        return self.invalid(f"Invalid answer: {reason}.\n\n{self._question_text()}")

    def observation_with_text(self, text: str) -> dict[str, Any]:
        # Why the copy: each observation owns its array (gymnasium's checker insists; callers may write).
        observation = super().observation_with_text(text)
        return {"text": text, "image": observation["image"].copy()}

    def _success(self) -> bool:
        return self._correct

    def expert_action(self) -> str:
        """The gold answer, computed from the chart's data when the chart was made."""
        if self._question is None:
            return "Answer: 0"
        return f"Answer: {self._question.answer}"
