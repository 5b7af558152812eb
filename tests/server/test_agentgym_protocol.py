"""`evol serve ENV --agentgym`: AgentGym's protocol, its shapes per family as AgentGym's servers
answer, its errors (4xx, `{"error": message}`), and the native server's limits, provoked for real
against servers on loopback."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
import requests

import envs
from envs.games.wordle import split_answers, word_lists
from tests.conftest import ROOT, ServerProcess

AGENTGYM = ("--agentgym", "--workers", "1")


def serve(env_id: str, *flags: str) -> ServerProcess:
    return ServerProcess([env_id], *AGENTGYM, *flags)


@pytest.fixture(scope="module")
def babyai():
    server = serve("evol/BabyAI-v0")
    yield server.url
    server.stop()


@pytest.fixture(scope="module")
def webshop():
    server = serve("evol/WebShop-v0")
    yield server.url
    server.stop()


@pytest.fixture(scope="module")
def wordle():
    server = serve("evol/Wordle-v0", "--agentgym-prefix", "/wordle")
    yield server.url + "/wordle"
    server.stop()


def post(url: str, body=None, **kwargs) -> requests.Response:
    return requests.post(url, json=body, timeout=60, **kwargs)


def created(url: str, body=None) -> int:
    answer = post(f"{url}/create", body)
    assert answer.status_code == 200, answer.text
    value = answer.json()
    return value if isinstance(value, int) else value["id"]


def local_reset(env_id: str, **options) -> str:
    return envs.make(env_id).reset(options=options)[0]


def twin_actions(task: int) -> list[str]:
    return envs.make("evol/BabyAI-v0").reset(options={"task": task})[1]["valid_actions"]


# ---- shapes, per family ---------------------------------------------------------------------
def test_babyai_shapes_and_running_score(babyai):
    first, second = created(babyai), created(babyai)
    assert second == first + 1
    reset = post(f"{babyai}/reset", {"id": first, "data_idx": 9}).json()
    assert set(reset) == {"observation", "reward", "score", "done", "deleted"}
    assert reset["observation"] == local_reset("evol/BabyAI-v0", task=9) and reset["score"] == 0
    twin = envs.make("evol/BabyAI-v0")
    twin.reset(options={"task": 9})
    rewards = []
    while True:
        action = twin.expert_action()
        _, reward, terminated, truncated, _ = twin.step(action)
        step = post(f"{babyai}/step", {"id": first, "action": action}).json()
        assert set(step) == {"observation", "reward", "score", "done"}
        rewards.append(reward)
        assert step["reward"] == reward and step["score"] == pytest.approx(sum(rewards))
        if terminated or truncated:
            break
    assert step["done"] is True and step["score"] > 0
    observed = requests.get(f"{babyai}/observation", params={"id": first}, timeout=30).json()
    assert observed == {**step, "deleted": False}
    ended = requests.get(f"{babyai}/available_actions", params={"id": first}, timeout=30)
    assert ended.status_code == 200 and ended.json() == []
    waiting = requests.get(f"{babyai}/available_actions", params={"id": second}, timeout=30)
    assert waiting.status_code == 409 and "no episode yet" in waiting.json()["error"]
    post(f"{babyai}/reset", {"id": second, "data_idx": 9})
    listed = requests.get(f"{babyai}/available_actions", params={"id": second}, timeout=30).json()
    assert listed == twin_actions(9)
    assert requests.get(f"{babyai}/", timeout=30).json() == "This is environment BabyAI."


def test_webshop_shapes_follow_agentgym_s_webshop_server(webshop):
    number = created(webshop)
    assert isinstance(post(f"{webshop}/create").json(), int)
    reset = post(f"{webshop}/reset", {"env_idx": number, "session_id": 3}).json()
    assert isinstance(reset, list) and reset[1] is None
    assert reset[0] == local_reset("evol/WebShop-v0", task=3)
    assert requests.get(f"{webshop}/observation", params={"env_idx": number}, timeout=30).json() == reset[0]
    listed = requests.get(f"{webshop}/available_actions", params={"env_idx": number}, timeout=30).json()
    assert listed == {"has_search_bar": True, "clickables": ["search"]}
    instruction = requests.get(f"{webshop}/instruction_text", params={"env_idx": number}, timeout=30).json()
    assert instruction.startswith("Instruction: ") and instruction[len("Instruction: ") :] in reset[0]
    step = post(f"{webshop}/step", {"env_idx": number, "action": "search[shampoo]"}).json()
    assert set(step) == {"state", "reward", "done", "info"} and step["info"] is None and not step["done"]
    listed = requests.get(f"{webshop}/available_actions", params={"env_idx": number}, timeout=30).json()
    assert not listed["has_search_bar"] and "Back to Search" in listed["clickables"]
    random_task = post(
        f"{webshop}/reset", {"env_idx": number}
    ).json()  # no session_id: a task drawn at random
    assert isinstance(random_task[0], str) and "Instruction:" in random_task[0]


def test_wordle_takes_spelled_guesses_answers_letters_and_filters_the_vocabulary(wordle):
    number = created(wordle)
    vocabulary = requests.get(f"{wordle}/filtered_vocab", params={"id": number}, timeout=30).json()
    assert vocabulary == list(word_lists()[1])  # before any reset, as AgentGym's client asks for it
    reset = post(f"{wordle}/reset", {"id": number, "seed": 11}).json()
    assert set(reset) == {"observation", "reward", "score", "done"} and not reset["done"]
    answer = split_answers("train")[11]
    guess = next(word for word in word_lists()[1] if word != answer and set(word) & set(answer))
    step = post(f"{wordle}/step", {"id": number, "action": " ".join(guess)}).json()
    from envs.games.wordle import feedback

    letters = " ".join("byg"[colour] for colour in feedback(guess, answer))
    assert step == {"observation": letters, "reward": 0.0, "score": 0.0, "done": False}
    narrowed = requests.get(f"{wordle}/filtered_vocab", params={"id": number}, timeout=30).json()
    assert answer in narrowed and guess not in narrowed and len(narrowed) < len(vocabulary)
    invalid = post(f"{wordle}/step", {"id": number, "action": "q z x"}).json()
    assert "Invalid guess" in invalid["observation"] and not invalid["done"]
    win = post(f"{wordle}/step", {"id": number, "action": answer.upper()}).json()
    assert win == {"observation": "g g g g g", "reward": 1.0, "score": 1.0, "done": True}
    assert requests.get(f"{wordle}/filtered_vocab", params={"id": number}, timeout=30).json() == [answer]


def test_maze_under_a_prefix_and_its_available_actions(start_server):
    server = start_server(["evol/Maze-v0"], *AGENTGYM, "--agentgym-prefix", "/maze/")
    base = server.url + "/maze"
    assert post(f"{server.url}/create").status_code == 404  # the routes live under the prefix only
    assert requests.get(f"{server.url}/health", timeout=30).json()["status"] == "ok"
    number = created(base)
    everything = requests.get(f"{base}/available_actions", timeout=30).json()
    assert everything == ["move up", "move down", "move left", "move right"]
    reset = post(f"{base}/reset", {"id": number, "game": 3}).json()
    twin = envs.make("evol/Maze-v0")
    observation, info = twin.reset(options={"task": 3})
    assert reset["observation"] == observation
    listed = requests.get(f"{base}/available_actions", params={"id": number}, timeout=30).json()
    assert listed == info["valid_actions"]


def test_textcraft_create_answers_an_observation_and_refuses_custom_recipes(start_server):
    base = start_server(["evol/TextCraft-v0"], *AGENTGYM).url
    client_body = {"minecraft_dir": "agentenv_textcraft/", "commands": None, "goal": None}
    answer = post(f"{base}/create", client_body).json()
    assert set(answer) == {"id", "observation", "done", "reward"}
    assert answer["observation"] == local_reset("evol/TextCraft-v0", task=0)
    for body, named in [
        ({"commands": "craft 1 stick using 2 planks"}, "commands"),
        ({"goal": "stick"}, "goal"),
    ]:
        refused = post(f"{base}/create", body)
        assert refused.status_code == 400 and named in refused.json()["error"]
    reset = post(f"{base}/reset", {"id": answer["id"]}).json()  # data_idx defaults to 0, as AgentGym's
    assert reset["id"] == answer["id"] and reset["observation"] == answer["observation"]
    reset = post(f"{base}/reset", {"id": answer["id"], "data_idx": 6}).json()
    assert reset["observation"] == local_reset("evol/TextCraft-v0", task=6)


def test_split_flag_points_task_indices_at_that_split(start_server):
    base = start_server(["evol/Maze-v0"], *AGENTGYM, "--agentgym-split", "test").url
    number = created(base)
    reset = post(f"{base}/reset", {"id": number, "game": 7}).json()
    assert reset["observation"] == local_reset("evol/Maze-v0", task=7, split="test")
    refused = post(f"{base}/reset", {"id": number, "game": 5000})  # the test split holds 1,000 mazes
    assert refused.status_code == 400 and "game 5000" in refused.json()["error"]


# ---- bad input: 4xx, {"error": message} -------------------------------------------------------
@pytest.mark.parametrize(
    "route, body, status, words",
    [
        ("reset", {"id": 0, "data_idx": 1, "seed": 3}, 400, ["unknown reset field", "seed"]),
        ("reset", {"id": 0, "data_idx": 1, "options": {}}, 400, ["unknown reset field", "options"]),
        ("reset", {"id": 0}, 400, ["'data_idx'", "required"]),
        ("reset", {"data_idx": 1}, 400, ["'id'", "required"]),
        ("reset", {"id": 0, "data_idx": -1}, 400, ["data_idx", "non-negative"]),
        ("reset", {"id": 0, "data_idx": 1.5}, 400, ["data_idx", "non-negative"]),
        ("reset", {"id": 0, "data_idx": True}, 400, ["data_idx", "non-negative"]),
        ("reset", {"id": 0, "data_idx": "3; rm -rf /"}, 400, ["data_idx"]),
        ("reset", {"id": 0, "data_idx": 10**9}, 400, ["data_idx 1000000000"]),
        ("reset", {"id": "zero", "data_idx": 1}, 400, ["'id'"]),
        ("reset", {"id": 10**6, "data_idx": 1}, 404, ["no env with id 1000000"]),
        ("step", {"id": 0, "action": "turn left", "session": "x"}, 400, ["unknown step field", "session"]),
        ("step", {"id": 0, "action": 5}, 400, ["'action'"]),
        ("step", {"id": 0}, 400, ["'action'"]),
        ("step", {"id": 0, "action": "x" * 5000}, 413, ["characters"]),
        ("close", {"id": 0, "env_idx": 0}, 400, ["unknown close field", "env_idx"]),
        ("create", {"env": "evol/BabyAI-v0"}, 400, ["unknown create field", "env"]),
    ],
)
def test_bad_requests_are_refused_with_a_message(babyai, route, body, status, words):
    created(babyai)  # id 0 exists whatever ran before
    answer = post(f"{babyai}/{route}", body)
    assert answer.status_code == status, answer.text
    assert set(answer.json()) == {"error"}
    assert all(word in answer.json()["error"] for word in words), answer.json()
    assert str(ROOT) not in answer.json()["error"] and "site-packages" not in answer.json()["error"]


def test_episode_order_and_body_format_errors(babyai):
    number = created(babyai)
    early = post(f"{babyai}/step", {"id": number, "action": "turn left"})
    assert early.status_code == 409 and "reset it first" in early.json()["error"]
    before = requests.get(f"{babyai}/observation", params={"id": number}, timeout=30)
    assert before.status_code == 409
    post(f"{babyai}/reset", {"id": number, "data_idx": 9})
    twin = envs.make("evol/BabyAI-v0")
    twin.reset(options={"task": 9})
    while not twin.episode_over:
        action = twin.expert_action()
        twin.step(action)
        post(f"{babyai}/step", {"id": number, "action": action})
    late = post(f"{babyai}/step", {"id": number, "action": "turn left"})
    assert late.status_code == 409 and "has ended" in late.json()["error"]
    text = requests.post(f"{babyai}/step", data="id=0&action=x", timeout=30)
    assert text.status_code == 415 and set(text.json()) == {"error"}
    broken = requests.post(
        f"{babyai}/step", data="{not json", headers={"Content-Type": "application/json"}, timeout=30
    )
    assert broken.status_code == 400
    for query in ({"id": "-1"}, {"id": "x"}, {}):
        answer = requests.get(f"{babyai}/observation", params=query, timeout=30)
        assert answer.status_code == 400, query
    assert requests.get(f"{babyai}/filtered_vocab", params={"id": number}, timeout=30).status_code == 404


# ---- limits, reaping and the token: the native server's ---------------------------------------
def test_capacity_reaping_and_token_are_the_native_servers(start_server):
    base = start_server(["evol/BabyAI-v0"], *AGENTGYM, "--capacity", "2", "--ttl", "1", "--token", "s3").url
    auth = {"Authorization": "Bearer s3"}
    assert post(f"{base}/create").status_code == 401
    assert requests.get(f"{base}/health", timeout=30).status_code == 200
    first = post(f"{base}/create", headers=auth).json()["id"]
    post(f"{base}/create", headers=auth)
    full = post(f"{base}/create", headers=auth)
    assert full.status_code == 429 and full.headers["Retry-After"] and "maximum of 2" in full.json()["error"]
    time.sleep(2.5)  # idle past the TTL: both sessions are reaped
    gone = post(f"{base}/reset", {"id": first, "data_idx": 1}, headers=auth)
    assert gone.status_code == 404 and "no env with id" in gone.json()["error"]
    assert requests.get(f"{base}/health", timeout=30).json()["sessions"] == 0
    assert post(f"{base}/create", headers=auth).json()["id"] == first + 2


# ---- the flags ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "args, words",
    [
        (["evol/BabyAI-v0", "evol/Maze-v0", "--agentgym"], "one env family per server"),
        (["evol/ChartQA-v0", "--agentgym"], "--agentgym serves"),
        (["acme/Counter-v0", "--agentgym"], "--agentgym serves"),
        (["evol/Maze-v0", "--agentgym", "--agentgym-prefix", "maze"], "must be a path"),
        (["evol/Maze-v0", "--agentgym", "--agentgym-prefix", "/a b"], "must be a path"),
        (["evol/Maze-v0", "--agentgym", "--agentgym-split", "dev"], "must be one of train, test"),
        (["evol/Maze-v0", "--agentgym-prefix", "/maze"], "need --agentgym"),
    ],
)
def test_serve_refuses_what_agentgym_mode_cannot_serve(args, words):
    answer = subprocess.run(
        [sys.executable, "-m", "evol.cli", "serve", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert answer.returncode == 2 and words in answer.stderr, answer.stderr[-2000:]
