"""`evol view` in a real browser: a real `evol view` server (subprocess, loopback) over a
trajectory file and over a run directory the test writes, driven by headless Chromium."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import requests
from playwright.sync_api import expect

from envs.wire import encode_image
from server.launch import LaunchedServer

SCRIPT_TEXT = "<script>window.__injected = 1</script><img src=x onerror=window.__injected=2>"
TOKEN = "s3cret-viewer-token"


class ViewerProcess(LaunchedServer):
    """`evol view PATH --port N [flags]`: LaunchedServer passes PATH where a server takes env ids."""

    command = (sys.executable, "-m", "evol.cli", "view")


def episode(
    i: int, env: str = "evol/BabyAI-v0", success: bool | None = None, observation: object = None
) -> dict:
    won = i % 2 == 0 if success is None else success
    return {
        "env": env,
        "task": {"seed": i, "options": {"task": i}},
        "messages": [
            {"role": "system", "content": f"Reach the goal of task {i}."},
            {"role": "user", "content": observation if observation is not None else f"You see a wall ({i})."},
            {"role": "assistant", "content": "turn left"},
            {"role": "user", "content": "You turned."},
            {"role": "assistant", "content": "go forward"},
        ],
        "actions": ["turn left", "go forward"],
        "rewards": [0.0, 1.0 if won else 0.0],
        "reward": (1.0 if won else 0.0) + i / 100,
        "success": won,
        "turns": 2 + i % 4,
        "agent": "expert",
        "error": None if i != 5 else "agent failed: connection reset",
    }


def write_jsonl(path: Path, rows: list[dict], mode: str = "w") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, mode, encoding="utf-8") as handle:
        handle.writelines(json.dumps(row) + "\n" for row in rows)


@pytest.fixture(scope="module")
def trajectory_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("view") / "rollout.jsonl"
    image = np.zeros((24, 32, 3), dtype=np.uint8)
    image[:, :16] = (220, 40, 40)
    rows = [episode(i) for i in range(12)]
    rows[3] = episode(3, observation=SCRIPT_TEXT)
    parts = [
        {"type": "text", "text": "A chart:"},
        {"type": "image_url", "image_url": {"url": encode_image(image)}},
    ]
    rows[4] = episode(4, env="evol/ChartQA-v0", observation=parts)
    write_jsonl(path, rows)
    with open(path, "a") as handle:
        handle.write("this line is not JSON\n")
    return path


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """The files a loop run writes, small: two envs, stages untrained and bc done, iter_1 running."""
    run = tmp_path_factory.mktemp("view") / "run"
    run.mkdir()
    (run / "config.yaml").write_text("envs: [evol/BabyAI-v0, evol/Maze-v0]\niterations: 2\n")
    (run / "state.json").write_text(json.dumps({"done": ["expert", "eval/untrained", "bc", "eval/bc"]}))
    metrics = [
        {"phase": "expert", "seconds": 3.5},
        {"stage": "bc", "examples": 40, "train_s": 9.5, "losses": [2.0, 0.5]},
    ]
    for stage, iteration, rates in (("untrained", -1, (0.1, 0.0)), ("bc", 0, (0.5, 0.25))):
        for env, rate in zip(("evol/BabyAI-v0", "evol/Maze-v0"), rates):
            metrics.append(
                {"stage": stage, "iteration": iteration, "env": env, "episodes": 8, "success_rate": rate}
            )
        metrics.append({"phase": f"eval/{stage}", "seconds": 2.0})
    write_jsonl(run / "metrics.jsonl", metrics)
    write_jsonl(run / "expert.jsonl", [episode(i, success=True) for i in range(6)])
    write_jsonl(run / "eval" / "bc" / "trajectories.jsonl", [episode(i, success=i < 2) for i in range(4)])
    write_jsonl(run / "eval" / "iter_1" / "trajectories.jsonl", [episode(i, success=i < 3) for i in range(4)])
    write_jsonl(run / "iter_1" / "explore.jsonl", [episode(i) for i in range(8)])
    (run / "bc" / "model").mkdir(parents=True)
    write_jsonl(run / "bc" / "model" / "ignored.jsonl", [episode(0)])  # models hold no trajectories
    (tmp_path_factory.getbasetemp() / "secret.jsonl").write_text(json.dumps(episode(99)) + "\n")
    return run


@pytest.fixture(scope="module")
def file_server(trajectory_file):
    with ViewerProcess([str(trajectory_file)]) as server:
        yield server


@pytest.fixture(scope="module")
def run_server(run_dir):
    with ViewerProcess([str(run_dir)]) as server:
        yield server


def table_ids(page) -> list[int]:
    return [
        int(i) for i in page.locator("#episodes tbody tr").evaluate_all("rows => rows.map(r => r.dataset.id)")
    ]


def test_episode_table_filters_by_success_and_sorts_by_reward(page, file_server):
    page.goto(file_server.url + "/")
    expect(page.locator("#episodes tbody tr")).to_have_count(12)
    expect(page.locator("#episode-count")).to_contain_text("1 bad lines skipped")
    page.select_option("#filter-success", "true")
    expect(page.locator("#episode-count")).to_have_text("6 shown of 12 episodes · 1 bad lines skipped")
    assert table_ids(page) == [0, 2, 4, 6, 8, 10]
    page.locator("th", has_text="reward").click()  # ascending, then descending
    page.locator("th", has_text="reward").click()
    expect(page.locator("#episodes tbody tr").first).to_have_attribute("data-id", "10")
    assert table_ids(page) == [10, 8, 6, 4, 2, 0]
    page.select_option("#filter-success", "")
    page.fill("#filter-error", "connection")
    expect(page.locator("#episodes tbody tr")).to_have_count(1)
    expect(page.locator("#episodes tbody td.error")).to_have_text("agent failed: connection reset")
    assert page.console_errors == []


def test_episode_opens_as_a_conversation_with_step_rewards(page, file_server):
    page.goto(file_server.url + "/")
    page.locator("#episodes tbody tr[data-id='2'] td").nth(2).click()
    expect(page.locator(".conversation .msg")).to_have_count(5)
    expect(page.locator(".msg.system")).to_contain_text("Reach the goal of task 2.")
    expect(page.locator(".msg.assistant").nth(1)).to_contain_text("go forward")
    expect(page.locator(".msg.assistant .reward").nth(1)).to_have_text("step 2 · reward 1")
    expect(page.locator("dl.summary")).to_contain_text("evol/BabyAI-v0")
    page.get_by_text("next episode →").click()
    expect(page.locator(".msg.system")).to_contain_text("Reach the goal of task 3.")
    assert page.console_errors == []


def test_observation_with_script_is_shown_as_text(page, file_server):
    page.goto(file_server.url + "/#/episode?file=&id=3")
    expect(page.locator(".msg.user").first).to_contain_text(SCRIPT_TEXT)
    assert page.locator("main script, main img").count() == 0
    assert page.evaluate("window.__injected") is None
    assert page.console_errors == []


def test_observation_image_is_rendered_inline(page, file_server):
    page.goto(file_server.url + "/#/episode?file=rollout.jsonl&id=4")
    image = page.locator(".msg.user img")
    expect(image).to_have_count(1)
    expect(page.locator(".msg.user").first).to_contain_text("A chart:")
    assert image.evaluate("img => img.complete && img.naturalWidth") == 32
    assert page.console_errors == []


def test_run_page_draws_the_curve_and_follows_the_run_without_reload(page, run_server, run_dir):
    page.goto(run_server.url + "/")
    points = page.locator("#learning-curve circle.point")
    expect(points).to_have_count(4)
    expect(page.locator("#learning-curve .legend")).to_contain_text("evol/Maze-v0")
    expect(page.locator("#phases tbody tr")).to_have_count(4)  # three phases and the total
    expect(page.locator("#training tbody td")).to_have_text(["bc", "40", "", "9.5", "0.5"])
    labels = page.locator("#files tbody tr td:first-child").all_inner_texts()
    assert labels == ["expert", "eval/bc", "iter_1/explore", "eval/iter_1"]
    page.evaluate("window.__sameDocument = true")
    write_jsonl(run_dir / "iter_1" / "explore.jsonl", [episode(i) for i in range(8, 10)], mode="a")
    write_jsonl(
        run_dir / "metrics.jsonl",
        [
            {"phase": "iter_1/explore", "seconds": 7.25},
            {"stage": "iter_1", "iteration": 1, "env": "evol/BabyAI-v0", "episodes": 8, "success_rate": 0.75},
        ],
        mode="a",
    )
    expect(points).to_have_count(5, timeout=10_000)
    expect(page.locator("#learning-curve text.stage")).to_have_text(["untrained", "bc", "iter_1"])
    expect(page.locator("#phases")).to_contain_text("iter_1/explore")
    expect(page.locator("#files tr[data-file='iter_1/explore.jsonl'] td").nth(1)).to_have_text("10")
    write_jsonl(run_dir / "iter_2" / "explore.jsonl", [episode(0)])  # the next phase starts writing
    expect(page.locator("#files tr[data-file='iter_2/explore.jsonl'] td").nth(1)).to_have_text("1")
    # an env first seen in the growing file shown in the table joins its filter menu
    write_jsonl(run_dir / "expert.jsonl", [episode(50, env="evol/Wordle-v0")], mode="a")
    expect(page.locator("#filter-env option[value='evol/Wordle-v0']")).to_have_count(1, timeout=10_000)
    assert page.evaluate("window.__sameDocument") is True  # updated in place: the page was not reloaded
    assert page.console_errors == []


def test_two_stages_side_by_side_on_one_task(page, run_server):
    query = "a=eval/bc/trajectories.jsonl&b=eval/iter_1/trajectories.jsonl&only=differ"
    page.goto(run_server.url + "/#/compare?" + query)
    expect(page.locator("#shared-tasks tbody tr")).to_have_count(1)  # only task 2: lost in bc, won in iter_1
    page.locator("#shared-tasks tbody a").click()
    sides = page.locator("#side-by-side .side")
    expect(sides).to_have_count(2)
    expect(sides.nth(0)).to_contain_text("eval/bc/trajectories.jsonl")
    expect(sides.nth(0).locator("dd.fail")).to_have_text("no")
    expect(sides.nth(1).locator("dd.ok")).to_have_text("yes")
    expect(sides.nth(1).locator(".msg.system")).to_contain_text("Reach the goal of task 2.")
    assert page.console_errors == []


def test_file_parameter_outside_the_viewed_path_is_404(run_server, file_server):
    for name in (
        "../secret.jsonl",
        "..%2Fsecret.jsonl",
        "/etc/passwd",
        "bc/model/../../../secret.jsonl",
        "config.yaml",
    ):
        answer = requests.get(f"{run_server.url}/api/episodes?file={name}", timeout=5)
        assert answer.status_code == 404, name
        assert answer.json()["error"]["type"] == "not_found"
    answer = requests.get(
        f"{run_server.url}/api/compare?a=expert.jsonl&b=../secret.jsonl&env=x&task=y", timeout=5
    )
    assert answer.status_code == 404
    assert (
        requests.get(f"{file_server.url}/api/episode?file=../run/expert.jsonl&id=0", timeout=5).status_code
        == 404
    )
    assert requests.get(f"{file_server.url}/static/../app.py", timeout=5).status_code == 404


def test_bad_query_parameters_are_400_and_missing_episodes_404(file_server):
    for query in ("sort=name", "success=maybe", "limit=100000", "offset=-1", "order=up", "colour=red"):
        answer = requests.get(f"{file_server.url}/api/episodes?{query}", timeout=5)
        assert answer.status_code == 400, query
        assert answer.json()["error"]["type"] == "bad_request"
    assert requests.get(f"{file_server.url}/api/episode?id=99", timeout=5).status_code == 404
    assert requests.get(f"{file_server.url}/api/run", timeout=5).status_code == 404  # a file is no run


def test_api_wants_the_token_and_the_page_takes_it_from_its_address(page, trajectory_file):
    with ViewerProcess([str(trajectory_file)], "--token", TOKEN) as server:
        assert requests.get(server.url + "/api/source", timeout=5).status_code == 401
        headers = {"Authorization": f"Bearer {TOKEN}"}
        assert requests.get(server.url + "/api/source", headers=headers, timeout=5).status_code == 200
        assert requests.get(server.url + "/", timeout=5).status_code == 200  # the page holds no data
        wrong_host = requests.get(
            server.url + "/api/source", headers={**headers, "Host": "evil.example"}, timeout=5
        )
        assert wrong_host.status_code == 403
        page.goto(f"{server.url}/#token={TOKEN}")
        expect(page.locator("#episodes tbody tr")).to_have_count(12)
        assert TOKEN not in page.url
    assert page.console_errors == []
