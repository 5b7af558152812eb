"""evol/ChartQA-v0 on ReachQA files: code files, files checked at load, path-free messages, the judge.

ReachQA's records store `code` as a path beside `image`; a record whose image or code file
is missing is reported when the file loads (how many, the first few by record), in messages
that never show a folder of the machine; free-text answers may be graded by a model judge.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from PIL import Image

from agents.base import Agent, AgentInput, SamplingParams
from envs.charts.env import ChartQAEnv
from envs.charts.judge import JUDGE_PROMPT, AnswerJudge, as_answer_judge, parse_verdict
from envs.charts.records import SHOWN_PROBLEMS, load_reachqa
from envs.errors import ParamError, TaskOptionError
from envs.params import check_params

CODE = "import matplotlib.pyplot as plt\nplt.bar(['A', 'B'], [3, 5])\nplt.title('Sales')\n"


def write_set(
    folder: Path, records: list[dict], name: str = "test.json", images: tuple[str, ...] = ()
) -> Path:
    """A ReachQA-like folder: `name` beside images/ and code/ (as ReachQA's releases lay them out)."""
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "code").mkdir(exist_ok=True)
    for image in images:
        Image.new("RGB", (120, 80), (20, 120, 200)).save(folder / image)
    path = folder / name
    if name.endswith(".json"):
        path.write_text(json.dumps(records))
    else:
        path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    return path


def record(n: int, **fields) -> dict:
    return {
        "question": f"Question {n}?",
        "answer": "5",
        "image": f"images/{n:05d}.png",
        "code": f"code/{n:05d}.py",
    } | fields


def assert_no_folder(message: str, *folders: Path) -> None:
    for folder in folders:
        assert str(folder) not in message and str(folder.resolve()) not in message, message
    assert not re.search(r"(?<![\w.:/])/(?:tmp|home|root|srv|work|var)/", message), message


# ---- code stored as a path --------------------------------------------------------------------
@pytest.mark.parametrize("written", ["code/00000.py", "./code/00000.py", "code/00000.txt", "ABSOLUTE"])
def test_code_mode_shows_the_code_files_text_never_its_path(tmp_path, written):
    folder = tmp_path / "reachqa_test"
    path = write_set(folder, [], images=("images/00000.png",))
    target = folder / (written if written != "ABSOLUTE" else "code/00000.py")
    target.parent.mkdir(exist_ok=True)
    target.write_text(CODE)
    written = str(target) if written == "ABSOLUTE" else written
    path.write_text(json.dumps([record(0, code=written)]))
    env = ChartQAEnv(data=str(path), mode="code")
    observation, _ = env.reset(options={"task": 0})
    assert CODE.strip() in observation["text"] and "plt.bar(['A', 'B'], [3, 5])" in observation["text"]
    assert written not in observation["text"] and ".py" not in observation["text"].replace(CODE, "")
    assert env.step("Answer: 5")[1] == 1.0


def test_inline_code_is_still_shown_as_it_is(tmp_path):
    path = write_set(
        tmp_path,
        [record(0, code=CODE), record(1, code="plt.plot([1, 2])")],
        images=("images/00000.png", "images/00001.png"),
    )
    env = ChartQAEnv(data=str(path), mode="code")
    assert CODE.strip() in env.reset(options={"task": 0})[0]["text"]
    assert "plt.plot([1, 2])" in env.reset(options={"task": 1})[0]["text"]


def test_a_code_files_text_is_shown_never_run(tmp_path):
    canary = tmp_path / "ran.txt"
    path = write_set(tmp_path, [record(0)], images=("images/00000.png",))
    (tmp_path / "code" / "00000.py").write_text(
        f"import os\nos.system('touch {canary}')\nopen('{canary}', 'w')\n"
    )
    for mode in ("code", "image"):
        env = ChartQAEnv(data=str(path), mode=mode)
        env.reset(options={"task": 0})
        env.step("Answer: 5")
    assert not canary.exists()


