"""The index behind `evol view`: offsets and summaries read once, episodes read back by seeking,
bad lines counted and skipped, growing files followed, and paths kept inside what is viewed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evol.viewer import JsonlRows, Query, TrajectoryIndex, ViewedPath
from evol.viewer.index import task_key
from server.errors import ApiError


def episode(i: int, **fields) -> dict:
    return {
        "env": "evol/Maze-v0" if i % 3 == 0 else "evol/BabyAI-v0",
        "task": {"seed": i, "options": {"task": i}},
        "messages": [
            {"role": "user", "content": f"observation {i} ✓"},
            {"role": "assistant", "content": "go"},
        ],
        "rewards": [float(i % 5)],
        "reward": float(i % 5),
        "success": i % 2 == 0,
        "turns": 10 - i % 7,
        "agent": "expert" if i < 10 else "hf:model",
        "error": "step timed out after 30 s" if i == 7 else None,
        **fields,
    }


def write(path: Path, rows: list[dict], mode: str = "w") -> None:
    with open(path, mode, encoding="utf-8") as handle:
        handle.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def test_offsets_read_back_each_episode_as_written(tmp_path):
    path = tmp_path / "t.jsonl"
    rows = [episode(i) for i in range(20)]
    write(path, rows)
    index = TrajectoryIndex(path)
    assert index.refresh() == 20
    raw = path.read_bytes().splitlines(keepends=True)
    assert list(index.offsets) == [sum(len(line) for line in raw[:i]) for i in range(20)]
    assert [index.episode(i) for i in range(20)] == rows
    assert index.summary(7) == {
        "id": 7,
        "env": "evol/BabyAI-v0",
        "task": task_key({"seed": 7, "options": {"task": 7}}),
        "success": False,
        "reward": 2.0,
        "turns": 10,
        "agent": "expert",
        "error": "step timed out after 30 s",
        "fault": None,
    }
    with pytest.raises(IndexError):
        index.episode(20)


def test_bad_lines_are_counted_and_skipped(tmp_path):
    path = tmp_path / "t.jsonl"
    write(path, [episode(0)])
    with open(path, "ab") as handle:
        handle.write(b"not json at all\n[1, 2]\n\xff\xfe broken bytes\n\n")
        handle.write((json.dumps(episode(1, reward="high", turns=None, success="yes")) + "\n").encode())
        handle.write(b'{"env": "evol/Maze-v0", "reward": NaN, "turns": 1e999}\n')
    index = TrajectoryIndex(path)
    index.refresh()
    assert len(index) == 3 and index.bad_lines == 3
    assert index.summary(1)["reward"] == 0.0 and index.summary(1)["success"] is False
    assert index.summary(2)["turns"] == 0 and index.episode(2)["reward"] is None


def test_a_torn_last_line_waits_for_its_newline(tmp_path):
    path = tmp_path / "t.jsonl"
    write(path, [episode(0)])
    line = json.dumps(episode(1))
    with open(path, "a") as handle:
        handle.write(line[:25])
    index = TrajectoryIndex(path)
    index.refresh()
    assert len(index) == 1 and index.bad_lines == 0 and index.torn_bytes == 25
    with open(path, "a") as handle:
        handle.write(line[25:] + "\n")
    assert index.refresh() == 1
    assert index.episode(1) == episode(1) and index.torn_bytes == 0


def test_a_growing_file_is_read_from_the_last_offset(tmp_path, monkeypatch):
    path = tmp_path / "t.jsonl"
    write(path, [episode(i) for i in range(5)])
    index = TrajectoryIndex(path)
    index.refresh()
    read_from: list[int] = []
    import evol.viewer.index as module

    real = module.whole_lines
    monkeypatch.setattr(module, "whole_lines", lambda p, start: read_from.append(start) or real(p, start))
    size = path.stat().st_size
    write(path, [episode(i) for i in range(5, 8)], mode="a")
    assert index.refresh() == 3 and read_from == [size]
    assert index.refresh() == 0 and read_from == [size]  # nothing new: the file is not read
    assert [index.episode(i)["task"]["seed"] for i in range(8)] == list(range(8))


def test_a_replaced_file_is_indexed_again(tmp_path):
    path = tmp_path / "t.jsonl"
    write(path, [episode(i) for i in range(6)])
    index = TrajectoryIndex(path)
    index.refresh()
    write(path, [episode(40)])
    index.refresh()
    assert len(index) == 1 and index.episode(0)["task"]["seed"] == 40


def test_query_filters_sorts_and_pages(tmp_path):
    path = tmp_path / "t.jsonl"
    write(path, [episode(i) for i in range(30)])
    index = TrajectoryIndex(path)
    index.refresh()
    matched, rows = index.query(Query(success=True, env="evol/BabyAI-v0", limit=100))
    assert matched == 10 and all(r["success"] and r["env"] == "evol/BabyAI-v0" for r in rows)
    _, rows = index.query(Query(sort="reward", descending=True, limit=6))
    assert [r["reward"] for r in rows] == [4.0] * 6
    _, rows = index.query(Query(sort="task", limit=30))
    assert [json.loads(r["task"])["seed"] for r in rows[:3]] == [1, 2, 4]  # BabyAI first, then seed 2 < 10
    matched, rows = index.query(Query(error="TIMED OUT"))
    assert matched == 1 and rows[0]["id"] == 7
    matched, rows = index.query(Query(agent="hf:model", offset=15, limit=10))
    assert matched == 20 and [r["id"] for r in rows] == [25, 26, 27, 28, 29]
    with pytest.raises(ValueError):
        index.query(Query(sort="name"))


def test_metrics_rows_follow_the_file(tmp_path):
    path = tmp_path / "metrics.jsonl"
    rows = JsonlRows(path)
    rows.refresh()
    assert rows.rows == []
    write(path, [{"phase": "expert", "seconds": 1.5}])
    rows.refresh()
    with open(path, "a") as handle:
        handle.write('{"stage": "bc", "env": "evol/Maze-v0", "success_rate": 0.5}\n{"stage"')
    rows.refresh()
    assert rows.rows == [
        {"phase": "expert", "seconds": 1.5},
        {"stage": "bc", "env": "evol/Maze-v0", "success_rate": 0.5},
    ]


def test_file_parameters_resolve_only_inside_the_viewed_path(tmp_path):
    run = tmp_path / "run"
    (run / "eval" / "bc").mkdir(parents=True)
    write(run / "eval" / "bc" / "trajectories.jsonl", [episode(0)])
    write(run / "expert.jsonl", [episode(1)])
    write(tmp_path / "outside.jsonl", [episode(2)])
    (run / "eval" / "link.jsonl").symlink_to(tmp_path / "outside.jsonl")
    viewed = ViewedPath(run)
    assert viewed.file_names() == ["expert.jsonl", "eval/bc/trajectories.jsonl"]  # the link out is not listed
    assert viewed.index("eval/bc/trajectories.jsonl").episode(0) == episode(0)
    for name in (
        "../outside.jsonl",
        str(tmp_path / "outside.jsonl"),
        "eval/link.jsonl",
        "config.yaml",
        "",
        "a\0b",
    ):
        with pytest.raises(ApiError) as caught:
            viewed.resolve(name)
        assert caught.value.status == 404
    single = ViewedPath(run / "expert.jsonl")
    assert single.resolve("") == single.resolve("expert.jsonl") == (run / "expert.jsonl").resolve()
    with pytest.raises(ApiError):
        single.resolve("eval/bc/trajectories.jsonl")


def test_view_refuses_a_missing_path_or_a_file_that_is_not_jsonl(tmp_path, capsys):
    from evol.cli import main

    assert main(["view", str(tmp_path / "missing.jsonl")]) == 2
    (tmp_path / "notes.txt").write_text("hello\n")
    assert main(["view", str(tmp_path / "notes.txt")]) == 2
    assert "want a trajectory .jsonl file or a run directory" in capsys.readouterr().err


@pytest.mark.slow  # a check of the benchmark script: `python -m pytest -m slow`
def test_benchmark_script_prints_its_figures_at_a_small_size(tmp_path):
    import subprocess
    import sys

    out = tmp_path / "figures.json"
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "viewer_index.py"
    done = subprocess.run(
        [sys.executable, str(script), "--episodes", "2000", "--requests", "5", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(out.read_text())
    assert figures["episodes"] == 2000 and figures["index_s"] >= 0
    assert {"median_ms", "p95_ms"} <= set(figures["episode"]) and "index_s" in done.stdout
