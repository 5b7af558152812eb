"""Math with critique: problems, answer checking, critiques, both envs, guidance, data, test-time scaling."""

from __future__ import annotations

import json
import random
import re
import time
from fractions import Fraction

import pytest

import envs
from agents.base import Agent, AgentInput, SamplingParams
from envs.errors import TaskOptionError
from envs.math.answers import answers_match, extract_answer
from envs.math.arithmetic import computations, evaluate
from envs.math.critics import OracleCritic
from envs.math.critique import Critique, CritiqueFormatError, StepCritique, parse_critique, solution_steps
from envs.math.flaws import ERROR_KINDS, make_flawed
from envs.math.generator import generate_problem
from envs.math.problems import LEVEL_SPECS, load_problems
from envs.math.scaling import majority_vote, pass_at_k, scaling_report
from envs.numbers import format_number
from evol.rollout import EpisodeSpec, RolloutEngine

ACTOR = "evol/MathCritique-v0"
CRITIC = "evol/MathCritic-v0"


# ---- problems -------------------------------------------------------------------------
def test_a_task_index_always_gives_the_same_problem():
    for task in range(30):
        first, again = generate_problem(task, "test"), generate_problem(task, "test")
        assert (first.question, first.solution) == (again.question, again.solution)
    assert generate_problem(0, "test").question != generate_problem(1, "test").question


def test_train_and_test_splits_share_no_problem():
    train = {generate_problem(k, "train").question for k in range(400)}
    test = {generate_problem(k, "test").question for k in range(400)}
    assert len(train) == len(test) == 400
    assert not train & test


@pytest.mark.parametrize("level", ["easy", "medium", "hard"])
def test_reference_solutions_compute_exactly_at_each_level(level):
    spec = LEVEL_SPECS[level]
    for task in range(40):
        problem = generate_problem(task, "train", level)
        assert problem.difficulty == level
        assert spec.steps[0] <= len(problem.lines) <= spec.steps[1]
        assert len(problem.givens) >= spec.distractors
        for line, value in zip(problem.lines, problem.line_values):
            (computation,) = computations(line)
            assert computation.actual == computation.claimed == value
        assert problem.solution.splitlines()[-1] == f"The answer is {problem.answer}."
        assert Fraction(problem.answer) == problem.line_values[-1] and int(problem.answer) > 0


def test_mixed_difficulty_cycles_levels_and_matches_the_explicit_level():
    assert [generate_problem(k, "test").difficulty for k in range(3)] == ["easy", "medium", "hard"]
    assert generate_problem(4, "test").question == generate_problem(4, "test", "medium").question


# ---- answers --------------------------------------------------------------------------
ANSWER_TABLE = [
    ("36", "36", True),
    ("36 pencils", "36", True),
    ("$1,234", "1234", True),
    ("1,234.50", "1234.5", True),
    ("\\$18.00", "18", True),
    ("18 dollars", "$18", True),
    ("50%", "0.5", True),
    ("50\\%", "50", True),
    ("0.5", "\\frac{1}{2}", True),
    ("\\dfrac{3}{4}", "0.75", True),
    ("\\frac34", "3/4", True),
    ("$\\boxed{\\frac12}$", "1/2", True),
    ("-3", "-3.0", True),
    (".5", "0.5", True),
    ("2 1/2", "5/2", True),
    ("x = 5", "5", True),
    ("12 m^2", "12", True),
    ("\\text{5 cm}", "5", True),
    ("0.333", "1/3", True),
    ("0.33", "1/3", False),
    ("35", "36", False),
    ("2x", "2", False),
    ("(1, 2)", "(1,2)", True),
    ("(1, 2)", "(2, 1)", False),
    ("\\sqrt{2}/2", "\\frac{\\sqrt{2}}{2}", True),
    ("2\\pi", "\\pi \\cdot 2", True),
    ("x^2+2x+1", "(x+1)^2", True),
    ("\\frac{\\pi}{2}", "1.5707963267948966", True),
    ("", "5", False),
    (None, "5", False),
]


@pytest.mark.parametrize(("predicted", "gold", "same"), ANSWER_TABLE)
def test_answer_equivalence_table(predicted, gold, same):
    assert answers_match(predicted, gold) is same