# ---- missing and broken files are found when the file loads -------------------------------------
def test_missing_images_are_reported_at_load_with_count_and_first_records(tmp_path):
    folder = tmp_path / "srv" / "data" / "reachqa_test"
    records = [record(n, id=f"q{n}") for n in range(9)]
    records[8]["image"] = str(folder / "images" / "00008.png")  # absolute: named by its file name alone
    path = write_set(folder, records, images=("images/00000.png", "images/00002.png"))
    with pytest.raises(ValueError) as caught:
        ChartQAEnv(data=str(path))
    message = str(caught.value)
    assert message.startswith("7 of the 9 records of 'test.json' cannot be shown in image mode (")
    assert "record 1 (id 'q1'): image 'images/00001.png' not found; record 3 (id 'q3')" in message
    assert message.count("not found") == SHOWN_PROBLEMS and message.endswith("; and 2 more)")
    assert_no_folder(message, tmp_path)


def test_a_broken_image_and_a_missing_code_file_are_named(tmp_path):
    path = write_set(tmp_path, [record(0), record(1)], name="test.jsonl", images=("images/00000.png",))
    (tmp_path / "images" / "00001.png").write_text("not an image")
    (tmp_path / "code" / "00000.py").write_text(CODE)
    with pytest.raises(ValueError, match=r"record 1: image 'images/00001.png' is not a readable image\)$"):
        ChartQAEnv(data=str(path))
    with pytest.raises(
        ValueError,
        match=r"^1 of the 2 records .* code mode \(record 1: code file 'code/00001.py' not found\)$",
    ):
        ChartQAEnv(data=str(path), mode="code")


