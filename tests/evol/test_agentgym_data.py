"""AgentGym's trajectory data (AgentTraj): items read as trajectories, the filler turn dropped by its
place and `loss: false` flag whatever its text, and `evol train bc` learning from the files directly."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from evol.trainers.data import TrajectoryFileError, examples, load_trajectories, select
from evol.trajectory import (
    AGENTGYM_FILLER,
    Trajectory,
    agentgym_item_env,
    from_agentgym,
    read_agentgym,
    to_agentgym,
)
from tests.conftest import ROOT

# The instruction turns of AgentGym's clients (agentenv/agentenv/envs/*.py, `conversation_start`).
BABYAI_INSTRUCTION = (
    "You are an exploration master that wants to finish every goal you are given. Every round I will give you an "
    "observation, and you have to respond an action and your thought based on the observation to finish the given "
    "task. You are placed in a room and you need to accomplish the given goal with actions.\n\nYou can use the "
    "following actions: \n\n- turn right \n\n- turn left \n\n- move forward \n\n- go to <obj> <id> \n\n- pick up "
    "<obj> <id> \n\n- go through <door> <id>: <door> must be an open door. \n\n- toggle and go through <door> <id>: "
    "<door> can be a closed door or a locked door. If you want to open a locked door, you need to carry a key that "
    "is of the same color as the locked door. \n\n- toggle: there is a closed or locked door right in front of you "
    "and you can toggle it.\nYour response should use the following format:\nThought:\n<Your Thought>\n\nAction:\n"
    "<Your Action>"
)
WEBSHOP_INSTRUCTION = (
    "You are web shopping.\nI will give you instructions about what to do.\nYou have to follow the instructions.\n"
    "Every round I will give you an observation and a list of available actions, you have to respond an action "
    "based on the state and instruction.\nYou can use search action if search is available.\nYou can click one of "
    "the buttons in clickables.\nAn action should be of the following structure:\nsearch[keywords]\nclick[value]\n"
    "If the action is not valid, perform nothing.\nKeywords in search are up to you, but the value in click must be "
    "a value in the list of available actions.\nRemember that your keywords in search should be carefully designed."
    "\nYour response should use the following format:\n\nThought:\nI think ... \n\nAction: \nclick[something]"
)


def human(value: str) -> dict:
    return {"from": "human", "loss": None, "value": value}


def gpt(value: str, loss: bool = True) -> dict:
    return {"from": "gpt", "loss": loss, "value": value}


def react(thought: str, action: str) -> str:
    return f"Thought:\n{thought}\n\nAction:\n{action}"


def babyai_item(index: int = 12, filler: str = AGENTGYM_FILLER) -> dict:
    return {
        "conversations": [
            human(BABYAI_INSTRUCTION),
            gpt(filler, loss=False),
            human(
                "Your goal: go to the red ball\nIn front of you in this room, you can see several objects: There is "
                "a red ball 1 right in front of you 3 steps away.  The room has walls around you. You are not "
                'carrying anything.\nAvailable actions: ["turn left", "turn right", "move forward", '
                '"go to red ball 1", "check available actions"]'
            ),
            gpt(react("The red ball is right in front of me. I should go to it.", "go to red ball 1")),
            human("In front of you in this room, you can see several objects: ... The task is completed."),
        ],
        "item_id": f"babyai_{index}",
    }


def webshop_item() -> dict:
    """The example item of AgentGym's README (its WebShop filler is "Ok.")."""
    return {
        "conversations": [
            human(WEBSHOP_INSTRUCTION),
            gpt("Ok.", loss=False),
            human(
                "WebShop [SEP] Instruction: [SEP] Find me men's shorts with elastic waist, classic fit, short sleeve "
                "for gym workout with color: navy, and size: x-large, and price lower than 50.00 dollars [SEP] Search"
            ),
            gpt(
                "Thought:\nI think I should use the search bar to look for the shorts that match the given "
                "requirements.\n\nAction:\nsearch[men's shorts elastic waist classic fit short sleeve gym workout "
                "navy x-large price < 50.00]"
            ),
            human(
                "Instruction: [SEP] Find me men's shorts ... [SEP] Back to Search [SEP] Page 1 (Total results: 50)"
            ),
            gpt(
                "Thought:\nI think I have found the right product that matches all the requirements. It's time to "
                "buy it.\n\nAction:\nclick[Buy Now]"
            ),
        ],
        "item_id": "webshop_6",
    }


def short_item(item_id: str, instruction: str, actions: list[str], filler: str = AGENTGYM_FILLER) -> dict:
    conversations = [human(instruction), gpt(filler, loss=False)]
    for n, action in enumerate(actions):
        conversations += [human(f"observation {n}"), gpt(react(f"step {n}", action))]
    return {"conversations": conversations, "item_id": item_id}


