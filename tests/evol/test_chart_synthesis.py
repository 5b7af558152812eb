"""CIT chart synthesis by an agent (`evol data charts --synth agent`): each bad script class is
rejected with its reason and counted, good scripts are kept, QA a second pass disagrees with is
dropped, and `evol/ChartQA-v0` serves the records written."""

from __future__ import annotations

import json
import re

import pytest

from agents.base import Agent, AgentInput, SamplingParams
from envs.charts.env import ChartQAEnv
from evol.charts_synthesis import SynthesisSettings, answers_agree, extract_code, synthesize_charts
from evol.cli import main

HEAD = "# chart_type: {kind}\n# id: {id}\nimport matplotlib.pyplot as plt\n"
GOOD_BARS = HEAD.format(kind="grouped_bar", id="bars") + (
    'labels = ["North", "South", "East", "West"]\n'
    "sales = [12.5, 8.0, 15.25, 9.5]\n"
    "fig, ax = plt.subplots(figsize=(4.8, 3.6), dpi=100)\n"
    'ax.bar(labels, sales, color="tab:blue")\n'
    'ax.set_title("Sales by region")\n'
    'ax.set_ylabel("Sales (M$)")\n'
)
GOOD_PIE = HEAD.format(kind="pie", id="pie") + (
    'parts = {"Rent": 40, "Food": 25, "Travel": 20, "Other": 15}\n'
    "fig, ax = plt.subplots(figsize=(4.8, 3.6), dpi=100)\n"
    'ax.pie(list(parts.values()), labels=list(parts), autopct="%.0f%%")\n'
    'ax.set_title("Monthly budget")\n'
)
GOOD_LINES = HEAD.format(kind="line", id="lines") + (
    "years = [2019, 2020, 2021, 2022, 2023]\n"
    'visits = {"Museum": [120, 95, 110, 150, 170], "Zoo": [200, 180, 190, 210, 260]}\n'
    "fig, ax = plt.subplots(figsize=(4.8, 3.6), dpi=100)\n"
    "for name, values in visits.items():\n"
    '    ax.plot(years, values, marker="o", label=name)\n'
    'ax.axhline(150, color="gray", linestyle="--")\n'
    "ax.legend()\n"
    'ax.set_title("Visitors (thousands)")\n'
)
BAD = {
    "no_code": "I would rather not write a chart today.",
    "syntax_error": "```python\n"
    + HEAD.format(kind="bar", id="s")
    + "values = [1, 2, 3\nfig = plt.figure(\n```",
    "unsafe_code": "```python\nimport os\nos.system('true')\n```",
    "timeout": "```python\n"
    + HEAD.format(kind="line", id="t")
    + "values = [1, 2, 3]\nfig, ax = plt.subplots()\nfor i in range(10**12):\n    x = i\n```",
    "empty_figure": "```python\n"
    + HEAD.format(kind="bar", id="e")
    + "values = [1, 2, 3]\nfig, ax = plt.subplots()\nax.set_title('Nothing')\n```",
    "data_marks_mismatch": "```python\n"
    + HEAD.format(kind="bar", id="m")
    + "values = [3, 4, 5, 6, 7]\nfig, ax = plt.subplots()\nax.bar(range(6), values + [9])\n```",
}
QA = {  # chart id -> the QA reply, and question -> the second pass's answer
    "bars": "Type: recognition\nQuestion: What are the sales of East?\nAnswer: 15.25\n"
    "Type: reasoning\nQuestion: How much higher are North's sales than West's?\nAnswer: 3\n"
    "Type: reasoning\nQuestion: Which region sells the least?\nAnswer: South\n",
    "pie": "Type: recognition\nQuestion: What share goes to Food?\nAnswer: 25\n"
    "Type: reasoning\nQuestion: What is Rent's share minus Travel's?\nAnswer: 20\n",
    "lines": "Type: recognition\nQuestion: How many visitors did the Zoo have in 2023?\nAnswer: 260\n"
    "Type: recognition\nQuestion: How many years are shown?\nAnswer: 7\n"
    "Type: reasoning\nQuestion: By how much did Museum visits grow from 2019 to 2023?\nAnswer: 50\n",
}
SECOND = {
    "What are the sales of East?": "Answer: 15.25",
    "How much higher are North's sales than West's?": "12.5 - 9.5 = 3.0\nAnswer: 3.0",
    "Which region sells the least?": "Answer: West",  # disagrees: dropped
    "What share goes to Food?": "Answer: 30",  # disagrees: the pie keeps no QA
    "What is Rent's share minus Travel's?": "Answer: 15",
    "How many visitors did the Zoo have in 2023?": "Answer: 260",
    "By how much did Museum visits grow from 2019 to 2023?": "170 - 120\nAnswer: 50",
}


class ScriptedWriter(Agent):
    """Replies with known scripts in turn, and with known QA and second-pass answers."""

    def __init__(self, scripts: list[str]):
        self.scripts = list(scripts)
        self.prompts: list[str] = []

    def generate(self, inputs: list[AgentInput], sampling: SamplingParams) -> list[list[str]]:
        replies = []
        for item in inputs:
            prompt = item.messages[-1]["content"]
            self.prompts.append(prompt)
            if "Question about the chart" in prompt:
                question = re.search(r"Question about the chart it draws: (.+)", prompt).group(1)
                reply = SECOND[question]
            elif "recognition question(s)" in prompt:
                reply = QA[re.search(r"# id: (\w+)", prompt).group(1)]
            else:
                reply = self.scripts.pop(0)
            replies.append([reply] * sampling.n)
        return replies


