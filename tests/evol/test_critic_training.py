"""`evol train critic`: SFT of a critique model on MathCritique's alpaca records, and its
evaluation on `evol/MathCritic-v0`; bad configs and malformed critique files refused."""

from __future__ import annotations

import json

import pytest

from envs.math.critics import critique_messages
from envs.math.critique_data import read_critique_file
from envs.math.data import CritiqueDataSettings, write_critique_data
from evol.cli import main
from evol.trainers.critic import critic_examples, critic_report, evaluate_critic, format_critic_table


@pytest.fixture(scope="module")
def critiques(tmp_path_factory):
    path = tmp_path_factory.mktemp("critiques") / "critiques.jsonl"
    write_critique_data(16, path, CritiqueDataSettings(seed=0))
    return path


def test_train_critic_two_tiny_steps_end_to_end(tmp_path, critiques, capsys):
    out = tmp_path / "critic"
    config = tmp_path / "critic.yaml"
    config.write_text(
        f"model: tiny\ndata: [{critiques}]\noutput_dir: {out}\nmax_examples: 8\neval_tasks: 5\n"
        "max_new_tokens: 8\ntrain: {epochs: 1, learning_rate: 2.0e-3, batch_size: 4, max_length: 768, "
        "logging_steps: 1, progress: false}\n"
    )
    assert main(["train", "critic", "--config", str(config)]) == 0
    printed = capsys.readouterr().out
    assert "| trained | 5 |" in printed and "| oracle | 5 | 100.0% |" in printed
    summary = json.loads((out / "train_summary.json").read_text())
    assert (
        summary["examples"] == 8
        and len(summary["losses"]) == 2
        and summary["model_dir"] == str(out / "model")
    )
    report = json.loads((out / "critic_eval.json").read_text())
    trained = report["critics"]["trained"]
    assert report["env"] == "evol/MathCritic-v0" and report["refiner"] == "oracle"
    assert trained["episodes"] == 5 and trained["flawed"] == 4 and trained["correct"] == 1
    for metric in (
        "verdict_accuracy",
        "verdict_on_correct",
        "verdict_on_flawed",
        "first_wrong_step",
        "fixed",
    ):
        assert 0 <= trained[metric] <= 1 and report["critics"]["oracle"][metric] == 1.0
    assert set(trained["by_difficulty"]) == {"easy", "medium", "hard"}
    assert (out / "critic_eval.png").stat().st_size > 0 and len(
        (out / "critic_eval.jsonl").read_text().splitlines()
    ) == 5
    # the checkpoint loads and critiques
    from agents import load_agent

    critic = load_agent(f"hf:{out / 'model'}")
    (replies,) = critic.complete([critique_messages("Q?", "1 + 1 = 2\nThe answer is 2.")], max_new_tokens=4)
    assert isinstance(replies[0], str)


class Praising:
    """A critic that accepts every solution."""

    def complete(self, conversations, *, temperature=0.0, max_new_tokens=256, n=1, seed=None):
        return [
            ["Correctness of the final answer: Correct\nExplanation: all steps are right."] * n
            for _ in conversations
        ]


def test_the_evaluation_scores_verdicts_steps_and_refinements():
    oracle = evaluate_critic("oracle", 10, progress=False)
    praising = evaluate_critic(Praising(), 10, progress=False)
    report = critic_report({"praising": praising, "oracle": oracle}, "oracle")
    scores = report["critics"]["praising"]
    assert scores["flawed"] == 8 and scores["correct"] == 2
    assert scores["verdict_on_correct"] == 1.0 and scores["verdict_on_flawed"] == 0.0
    assert scores["verdict_accuracy"] == 0.2 and scores["first_wrong_step"] == 0.0 and scores["fixed"] == 0.0
    assert report["critics"]["oracle"]["fixed"] == 1.0 and report["critics"]["oracle"]["success"] == 1.0
    assert "| praising | 10 | 100.0% | 20.0% | 100.0% | 0.0% | 0.0% | 0.0% |" in format_critic_table(report)


def test_a_users_file_in_the_released_format_trains_as_the_critic_env_asks(tmp_path):
    released = {
        "instruction": "Instruction:\nCheck each step.\n\nQuestion:\nTom has 3 packs of 12 pencils. How many?\n\n"
        "Solution:\n3 * 12 = 36 pencils.\nThe answer is 36.\n\n",
        "input": "",
        "output": "Step sentence: 3 * 12 = 36 pencils.\nCorrectness of the step: Correct\nExplanation: ok.\n\n"
        "Correctness of the final answer: Correct\nExplanation: 36 is right.",
    }
    path = tmp_path / "released.json"
    path.write_text(
        json.dumps([released, {**released, "instruction": "Judge this.", "input": "3 * 12 = 36"}])
    )
    records = read_critique_file(path)
    (row,) = critic_examples(records[:1])
    question, solution = "Tom has 3 packs of 12 pencils. How many?", "3 * 12 = 36 pencils.\nThe answer is 36."
    assert row["messages"] == [
        *critique_messages(question, solution),
        {"role": "assistant", "content": released["output"]},
    ]
    verbatim = critic_examples(records, "verbatim")
    assert verbatim[1]["messages"][0] == {"role": "user", "content": "Judge this.\n3 * 12 = 36"}
    with pytest.raises(ValueError, match=r"released.json item 2: .*prompt: verbatim"):
        critic_examples(records)


@pytest.mark.parametrize(
    ("flag", "field"),
    [
        (["--model", "no/such/dir"], "model"),
        (["--data", "missing.jsonl"], "data"),
        (["--eval_tasks", "-1"], "eval_tasks"),
        (["--refiner", "guess:x"], "refiner"),
        (["--prompt", "loose"], "prompt"),
        (["--max_new_tokens", "0"], "max_new_tokens"),
        (["--set", "train.learning_rate=0"], "learning_rate"),
        (["--eval_data", "nope.jsonl"], "eval_data"),
    ],
)
def test_bad_configs_are_refused_naming_the_field(tmp_path, critiques, capsys, flag, field):
    out = tmp_path / "never"
    base = ["train", "critic", "--model", "tiny", "--data", str(critiques), "--output_dir", str(out)]
    assert main([*base, *flag]) == 2
    assert field in capsys.readouterr().err
    assert not out.exists()


def test_a_malformed_critique_file_line_is_refused_naming_the_line(tmp_path, critiques, capsys):
    bad = tmp_path / "bad.jsonl"
    lines = critiques.read_text().splitlines()
    bad.write_text(
        "\n".join([lines[0], lines[1], json.dumps({"instruction": "x", "output": "no verdict here"})])
    )
    out = tmp_path / "never"
    assert main(["train", "critic", "--model", "tiny", "--data", str(bad), "--output_dir", str(out)]) == 2
    assert "bad.jsonl line 3: `output` is not a critique" in capsys.readouterr().err
    assert not out.exists()


def test_evol_data_critiques_writes_and_refuses(tmp_path, capsys):
    out = tmp_path / "c.json"
    assert main(["data", "critiques", "--n", "6", "--out", str(out), "--mc-k", "2"]) == 0
    assert len(json.loads(out.read_text())) == 6 and "wrote 6 records" in capsys.readouterr().out
    assert main(["data", "critiques", "--n", "6", "--out", str(out), "--mc-threshold", "2"]) == 2
    assert "--mc-threshold" in capsys.readouterr().err
    assert main(["data", "critiques", "--n", "6", "--out", str(out), "--methods", "resampled"]) == 2
    assert "--methods" in capsys.readouterr().err
