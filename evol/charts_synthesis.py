"""Chart QA data written by a model, after ReachQA's Code-as-Intermediary Translation (CIT).

`synthesize_charts(agent, out_dir, settings)` asks any agent (`Agent.complete`) for
matplotlib scripts, keeps those that draw what their data says, asks it for questions and
answers from the code, keeps the QA a second pass agrees with, and writes what
`evol/ChartQA-v0` serves with `data=out_dir/<split>.jsonl`:

    out_dir/images/synth_<round>_<n>.png   the rendered chart
    out_dir/code/synth_<round>_<n>.py      the script the model wrote
    out_dir/<split>.jsonl                  ReachQA records (question, answer, image, code,
                                           QA_type, major_chart_type, minor_chart_type, ...)
    out_dir/synthesis_report.json          every rejection reason counted, a first example of each

Rounds. Round 1 is self-instruct: each prompt (`SELF_INSTRUCT`) shows a seed chart's code
(the template generator's script, `envs.charts.plotting.plotting_code`, one per chart type
in turn) and asks for a new topic and new data, in the same chart type or, every other
prompt, another type of the taxonomy. Rounds 2.. are evol-instruct (`EVOL_INSTRUCT`): each
prompt shows a script the previous round kept (a seed where it kept none) and asks for one
of `EVOLUTIONS` in turn: more data, another visual element, an overlay of another chart
type, a subplot. `n` charts are kept in all, split evenly over the rounds; a round asks for
the charts it still lacks, at most `tries` times its share of prompts.

Checks. A script is the reply's first ```python block (else `no_code`). It is never run
here: `envs.charts.code_check.CodeRenderer` parses it, holds it to the code whitelist and
runs it in a limited worker under a time limit, and rejects syntax errors, unsafe code,
exceptions, timeouts (loops that do not end), figures not built, empty or degenerate
figures, code without literal data, and marks whose counts its data arrays do not explain
(that module's docstring says exactly what the check covers).

Questions. For a kept script the model writes recognition and reasoning QA from the code
(`QA_PROMPT`); a pair is kept when (1) its answer is a number or a short name, (2) a
recognition answer that is a number is one of the code's literal numbers or a count of
one of its arrays (a program over the data), and (3) the model, asked the question again
with the code in a fresh conversation (`ANSWER_PROMPT`), gives the same answer (numbers
within 1% or 0.01, names after normalisation). A chart whose QA all fail is dropped
(`no_qa_agreed`). Every rejection is counted in `SynthesisReport`.
"""

from __future__ import annotations

import ast
import json
import random
import re
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from envs.charts.chart import CHART_TYPES, MINOR_TYPES
from envs.charts.code_check import CODE_REJECTIONS, CodeRenderer
from envs.charts.env import extract_answer, normalize_label, parse_number
from envs.charts.plotting import plotting_code
from envs.charts.synth import make_chart

# The chart types a model may name: the template types and ReachQA's other minor types.
EXTRA_TYPES = {
    "3d_bar": "3d_bar",
    "node": "node",
    "rose": "specific",
    "funnel": "specific",
    "waterfall": "specific",
    "treemap": "specific",
    "violin": "box",
    "step_line": "line",
    "bubble": "scatter",
}
KNOWN_TYPES = {**CHART_TYPES, **EXTRA_TYPES}

RULES = """Rules for the script:
- import only numpy (`import numpy as np`) and matplotlib.pyplot (`import matplotlib.pyplot as plt`);
- write every data value as a literal at the top (`labels = [...]`, `values = [...]`); no random numbers;
- build the figure as `fig` (`fig, ax = plt.subplots(figsize=(4.8, 3.6), dpi=100)`); no plt.show, no savefig;
- no def, class, lambda, while, with or try;
- title the chart and label its axes, and keep every number the questions need readable on it;
- the first line is `# chart_type: <type>`, one of: {types}.
Reply with the whole script in one ```python block."""

SELF_INSTRUCT = """Here is a matplotlib script that draws a {minor} chart:
```python
{code}
```
Write a new chart script in the same style, on a new topic with new data{target}.

{rules}"""

