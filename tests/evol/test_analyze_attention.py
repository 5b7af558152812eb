"""`evol analyze attention`: MM-SY's probe of round-2 attention on image tokens, on the tiny vision model."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")

from agents.base import Agent, AgentInput, SamplingParams  # noqa: E402
from agents.tiny_vision import build_tiny_vision_model, image_tokens  # noqa: E402
from evol.analysis.attention import (  # noqa: E402
    ImageAttentionProbe,
    episode_group,
    image_attention_share,
    query_positions,
    round2_prompt,
)
from evol.cli import main  # noqa: E402
from evol.rollout import EpisodeSpec, RolloutEngine  # noqa: E402
from evol.trajectory import TrajectoryWriter  # noqa: E402

ENV = "evol/Sycophancy-v0"
LAYERS = 2


@pytest.fixture(scope="module")
def vision_model(tmp_path_factory) -> str:
    return str(build_tiny_vision_model(tmp_path_factory.mktemp("tiny-llava"), text_layers=LAYERS))


class ScriptedAnswerer(Agent):
    """Answers round 1 right (wrong on tasks in `wrong_first`), then keeps its answer on even
    tasks and takes the user's option on odd ones."""

    needs_env = True
    name = "scripted"

    def __init__(self, wrong_first: tuple[int, ...] = ()):
        self.wrong_first = wrong_first

    def generate(self, inputs: list[AgentInput], sampling: SamplingParams) -> list[list[str]]:
        replies = []
        for item in inputs:
            question, task = item.env.question, item.info["task"]
            if "pushed" not in item.info:  # round 1
                letter = question.answer_letter
                if task in self.wrong_first:
                    letter = next(x for x in "ABCD" if x != letter)
            else:
                letter = item.info["round1_answer"] if task % 2 == 0 else item.info["pushed"]
            replies.append([f"Answer: {letter}"] * sampling.n)
        return replies


def record_episodes(path, tasks, modality="image", wrong_first=()) -> None:
    specs = [EpisodeSpec(ENV, k, {"task": k, "split": "test", "modality": modality}) for k in tasks]
    engine = RolloutEngine(ScriptedAnswerer(wrong_first), concurrency=4, progress=False)
    with TrajectoryWriter(path) as writer:
        engine.run(specs, writer)
    engine.close()


# ---- the computation, by hand -----------------------------------------------------------
def test_share_is_the_attention_on_image_positions_averaged_over_heads_and_queries():
    # seq of 4: positions 1 and 2 are image tokens; causal rows sum to 1
    head_a = torch.tensor([[1.0, 0, 0, 0], [0.5, 0.5, 0, 0], [0.2, 0.3, 0.5, 0], [0.1, 0.2, 0.3, 0.4]])
    head_b = torch.tensor([[1.0, 0, 0, 0], [0.9, 0.1, 0, 0], [0.6, 0.2, 0.2, 0], [0.25, 0.25, 0.25, 0.25]])
    layer0 = torch.stack([head_a, head_b])[None]
    layer1 = torch.stack([head_b, head_b])[None]
    image = torch.tensor([False, True, True, False])
    # queries 2 and 3: head a gives 0.8 and 0.5, head b 0.4 and 0.5
    shares = image_attention_share((layer0, layer1), image, [2, 3])
    assert shares == pytest.approx([(0.8 + 0.5 + 0.4 + 0.5) / 4, (0.4 + 0.5) / 2])
    assert image_attention_share((layer0,), image, [3]) == pytest.approx([(0.5 + 0.5) / 2])


def test_query_positions_are_the_decoding_steps_of_the_answer_or_the_last_prompt_token():
    assert query_positions(10, 3, "answer") == [9, 10, 11, 12]
    assert query_positions(10, 3, "last-prompt") == [9]
    assert query_positions(10, 0, "answer") == [9]
    with pytest.raises(ValueError, match="query"):
        query_positions(10, 3, "middle")


def test_uniform_attention_gives_the_image_share_of_each_causal_prefix(vision_model, tmp_path):
    """With the query projections zeroed every position attends uniformly to itself and all
    before it, so the share at position q is (image tokens at or before q) / (q + 1)."""
    record_episodes(tmp_path / "one.jsonl", [0])
    from evol.trajectory import read_trajectories

    messages, answer = round2_prompt(next(read_trajectories(tmp_path / "one.jsonl")))
    probe = ImageAttentionProbe(vision_model, device="cpu")
    for layer in probe.model.model.language_model.layers:
        layer.self_attn.q_proj.weight.data.zero_()
    batch, prompt, answer_length = probe.encode(messages, answer)
    ids = batch["input_ids"][0].tolist()
    images = [i for i, token in enumerate(ids) if token == probe.image_token_id]
    assert len(images) == image_tokens()  # the round-2 prompt shows only the latest image
    assert answer_length == len("Answer: A") and len(ids) == prompt + answer_length

    def by_hand(q: int) -> float:
        return sum(i <= q for i in images) / (q + 1)

    steps = range(prompt - 1, prompt + answer_length)
    assert probe.shares(messages, answer, "last-prompt") == pytest.approx([by_hand(prompt - 1)] * LAYERS)
    expected = sum(by_hand(q) for q in steps) / len(steps)
    assert probe.shares(messages, answer, "answer") == pytest.approx([expected] * LAYERS)
    probe.close()


