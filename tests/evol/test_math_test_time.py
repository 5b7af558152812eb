"""Test time with a critic: `evol eval --refine R --critic SPEC` with the oracle, a tiny model
loaded locally (hf:PATH) or served over HTTP (openai:URL#MODEL); the test-time report (maj@k and
pass@k without and with critique, by difficulty, JSON + PNG + table); critics that fail; and
`--options` task options on `evol rollout` and `evol eval`."""

from __future__ import annotations

import json
import os
import random

import pytest

from agents import load_agent
from agents.base import Agent, AgentInput, SamplingParams
from agents.scripted import ExpertAgent
from envs.math.flaws import make_flawed
from envs.math.scaling import scaling_report
from evol.cli import main
from evol.evaluate import evaluate
from evol.rollout import RolloutEngine, task_specs
from evol.trajectory import read_trajectories
from tests.conftest import AgentServerProcess, free_port

os.environ["HF_HUB_OFFLINE"] = "1"
ACTOR = "evol/MathCritique-v0"
PNG = b"\x89PNG"
# A critic model that is asked for every attempt (the expert's are right) and answers briefly.
ALWAYS = json.dumps({ACTOR: {"critique_when": "always", "critic_max_tokens": 24}})
CURVES = {"maj@k without critique", "maj@k with critique", "pass@k without critique", "pass@k with critique"}


@pytest.fixture(scope="module")
def critic_dir(tmp_path_factory) -> str:
    """A tiny untrained model: its critiques are never readable as critiques."""
    from agents.tiny import build_tiny_model

    return str(
        build_tiny_model(tmp_path_factory.mktemp("critic"), ["go to the red ball", "open the door"] * 10)
    )