EVOLUTIONS = {
    "more_data": "make it richer: add more data (more categories or points, or another series), "
    "keeping the chart type",
    "visual_element": "add another visual element that carries information (value labels on the marks, "
    "a reference line at a value computed from the data, error bars, or a second y-axis with its own series)",
    "overlay": "overlay a plot of another chart type on the same axes (for example a line over bars) "
    "drawing a further series of data written in the code",
    "subplot": "add a subplot beside it (`fig, (ax1, ax2) = plt.subplots(1, 2, ...)`) with a related "
    "chart of another type and its own data",
}

EVOL_INSTRUCT = """Here is a matplotlib script that draws a {minor} chart:
```python
{code}
```
Rewrite it into a harder chart: {evolution}. Keep the topic; every drawn value stays in the code's data.

{rules}"""

QA_PROMPT = """Here is a matplotlib script:
```python
{code}
```
Write {recognition} recognition question(s) and {reasoning} reasoning question(s) about the chart this \
script draws, answered from the data in the code; someone who sees only the picture must be able to answer.
- recognition: read one value, label or count shown in the chart;
- reasoning: several steps of computation over values shown (differences, sums, averages, ratios, rankings).
Write each as three lines, and nothing else:
Type: recognition or reasoning
Question: <the question>
Answer: <a number, or a name exactly as the chart shows it>"""

ANSWER_PROMPT = """Here is a matplotlib script:
```python
{code}
```
Question about the chart it draws: {question}
Work it out from the data in the code, then end with one line `Answer: <a number or a name>`."""

QA_REJECTIONS = ("qa_unparsed", "qa_answer_form", "qa_not_in_data", "qa_disagreed")
CHART_REJECTIONS = ("no_qa_agreed",)
CODE_BLOCK = re.compile(r"```(?:python|py)?[ \t]*\n(.*?)```", re.DOTALL | re.IGNORECASE)
TYPE_LINE = re.compile(r"^#\s*chart[_ ]type\s*:\s*([A-Za-z0-9_ -]+)", re.IGNORECASE | re.MULTILINE)
QA_BLOCK = re.compile(
    r"Type\s*:\s*(recognition|reasoning)\s*\n\s*Question\s*:\s*(.+?)\s*\n\s*Answer\s*:\s*(.+)",
    re.IGNORECASE,
)


@dataclass
class SynthesisSettings:
    """How `synthesize_charts` runs; every field has its default."""

    n: int = 8  # charts kept in all
    seeds: int = len(MINOR_TYPES)  # seed charts (template chart i of the seed split), one per type first
    rounds: int = 2  # round 1 self-instruct, rounds 2.. evol-instruct
    tries: int = 3  # prompts per round at most, as a multiple of its share of `n`
    recognition: int = 1  # recognition questions asked per chart
    reasoning: int = 1  # reasoning questions asked per chart
    temperature: float = 0.7  # when writing scripts and questions; the second pass is greedy
    max_new_tokens: int = 1024
    timeout: float = 10.0  # seconds a script may run
    processes: int = 2  # render workers
    batch: int = 8  # conversations per agent call
    split: str = "train"  # the records file's name
    seed: int = 0  # template chart family of the seeds, and the prompt order

    def problems(self) -> list[tuple[str, str]]:
        """(field, reason) for each bad setting."""
        out = []
        for name in ("n", "recognition", "reasoning"):
            if getattr(self, name) < 0:
                out.append((name, "must be >= 0"))
        for name in ("seeds", "rounds", "tries", "max_new_tokens", "processes", "batch"):
            if getattr(self, name) < 1:
                out.append((name, "must be >= 1"))
        if self.recognition + self.reasoning < 1:
            out.append(("recognition", "ask for at least one question a chart"))
        if self.temperature < 0:
            out.append(("temperature", "must be >= 0"))
        if not self.timeout > 0:
            out.append(("timeout", "must be > 0"))
        if not re.fullmatch(r"[A-Za-z0-9_-]+", self.split):
            out.append(("split", "letters, digits, _ and - only"))
        return out