EXTRACTION_TABLE = [
    ("3 * 12 = 36 pencils.\nThe answer is 36.", "36"),
    ("The answer is $1,234.50.", "$1,234.50"),
    ("The final answer is: 3.5. Hope that helps.", "3.5"),
    ("So the result is \\boxed{\\frac{1}{2}}.", "\\frac{1}{2}"),
    ("Natalia sold 48/2 = 24 clips.\n#### 72", "72"),
    ("\\boxed{3} was a guess; the answer is 4.", "4"),
    ("no marker, but 3 and then 4.5", "4.5"),
]


@pytest.mark.parametrize(("text", "answer"), EXTRACTION_TABLE)
def test_answer_extraction_table(text, answer):
    assert extract_answer(text) == answer


def test_extraction_without_a_marker_finds_nothing_when_asked_to_be_strict():
    assert extract_answer("go to the moon 42", fallback_last_number=False) is None


def test_a_pathological_expression_is_cut_off_by_the_time_limit():
    started = time.monotonic()
    assert answers_match("10^{9^{9^{9}}}", "1", timeout=1.0) is False
    assert time.monotonic() - started < 20  # includes the worker's start
    assert answers_match("\\frac{\\sqrt{8}}{2}", "\\sqrt{2}") is True  # a fresh worker answers again


# ---- critiques ------------------------------------------------------------------------
def test_oracle_critic_locates_every_injected_error():
    located = {kind: 0 for kind in ERROR_KINDS}
    for task in range(70):
        problem = generate_problem(task, "train")
        oracle = OracleCritic(problem)
        clean = oracle.critique(problem.question, problem.solution)
        assert clean.verdict is True and clean.first_wrong_step is None
        for kind in ERROR_KINDS:
            flawed = make_flawed(problem, kind, random.Random(task))
            if flawed is None:
                continue
            critique = oracle.critique(problem.question, flawed.text)
            assert critique.answer_correct is False, (kind, flawed.text)
            assert critique.first_wrong_step == flawed.first_wrong_step, (
                kind,
                flawed.text,
                critique.render(),
            )
            located[kind] += 1
    assert sum(located.values()) >= 200
    assert all(count >= 50 for count in located.values()), located


def test_flawed_solutions_propagate_the_error_to_the_answer():
    problem = generate_problem(5, "train", "hard")
    for kind in ERROR_KINDS:
        flawed = make_flawed(problem, kind, random.Random(0))
        k = flawed.first_wrong_step
        assert flawed.lines[: k - 1] == problem.lines[: k - 1]
        assert flawed.answer != problem.answer
        if kind == "dropped":
            assert len(flawed.lines) == len(problem.lines) - 1
        else:
            assert len(flawed.lines) == len(problem.lines) and flawed.lines[k - 1] != problem.lines[k - 1]


def test_the_first_wrong_step_gets_the_right_computation():
    problem = generate_problem(5, "train", "hard")
    flawed = make_flawed(problem, "slip", random.Random(1), step=2)
    critique = OracleCritic(problem).critique(problem.question, flawed.text)
    (wrong,) = [s for s in critique.steps if s.index == 2]
    right = computations(problem.lines[1])[0]
    assert f"The right computation: {right.expression} = {format_number(right.claimed)}." in wrong.explanation
    later = [s for s in critique.steps if s.index > 2]
    assert all(s.correct or "carries the error of step 2" in s.explanation for s in later)
    assert [s.correct for s in later] == [False, True, False, False, False]  # step 4 does not use step 2


def test_critiques_render_and_parse_back():
    problem = generate_problem(8, "train")
    flawed = make_flawed(problem, "operand", random.Random(3))
    critique = OracleCritic(problem).critique(problem.question, flawed.text)
    parsed = parse_critique(critique.render())
    assert parsed.steps == critique.steps
    assert (parsed.answer, parsed.answer_correct) == (critique.answer, critique.answer_correct)


def test_the_parser_tolerates_markdown_and_missing_fields():
    text = (
        "**Step 1:** 3 * 12 = 36\n- **Verdict**: correct\n\n"
        "### Step 2 - 36 - 5 = 32\nThis is incorrect: 36 - 5 = 31.\n\n"
        "Step 3. 32 * 2 = 64 (wrong, it builds on step 2)\n\n"
        "**Final Answer**: 64 — Verdict: Wrong"
    )
    critique = parse_critique(text)
    assert [s.correct for s in critique.steps] == [True, False, False]
    assert critique.first_wrong_step == 2
    assert critique.answer_correct is False
    assert parse_critique("Overall, the final answer is correct.").verdict is True
    with pytest.raises(CritiqueFormatError):
        parse_critique("xyzzy plugh ###")