def evol(capsys, *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def eval_args(out, *flags: str) -> list[str]:
    return ["eval", "--env", ACTOR, "--agent", "expert", "--out", str(out), *flags]


def expert_run(command: str, out, episodes: int, options: str) -> list[str]:
    """`evol rollout|eval` of the expert with task `options`."""
    return [
        command,
        "--env",
        ACTOR,
        "--episodes",
        str(episodes),
        "--agent",
        "expert",
        "--out",
        str(out),
        "--options",
        options,
    ]


# ---- the report ---------------------------------------------------------------------------
class Sampler(Agent):
    """Of a task's 4 samples, the first 1 (easy), 2 (medium) or 3 (hard) answer with one and
    the same flawed solution, the others with the reference; after a critique it writes the
    reference on easy and medium problems and repeats itself on hard ones."""

    name = "sampler"
    WRONG = {"easy": 1, "medium": 2, "hard": 3}

    def __init__(self):
        self.started: dict[int, int] = {}

    def generate(self, inputs: list[AgentInput], sampling: SamplingParams) -> list[list[str]]:
        replies = []
        for item in inputs:
            problem, mine = (
                item.env.problem,
                [m["content"] for m in item.messages if m["role"] == "assistant"],
            )
            if not mine:
                sample = self.started[problem.task] = self.started.get(problem.task, -1) + 1
                wrong = sample < self.WRONG[problem.difficulty]
                reply = (
                    make_flawed(problem, "slip", random.Random(0)).text if wrong else item.env.expert_action()
                )
            else:
                reply = mine[-1] if problem.difficulty == "hard" else item.env.expert_action()
            replies.append([reply] * sampling.n)
        return replies


def test_the_test_time_report_has_maj_and_pass_at_k_with_and_without_critique_by_difficulty(tmp_path):
    kwargs = {ACTOR: {"critic": "oracle", "refine_rounds": 1}}
    engine = RolloutEngine(Sampler(), concurrency=4, progress=False, env_kwargs=kwargs)
    result = evaluate(engine, {ACTOR: 3}, tmp_path, agent="sampler", samples=4, env_kwargs=kwargs)
    [written] = [r for r in result.reports if r.report.name == "test-time scaling"]
    report = json.loads(written.path.read_text())
    curves = report["by_difficulty"]
    assert list(curves) == ["all", "easy", "medium", "hard"] and report["ks"] == [1, 2, 4]
    for level, wrong in Sampler.WRONG.items():
        before = curves[level]["before"]
        assert before["accuracy@1"] == before["maj@k"]["1"] == (4 - wrong) / 4
        pass_at_2 = {1: 1.0, 2: 5 / 6, 3: 0.5}[wrong]  # 1 - C(wrong, 2) / C(4, 2)
        assert before["pass@k"] == pytest.approx({"1": (4 - wrong) / 4, "2": pass_at_2, "4": 1.0})
    # a tied vote counts as the share of right answers among the tied
    assert [curves[level]["before"]["maj@k"] for level in Sampler.WRONG] == [
        {"1": 0.75, "2": 0.75, "4": 1.0},
        {"1": 0.5, "2": 0.5, "4": 0.5},
        {"1": 0.25, "2": 0.25, "4": 0.0},
    ]
    for level in ("easy", "medium"):  # the critique fixes every wrong sample
        assert curves[level]["after"]["maj@k"] == curves[level]["after"]["pass@k"] == {"1": 1, "2": 1, "4": 1}
    assert curves["hard"]["after"] == curves["hard"]["before"]
    assert report["fixed_by_refinement"] == 3 / 12 and report["critiques"] == {
        "critic": "oracle",
        "given": 6,
        "unparsable": 0,
    }
    panels = report["figure"]["panels"]
    assert [p["title"] for p in panels] == [
        "all (3 tasks)",
        "easy (1 task)",
        "medium (1 task)",
        "hard (1 task)",
    ]
    assert all(set(p["series"]) == CURVES and p["x"] == [1, 2, 4] for p in panels)
    assert written.figure_path.read_bytes()[:4] == PNG
    assert "| hard (1 task) | maj@k with critique | 0.250 |" in written.table()


def test_oracle_eval_with_task_options_prints_the_table_and_writes_the_png(tmp_path, capsys):
    out = tmp_path / "eval"
    status, stdout, err = evol(
        capsys, *eval_args(out, "--episodes", "2", "--samples", "2", "--temperature", "1", "--refine", "1"),
        "--options", '{"difficulty": "hard"}',
    )  # fmt: skip
    assert status == 0, err
    report = json.loads((out / "test_time.json").read_text())
    assert list(report["by_difficulty"]) == ["all", "hard"] and report["critiques"]["critic"] == "oracle"
    assert set(report["figure"]["panels"][1]["series"]) == CURVES
    assert (out / "test_time.png").read_bytes()[:4] == PNG
    assert "| hard (2 tasks) | pass@k with critique | 1.000 | 1.000 |" in stdout
    keys = [t.task["options"] for t in read_trajectories(out / "trajectories.jsonl")]
    assert keys and all(options["difficulty"] == "hard" and options["split"] == "test" for options in keys)


# ---- model critics ------------------------------------------------------------------------
def test_an_hf_critic_runs_end_to_end_and_its_unparsable_critiques_are_reported(tmp_path, capsys, critic_dir):
    out = tmp_path / "eval"
    status, stdout, err = evol(
        capsys, *eval_args(out, "--episodes", "2", "--refine", "1", "--critic", f"hf:{critic_dir}"),
        "--env-kwargs", ALWAYS,
    )  # fmt: skip
    assert status == 0, err
    report = json.loads((out / "test_time.json").read_text())
    assert report["critiques"] == {"critic": f"hf:{critic_dir}", "given": 2, "unparsable": 2}
    assert "2 critiques, 2 of them unparsable" in stdout
    trajectories = list(read_trajectories(out / "trajectories.jsonl"))
    assert all(t.error is None and t.turns == 2 for t in trajectories)
    for trajectory in trajectories:
        (critique,) = [m["content"] for m in trajectory.messages if m["content"].startswith("Critique of")]
        assert critique.startswith("Critique of your solution:\n\n(The critic's reply could not be read")


def test_a_critic_served_over_http_is_used_as_openai_url_model(tmp_path, capsys, critic_dir):
    server = AgentServerProcess(critic_dir).wait_ready()
    try:
        spec = f"openai:{server.url}/v1#tiny"
        out = tmp_path / "eval"
        status, stdout, err = evol(
            capsys,
            *eval_args(out, "--episodes", "1", "--refine", "1", "--critic", spec),
            "--env-kwargs",
            ALWAYS,
        )
        assert status == 0, err
        report = json.loads((out / "test_time.json").read_text())
        assert report["critiques"] == {"critic": spec, "given": 1, "unparsable": 1}
        assert server.health()["generated_tokens"] > 1  # the probe's one token, then the critique
    finally:
        server.stop()


def test_a_dead_critic_url_is_refused_before_any_episode(tmp_path, capsys):
    out = tmp_path / "eval"
    spec = f"openai:http://127.0.0.1:{free_port()}/v1#tiny"
    status, _, err = evol(capsys, *eval_args(out, "--episodes", "1", "--refine", "1", "--critic", spec))
    assert status == 2 and f"the counterpart {spec} cannot be used" in err and "cannot connect" in err
    assert not (out / "trajectories.jsonl").exists()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--refine", "1", "--critic", "bogus:x"], "critic 'bogus:x': unknown agent spec 'bogus:x'"),
        (["--critic", "hf:somewhere"], "--critic hf:somewhere needs --refine R"),
        (
            ["--refine", "1", "--critic", "hf:somewhere", "--url", "http://127.0.0.1:1"],
            "--counterpart critic=hf:",
        ),
    ],
)
def test_a_critic_spec_that_cannot_work_is_refused(tmp_path, capsys, flags, message):
    status, _, err = evol(capsys, *eval_args(tmp_path / "eval", "--episodes", "1", *flags))
    assert status == 2 and message in err