@dataclass
class SynthesisReport:
    """What a run asked for, kept and rejected, with a first example message per reason."""

    prompts: int = 0
    scripts: Counter = field(default_factory=Counter)  # "kept" or a code rejection reason
    qa: Counter = field(default_factory=Counter)  # "kept" or a QA rejection reason
    charts: Counter = field(default_factory=Counter)  # "kept" or a chart rejection reason
    by_round: dict[int, Counter] = field(default_factory=dict)
    examples: dict[str, str] = field(default_factory=dict)
    records: int = 0

    def count(self, kind: str, reason: str, round_: int = 0, example: str = "") -> None:
        getattr(self, kind)[reason] += 1
        if kind == "scripts":
            self.by_round.setdefault(round_, Counter())[reason] += 1
        if example and reason != "kept" and reason not in self.examples:
            self.examples[reason] = example[:400]

    def table(self) -> str:
        """The counts as a printed table: scripts, QA pairs and charts, kept and each reason."""
        lines = [f"{'stage':<8} {'outcome':<22} {'count':>6}"]
        for kind, reasons in (
            ("scripts", CODE_REJECTIONS),
            ("qa", QA_REJECTIONS),
            ("charts", CHART_REJECTIONS),
        ):
            counter = getattr(self, kind)
            for reason in ("kept", *reasons):
                lines.append(f"{kind:<8} {reason:<22} {counter.get(reason, 0):>6}")
        lines.append(f"{'records':<31} {self.records:>6}")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["scripts"] = {r: self.scripts.get(r, 0) for r in ("kept", *CODE_REJECTIONS)}
        data["qa"] = {r: self.qa.get(r, 0) for r in ("kept", *QA_REJECTIONS)}
        data["charts"] = {r: self.charts.get(r, 0) for r in ("kept", *CHART_REJECTIONS)}
        data["by_round"] = {str(k): dict(v) for k, v in self.by_round.items()}
        return data


@dataclass
class _Script:
    code: str
    minor: str
    origin: str  # "self-instruct" or "evol-instruct:<evolution>"
    parent: str  # the seed's or the evolved chart's name
    round: int
    name: str = ""


def extract_code(reply: str) -> str | None:
    """The first fenced code block of a reply; a reply that is all code counts too."""
    match = CODE_BLOCK.search(reply)
    if match:
        return match.group(1).strip() + "\n"
    if "import matplotlib" in reply and "```" not in reply:
        return reply.strip() + "\n"
    return None


def chart_type(code: str, fallback: str) -> tuple[str, str]:
    """(minor, major) type: the script's `# chart_type:` line if it names a known type, else `fallback`'s."""
    match = TYPE_LINE.search(code)
    if match:
        name = match.group(1).strip().lower().replace(" ", "_").replace("-", "_")
        if name in KNOWN_TYPES:
            return name, KNOWN_TYPES[name]
    return fallback, KNOWN_TYPES.get(fallback, "other")


def parse_qa(reply: str) -> list[tuple[str, str, str]]:
    """(QA type, question, answer) triples of a QA reply."""
    return [
        (kind.lower(), question.strip(), extract_answer("Answer: " + answer.strip()))
        for kind, question, answer in QA_BLOCK.findall(reply)
    ]


def answers_agree(first: str, second: str) -> bool:
    """Numbers within 1% or 0.01 of each other; otherwise the same name after normalisation."""
    a, b = parse_number(first), parse_number(second)
    if a is not None and b is not None:
        return abs(a - b) <= max(0.01, 0.01 * abs(a))
    return bool(first.strip()) and normalize_label(first) == normalize_label(second)


def data_values(code: str) -> tuple[set[float], set[int]]:
    """The code's literal numbers and the lengths of its literal lists (from its syntax tree)."""
    numbers: set[float] = set()
    lengths: set[int] = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            numbers.add(abs(float(node.value)))
        elif isinstance(node, (ast.List, ast.Dict)):
            lengths.add(len(node.keys if isinstance(node, ast.Dict) else node.elts))
    return numbers, lengths


def _answer_problem(qa_type: str, answer: str, code: str) -> str | None:
    if not answer or len(answer) > 60 or "\n" in answer:
        return "qa_answer_form"
    value = parse_number(answer)
    if qa_type == "recognition" and value is not None:
        numbers, lengths = data_values(code)
        if not any(abs(abs(value) - v) <= max(0.01, 0.005 * v) for v in numbers) and value not in lengths:
            return "qa_not_in_data"
    return None