def released_items() -> list[dict]:
    """One item per family EvolGym shares with AgentGym, in the shape of AgentTraj's files."""
    return [
        babyai_item(),
        webshop_item(),
        short_item("maze_3", "You are an expert maze solver.", ["move up", "move right"]),
        short_item("lmrlgym_wordle_7", "You are an expert wordle player.", ["s l a t e", "c r a n e"]),
        short_item("textcraft_40", "You are given few useful crafting recipes ...", ["get 1 oak log"]),
        short_item("sciworld_2", "You are an agent for science world. ...", ["look around", "focus on seed"]),
    ]


# ---- the filler ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "filler",
    [
        AGENTGYM_FILLER,
        "Ok.",
        "OK",
        "Sure, let's begin.",
        "",
        "Understood. I'll do my best to solve the maze.",
    ],
)
def test_filler_is_dropped_by_its_place_and_flag_whatever_its_text(filler):
    trajectory = from_agentgym(babyai_item(filler=filler))
    assert [m["role"] for m in trajectory.messages] == ["system", "user", "assistant", "user"]
    assert trajectory.messages[1]["content"].startswith("Your goal: go to the red ball")
    assert trajectory.actions == [
        react("The red ball is right in front of me. I should go to it.", "go to red ball 1")
    ]
    assert trajectory.turns == 1


def test_every_release_shaped_item_loses_its_filler_and_keeps_its_actions():
    for item in released_items():
        trajectory = from_agentgym(item)
        fillers = {turn["value"] for turn in item["conversations"] if turn["loss"] is False}
        assert not fillers & {m["content"] for m in trajectory.messages[1:]}, item["item_id"]
        assert trajectory.actions == [t["value"] for t in item["conversations"] if t["loss"] is True]
        assert trajectory.messages[0] == {"role": "system", "content": item["conversations"][0]["value"]}


@pytest.mark.parametrize(
    "first_reply",
    [
        gpt(react("I go forward.", "move forward"), loss=True),  # no filler: the first action is learned
        {
            "from": "gpt",
            "value": "OK. I'll follow your instructions and try my best to solve the task.",
        },  # no flag
        {"from": "gpt", "loss": None, "value": "Ok."},
    ],
)
def test_a_first_reply_not_flagged_loss_false_is_an_action(first_reply):
    item = {
        "item_id": "babyai_3",
        "conversations": [human(BABYAI_INSTRUCTION), first_reply, human("You moved.")],
    }
    trajectory = from_agentgym(item)
    assert trajectory.actions == [first_reply["value"]]
    assert trajectory.messages[1] == {"role": "assistant", "content": first_reply["value"]}


def test_a_later_loss_false_turn_is_not_a_filler():
    item = babyai_item()
    item["conversations"].append(gpt(react("again", "turn left"), loss=False))
    trajectory = from_agentgym(item)
    assert trajectory.actions[-1] == react("again", "turn left") and trajectory.turns == 2


def test_written_items_carry_the_filler_of_agentgym_s_client_of_the_family():
    messages = [
        {"role": "system", "content": "instruction"},
        {"role": "user", "content": "observation"},
        {"role": "assistant", "content": "move up"},
    ]
    for env_id, filler in [
        ("evol/BabyAI-v0", AGENTGYM_FILLER),
        ("evol/Maze-v0", AGENTGYM_FILLER),
        ("evol/SciWorld-v0", AGENTGYM_FILLER),
        ("evol/WebShop-v0", "Ok."),
    ]:
        trajectory = Trajectory(env=env_id, task={"seed": 4, "options": {"task": 4}}, messages=messages)
        item = to_agentgym(trajectory)
        assert item["conversations"][1] == {"from": "gpt", "loss": False, "value": filler}
        back = from_agentgym(item)
        assert back.env == env_id and back.messages == messages and back.actions == ["move up"]


# ---- item ids and files ---------------------------------------------------------------------
@pytest.mark.parametrize(
    "item_id, env_id, task",
    [
        ("babyai_12", "evol/BabyAI-v0", 12),
        ("webshop_5238", "evol/WebShop-v0", 5238),
        ("maze_0", "evol/Maze-v0", 0),
        ("lmrlgym_maze_3", "evol/Maze-v0", 3),
        ("lmrlgym_wordle_7", "evol/Wordle-v0", 7),
        ("textcraft_40", "evol/TextCraft-v0", 40),
        ("sciworld_2", "evol/SciWorld-v0", 2),
        ("alfworld_put_7", "agentgym/alfworld_put", 7),
    ],
)
def test_item_ids_name_the_env_and_the_task(item_id, env_id, task):
    assert agentgym_item_env(item_id) == env_id
    trajectory = from_agentgym(short_item(item_id, "instruction", ["act"]))
    assert trajectory.env == env_id and trajectory.task["options"]["task"] == task