def fenced(code: str) -> str:
    return f"Here it is:\n```python\n{code}```\nDone."


def test_bad_scripts_are_rejected_with_their_reasons_and_good_ones_kept(tmp_path):
    agent = ScriptedWriter([*BAD.values(), fenced(GOOD_BARS), fenced(GOOD_PIE), fenced(GOOD_LINES)])
    settings = SynthesisSettings(n=2, rounds=2, tries=8, seeds=3, recognition=2, reasoning=2, timeout=2.0)
    report = synthesize_charts(agent, tmp_path, settings)

    for reason in BAD:
        assert report.scripts[reason] == 1, (reason, report.scripts)
        assert reason in report.examples
    assert "ran past" in report.examples["timeout"]
    assert "6 bars" in report.examples["data_marks_mismatch"]
    assert report.scripts["kept"] == 3
    assert report.by_round[1]["kept"] == 1 and report.by_round[2]["kept"] == 2
    # QA: the bars keep 2 of 3 (South/West disagree), the pie none of 2, the lines 2 of 3 (7 years is no
    # count of the data: the program over the code's data drops it before the second pass)
    assert report.qa == {"kept": 4, "qa_disagreed": 3, "qa_not_in_data": 1}
    assert report.charts == {"kept": 2, "no_qa_agreed": 1}
    assert report.records == 4
    saved = json.loads((tmp_path / "synthesis_report.json").read_text())
    assert saved["scripts"]["timeout"] == 1 and saved["charts"]["no_qa_agreed"] == 1
    assert "data_marks_mismatch" in report.table()

    # round 1 shows seeds (the template's code); round 2 evolves the chart round 1 kept
    script_prompts = [p for p in agent.prompts if "chart_type: <type>" in p]
    assert "Write a new chart script" in script_prompts[0] and "fig.subplots_adjust" in script_prompts[0]
    assert "Rewrite it into a harder chart" in script_prompts[-1] and "# id: bars" in script_prompts[-1]

    records = [json.loads(line) for line in (tmp_path / "train.jsonl").read_text().splitlines()]
    assert [r["question"] for r in records] == [
        "What are the sales of East?",
        "How much higher are North's sales than West's?",
        "How many visitors did the Zoo have in 2023?",
        "By how much did Museum visits grow from 2019 to 2023?",
    ]
    assert {r["origin"] for r in records} == {"self-instruct", "evol-instruct:visual_element"}
    assert records[0]["minor_chart_type"] == "grouped_bar" and records[0]["major_chart_type"] == "bar"
    assert records[2]["QA_type"] == "recognition" and records[3]["QA_type"] == "reasoning"
    assert (tmp_path / records[0]["code"]).read_text() == GOOD_BARS

    # evol/ChartQA-v0 serves them, in image and code mode; the expert's answers score
    for mode in ("image", "code"):
        env = ChartQAEnv(data=str(tmp_path / "train.jsonl"), mode=mode)
        for task, record in enumerate(records):
            observation, info = env.reset(options={"task": task})
            assert record["question"] in observation["text"]
            assert observation["image"].any() == (mode == "image")
            _, reward, done, _, _ = env.step(env.expert_action())
            assert reward == 1.0 and done
        if mode == "code":
            env.reset(options={"task": 0})
            assert "sales = [12.5, 8.0, 15.25, 9.5]" in env._prompt
        env.close()


def test_code_extraction_and_answer_agreement():
    assert extract_code("text\n```python\nx = [1]\n```\nmore") == "x = [1]\n"
    assert extract_code("no code here") is None
    assert answers_agree("3", "3.0") and answers_agree("12.5%", "12.5")
    assert answers_agree("The West", "west") and not answers_agree("West", "South")


def test_cli_writes_the_report_for_an_agent_that_writes_no_code(tmp_path, capsys):
    out = tmp_path / "charts"
    status = main(
        [
            "data",
            "charts",
            "--synth",
            "agent",
            "--agent",
            "random",
            "--n",
            "2",
            "--tries",
            "1",
            "--out",
            str(out),
        ]
    )
    printed = capsys.readouterr().out
    assert status == 1  # nothing kept
    assert re.search(r"scripts\s+no_code\s+2", printed)
    assert json.loads((out / "synthesis_report.json").read_text())["scripts"]["no_code"] == 2


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--synth", "agent"], "--agent"),
        (["--synth", "agent", "--agent", "bogus:x"], "--agent"),
        (["--synth", "agent", "--agent", "random", "--rounds", "0"], "--rounds"),
        (["--synth", "agent", "--agent", "random", "--timeout", "0"], "--timeout"),
        (["--synth", "agent", "--agent", "expert"], "--agent"),
        (["--seeds", "3"], "--seeds"),
        (["--n", "-1"], "--n"),
    ],
)
def test_bad_flags_are_refused_with_exit_2(tmp_path, capsys, flags, message):
    argv = ["data", "charts", "--out", str(tmp_path / "x"), *flags]
    if "--n" not in flags:
        argv += ["--n", "2"]
    assert main(argv) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