class _Asker:
    """Batched, progress-barred calls of `agent.complete`."""

    def __init__(self, agent: Any, settings: SynthesisSettings):
        self.agent, self.settings = agent, settings

    def __call__(self, prompts: Sequence[str], what: str, temperature: float) -> list[str]:
        replies: list[str] = []
        step = self.settings.batch
        with tqdm(total=len(prompts), desc=what, unit="reply", leave=False) as bar:
            for start in range(0, len(prompts), step):
                chunk = [[{"role": "user", "content": p}] for p in prompts[start : start + step]]
                out = self.agent.complete(
                    chunk, temperature=temperature, max_new_tokens=self.settings.max_new_tokens
                )
                replies += [samples[0] if samples else "" for samples in out]
                bar.update(len(chunk))
        return replies


def _seeds(settings: SynthesisSettings) -> list[_Script]:
    seeds = []
    for i in range(settings.seeds):
        chart = make_chart(i, "train", seed=settings.seed)
        name = f"seed_{settings.seed}_{i:04d}"
        seeds.append(_Script(plotting_code(chart), chart.minor, "template", name, 0, name))
    return seeds


def _prompt(parent: _Script, round_: int, k: int, rng: random.Random) -> tuple[str, str]:
    rules = RULES.format(types=", ".join(KNOWN_TYPES))
    if round_ == 1:
        if k % 2:
            other = rng.choice([t for t in KNOWN_TYPES if t != parent.minor])
            target = f", as a {other} chart"
        else:
            target = f", as a {parent.minor} chart"
        return SELF_INSTRUCT.format(minor=parent.minor, code=parent.code, target=target, rules=rules), (
            "self-instruct"
        )
    evolution = list(EVOLUTIONS)[k % len(EVOLUTIONS)]
    prompt = EVOL_INSTRUCT.format(
        minor=parent.minor, code=parent.code, evolution=EVOLUTIONS[evolution], rules=rules
    )
    return prompt, f"evol-instruct:{evolution}"


def synthesize_charts(
    agent: Any,
    out_dir: str | Path,
    settings: SynthesisSettings | None = None,
    log: Callable[[str], None] | None = None,
) -> SynthesisReport:
    """Run CIT synthesis with `agent` (anything with `Agent.complete`) and write `out_dir` (see the
    module docstring); return the report, also written to `out_dir/synthesis_report.json`."""
    settings = settings or SynthesisSettings()
    problems = settings.problems()
    if problems:
        raise ValueError("; ".join(f"{name}: {reason}" for name, reason in problems))
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "code").mkdir(parents=True, exist_ok=True)
    rng = random.Random(settings.seed)
    ask = _Asker(agent, settings)
    report = SynthesisReport()
    seeds = _seeds(settings)
    shares = [
        settings.n // settings.rounds + (r < settings.n % settings.rounds) for r in range(settings.rounds)
    ]
    renderer = CodeRenderer(processes=settings.processes, timeout=settings.timeout)
    previous: list[_Script] = []
    try:
        with open(out / f"{settings.split}.jsonl", "w", encoding="utf-8") as records:
            for round_, share in enumerate(shares, 1):
                parents = seeds if round_ == 1 or not previous else previous
                kept: list[_Script] = []
                asked = 0
                while len(kept) < share and asked < share * settings.tries:
                    wave = min(share - len(kept), share * settings.tries - asked)
                    scripts = _write_scripts(ask, parents, round_, asked, wave, rng, report)
                    asked += wave
                    for script, verdict in zip(scripts, _check_all(renderer, scripts, settings)):
                        if script is None:
                            continue
                        if not verdict.ok:
                            report.count("scripts", verdict.status, round_, verdict.message)
                            continue
                        report.count("scripts", "kept", round_)
                        script.name = f"synth_{round_}_{len(kept):04d}"
                        qa = _questions(ask, script, settings, report)
                        if not qa:
                            report.count("charts", "no_qa_agreed", example=script.name)
                            continue
                        kept.append(script)
                        report.count("charts", "kept")
                        _write_chart(out, records, script, verdict.png, qa, settings.split)
                        report.records += len(qa)
                if log:
                    log(f"round {round_}: kept {len(kept)} of {share} charts after {asked} prompts")
                previous = kept or previous
    finally:
        renderer.close()
    (out / "synthesis_report.json").write_text(
        json.dumps(report.to_json(), indent=2) + "\n", encoding="utf-8"
    )
    return report