@pytest.mark.parametrize(
    "item, message",
    [
        ({"item_id": "babyai_1"}, "'conversations' list"),
        ({"item_id": "babyai_1", "conversations": "text"}, "'conversations' list"),
        ({"conversations": [human("x")]}, "'item_id'"),
        ({"item_id": "babyai_one", "conversations": [human("x")]}, "ends with its task index"),
        ({"item_id": "babyai_1", "conversations": [gpt("x")]}, "starts with the human instruction"),
        ({"item_id": "babyai_1", "conversations": [{"from": "system", "value": "x"}]}, "from: human|gpt"),
        ({"item_id": "babyai_1", "conversations": [{"from": "human", "value": None}]}, "value: str"),
        ({"item_id": "babyai_1", "conversations": [human("x"), ["gpt", "y"]]}, "from: human|gpt"),
    ],
)
def test_malformed_items_are_refused_saying_why(item, message):
    with pytest.raises(ValueError, match=message):
        from_agentgym(item)


def test_json_list_and_jsonl_files_load_as_successful_episodes(tmp_path):
    items = released_items()
    listed = tmp_path / "agenttraj.json"
    listed.write_text(json.dumps(items, indent=4, ensure_ascii=False))
    lines = tmp_path / "agenttraj.jsonl"
    lines.write_text("".join(json.dumps(item) + "\n" for item in items))
    for path in (listed, lines):
        loaded = load_trajectories([path])
        assert len(loaded) == len(items) and all(t.success and t.agent == "agentgym" for t in loaded)
        kept = select(loaded, "success")
        assert len(kept) == len(items)
        rows = examples(kept)
        learned = [m["content"] for row in rows for m in row["messages"] if m["role"] == "assistant"]
        assert "Ok." not in learned and AGENTGYM_FILLER not in learned
        assert (
            react("The red ball is right in front of me. I should go to it.", "go to red ball 1") in learned
        )


@pytest.mark.parametrize(
    "content, where",
    [
        ("[" + json.dumps(babyai_item()) + ', {"item_id": "babyai_2"}]', "item 1"),
        (json.dumps(babyai_item()) + "\n" + '{"conversations": [], "item_id": "babyai_x"}\n', "line 2"),
        ("[" + json.dumps(babyai_item()) + ",", "not a JSON list"),
        (json.dumps(babyai_item()) + "\n{not json\n", "not JSON lines"),
    ],
)
def test_a_bad_file_is_refused_naming_the_file_and_the_place(tmp_path, content, where):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(TrajectoryFileError, match=f"bad.json.*{where}"):
        load_trajectories([path])


def test_read_agentgym_takes_an_env_and_split_for_every_item(tmp_path):
    path = tmp_path / "maze_test.json"
    path.write_text(json.dumps([short_item("maze_4", "You are an expert maze solver.", ["move up"])]))
    (trajectory,) = read_agentgym(path, env_id="evol/Maze-v0", split="test")
    assert trajectory.task == {"seed": 4, "options": {"task": 4, "split": "test"}}


# ---- evol train bc --------------------------------------------------------------------------
def test_train_bc_learns_from_agenttraj_files_directly(tmp_path):
    import yaml

    from agents.tiny import build_tiny_model

    items = released_items()
    listed = tmp_path / "agenttraj_l.json"
    listed.write_text(json.dumps(items[:3], indent=4))
    lines = tmp_path / "agenttraj_l.jsonl"
    lines.write_text("".join(json.dumps(item) + "\n" for item in items[3:]))
    corpus = [turn["value"] for item in items for turn in item["conversations"]]
    base = build_tiny_model(tmp_path / "base", corpus)
    config = tmp_path / "bc.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "model": str(base),
                "data": [str(listed), str(lines)],
                "output_dir": str(tmp_path / "bc"),
                "train": {"epochs": 1.0, "batch_size": 8, "progress": False},
            }
        )
    )
    answer = subprocess.run(
        [sys.executable, "-m", "evol.cli", "train", "bc", "--config", str(config)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    assert answer.returncode == 0, answer.stderr[-3000:]
    summary = json.loads((tmp_path / "bc" / "train_summary.json").read_text())
    assert summary["trajectories"] == summary["kept"] == summary["examples"] == len(items)
    assert (tmp_path / "bc" / "model").is_dir()


def test_train_bc_refuses_a_bad_agentgym_file_naming_it(tmp_path):
    from agents.tiny import build_tiny_model

    bad = tmp_path / "broken.json"
    bad.write_text(json.dumps([babyai_item(), {"item_id": "babyai_2", "conversations": [gpt("x")]}]))
    base = build_tiny_model(tmp_path / "base", ["x"])
    answer = subprocess.run(
        [sys.executable, "-m", "evol.cli", "train", "bc", "--model", str(base), "--data", str(bad),
         "--output_dir", str(tmp_path / "bc")],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert answer.returncode == 2, answer.stderr[-2000:]
    assert "bad data" in answer.stderr and "broken.json" in answer.stderr and "item 1" in answer.stderr
