"""The `evol` CLI run as a user runs it: a real process, real stdin (in-process where a test
swaps in a broken env or a report of its own)."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import ROOT

COUNTER = "acme/Counter-v0"


def evol(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "evol.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )


def test_envs_lists_every_registered_env_with_its_card():
    listing = evol("envs")
    assert listing.returncode == 0
    for env_id in ("evol/BabyAI-v0", "evol/TextWorld-v0", COUNTER):
        assert env_id in listing.stdout
    card = evol("envs", COUNTER)
    assert "## Rewards" in card.stdout and "## Task options" in card.stdout


def test_envs_names_an_unknown_id_clearly():
    answer = evol("envs", "nope/Missing-v0")
    assert answer.returncode == 2 and "unknown env 'nope/Missing-v0'" in answer.stderr


def test_help_on_every_command():
    for command in ([], ["envs"], ["check"], ["serve"], ["play"], ["rollout"], ["eval"], ["data"]):
        answer = evol(*command, "--help")
        assert answer.returncode == 0 and "usage: evol" in answer.stdout


def test_building_the_parser_loads_no_flask_and_no_engine():
    """A process that runs vLLM's CPU build must not hold Flask's context proxies."""
    code = (
        "import sys; from evol.cli import build_parser; build_parser(); "
        "print(sorted(m for m in ('flask', 'server.app', 'evol.rollout', 'transformers') if m in sys.modules))"
    )
    answer = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert answer.stdout.strip() == "[]", answer.stdout + answer.stderr


def test_play_locally_to_success():
    answer = evol("play", COUNTER, "--task", "1", stdin="inc\nhop\ninc\nsubmit\n")
    assert answer.returncode == 0, answer.stdout + answer.stderr
    assert "# Instruction" in answer.stdout and "(invalid action)" in answer.stdout
    assert "SUCCESS: episode ended after 4 turns, total reward 1" in answer.stdout


def test_play_over_a_server(start_server):
    server = start_server([COUNTER])
    answer = evol("play", COUNTER, "--url", server.url, "--task", "0", stdin="dec\nsubmit\n")
    assert answer.returncode == 1
    assert "FAILURE: episode ended after 2 turns" in answer.stdout


def test_serve_refuses_an_unknown_env():
    answer = evol("serve", "nope/Missing-v0", "--port", "1")
    assert answer.returncode == 2 and "unknown env" in answer.stderr


def test_serve_with_a_counterpart_critic_and_env_kwargs(start_server):
    import requests

    server = start_server(
        ["evol/MathCritique-v0"],
        "--counterpart",
        "critic=oracle",
        "--env-kwargs",
        '{"evol/MathCritique-v0": {"refine_rounds": 1}}',
    )
    sid = requests.post(f"{server.url}/sessions", json={"env": "evol/MathCritique-v0"}).json()["session"]
    requests.post(f"{server.url}/sessions/{sid}/reset", json={"options": {"task": 0}})
    step = requests.post(
        f"{server.url}/sessions/{sid}/step", json={"action": "2 + 2 = 5\nThe answer is 5."}
    ).json()
    assert not step["terminated"], "a wrong answer with a critic gets a critique and a refinement round"
    assert "Wrong" in step["observation"]
    step = requests.post(f"{server.url}/sessions/{sid}/step", json={"action": "The answer is 5."}).json()
    assert step["terminated"] and step["reward"] == 0.0


def test_serve_refuses_a_counterpart_no_env_takes():
    answer = evol("serve", "acme/Counter-v0", "--counterpart", "critic=oracle", "--port", "1")
    assert answer.returncode == 2 and "no served env takes a 'critic'" in answer.stderr


def test_rollout_with_a_bounded_view_of_the_episode(tmp_path):
    """What the agent sees (`--history-turns`, `--no-instruction`) is the engine's to cut; trajectories stay whole."""
    out = tmp_path / "bounded.jsonl"
    answer = evol("rollout", "--env", COUNTER, "--agent", "random:0", "--episodes", "3",
                  "--history-turns", "0", "--no-instruction", "--out", str(out))  # fmt: skip
    assert answer.returncode == 0, answer.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 3 and all(row["messages"][0]["role"] == "system" for row in rows)
    refused = evol("rollout", "--env", COUNTER, "--agent", "random:0", "--episodes", "1",
                   "--history-turns", "-1", "--out", str(tmp_path / "x.jsonl"))  # fmt: skip
    assert refused.returncode == 2 and "--history-turns" in refused.stderr and ">= 0" in refused.stderr