def test_the_other_modes_missing_file_is_refused_at_reset_naming_the_record(tmp_path):
    path = write_set(
        tmp_path,
        [record(0), record(1), record(2, image=None)],
        images=("images/00000.png", "images/00001.png"),
    )
    (tmp_path / "code" / "00000.py").write_text(CODE)
    env = ChartQAEnv(data=str(path))  # image mode: record 2 has no image, which loads
    env.reset(options={"task": 0, "mode": "code"})
    with pytest.raises(TaskOptionError) as caught:
        env.reset(options={"task": 1, "mode": "code"})
    assert str(caught.value) == "record 1 cannot be shown in code mode: code file 'code/00001.py' not found"
    with pytest.raises(TaskOptionError, match="record 2 cannot be shown in image mode: it has no image"):
        env.reset(options={"task": 2})


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("r.jsonl", '{"question": "q", "answer": "1"}\n{broken\n', "line 2 of 'r.jsonl' is not valid JSON"),
        ("r.json", '[{"question": "q", "answer": "1"},', "'r.json' is not valid JSON"),
        ("r.json", '{"question": "q"}', "'r.json' holds no ReachQA records"),
        ("r.jsonl", "\n", "'r.jsonl' holds no ReachQA records"),
        ("r.jsonl", '{"question": "q"}\n', "record 0 of 'r.jsonl' lacks 'question' or 'answer'"),
        ("r.jsonl", b"\xff\xfe\x00", "cannot read the ReachQA file 'r.jsonl'"),
    ],
)
def test_a_bad_data_file_is_named_by_its_name_alone(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(ValueError) as caught:
        ChartQAEnv(data=str(path))
    assert message in str(caught.value)
    assert_no_folder(str(caught.value), tmp_path)


def test_a_missing_data_file_is_a_value_error_without_its_folder(tmp_path):
    with pytest.raises(ValueError) as caught:
        ChartQAEnv(data=str(tmp_path / "gone" / "test.json"))
    assert str(caught.value) == "cannot read the ReachQA file 'test.json': No such file or directory"


def test_reachqa_split_names_the_qa_type(tmp_path):
    records = [record(0, split="recognizing", code=CODE), record(1, split="reasoning", code=CODE)]
    path = write_set(tmp_path, records, images=("images/00000.png", "images/00001.png"))
    data = load_reachqa(path)
    assert [r["QA_type"] for r in data.records] == ["recognition", "reasoning"]
    assert ChartQAEnv(data=str(path)).reset(options={"task": 1})[1]["QA_type"] == "reasoning"


# ---- the judge ------------------------------------------------------------------------------------
VERDICTS = [
    ("Analysis: same numbers.\nVerdict: Correct", True),
    ("Verdict: Wrong", False),
    ("**Verdict:** correct", True),
    ("verdict = incorrect", False),
    ("Analysis: ...\nCorrectness: Yes", True),  # ReachQA's own judge format
    ("Correctness: No", False),
    ("Final verdict: right", True),
    ("Verdict: Correct\nOn second thought...\nVerdict: Wrong", False),  # the last one counts
    ("The answer is correct.", None),
    ("", None),
    ("Verdict:" + " " * 5000 + "maybe", None),
]


@pytest.mark.parametrize("reply, verdict", VERDICTS)
def test_judge_verdicts_are_read_from_the_last_verdict_line(reply, verdict):
    assert parse_verdict(reply) is verdict


class NumbersJudge(Agent):
    """A judge model by rule: right when every number of the reference is in the answer."""

    name = "numbers-judge"

    def __init__(self):
        self.prompts: list[str] = []

    def generate(self, inputs: list[AgentInput], sampling: SamplingParams) -> list[list[str]]:
        replies = []
        for item in inputs:
            prompt = item.messages[-1]["content"]
            self.prompts.append(prompt)
            gold = re.search(r"^Reference answer: (.*)$", prompt, re.MULTILINE).group(1)
            given = re.search(r"^Answer to grade: (.*)$", prompt, re.MULTILINE).group(1)
            right = set(re.findall(r"\d+(?:\.\d+)?", gold)) <= set(re.findall(r"\d+(?:\.\d+)?", given))
            replies.append([f"Numbers compared.\nVerdict: {'Correct' if right else 'Wrong'}"] * sampling.n)
        return replies


class Mumbler(Agent):
    name = "mumbler"

    def generate(self, inputs, sampling):
        return [["I cannot decide."] for _ in inputs]


FREE_TEXT = [
    {
        "question": "Which platform leads in 2023, and with what share?",
        "answer": "WhatsApp, 60%",
        "code": CODE,
    },
    {
        "question": "By how much does TikTok exceed Twitter and Snapchat?",
        "answer": "TikTok 25% vs 19% combined",
        "code": CODE,
    },
    {"question": "What colour is Instagram?", "answer": "Violet red", "code": CODE},
]


@pytest.fixture
def free_text(tmp_path) -> str:
    return str(write_set(tmp_path, [r | {"image": None} for r in FREE_TEXT], name="free.jsonl"))


def test_a_judge_grades_free_text_answers_that_exact_match_rejects(free_text):
    judge = NumbersJudge()
    env = ChartQAEnv(data=free_text, mode="code", judge=judge)
    env.reset(options={"task": 0})
    _, reward, terminated, _, info = env.step("Answer: The leader is WhatsApp with 60% of the market.")
    assert terminated and reward == 1.0 and info["success"]
    assert (
        info["graded_by"] == "judge"
        and info["judge_verdict"] is True
        and "Verdict: Correct" in info["judge_reply"]
    )
    assert judge.prompts[-1] == JUDGE_PROMPT.format(
        question=FREE_TEXT[0]["question"],
        gold="WhatsApp, 60%",
        given="The leader is WhatsApp with 60% of the market",
    )
    env.reset(options={"task": 1})
    _, reward, _, _, info = env.step("Answer: TikTok has 25%, Twitter and Snapchat 18% together")
    assert reward == 0.0 and info["graded_by"] == "judge" and info["judge_verdict"] is False
    env.reset(options={"task": 2})
    asked = len(judge.prompts)
    _, reward, _, _, info = env.step("Answer: violet red")  # exact match: the judge is not asked
    assert reward == 1.0 and info["graded_by"] == "exact" and len(judge.prompts) == asked


def test_without_a_judge_free_text_is_exact_match(free_text):
    env = ChartQAEnv(data=free_text, mode="code")
    env.reset(options={"task": 0})
    _, reward, _, _, info = env.step("Answer: The leader is WhatsApp with 60% of the market.")
    assert reward == 0.0 and info["graded_by"] == "exact" and "judge_verdict" not in info


def test_an_unreadable_judge_reply_keeps_the_exact_grade(free_text):
    env = ChartQAEnv(data=free_text, mode="code", judge=Mumbler())
    env.reset(options={"task": 0})
    _, reward, _, _, info = env.step("Answer: WhatsApp leads")
    assert reward == 0.0 and info["graded_by"] == "exact" and info["judge_verdict"] is None
    assert info["judge_reply"] == "I cannot decide."


def test_the_judge_is_never_asked_about_synthesised_charts():
    judge = NumbersJudge()
    env = ChartQAEnv(mode="table", judge=judge)
    for task in range(8):
        env.reset(options={"task": task, "split": "test"})
        env.step("Answer: 0")
    assert judge.prompts == []


def test_judge_kwarg_takes_exact_an_agent_or_the_expert_spec():
    from agents import LazyAgent, load_agent

    assert as_answer_judge(None) is None and as_answer_judge("exact") is None
    assert as_answer_judge(load_agent("expert")) is None  # the env's own rules
    assert as_answer_judge(LazyAgent("expert")) is None
    assert isinstance(as_answer_judge(NumbersJudge()), AnswerJudge)
    with pytest.raises(TypeError, match="judge must be"):
        as_answer_judge(42)
    assert check_params(ChartQAEnv.kwarg_params, {"judge": "exact"}, from_client=True)["judge"] == "exact"
    with pytest.raises(ParamError):
        check_params(ChartQAEnv.kwarg_params, {"judge": "hf:/models/x"}, from_client=True)


@pytest.fixture(scope="module")
def tiny_judge(tmp_path_factory) -> str:
    from tests.chat_models import random_tiny_model

    return random_tiny_model(tmp_path_factory.mktemp("judge"), seed=3)


def test_a_real_model_judges_locally_and_behind_a_server_alike(tiny_judge, tmp_path, start_server):
    """`--counterpart judge=hf:PATH`: the served env asks the same small model the same prompt."""
    from agents import load_agent
    from server.client import RemoteEnv

    path = write_set(tmp_path, [r | {"image": None} for r in FREE_TEXT], name="free.jsonl")
    judge = load_agent(f"hf:{tiny_judge}", device="cpu")
    local = ChartQAEnv(data=str(path), mode="code", judge=judge, judge_max_tokens=24)
    local.reset(options={"task": 0})
    *_, local_info = local.step("Answer: WhatsApp")
    assert local_info["graded_by"] in ("judge", "exact") and local_info["judge_reply"]
    env_id = "evol/ChartQA-v0"
    kwargs = json.dumps({env_id: {"data": str(path), "mode": "code", "judge_max_tokens": 24}})
    server = start_server([env_id], "--counterpart", f"judge=hf:{tiny_judge}", "--env-kwargs", kwargs)
    remote = RemoteEnv(env_id, url=server.url)
    try:
        observation, _ = remote.reset(options={"task": 0})
        assert CODE.strip() in observation["text"]
        *_, info = remote.step("Answer: WhatsApp")
        assert info["judge_reply"] == local_info["judge_reply"]
        assert (
            info["judge_verdict"] == local_info["judge_verdict"] and info["success"] == local_info["success"]
        )
    finally:
        remote.close()