def test_episodes_are_grouped_by_the_envs_outcome_fields():
    right = {"round1_correct": True, "final_correct": True, "sycophantic": False}
    assert episode_group(right) == "kept"
    assert episode_group({**right, "final_correct": False, "sycophantic": True}) == "abandoned"
    assert episode_group({**right, "final_correct": False}) == "switched_elsewhere"
    assert episode_group({**right, "round1_correct": False}) == "wrong_at_round1"
    assert episode_group({"round1_correct": True}) == "unfinished"
    assert episode_group({}) == "unfinished"


# ---- the command ------------------------------------------------------------------------
def test_probe_on_recorded_episodes_groups_them_and_writes_json_png_and_table(vision_model, tmp_path, capsys):
    episodes = tmp_path / "episodes.jsonl"
    record_episodes(episodes, range(6), wrong_first=(4,))  # kept: 0, 2; abandoned: 1, 3, 5; wrong: 4
    record_episodes(episodes, [6], modality="text")
    out = tmp_path / "probe"
    code = main(["analyze", "attention", "--model", vision_model, "--env", ENV, "--out", str(out),
                 "--trajectories", str(episodes)])  # fmt: skip
    printed = capsys.readouterr().out
    assert code == 0
    report = json.loads((out / "attention.json").read_text())
    assert report["counts"] == {"episodes": 7, "kept": 2, "abandoned": 3, "failed": 0, "text": 1,
                                "unfinished": 0, "wrong_at_round1": 1, "switched_elsewhere": 0}  # fmt: skip
    assert report["layers"] == LAYERS and len(report["per_layer"]) == LAYERS
    assert sorted(e["task"]["options"]["task"] for e in report["episodes"]) == [0, 1, 2, 3, 5]
    for row in report["per_layer"]:
        assert row["kept"]["n"] == 2 and row["abandoned"]["n"] == 3
        for group in ("kept", "abandoned"):
            assert 0.0 <= row[group]["mean"] <= 1.0 and row[group]["std"] >= 0.0
    assert all(0.0 <= share <= 1.0 for e in report["episodes"] for share in e["shares"])
    assert (out / "attention.png").stat().st_size > 0
    assert "kept (n=2)" in printed and "abandoned (n=3)" in printed and "1 text" in printed


def test_probe_runs_the_model_on_image_tasks_and_says_when_a_group_is_empty(vision_model, tmp_path, capsys):
    out = tmp_path / "live"
    code = main(["analyze", "attention", "--model", vision_model, "--env", ENV, "--out", str(out),
                 "--episodes", "2", "--max-new-tokens", "2", "--device", "cpu"])  # fmt: skip
    printed = capsys.readouterr().out
    assert code == 0
    report = json.loads((out / "attention.json").read_text())
    assert report["counts"]["episodes"] == 2 and report["agents"] == [f"hf-vision:{vision_model}"]
    assert (out / "trajectories.jsonl").is_file() and (out / "attention.png").is_file()
    for group in ("kept", "abandoned"):
        stats = [row[group] for row in report["per_layer"]]
        if report["counts"][group] == 0:  # a random model seldom answers in format
            assert f"no episode in group {group!r}" in printed
            assert all(s == {"mean": None, "std": None, "n": 0} for s in stats)
        else:
            assert all(0.0 <= s["mean"] <= 1.0 for s in stats)
    episodes = (out / "trajectories.jsonl").read_text()
    assert main(["analyze", "attention", "--model", vision_model, "--env", ENV, "--out", str(out),
                 "--episodes", "2", "--device", "cpu"]) == 0  # fmt: skip
    assert (out / "trajectories.jsonl").read_text() == episodes  # a rerun resumes: nothing to run again
    other = str(build_tiny_vision_model(tmp_path / "other", seed=1))
    assert main(["analyze", "attention", "--model", other, "--env", ENV, "--out", str(out)]) == 2
    assert "fresh --out" in capsys.readouterr().err


def test_bad_inputs_are_refused_before_any_work(vision_model, tmp_path, capsys):
    from agents.tiny import build_tiny_model

    text_model = str(build_tiny_model(tmp_path / "text-only"))
    (tmp_path / "empty").mkdir()
    other = tmp_path / "other.jsonl"
    other.write_text(json.dumps({"env": "evol/BabyAI-v0", "task": {"seed": 0, "options": {}}}) + "\n")
    base = ["analyze", "attention", "--env", ENV, "--out", str(tmp_path / "out")]
    cases = [
        (["--model", str(tmp_path / "missing")], "--model", "no such directory"),
        (["--model", str(tmp_path / "empty")], "--model", "no config.json"),
        (["--model", text_model], f"--model {text_model}", "not an image-text-to-text"),
        (["--model", vision_model, "--trajectories", str(tmp_path / "nope.jsonl")], "--trajectories", "no such file"),
        (["--model", vision_model, "--trajectories", str(other)], "--trajectories", f"no {ENV} episode"),
        (["--model", vision_model, "--env-kwargs", json.dumps({ENV: {"colour": "red"}})], "colour", ""),
    ]  # fmt: skip
    for extra, named, reason in cases:
        assert main([*base, *extra]) == 2
        error = capsys.readouterr().err
        assert named in error and reason in error
    assert (
        main(["analyze", "attention", "--model", vision_model, "--env", "evol/BabyAI-v0", "--out", "x"]) == 2
    )
    assert "evol/Sycophancy-v0" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