# ---- evol check --------------------------------------------------------------------------------
def test_check_passes_a_plugin_env_locally_and_served(start_server):
    local = evol("check", COUNTER)
    assert local.returncode == 0, local.stdout + local.stderr
    assert f"Contract check of {COUNTER} (local)" in local.stdout and "8 of 8 checks passed" in local.stdout
    server = start_server([COUNTER])
    served = evol("check", COUNTER, "--url", server.url, "--expert-tasks", "2")
    assert served.returncode == 0, served.stdout + served.stderr
    assert f"served at {server.url}" in served.stdout and "FAIL" not in served.stdout


def test_check_exits_1_naming_the_broken_rule(monkeypatch, capsys):
    from acme_envs import CounterEnv

    import envs
    from evol.cli import main

    class RaisingCounter(CounterEnv):
        __doc__ = CounterEnv.__doc__

        def _step(self, action):
            if action not in ("inc", "dec", "submit"):
                raise ValueError("unknown command")
            return super()._step(action)

    monkeypatch.setattr(envs, "make", lambda env_id, **kwargs: RaisingCounter())
    assert main(["check", COUNTER]) == 1
    out = capsys.readouterr().out
    assert (
        "FAIL invalid_actions" in out and "the invalid action '' raised ValueError('unknown command')" in out
    )
    assert "ok   expert_reaches_success" in out and "5 of 8 checks passed" in out


def test_check_refuses_an_unknown_env():
    answer = evol("check", "nope/Missing-v0")
    assert answer.returncode == 2 and "unknown env 'nope/Missing-v0'" in answer.stderr


# ---- env reports in evol eval ------------------------------------------------------------------
def counter_report(trajectories, env_kwargs=None):
    """A plugin's evaluation report (registered by the test below)."""
    return {"episodes": len(trajectories), "env_kwargs": env_kwargs, "turns": [t.turns for t in trajectories]}


def counter_report_kwargs(options):
    return {"max_turns": options["counter_turns"]} if options.get("counter_turns") else {}


def test_eval_finds_a_plugin_report_and_its_flag(monkeypatch, tmp_path, capsys):
    import envs
    from envs import registry
    from evol.cli import main

    report = envs.EvalReport(
        name="counter turns",
        envs=("acme/Count*",),
        function="tests.evol.test_cli:counter_report",
        file="counter.json",
        headline=("episodes",),
        options={"counter_turns": envs.EvalOption(int, 0, "turns of the counter", "N")},
        env_kwargs="tests.evol.test_cli:counter_report_kwargs",
    )
    monkeypatch.setattr(registry, "_reports", [*registry.eval_reports(), report])
    out = tmp_path / "eval"
    status = main(["eval", "--env", COUNTER, "--episodes", "3", "--agent", "expert", "--counter-turns", "9",
                   "--out", str(out)])  # fmt: skip
    assert status == 0
    written = json.loads((out / "counter.json").read_text())
    assert written["episodes"] == 3 and written["env_kwargs"] == {"max_turns": 9}
    assert f'counter turns: {{"episodes": 3}} (details in {out / "counter.json"})' in capsys.readouterr().out


def test_eval_refuses_a_report_flag_that_no_env_of_the_run_takes(tmp_path):
    answer = evol("eval", "--env", COUNTER, "--episodes", "1", "--agent", "expert", "--refine", "1",
                  "--out", str(tmp_path / "eval"))  # fmt: skip
    assert answer.returncode == 2 and "--refine needs an env of the test-time scaling report" in answer.stderr
    assert not (tmp_path / "eval").exists()


def test_eval_and_rollout_refuse_an_agent_spec_that_names_no_agent(tmp_path):
    for command in ("eval", "rollout"):
        for spec in ("zero-shot:", "no-such-kind:x"):
            out = tmp_path / command
            answer = evol(command, "--env", COUNTER, "--episodes", "1", "--agent", spec, "--out", str(out))
            assert answer.returncode == 2 and f"--agent {spec}" in answer.stderr, answer.stderr
            assert "Traceback" not in answer.stderr and not out.exists()
