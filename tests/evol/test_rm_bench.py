"""`evol rm-bench` and the reward-model backends: RMB's scoring and averaging on a hand-made data
set with a scripted RM, majority voting, bad records reported, resume, and the real backends
(the guard, a tiny classifier checkpoint, a judge over a tiny model)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from agents.base import Agent
from envs.rewardjudge.data import SAMPLE_DIR, read_rmb
from evol.cli import main
from evol.rewards.backends import load_rm
from evol.rewards.base import RewardModel
from evol.rewards.bench import BenchRunError, is_correct, run_rm_bench
from evol.rewards.judge import JudgeRM, majority, vote_shares


class ScriptedRM(RewardModel):
    """Scores an answer by the number it starts with (`[3] ...`); `[none]` cannot be scored."""

    def __init__(self, fail_after_calls: int | None = None):
        self.calls: list[int] = []
        self.fail_after_calls = fail_after_calls

    def score(self, conversations, answers):
        if self.fail_after_calls is not None and len(self.calls) >= self.fail_after_calls:
            raise RuntimeError("the run is cut short")
        self.calls.append(len(answers))
        return [
            None if a.startswith("[none]") else float(re.match(r"\[(-?\d+)\]", a).group(1)) for a in answers
        ]


def user(text):
    return [{"role": "user", "content": text}]


def pair(uid, path, chosen, reject):
    return {
        "pair_uid": uid,
        "conversation_input": user(f"q {uid}"),
        "chosen": {"llm_name": "m", "answer": chosen},
        "reject": reject,
        "category_path": path,
    }


def bon(uid, path, best, losers):
    return {
        "bon_uid": uid,
        "conversation_input": user(f"q {uid}"),
        "bon_best": best,
        "loser_list": [{"llm_name": "m", "answer": a} for a in losers],
        "category_path": path,
    }


def write(path: Path, records, jsonl=False):
    path.parent.mkdir(parents=True, exist_ok=True)
    if jsonl:
        path.write_text("".join(json.dumps(r) + "\n" for r in records))
    else:
        path.write_text(json.dumps(records))


def hand_made(root: Path) -> Path:
    hp, hb = "Pairwise_set/Helpfulness", "BoN_set/Helpfulness"
    write(
        root / hp / "Code" / "A.json",
        [
            pair("p1", f"{hp}/Code/A", "[2] x", "[1] y"),  # right
            pair("p2", f"{hp}/Code/A", "[1] x", "[1] y"),  # a tie: wrong
        ],
    )
    write(
        root / hp / "Code" / "B.json",
        [pair("p3", f"{hp}/Code/B", "[5] x", "[4] y"), pair("p5", f"{hp}/Code/B", "[9] x", "[0] y")],
    )  # both right
    write(root / hp / "Chat" / "C.json", [pair("p4", f"{hp}/Chat/C", "[0] x", "[1] y")])  # wrong
    write(
        root / hb / "Code" / "A.json",
        [
            bon("b1", f"{hb}/Code/A", "[3] x", ["[1] y", "[2] z"]),  # beats every loser: right
            bon("b2", f"{hb}/Code/A", "[3] x", ["[1] y", "[3] z"]),  # ties one: wrong
            bon("b3", f"{hb}/Code/A", "[3] x", ["[1] y", "[4] z"]),  # loses to one: wrong
        ],
    )
    write(
        root / "Pairwise_set/Harmlessness/S1/X.jsonl",
        [pair("p6", "Pairwise_set/Harmlessness/Weapons/X", "[1] x", "[0] y")],
        jsonl=True,
    )
    write(
        root / "BoN_set/Harmlessness/S1/X.json",
        [bon("b4", "BoN_set/Harmlessness/Weapons/X", "[5] x", ["[1] y", "[none] z"])],
    )  # unscorable: wrong
    return root


def test_accuracy_and_rmb_averaging_on_a_hand_made_data_set(tmp_path):
    data = hand_made(tmp_path / "data")
    results = run_rm_bench(ScriptedRM(), data, tmp_path / "out", rm_spec="scripted", progress=False)
    sections = results["sections"]
    # per sub-scenario, then the mean over sub-scenarios (not over items: 3/5 here)
    assert sections["helpfulness/pairwise"]["scenarios"] == {
        "Chat/C": {"accuracy": 0.0, "items": 1},
        "Code/A": {"accuracy": 0.5, "items": 2},
        "Code/B": {"accuracy": 1.0, "items": 2},
    }
    assert sections["helpfulness/pairwise"]["accuracy"] == pytest.approx(0.5)
    assert sections["helpfulness/pairwise"]["categories"] == {"Chat": 0.0, "Code": 0.75}
    assert sections["helpfulness/bon"]["accuracy"] == pytest.approx(1 / 3)
    assert sections["harmlessness/pairwise"]["accuracy"] == 1.0
    assert sections["harmlessness/bon"]["accuracy"] == 0.0
    assert results["overall"] == pytest.approx((0.5 + 1 / 3 + 1.0 + 0.0) / 4)
    assert results["items"] == 10 and results["skipped"] == 0 and results["unscored"] == 1
    failures = [json.loads(line) for line in (tmp_path / "out" / "failures.jsonl").read_text().splitlines()]
    assert [f["key"] for f in failures] == ["bon:b4"]
    assert (tmp_path / "out" / "results.png").read_bytes()[:4] == b"\x89PNG"
    table = (tmp_path / "out" / "results.md").read_text()
    assert "| **overall** | **45.8** | 10 |" in table and "| helpfulness | Code | 75.0 | 33.3 |" in table
    assert is_correct([1.0, 0.5]) and not is_correct([1.0, 1.0]) and not is_correct([None, 0.0])


def test_a_cut_short_run_resumes_and_scores_only_what_is_left(tmp_path):
    data = hand_made(tmp_path / "data")
    whole = run_rm_bench(ScriptedRM(), data, tmp_path / "whole", rm_spec="scripted", progress=False)
    out = tmp_path / "cut"
    with pytest.raises(RuntimeError, match="cut short"):
        run_rm_bench(
            ScriptedRM(fail_after_calls=2), data, out, rm_spec="scripted", batch_size=3, progress=False
        )
    cached = (out / "scores.jsonl").read_text().splitlines()
    assert len(cached) == 6
    with open(out / "scores.jsonl", "a") as handle:
        handle.write('{"key": "pairwise:p')  # a line torn by the kill
    rm = ScriptedRM()
    resumed = run_rm_bench(rm, data, out, rm_spec="scripted", batch_size=3, progress=False)
    assert sum(rm.calls) == sum(1 + len(item.losers) for item in read_rmb(data).items[6:])
    assert resumed["sections"] == whole["sections"] and resumed["overall"] == whole["overall"]
    with pytest.raises(BenchRunError, match="another --out"):
        run_rm_bench(ScriptedRM(), data, out, rm_spec="other", progress=False)


def test_bad_records_are_reported_with_file_index_and_reason_and_counted(tmp_path, capsys):
    root = tmp_path / "data"
    good = pair("ok", "Pairwise_set/Helpfulness/Chat/C", "[1] x", "[0] y")
    bad = [
        {k: v for k, v in good.items() if k != "reject"} | {"pair_uid": "no-reject"},
        bon("empty", "BoN_set/Helpfulness/Chat/C", "[1] x", []),
        good | {"pair_uid": "string-conv", "conversation_input": "hello"},
        good | {"pair_uid": "role", "conversation_input": [{"role": "robot", "content": "hi"}]},
        good | {"pair_uid": "no-path", "category_path": None},
        ["not", "an", "object"],
        good,  # a repeated uid
    ]
    write(root / "Pairwise_set/Helpfulness/Chat/C.json", [good, *bad])
    raw = json.dumps(pair("latin1", "Pairwise_set/Helpfulness/Chat/C", "[1] caf\u00e9", "[0] y")).encode()
    raw = raw.replace(b"caf\\u00e9", b"caf\xe9")  # Latin-1, not UTF-8
    (root / "Pairwise_set/Helpfulness/Chat/D.jsonl").write_bytes(raw + b"\n{not json\n")
    code = main(
        ["rm-bench", "--rm", "guard", "--data", str(root), "--out", str(tmp_path / "out"), "--no-progress"]
    )
    printed = capsys.readouterr().out
    assert code == 0
    skipped = [json.loads(line) for line in (tmp_path / "out" / "skipped.jsonl").read_text().splitlines()]
    reasons = {s["where"].rsplit("/", 1)[-1]: s["reason"] for s in skipped}
    assert reasons == {
        "C.json item 1": "missing field 'reject'",
        "C.json item 2": "empty loser_list",
        "C.json item 3": "conversation_input must be a non-empty list of {role, content} turns",
        "C.json item 4": "conversation_input[0].role must be one of ['system', 'user', 'assistant'], got 'robot'",
        "C.json item 5": "missing field 'category_path'",
        "C.json item 6": "a record must be a JSON object, got list",
        "C.json item 7": "repeated uid 'ok'",
        "D.jsonl line 1": "text that is not UTF-8",
        "D.jsonl line 2": reasons.get("D.jsonl line 2", "?"),
    }
    assert reasons["D.jsonl line 2"].startswith("not JSON")
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["items"] == 1 and results["skipped"] == 9
    assert "9 record(s) skipped" in printed


class VotingAgent(Agent):
    """A judge model with scripted replies: `replies(prompt)` gives the n samples for a prompt."""

    def __init__(self, replies):
        self.replies = replies
        self.prompts: list[str] = []

    def complete(self, conversations, *, temperature=0.0, max_new_tokens=256, n=1, seed=None):
        self.prompts += [c[-1]["content"] for c in conversations]
        return [self.replies(c[-1]["content"])[:n] for c in conversations]


def letter_of(prompt: str, marker: str) -> str:
    return re.search(rf"\[Answer ([A-J])\]\n{marker}", prompt).group(1)


def test_majority_voting_over_scripted_votes():
    assert majority([7.0, 7.0, 2.0]) == 7.0 and majority([3.0, 5.0]) == 4.0 and majority([]) is None
    assert vote_shares([0, 0, 1, None], 2) == [2 / 3, 1 / 3] and vote_shares([None], 3) == [None] * 3

    def replies(prompt):  # two votes for GOOD, one for BAD
        good, bad = letter_of(prompt, "GOOD"), letter_of(prompt, "BAD")
        return [f"Verdict: {good}", f"I think {bad}. Verdict: {bad}", good]

    judge = JudgeRM(VotingAgent(replies), mode="pairwise", votes=3)
    conv = user("which?")
    assert judge.compare(conv, ["GOOD one", "BAD one"]) == [2 / 3, 1 / 3]
    assert judge.compare(conv, ["BAD one", "GOOD one"]) == [1 / 3, 2 / 3]
    # the order shown is shuffled per item: the best is not always answer A
    agent = VotingAgent(lambda p: ["Verdict: A"])
    shown_first = []
    for k in range(8):
        JudgeRM(agent, mode="pairwise").compare(user(f"q{k}"), ["GOOD", "BAD"])
        shown_first.append(letter_of(agent.prompts[-1], "GOOD") == "A")
    assert any(shown_first) and not all(shown_first)

    tie = JudgeRM(
        VotingAgent(
            lambda p: [f"Verdict: {letter_of(p, 'GOOD')}", f"Verdict: {letter_of(p, 'BAD')}", "no idea"]
        ),
        mode="pairwise",
        votes=3,
    )
    scores = tie.compare(conv, ["GOOD", "BAD"])
    assert scores == [0.5, 0.5] and not is_correct(scores)
    assert tie.take_failures() == [{"reply": "no idea", "reason": "no verdict among AB"}]

    pointwise = JudgeRM(
        VotingAgent(
            lambda p: (
                ["Score: 7", "Score: 2", "Score: 7"] if "GOOD" in p else ["Score: 3", "Score: 5", "Score: 11"]
            )
        ),
        votes=3,
    )
    assert pointwise.score([conv, conv], ["GOOD", "BAD"]) == [7.0, 4.0]
    assert [f["reply"] for f in pointwise.take_failures()] == ["Score: 11"]
    assert pointwise.compare(conv, ["GOOD", "BAD"]) == [7.0, 4.0]
    crowded = JudgeRM(VotingAgent(lambda p: ["Verdict: A"]), mode="pairwise")
    assert crowded.compare(conv, [f"answer {k}" for k in range(11)]) == [None] * 11
    assert "at most 10" in crowded.take_failures()[0]["reason"]
    mute = JudgeRM(VotingAgent(lambda p: ["I cannot judge this."]))
    assert mute.score([conv], ["x"]) == [None] and len(mute.take_failures()) == 1


def test_unreadable_judge_replies_count_wrong_and_are_logged(tmp_path):
    judge = JudgeRM(
        VotingAgent(lambda p: ["Verdict: A"] if "Code" in p or "SQL" in p else ["hmm"]), mode="pairwise"
    )
    results = run_rm_bench(judge, SAMPLE_DIR, tmp_path / "out", rm_spec="scripted-judge", progress=False)
    failures = [json.loads(line) for line in (tmp_path / "out" / "failures.jsonl").read_text().splitlines()]
    keyed = [f for f in failures if "key" in f]
    assert results["unscored"] == len(keyed) > 0
    assert len([f for f in failures if f.get("reply") == "hmm"]) == len(keyed)


@pytest.fixture(scope="module")
def tiny_dirs(tmp_path_factory):
    from transformers import AutoModelForSequenceClassification

    from agents.tiny import build_tiny_model

    root = tmp_path_factory.mktemp("tiny")
    corpus = [turn["content"] for item in read_rmb(SAMPLE_DIR).items for turn in item.conversation]
    lm = build_tiny_model(root / "lm", corpus)
    classifier = AutoModelForSequenceClassification.from_pretrained(lm, num_labels=1)
    classifier.save_pretrained(root / "rm")
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (Path(lm) / name).exists():
            (root / "rm" / name).write_bytes((Path(lm) / name).read_bytes())
    return Path(lm), root / "rm"


def test_classifier_backend_scores_in_batches_as_one_by_one(tiny_dirs):
    rm = load_rm(f"classifier:{tiny_dirs[1]}", batch_size=3)
    items = read_rmb(SAMPLE_DIR).items
    conversations = [list(item.conversation) for item in items for _ in (item.best, *item.losers)]
    answers = [answer for item in items for answer in (item.best, *item.losers)]
    batched = rm.score(conversations, answers)
    single = [rm.score([c], [a])[0] for c, a in zip(conversations[:5], answers[:5])]
    assert len(batched) == len(answers) and batched[:5] == pytest.approx(single, abs=1e-4)
    with pytest.raises(ValueError, match="takes no option"):
        load_rm(f"classifier:{tiny_dirs[1]}", votes=3)


def test_rm_bench_refuses_a_directory_that_is_no_reward_model(tiny_dirs, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["rm-bench", "--rm", f"classifier:{tiny_dirs[0]}", "--out", str(out)]) == 2
    assert "not a reward model" in capsys.readouterr().err and not out.exists()


def test_rm_bench_runs_a_judge_over_a_tiny_model_on_the_shipped_sample(tiny_dirs, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(
        [
            "rm-bench",
            "--rm",
            f"judge:hf:{tiny_dirs[0]}",
            "--judge-mode",
            "pairwise",
            "--max-new-tokens",
            "4",
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    assert results["items"] == 10 and set(results["sections"]) == {
        "helpfulness/pairwise",
        "helpfulness/bon",
        "harmlessness/pairwise",
        "harmlessness/bon",
    }
    assert 0.0 <= results["overall"] <= 1.0
    assert "| **overall** |" in capsys.readouterr().out
    assert main(["rm-bench", "--rm", "guard", "--out", str(out)]) == 2  # another RM's run


def test_rm_bench_judges_through_an_openai_compatible_endpoint(tiny_dirs, tmp_path):
    from tests.conftest import AgentServerProcess

    server = AgentServerProcess(str(tiny_dirs[0])).wait_ready()
    try:
        out = tmp_path / "out"
        code = main(
            [
                "rm-bench",
                "--rm",
                f"openai:{server.url}/v1#tiny",
                "--votes",
                "2",
                "--max-new-tokens",
                "4",
                "--out",
                str(out),
                "--no-progress",
            ]
        )
    finally:
        server.stop()
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    assert results["items"] == 10 and results["rm"].startswith("openai:")
    records = [json.loads(line) for line in (out / "scores.jsonl").read_text().splitlines()]
    assert sum(len(r["scores"]) for r in records) == 25  # every answer of the sample scored over HTTP