def _write_scripts(
    ask: _Asker,
    parents: list[_Script],
    round_: int,
    start: int,
    count: int,
    rng: random.Random,
    report: SynthesisReport,
) -> list[_Script | None]:
    jobs = []
    for k in range(start, start + count):
        parent = parents[k % len(parents)]
        prompt, origin = _prompt(parent, round_, k, rng)
        jobs.append((parent, prompt, origin))
    report.prompts += len(jobs)
    replies = ask([prompt for _, prompt, _ in jobs], f"round {round_} scripts", ask.settings.temperature)
    scripts: list[_Script | None] = []
    for (parent, _, origin), reply in zip(jobs, replies):
        code = extract_code(reply)
        if code is None:
            report.count("scripts", "no_code", round_, reply[:200])
            scripts.append(None)
            continue
        minor, _ = chart_type(code, parent.minor)
        scripts.append(_Script(code, minor, origin, parent.name, round_))
    return scripts


def _check_all(renderer: CodeRenderer, scripts: list[_Script | None], settings: SynthesisSettings) -> list:
    def check(script: _Script | None):
        return None if script is None else renderer.check(script.code)

    with ThreadPoolExecutor(settings.processes) as pool:
        return list(pool.map(check, scripts))


def _questions(
    ask: _Asker, script: _Script, settings: SynthesisSettings, report: SynthesisReport
) -> list[tuple[str, str, str]]:
    """The QA pairs of a kept script that pass the checks and the second pass."""
    prompt = QA_PROMPT.format(
        code=script.code, recognition=settings.recognition, reasoning=settings.reasoning
    )
    (reply,) = ask([prompt], "questions", settings.temperature)
    parsed = parse_qa(reply)
    wanted = {"recognition": settings.recognition, "reasoning": settings.reasoning}
    if not parsed:
        report.count("qa", "qa_unparsed", example=reply[:200])
        return []
    candidates = []
    for qa_type, question, answer in parsed:
        if wanted.get(qa_type, 0) <= 0:
            continue
        wanted[qa_type] -= 1
        problem = _answer_problem(qa_type, answer, script.code)
        if problem:
            report.count("qa", problem, example=f"{question} -> {answer}")
        else:
            candidates.append((qa_type, question, answer))
    if not candidates:
        return []
    second = ask(
        [ANSWER_PROMPT.format(code=script.code, question=q) for _, q, _ in candidates], "second pass", 0.0
    )
    kept = []
    for (qa_type, question, answer), reply in zip(candidates, second):
        again = extract_answer(reply)
        if answers_agree(answer, again):
            report.count("qa", "kept")
            kept.append((qa_type, question, answer))
        else:
            report.count("qa", "qa_disagreed", example=f"{question}: {answer!r} then {again!r}")
    return kept


def _write_chart(
    out: Path, records: Any, script: _Script, png: bytes, qa: list[tuple[str, str, str]], split: str
) -> None:
    (out / "images" / f"{script.name}.png").write_bytes(png)
    (out / "code" / f"{script.name}.py").write_text(script.code, encoding="utf-8")
    minor, major = chart_type(script.code, script.minor)
    for qa_type, question, answer in qa:
        record = {
            "question": question,
            "answer": answer,
            "image": f"images/{script.name}.png",
            "code": f"code/{script.name}.py",
            "QA_type": qa_type,
            "major_chart_type": major,
            "minor_chart_type": minor,
            "answer_type": "number" if parse_number(answer) is not None else "text",
            "split": split,
            "chart": script.name,
            "origin": script.origin,
            "parent": script.parent,
            "round": script.round,
        }
        records.write(json.dumps(record, ensure_ascii=False) + "\n")