def test_step_arithmetic_is_read_and_evaluated_exactly():
    (c,) = computations("Tom buys 3 packs of 12 pencils: 3 x 12 = 37 pencils.")
    assert (c.expression, c.claimed, c.actual, c.right) == ("3 x 12", 37, 36, False)
    assert [x.claimed for x in computations("So $1,200 / (2 + 3) = $240, and 240 * 2 = 480.")] == [240, 480]
    assert evaluate("7 / 2 - (1 + 1) * 3") == Fraction(-5, 2)
    assert evaluate("3 / 0") is None and evaluate("3 +") is None


# ---- the actor env --------------------------------------------------------------------
class CritiqueFollower(Agent):
    """Answers with a flawed solution, then rewrites it from the critique's first wrong step:
    that line becomes the critique's right computation, and later lines are recomputed
    with the corrected value. With `stubborn`, it ignores the first critique."""

    name = "critique-follower"

    def __init__(self, kind: str = "slip", stubborn: bool = False):
        self.kind = kind
        self.stubborn = stubborn

    def generate(self, inputs: list[AgentInput], sampling: SamplingParams) -> list[list[str]]:
        replies = []
        for item in inputs:
            mine = [m["content"] for m in item.messages if m["role"] == "assistant"]
            if not mine:
                problem = item.env.problem
                reply = make_flawed(problem, self.kind, random.Random(problem.task)).text
            elif self.stubborn and len(mine) == 1:
                reply = mine[-1]
            else:
                reply = revise(mine[-1], item.messages[-1]["content"])
            replies.append([reply] * sampling.n)
        return replies


def revise(solution: str, observation: str) -> str:
    critique = parse_critique(observation.split("\n\nRevise your solution")[0])
    k = critique.first_wrong_step
    right = re.search(r"The right computation: (.*?)\.?$", critique.steps[k - 1].explanation).group(1)
    lines = solution_steps(solution)
    old, new = computations(lines[k - 1])[-1], computations(right)[-1]
    lines[k - 1] = f"{lines[k - 1].split(':')[0]}: {right}."
    corrected = {old.claimed: new.claimed}
    for j in range(k, len(lines)):
        label, _, rest = lines[j].partition(": ")
        (c,) = computations(rest)
        expression = re.sub(
            r"\d+(?:\.\d+)?",
            lambda m: format_number(corrected.get(Fraction(m.group()), Fraction(m.group()))),
            c.expression,
        )
        corrected[c.claimed] = evaluate(expression)
        lines[j] = f"{label}: {expression} = {format_number(corrected[c.claimed])}."
    value = computations(lines[-1])[-1].claimed
    return "\n".join([*lines, f"The answer is {format_number(value)}."])


def run(agent: Agent, tasks: range, samples: int = 1, **env_kwargs):
    engine = RolloutEngine(agent, concurrency=4, progress=False, env_kwargs={ACTOR: env_kwargs})
    try:
        specs = [
            EpisodeSpec(ACTOR, k, {"task": k, "split": "test"}, s) for k in tasks for s in range(samples)
        ]
        return engine.run(specs)
    finally:
        engine.close()


@pytest.mark.parametrize("kind", ["slip", "operation", "operand"])
def test_an_actor_that_follows_the_critique_reaches_the_right_answer(kind):
    trajectories = run(CritiqueFollower(kind), range(12), critic="oracle", refine_rounds=1)
    assert all(t.success and t.turns == 2 for t in trajectories), [
        t.messages for t in trajectories if not t.success
    ]
    assert all(t.rewards == [0.0, 1.0] for t in trajectories)
    assert all("Critique of your solution" in t.messages[3]["content"] for t in trajectories)


def test_refinement_rounds_are_counted():
    stubborn = CritiqueFollower("slip", stubborn=True)
    assert all(t.success and t.turns == 3 for t in run(stubborn, range(4), critic="oracle", refine_rounds=2))
    assert not any(t.success for t in run(stubborn, range(4), critic="oracle", refine_rounds=1))
    assert all(t.turns == 1 and not t.success for t in run(CritiqueFollower(), range(4)))  # no critic


