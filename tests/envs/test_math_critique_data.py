"""Critic training data (`evol data critiques`): MathCritique's alpaca format written and read
back, correct and flawed solutions (inserted, sampled, resampled from a step), the oracle
refiner, and the Monte-Carlo filter on a scripted refiner whose success is known."""

from __future__ import annotations

import json
import random

import pytest

from envs.math.answers import answers_match, extract_answer
from envs.math.critics import OracleCritic
from envs.math.critique import parse_critique, solution_steps
from envs.math.critique_data import (
    CritiqueFileError,
    OracleRefiner,
    ProblemSource,
    RefineJob,
    alpaca_instruction,
    fixed_shares,
    prompt_parts,
    read_critique_file,
    released_critique,
)
from envs.math.data import CritiqueDataSettings, SettingError, write_critique_data
from envs.math.flaws import ERROR_KINDS, make_flawed
from envs.math.generator import generate_problem


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_records_round_trip_the_released_alpaca_format(tmp_path):
    out = tmp_path / "critiques.jsonl"
    report = write_critique_data(16, out, CritiqueDataSettings(seed=3))
    assert report.written == 16
    rows = _rows(out)
    assert all(set(row) == {"instruction", "input", "output", "meta"} and row["input"] == "" for row in rows)
    records = read_critique_file(out)
    assert len(records) == len(rows)
    for row, record in zip(rows, records):
        meta = record.meta
        assert meta == row["meta"]
        assert record.parts == (meta["question"], meta["solution"])
        assert record.critique.first_wrong_step == meta["first_wrong_step"]
        assert record.critique.verdict is (meta["method"] == "correct")
        assert released_critique(parse_critique(record.output)) == record.output
        problem = generate_problem(meta["task"], meta["split"], meta["difficulty"])
        assert meta["question"] == problem.question and meta["answer"] == problem.answer
    # the same records as one JSON list, as the released files are
    listed = tmp_path / "critiques.json"
    write_critique_data(16, listed, CritiqueDataSettings(seed=3))
    assert json.loads(listed.read_text()) == rows
    assert [r.output for r in read_critique_file(listed)] == [r.output for r in records]
    # the same seed writes the same file
    write_critique_data(16, tmp_path / "again.jsonl", CritiqueDataSettings(seed=3))
    assert (tmp_path / "again.jsonl").read_text() == out.read_text()


def test_flawed_and_correct_solutions_are_both_present(tmp_path):
    out = tmp_path / "critiques.jsonl"
    write_critique_data(24, out, CritiqueDataSettings(seed=1, correct_share=0.25))
    metas = [row["meta"] for row in _rows(out)]
    correct = [m for m in metas if m["method"] == "correct"]
    flawed = [m for m in metas if m["method"] != "correct"]
    assert len(correct) == 6 and {m["method"] for m in flawed} == {"inserted"}
    assert {m["error_kind"] for m in flawed} == set(ERROR_KINDS)
    assert {m["difficulty"] for m in metas} == {"easy", "medium", "hard"}
    for meta in correct:
        critique = OracleCritic(generate_problem(meta["task"], "train", meta["difficulty"])).critique(
            meta["question"], meta["solution"]
        )
        assert all(s.correct for s in critique.steps) and critique.answer_correct is True
        assert meta["refined"] == meta["solution"] and meta["first_wrong_step"] is None
    for meta in flawed:
        # the refinement is the refiner's, it reaches the gold answer, and the solution did not
        assert answers_match(extract_answer(meta["refined"]), meta["answer"])
        assert not answers_match(extract_answer(meta["solution"]), meta["answer"])
        assert meta["mc"] == {"k": 4, "fixed": 4, "share": 1.0, "threshold": 0.5, "refiner": "oracle"}
        kept = solution_steps(meta["solution"])[: meta["first_wrong_step"] - 1]
        assert solution_steps(meta["refined"])[: len(kept)] == kept


class ScriptedRefiner:
    """A model refiner whose success is known: right on the first `right(question)` of its n tries."""

    name = "scripted"

    def __init__(self, answers: dict[str, str], right):
        self.answers, self.right = answers, right
        self.conversations = []

    def complete(self, conversations, *, temperature=0.0, max_new_tokens=256, n=1, seed=None):
        replies = []
        for messages in conversations:
            self.conversations.append(messages)
            question = next(q for q in self.answers if q in messages[1]["content"])
            good = f"I fix it.\nThe answer is {self.answers[question]}."
            replies.append([good] * self.right(question) + ["The answer is -1."] * (n - self.right(question)))
        return replies


