"""ChartQA-v0's judged answers with a scripted judge: exact match first, then the judge's verdict and reason.

The judge is any object with `complete(conversations, ...)` (the counterpart interface every
agent has); here a scripted one whose replies are known, locally and behind `evol serve
--counterpart judge=openai:URL#MODEL` (a scripted OpenAI-compatible endpoint on loopback).
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from envs.charts.env import ChartQAEnv
from envs.charts.judge import JUDGE_PROMPT, UNREADABLE, judge_reason

CODE = "import matplotlib.pyplot as plt\nplt.bar(['TikTok', 'Twitter'], [25, 12])\nplt.title('Share')\n"
RECORDS = [
    {"question": "Which platform leads, and with what share?", "answer": "TikTok, 25%", "code": CODE},
    {"question": "What share does Twitter hold?", "answer": "12%", "code": CODE},
    {"question": "Which platform trails?", "answer": "Twitter", "code": CODE},
]


def scripted_reply(prompt: str) -> str:
    """The scripted judge: right when every number of the reference is in the answer; an answer
    saying "unsure" gets a reply with no verdict line."""
    gold = re.search(r"^Reference answer: (.*)$", prompt, re.MULTILINE).group(1)
    given = re.search(r"^Answer to grade: (.*)$", prompt, re.MULTILINE).group(1)
    if "unsure" in given:
        return "Hard to say without the chart."
    right = set(re.findall(r"\d+(?:\.\d+)?", gold)) <= set(re.findall(r"\d+(?:\.\d+)?", given))
    why = "The answer states the reference's numbers." if right else "The answer's numbers differ."
    return f"Analysis: {why}\nVerdict: {'Correct' if right else 'Wrong'}"


class ScriptedJudge:
    """A judge counterpart: the `complete` interface of an agent, replies by `scripted_reply`."""

    def __init__(self):
        self.prompts: list[str] = []

    def complete(self, conversations, *, temperature=0.0, max_new_tokens=256, n=1, seed=None):
        replies = []
        for conversation in conversations:
            prompt = conversation[-1]["content"]
            self.prompts.append(prompt)
            replies.append([scripted_reply(prompt)] * n)
        return replies


@pytest.fixture
def records(tmp_path) -> str:
    path = tmp_path / "free.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
    return str(path)


def judged_step(env: ChartQAEnv, task: int, reply: str):
    env.reset(options={"task": task})
    _, reward, terminated, _, info = env.step(reply)
    assert terminated
    return reward, info


def test_the_judge_says_right_and_the_answer_succeeds_with_its_reason(records):
    judge = ScriptedJudge()
    env = ChartQAEnv(data=records, mode="code", judge=judge)
    reward, info = judged_step(env, 0, "Answer: TikTok leads with a 25% share")
    assert reward == 1.0 and info["success"] and info["correct"]
    assert info["graded_by"] == "judge" and info["judge_verdict"] is True
    assert info["judge_reason"] == "The answer states the reference's numbers."
    assert judge.prompts == [
        JUDGE_PROMPT.format(
            question=RECORDS[0]["question"], gold="TikTok, 25%", given="TikTok leads with a 25% share"
        )
    ]


def test_the_judge_says_wrong_and_the_answer_fails(records):
    env = ChartQAEnv(data=records, mode="code", judge=ScriptedJudge())
    reward, info = judged_step(env, 0, "Answer: TikTok, with about a fifth of the market (20%)")
    assert reward == 0.0 and not info["success"]
    assert info["graded_by"] == "judge" and info["judge_verdict"] is False
    assert info["judge_reason"] == "The answer's numbers differ."


def test_an_unparseable_judge_reply_is_wrong_and_info_says_why(records):
    env = ChartQAEnv(data=records, mode="code", judge=ScriptedJudge())
    reward, info = judged_step(env, 0, "Answer: unsure, TikTok maybe")
    assert reward == 0.0 and not info["success"] and info["judge_verdict"] is None
    assert info["judge_reason"] == UNREADABLE and "counts as wrong" in info["judge_reason"]
    assert info["judge_reply"] == "Hard to say without the chart."


@pytest.mark.parametrize(
    "task, reply",
    [(1, "Answer: 12%"), (1, "Answer: 12.3%"), (2, "Answer: the twitter"), (0, "Answer: **TikTok, 25%**.")],
)
def test_an_exact_or_numeric_match_never_asks_the_judge(records, task, reply):
    judge = ScriptedJudge()
    env = ChartQAEnv(data=records, mode="code", judge=judge)
    reward, info = judged_step(env, task, reply)
    assert reward == 1.0 and info["graded_by"] == "exact" and "judge_verdict" not in info
    assert judge.prompts == []


def test_judge_reasons_drop_the_label_and_keep_what_precedes_the_last_verdict():
    assert (
        judge_reason("Reasoning: same names.\nsame numbers\nVerdict: Correct") == "same names. same numbers"
    )
    assert judge_reason("Verdict: Wrong") == ""
    assert judge_reason("first\nVerdict: Correct\nsecond\nVerdict: Wrong") == "first Verdict: Correct second"
    assert judge_reason("no verdict here") == UNREADABLE


class ScriptedEndpoint(BaseHTTPRequestHandler):
    """`POST /v1/chat/completions` answered by `scripted_reply` on the last message."""

    def do_POST(self):  # noqa: N802 (http.server's name)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        reply = scripted_reply(body["messages"][-1]["content"])
        choices = [
            {"index": i, "message": {"role": "assistant", "content": reply}, "finish_reason": "stop"}
            for i in range(int(body.get("n") or 1))
        ]
        data = json.dumps({"id": "scripted", "object": "chat.completion", "choices": choices}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def judge_endpoint():
    server = ThreadingHTTPServer(("127.0.0.1", 0), ScriptedEndpoint)  # port 0: a free port
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_a_served_env_asks_its_counterpart_judge_like_a_local_one(records, judge_endpoint, start_server):
    from server.client import RemoteEnv

    env_id = "evol/ChartQA-v0"
    kwargs = json.dumps({env_id: {"data": records, "mode": "code"}})
    server = start_server(
        [env_id], "--counterpart", f"judge=openai:{judge_endpoint}#judge", "--env-kwargs", kwargs
    )
    local = ChartQAEnv(data=records, mode="code", judge=ScriptedJudge())
    remote = RemoteEnv(env_id, url=server.url)
    shown = ("success", "graded_by", "judge_verdict", "judge_reason")
    served = []
    try:
        for task, reply in [
            (0, "Answer: 25% for TikTok"),
            (0, "Answer: TikTok, 30%"),
            (2, "Answer: Twitter"),
        ]:
            remote.reset(options={"task": task})
            *_, info = remote.step(reply)
            _, local_info = judged_step(local, task, reply)
            served.append({k: info.get(k) for k in shown})
            assert served[-1] == {k: local_info.get(k) for k in shown}
    finally:
        remote.close()
    assert [(s["success"], s["graded_by"], s["judge_verdict"]) for s in served] == [
        (True, "judge", True),
        (False, "judge", False),
        (True, "exact", None),
    ]
