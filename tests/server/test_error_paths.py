"""No error message a client receives names a path of the server, whatever failed.

Real servers on loopback serve envs whose `data=` files are broken in each way a user's
download can be (missing images or code files, a JSON line that does not parse, records of
the wrong shape, a file that is not there); every error answer is read for a folder of the
test's machine. `public_message` (what `ApiError` applies to every message) gets a table.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import requests
from PIL import Image

from envs.errors import public_message
from server.errors import ApiError

CHARTS, TOOLS, REDTEAM, MATH = (
    "evol/ChartQA-v0",
    "evol/ToolUse-v0",
    "evol/RedTeam-Defender-v0",
    "evol/MathCritique-v0",
)
CODE = "import matplotlib.pyplot as plt\nplt.bar(['A', 'B'], [3, 5])\n"


def reachqa(folder: Path, images: list[int], codes: list[int], count: int = 3) -> Path:
    """A ReachQA-like folder of `count` records; only the listed images and code files exist."""
    (folder / "images").mkdir(parents=True)
    (folder / "code").mkdir()
    for n in images:
        Image.new("RGB", (60, 40), (200, 30, 30)).save(folder / "images" / f"{n:05d}.png")
    for n in codes:
        (folder / "code" / f"{n:05d}.py").write_text(CODE)
    records = [
        {
            "question": f"Q{n}?",
            "answer": "5",
            "image": f"images/{n:05d}.png",
            "code": f"code/{n:05d}.py",
            "id": n,
        }
        for n in range(count)
    ]
    (folder / "test.json").write_text(json.dumps(records))
    return folder / "test.json"


def assert_private(text: str, *folders: Path) -> None:
    """`text` names no folder of this machine."""
    for folder in folders:
        assert str(folder) not in text and str(folder.resolve()) not in text, text
    assert not re.search(r"(?<![\w.:/])/(?:tmp|home|root|srv|work|var|usr)\b", text), text


def assert_public(error: dict, *folders: Path) -> None:
    """An error answer's message names no folder, and holds nothing `public_message` would cut."""
    assert_private(error["message"], *folders)
    assert public_message(error["message"]) == error["message"]


def create(url: str, env_id: str) -> requests.Response:
    return requests.post(f"{url}/sessions", json={"env": env_id}, timeout=60)


def test_broken_data_files_answer_without_server_paths(tmp_path, start_server):
    deep = tmp_path / "srv" / "datasets" / "user files"
    charts = reachqa(deep / "reachqa", images=[0], codes=[0, 1, 2])
    tools = deep / "toolset.jsonl"
    tools.write_text('{"Name": "x"}\n{not json at all\n')
    redteam = deep / "prompts.jsonl"
    redteam.write_text('"just a string"\n')
    overrides = {
        CHARTS: {"data": str(charts)},
        TOOLS: {"data": str(tools)},
        REDTEAM: {"data": str(redteam)},
        MATH: {"data": str(deep / "missing" / "gsm8k.jsonl")},
    }
    server = start_server([CHARTS, TOOLS, REDTEAM, MATH], "--env-kwargs", json.dumps(overrides))
    answers = {env_id: create(server.url, env_id) for env_id in overrides}
    for env_id, answer in answers.items():
        assert answer.status_code in (400, 500), (env_id, answer.text)
        assert_private(answer.text, tmp_path)
        assert_public(answer.json()["error"], tmp_path)
    charts_error = answers[CHARTS].json()["error"]
    assert charts_error["type"] == "bad_env_kwargs"
    assert charts_error["message"] == (
        f"cannot build {CHARTS}: 2 of the 3 records of 'test.json' cannot be shown in image mode "
        "(record 1 (id '1'): image 'images/00001.png' not found; record 2 (id '2'): image 'images/00002.png' not found)"
    )
    assert "line 2 of 'toolset.jsonl' is not valid JSON" in answers[TOOLS].json()["error"]["message"]
    # Another family's loader writes its file's full path; the server cuts it to the file name.
    assert (
        answers[REDTEAM].json()["error"]["message"]
        == f"cannot build {REDTEAM}: prompts.jsonl: record 0 is not an object"
    )


def test_a_records_missing_code_file_is_a_400_naming_the_record(tmp_path, start_server):
    charts = reachqa(tmp_path / "home" / "ada" / "reachqa", images=[0, 1, 2], codes=[0, 2])
    server = start_server([CHARTS], "--env-kwargs", json.dumps({CHARTS: {"data": str(charts)}}))
    answer = create(server.url, CHARTS)
    assert answer.status_code == 201, answer.text
    sid = answer.json()["session"]
    reset = requests.post(
        f"{server.url}/sessions/{sid}/reset", json={"options": {"task": 0, "mode": "code"}}, timeout=30
    )
    assert reset.status_code == 200 and CODE.strip() in reset.json()["observation"]["text"]
    assert_private(reset.text, tmp_path)
    bad = {"options": {"task": 1, "mode": "code"}}
    reset = requests.post(f"{server.url}/sessions/{sid}/reset", json=bad, timeout=30)
    assert reset.status_code == 400 and reset.json()["error"] == {
        "type": "bad_options",
        "message": "record 1 cannot be shown in code mode: code file 'code/00001.py' not found",
    }
    batch = requests.post(f"{server.url}/step", json={"steps": [{"session": sid, "reset": bad}]}, timeout=30)
    assert batch.status_code == 200 and batch.json()["results"][0]["status"] == 400
    assert_private(batch.text, tmp_path)
    assert_public(batch.json()["results"][0]["error"], tmp_path)
    reset = requests.post(f"{server.url}/sessions/{sid}/reset", json={"options": {"task": 1}}, timeout=30)
    assert reset.status_code == 200  # the image is there: image mode serves the record


PATHS = [
    ("No such file or directory: '/srv/my data/test.jsonl'", "No such file or directory: 'test.jsonl'"),
    ("cannot read /home/ada/x/y.json: bad", "cannot read y.json: bad"),
    ("/tmp/pytest-1/test.json: record 0 is not an object", "test.json: record 0 is not an object"),
    ("file:///srv/a/b.png is missing", "b.png is missing"),
    ("C:\\Users\\ada\\data.jsonl is bad", "data.jsonl is bad"),
    ("PosixPath('/tmp/x/y')", "PosixPath('y')"),
    ("see ~/data/x.jsonl", "see x.jsonl"),
    ("/srv/user files/prompts.jsonl: record 0", "prompts.jsonl: record 0"),
    ('"/var/lib/evol/games/a b.z8" failed', '"a b.z8" failed'),
]
KEPT = [
    "request bodies must be application/json, not 'text/plain'",
    "unknown env 'evol/ChartQA-v0'; served: evol/BabyAI-v0",
    "see http://127.0.0.1:8000/v1/models",
    "ratio 1/2 in km/h, 3 / 4",
    "image 'images/00001.png' not found",
    "a reset must be a JSON object {seed?, options?}",
]


@pytest.mark.parametrize("message, public", PATHS)
def test_absolute_paths_are_cut_to_their_last_part(message, public):
    assert public_message(message) == public
    assert ApiError(400, "bad", message).message == public
    assert ApiError(400, "bad", message).body()["error"]["message"] == public


@pytest.mark.parametrize("message", KEPT)
def test_messages_without_paths_are_kept_as_they_are(message):
    assert public_message(message) == message