def test_the_monte_carlo_filter_keeps_a_critique_at_the_threshold_share(tmp_path):
    everything = tmp_path / "all.jsonl"
    write_critique_data(12, everything, CritiqueDataSettings(seed=5, mc_threshold=0.0, correct_share=0.25))
    metas = [row["meta"] for row in _rows(everything)]
    answers = {m["question"]: m["answer"] for m in metas}

    def right(question: str) -> int:  # 0..4 right tries of 4, known per question
        return len(question) % 5

    refiner = ScriptedRefiner(answers, right)
    out = tmp_path / "filtered.jsonl"
    settings = CritiqueDataSettings(seed=5, mc_k=4, mc_threshold=0.5, correct_share=0.25, max_tasks=12)
    report = write_critique_data(12, out, settings, refiner=refiner)
    kept = {row["meta"]["question"]: row["meta"] for row in _rows(out)}
    flawed = [m for m in metas if m["method"] != "correct"]
    assert sorted(report.shares) == sorted(right(m["question"]) / 4 for m in flawed)
    for meta in flawed:
        assert (meta["question"] in kept) is (right(meta["question"]) >= 2)
    for meta in kept.values():
        if meta["method"] != "correct":
            assert meta["mc"]["fixed"] == right(meta["question"]) and meta["mc"]["refiner"] == "scripted"
            assert meta["refined"] == f"I fix it.\nThe answer is {meta['answer']}."
    assert report.mc_rejected == sum(right(m["question"]) < 2 for m in flawed) > 0
    assert all(m["question"] in kept for m in metas if m["method"] == "correct")
    # the refiner is asked in MathCritique-v0's conversation, after the solution and its critique
    messages = refiner.conversations[0]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert (
        "Correctness of the step" in messages[3]["content"]
        and "Revise your solution" in messages[3]["content"]
    )


class ScriptedActor:
    """An actor that gets a step wrong: a slip in its first own line."""

    def __init__(self):
        self.prompts = []

    def complete(self, conversations, *, temperature=0.0, max_new_tokens=256, n=1, seed=None):
        self.prompts.extend(conversations)
        return [["Then 7 + 5 = 13 more.\nThe answer is 13."] * n for _ in conversations]


def test_sampled_and_resampled_solutions_come_from_the_actor(tmp_path):
    out = tmp_path / "critiques.jsonl"
    actor = ScriptedActor()
    report = write_critique_data(12, out, CritiqueDataSettings(seed=2, samples=2), actor=actor)
    metas = [row["meta"] for row in _rows(out)]
    assert {m["method"] for m in metas} == {"correct", "inserted", "sampled", "resampled"}
    assert report.by_method["sampled"] == report.by_method["resampled"] == 3
    for meta in metas:
        if meta["method"] == "sampled":
            assert (
                meta["solution"] == "Then 7 + 5 = 13 more.\nThe answer is 13."
                and meta["first_wrong_step"] == 1
            )
        if meta["method"] == "resampled":
            problem = generate_problem(meta["task"], "train", meta["difficulty"])
            kept = meta["resampled_from"] - 1
            assert solution_steps(meta["solution"])[:kept] == problem.lines[:kept]
            assert meta["first_wrong_step"] == meta["resampled_from"]
    resampling = [p for p in actor.prompts if "Continue from there" in p[1]["content"]]
    assert len(resampling) == 3 and all(p[0]["role"] == "system" for p in actor.prompts)


def test_an_actor_that_is_always_right_falls_back_to_an_inserted_mistake(tmp_path):
    from agents import load_agent

    report = write_critique_data(
        8,
        tmp_path / "c.jsonl",
        CritiqueDataSettings(seed=2, methods=("sampled",)),
        actor=load_agent("expert"),
    )
    assert report.written == 8 and report.fallbacks == 6 and report.by_method["inserted"] == 6
    metas = [row["meta"] for row in _rows(tmp_path / "c.jsonl")]
    assert {m.get("fallback") for m in metas if m["method"] == "inserted"} == {"sampled"}