def test_step_info_records_attempts_and_fixes():
    env = envs.make(ACTOR, critic="oracle")
    env.reset(options={"task": 2})
    wrong = make_flawed(env.problem, "slip", random.Random(0)).text
    observation, reward, terminated, _, info = env.step(wrong)
    assert not terminated and reward == 0 and observation.startswith("Critique of your solution")
    assert info["attempts"] == [{"answer": info["answer"], "correct": False}] and not info["first_correct"]
    assert info["critique"]["verdict"] is False and info["critique"]["first_wrong_step"] >= 1
    _, reward, terminated, _, info = env.step(env.expert_action())
    assert terminated and reward == 1.0 and info["success"]
    assert info["fixed_by_refinement"] and [a["correct"] for a in info["attempts"]] == [False, True]
    assert (info["task"], info["difficulty"], info["guidance"]) == (2, "hard", "none")


def test_critique_always_lets_the_critic_decide():
    class Grumpy:
        def critique(self, question, solution):
            return Critique([StepCritique(1, "", False, "Recheck it.")], answer_correct=False)

    env = envs.make(ACTOR, critic=Grumpy(), critique_when="always", refine_rounds=2)
    env.reset(options={"task": 0})
    for _ in range(2):
        observation, _, terminated, _, _ = env.step(env.expert_action())
        assert not terminated and "Recheck it." in observation
    _, reward, terminated, _, info = env.step(env.expert_action())
    assert terminated and reward == 1.0 and info["attempt"] == 3
    oracle = envs.make(ACTOR, critic="oracle", critique_when="always")
    oracle.reset(options={"task": 0})
    assert oracle.step(oracle.expert_action())[2] is True  # the oracle accepts a right answer


def test_a_model_critic_is_any_object_that_completes_conversations():
    class Reviewer:  # the Completer protocol of envs.counterparts, duck-typed
        def __init__(self, reply: str):
            self.reply, self.prompts = reply, []

        def complete(self, conversations, *, temperature=0.0, max_new_tokens=256, n=1, seed=None):
            self.prompts.append(conversations[0])
            return [[self.reply] * n for _ in conversations]

    reviewer = Reviewer(
        "Step 1: ...\nVerdict: Wrong\nExplanation: 3 * 4 = 12, not 13.\n\nFinal answer: 9\nVerdict: Wrong"
    )
    env = envs.make(ACTOR, critic=reviewer)
    env.reset(options={"task": 1})
    observation, _, terminated, _, info = env.step("3 * 4 = 13\nThe answer is 9.")
    assert not terminated and "3 * 4 = 12, not 13." in observation
    assert info["critique"] == {"first_wrong_step": 1, "verdict": False, "parsed": True}
    assert "Step 1: 3 * 4 = 13" in reviewer.prompts[0][1]["content"]
    babbler = Reviewer("I am not sure.")
    env = envs.make(ACTOR, critic=babbler)
    env.reset(options={"task": 1})
    observation, _, terminated, _, info = env.step("The answer is 9.")
    assert not terminated and "I am not sure." in observation and info["critique"]["verdict"] is None
    assert info["critique"]["parsed"] is False


def test_a_missing_data_file_is_a_param_error_naming_the_file_only(tmp_path):
    from envs.errors import ParamError

    with pytest.raises(ParamError, match="'gone.jsonl'") as refused:
        envs.make(ACTOR, data=str(tmp_path / "gone.jsonl"))
    assert str(tmp_path) not in str(refused.value)


def test_a_solution_without_an_answer_line_is_invalid_and_not_an_attempt():
    env = envs.make(ACTOR, critic="oracle")
    env.reset(options={"task": 0})
    observation, _, terminated, _, info = env.step("I think it is 42")
    assert info["invalid"] and not terminated and "The answer is N." in observation
    _, _, terminated, _, info = env.step(env.expert_action())
    assert terminated and info["attempt"] == 1 and info["turn"] == 2


# ---- guidance (GSI) -------------------------------------------------------------------
def test_answer_and_rationale_guidance_show_the_gold():
    env = envs.make(ACTOR)
    observation, info = env.reset(options={"task": 7, "guidance": "answer"})
    assert f"the correct answer is {env.gold_answer}" in observation and info["guidance"] == "answer"
    observation, _ = env.reset(options={"task": 7, "guidance": "rationale"})
    assert env.problem.solution in observation