def test_a_critic_that_fails_mid_episode_is_a_fault_not_a_verdict():
    dead = load_agent(f"openai:http://127.0.0.1:{free_port()}/v1#tiny", max_retries=0)
    kwargs = {ACTOR: {"critic": dead, "critique_when": "always", "refine_rounds": 1}}
    engine = RolloutEngine(ExpertAgent(), concurrency=2, progress=False, env_kwargs=kwargs)
    trajectories = engine.run(task_specs([ACTOR], 2, "test"))
    engine.close()
    assert all(t.fault == "env" and "the critic model failed" in t.error for t in trajectories)
    assert all("cannot connect" in t.error for t in trajectories)
    assert scaling_report(trajectories)["tasks"] == 0


def test_a_run_where_every_episode_failed_exits_1(tmp_path, capsys):
    bad = json.dumps({ACTOR: {"refine_rounds": 12}})  # needs more turns than the env's 10
    status, _, err = evol(capsys, *eval_args(tmp_path / "eval", "--episodes", "2", "--env-kwargs", bad))
    assert status == 1 and "no episode of this run was completed" in err


# ---- task options -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("options", "message"),
    [
        ("{difficulty: hard}", "--options is not JSON"),
        ('{"hint": true}', "unknown option(s) ['hint']"),
        ('{"guidance": "loud"}', "options.guidance must be one of"),
        ('{"prefix_steps": 0}', "options.prefix_steps must be an integer in [1, 100], got 0"),
        ('{"prefix_steps": 2}', "options.prefix_steps applies with guidance 'state_reset' only"),
        ('{"task": 3}', "options.task is set by the command"),
    ],
)
@pytest.mark.parametrize("command", ["rollout", "eval"])
def test_bad_task_options_are_refused_naming_them(tmp_path, capsys, command, options, message):
    out = tmp_path / ("eval" if command == "eval" else "t.jsonl")
    status, _, err = evol(capsys, *expert_run(command, out, 1, options))
    assert status == 2 and message in err
    assert not out.exists()


def test_rollout_task_options_reach_every_reset(tmp_path, capsys):
    out = tmp_path / "t.jsonl"
    options = '{"guidance": "state_reset", "prefix_steps": 2, "difficulty": "medium"}'
    status, _, err = evol(capsys, *expert_run("rollout", out, 3, options))
    assert status == 0, err
    trajectories = list(read_trajectories(out))
    assert len(trajectories) == 3 and all(t.success for t in trajectories)
    assert all(t.outcome["difficulty"] == "medium" for t in trajectories)
    assert all("already begins with these 2 lines" in t.messages[1]["content"] for t in trajectories)