def test_the_oracle_refiner_trusts_the_critique():
    problem = generate_problem(4, "train", "hard")
    flawed = make_flawed(problem, "slip", random.Random(0), step=2)
    oracle = OracleCritic(problem).critique(problem.question, flawed.text)
    refiner = OracleRefiner()
    fixed = refiner.revise(problem, flawed.text, oracle)
    assert answers_match(extract_answer(fixed), problem.answer)
    assert solution_steps(fixed)[:1] == solution_steps(flawed.text)[:1]
    accepting = parse_critique("Correctness of the final answer: Correct\nExplanation: fine.")
    late = parse_critique(
        "\n\n".join(
            f"Step sentence: {line}\nCorrectness of the step: {'Wrong' if i >= 4 else 'Correct'}\nExplanation: x"
            for i, line in enumerate(solution_steps(flawed.text), 1)
        )
    )
    early = parse_critique("Step sentence: a\nCorrectness of the step: Wrong\nExplanation: x")
    assert refiner.revise(problem, flawed.text, accepting) == flawed.text
    assert refiner.revise(problem, flawed.text, late) == flawed.text  # the error sits in an accepted step
    assert answers_match(extract_answer(refiner.revise(problem, flawed.text, early)), problem.answer)
    shares = fixed_shares(refiner, [RefineJob(problem, flawed.text, c) for c in (oracle, late)], 3)
    assert [share for share, _ in shares] == [1.0, 0.0]


def test_a_released_record_and_the_critic_prompt_are_read():
    released = (
        "Instruction:\nFor a given question, there is a step-by-step solution, where each line is a step.\n\n"
        "Question:\nTom has 3 packs of 12 pencils. How many pencils?\n\nSolution:\n3 * 12 = 36\n"
        "The answer is 36.\n\n"
    )
    assert prompt_parts(released) == (
        "Tom has 3 packs of 12 pencils. How many pencils?",
        "3 * 12 = 36\nThe answer is 36.",
    )
    from envs.math.critics import critique_prompt

    ours = critique_prompt("How many? Solution: none.", "A: 3 * 12 = 36.\nThe answer is 36.")
    assert prompt_parts(ours) == ("How many? Solution: none.", "A: 3 * 12 = 36.\nThe answer is 36.")
    assert prompt_parts(alpaca_instruction("Q?", "1 + 1 = 2\nThe answer is 2.")) == (
        "Q?",
        "1 + 1 = 2\nThe answer is 2.",
    )
    assert prompt_parts("Critique this: 3 * 12 = 36") is None


GOOD = {"instruction": "Question:\nQ?\n\nSolution:\n1 + 1 = 2\nThe answer is 2.", "input": "", "output": (
    "Step sentence: 1 + 1 = 2\nCorrectness of the step: Correct\nExplanation: ok.\n\n"
    "Correctness of the final answer: Correct\nExplanation: ok.")}  # fmt: skip


@pytest.mark.parametrize(
    ("line", "fault"),
    [
        ("{not json", "not JSON"),
        (json.dumps(["a list"]), "JSON object"),
        (json.dumps({**GOOD, "output": ""}), "`output` must be a non-empty string"),
        (json.dumps({k: v for k, v in GOOD.items() if k != "instruction"}), "`instruction` must be"),
        (json.dumps({**GOOD, "input": 3}), "`input` must be a string"),
        (json.dumps({**GOOD, "output": "The answer is 7."}), "`output` is not a critique"),
        (json.dumps({**GOOD, "meta": "labels"}), "`meta` must be an object"),
    ],
)
def test_a_malformed_record_is_refused_naming_its_line(tmp_path, line, fault):
    path = tmp_path / "critiques.jsonl"
    path.write_text(json.dumps(GOOD) + "\n\n" + line + "\n")
    with pytest.raises(CritiqueFileError, match=rf"critiques.jsonl line 3: .*{fault}"):
        read_critique_file(path)
    assert read_critique_file(_write(tmp_path / "ok.jsonl", GOOD))[0].parts == (
        "Q?",
        "1 + 1 = 2\nThe answer is 2.",
    )


def _write(path, record):
    path.write_text(json.dumps(record) + "\n")
    return path


def test_bad_settings_name_the_setting():
    for kwargs, name in [
        ({"mc_k": 0}, "mc_k"),
        ({"mc_threshold": 1.5}, "mc_threshold"),
        ({"correct_share": -0.1}, "correct_share"),
        ({"methods": ("guessed",)}, "methods"),
        ({"split": "dev"}, "split"),
        ({"samples": 0}, "samples"),
    ]:
        with pytest.raises(SettingError) as caught:
            CritiqueDataSettings(**kwargs)
        assert caught.value.field == name
    with pytest.raises(SettingError, match="need an actor"):
        CritiqueDataSettings(methods=("sampled",)).methods_for(None)
    assert ProblemSource("test").size == 10_000