def test_state_reset_prefills_the_solution_and_the_env_checks_the_whole():
    env = envs.make(ACTOR, critic="oracle")
    observation, info = env.reset(
        options={"task": 5, "difficulty": "hard", "guidance": "state_reset", "prefix_steps": 2}
    )
    prefix = env.problem.lines[:2]
    assert info["prefix_steps"] == 2 and "\n".join(prefix) in observation and "already begins" in observation
    assert env.expert_action().splitlines() == [*env.problem.lines[2:], f"The answer is {env.gold_answer}."]
    flawed = make_flawed(env.problem, "slip", random.Random(0), step=4)
    continuation = "\n".join([*flawed.lines[2:], f"The answer is {flawed.answer}."])
    observation, _, _, _, info = env.step(continuation)
    assert info["critique"]["first_wrong_step"] == 4  # the prefix's lines are steps 1 and 2
    assert "Step 1: " + prefix[0] in observation
    _, info = env.reset(
        options={"task": 0, "difficulty": "easy", "guidance": "state_reset", "prefix_steps": 9}
    )
    assert info["prefix_steps"] == len(env.problem.lines) - 1  # at most all but one line
    assert envs.run_expert(env, options={"task": 3, "guidance": "state_reset", "prefix_steps": 1}).success


def test_interactive_guidance_brings_a_teacher_without_a_critic():
    env = envs.make(ACTOR)
    _, info = env.reset(options={"task": 4, "guidance": "interactive"})
    assert info["critic"] == "oracle"
    observation, _, terminated, _, _ = env.step(make_flawed(env.problem, "operation", random.Random(0)).text)
    assert not terminated and "The right computation" in observation


@pytest.mark.parametrize(
    "options",
    [
        {"guidance": "hints"},
        {"guidance": "state_reset", "prefix_steps": 0},
        {"prefix_steps": 2},
        {"difficulty": "expert"},
        {"split": "dev"},
        {"task": 10_000, "split": "test"},
    ],
)
def test_bad_task_options_are_refused(options):
    with pytest.raises(TaskOptionError):
        envs.make(ACTOR).reset(options=options)


# ---- data files -----------------------------------------------------------------------
GSM8K = [
    {
        "question": "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
        "How many clips did Natalia sell altogether in April and May?",
        "answer": "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n"
        "Natalia sold 48+24 = <<48+24=72>>72 clips altogether in April and May.\n#### 72",
    },
    {
        "question": "Weng earns $12 an hour for babysitting. Yesterday, she just did 50 minutes of babysitting. "
        "How much did she earn?",
        "answer": "Weng earns 12/60 = $<<12/60=0.2>>0.2 per minute.\n"
        "Working 50 minutes, she earned 0.2 x 50 = $<<0.2*50=10>>10.\n#### 10",
    },
]
MATH = [
    {
        "problem": "What is $\\frac{1}{4} + \\frac{1}{4}$?",
        "solution": "We add: $\\frac{1}{4} + \\frac{1}{4} = \\frac{2}{4} = \\boxed{\\frac{1}{2}}$.",
        "level": "Level 1",
    },
    {
        "problem": "Simplify $\\sqrt{8}$.",
        "solution": "$\\sqrt{8} = \\boxed{2\\sqrt{2}}$.",
        "level": "Level 2",
    },
]


def write(path, records):
    if path.suffix == ".parquet":
        from datasets import Dataset

        Dataset.from_list(records).to_parquet(str(path))
    elif path.suffix == ".json":
        path.write_text(json.dumps(records))
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


@pytest.mark.parametrize("name", ["gsm8k.jsonl", "gsm8k.parquet", "math.jsonl", "math.json", "math.parquet"])
def test_local_files_load_and_verify(tmp_path, name):
    records = GSM8K if name.startswith("gsm8k") else MATH
    path = write(tmp_path / name, records)
    problems = load_problems(path)
    assert [p.source for p in problems] == ["gsm8k" if name.startswith("gsm8k") else "math"] * 2
    env = envs.make(ACTOR, data=str(path), critic="oracle")
    for task in range(2):
        assert envs.run_expert(env, options={"task": task}).success
    if name.startswith("gsm8k"):
        assert [p.answer for p in problems] == ["72", "10"]
        assert problems[0].line_values == [24, 72] and "<<" not in problems[0].lines[0]
    else:
        assert [p.answer for p in problems] == ["\\frac{1}{2}", "2\\sqrt{2}"]
        env.reset(options={"task": 0})
        assert env.step("Half of it.\nThe answer is 0.5.")[1] == 1.0


def test_the_oracle_critic_checks_gsm8k_steps_from_their_annotations(tmp_path):
    (problem, _) = load_problems(write(tmp_path / "g.jsonl", GSM8K))
    wrong = "Natalia sold 48/2 = 24 clips in May.\nAltogether 48+42 = 90 clips.\nThe answer is 90."
    critique = OracleCritic(problem).critique(problem.question, wrong)
    assert critique.first_wrong_step == 2 and "48+24 = 72" in critique.steps[1].explanation


def test_unknown_record_fields_and_file_types_are_refused(tmp_path):
    with pytest.raises(ValueError, match="question"):
        load_problems(write(tmp_path / "x.jsonl", [{"prompt": "hi", "completion": "3"}]))
    with pytest.raises(ValueError, match=".jsonl"):
        load_problems(write(tmp_path / "x.csv", GSM8K))


def test_a_data_file_refuses_difficulty(tmp_path):
    env = envs.make(ACTOR, data=str(write(tmp_path / "g.jsonl", GSM8K)))
    with pytest.raises(TaskOptionError):
        env.reset(options={"task": 0, "difficulty": "hard"})
    with pytest.raises(TaskOptionError):
        env.reset(options={"task": 2})


# ---- the critic env -------------------------------------------------------------------
@pytest.mark.parametrize("error", ["none", *ERROR_KINDS])
def test_the_critic_env_expert_earns_full_reward(error):
    env = envs.make(CRITIC)
    for task in range(4):
        observation, _ = env.reset(options={"task": task, "error": error})
        assert "Step 1: " in observation
        _, reward, terminated, _, info = env.step(env.expert_action())
        assert terminated and reward == 1.0 and info["success"]
        assert info["verdict_correct"] and info["step_correct"]
        assert info["error_kind"] == error or error == "dropped"  # dropping can fall back to another kind
        assert (info["gold_first_wrong_step"] is None) == (info["error_kind"] == "none")


def test_the_critic_env_rewards_the_verdict_and_the_step_separately():
    env = envs.make(CRITIC)
    env.reset(options={"task": 7, "error": "slip", "step": 2})
    assert env.candidate.first_wrong_step == 2
    critique = "Step 1: x\nVerdict: Wrong\n\nFinal answer: 1\nVerdict: Wrong"
    _, reward, _, _, info = env.step(critique)
    assert reward == 0.5 and info["verdict_correct"] and not info["step_correct"]
    assert (info["first_wrong_step"], info["gold_first_wrong_step"]) == (1, 2)
    env.reset(options={"task": 7, "error": "slip", "step": 2})
    _, reward, _, _, info = env.step("Final answer: 1\nVerdict: Correct\nExplanation: fine.")
    assert reward == 0.0 and not info["verdict_correct"] and not info["step_correct"]
    env.reset(options={"task": 7, "error": "none"})
    _, reward, _, _, info = env.step("Final answer: 1\nVerdict: Correct")
    assert reward == 1.0 and info["gold_verdict"] == "correct"


def test_the_critic_env_answers_an_unparseable_critique():
    env = envs.make(CRITIC)
    env.reset(options={"task": 0})
    observation, reward, terminated, _, info = env.step("Looks fine to me")
    assert info["invalid"] and not terminated and reward == 0 and "Verdict" in observation
    with pytest.raises(TaskOptionError):
        env.reset(options={"task": 0, "error": "none", "step": 1})


# ---- data and test-time scaling -------------------------------------------------------
def test_majority_vote_groups_equivalent_answers():
    assert majority_vote(["3", "50%", "0.5", "1/2", "3"]) == "50%"
    assert majority_vote(["7", "8", None, "8.0"]) == "8"
    assert majority_vote(["7", "8"]) == "7"  # a tie goes to the first
    assert majority_vote([None, None]) is None


@pytest.mark.parametrize(
    ("n", "c", "k", "expected"),
    [(5, 0, 1, 0.0), (5, 5, 3, 1.0), (10, 3, 1, 0.3), (4, 1, 2, 0.5), (4, 2, 3, 1.0), (8, 2, 4, 1 - 15 / 70)],
)
def test_pass_at_k_is_the_unbiased_estimator(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected)


def test_scaling_report_before_and_after_refinement():
    trajectories = run(CritiqueFollower("slip"), range(3), samples=2, critic="oracle", refine_rounds=1)
    report = scaling_report(trajectories)
    assert (report["tasks"], report["samples"]) == (3, 6)
    assert report["before"] == {"accuracy@1": 0.0, "majority": 0.0, "pass@k": {1: 0.0, 2: 0.0}}
    assert report["after"] == {"accuracy@1": 1.0, "majority": 1.0, "pass@k": {1: 1.0, 2: 1.0}}
    assert report["fixed_by_refinement"] == 1.0 and report["broken_by_refinement"] == 0.0
    assert report["per_task"][0]["gold"] == generate_problem(0, "test").answer
