"""benchmarks/learn_objectives.py at its smoke size: the script runs end to end (shared loop,
one branch per objective, table, plot, figures), refuses bad settings before any work, and
refuses to mix runs made with other settings. A check of the script, not a result."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow  # a check of the benchmark script: `python -m pytest -m slow`

SCRIPT = ROOT / "benchmarks" / "learn_objectives.py"
STAGES = ["untrained", "bc", "iter_1 sft", "iter_1 dpo", "iter_1 inverse_q"]


def run_script(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=240
    )


def test_fast_run_prints_the_table_and_writes_the_plot_and_figures(tmp_path):
    out = tmp_path / "out"
    done = run_script("--fast", "--quiet", "--out", str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    table = done.stdout[done.stdout.index("| stage |") :]
    for stage in STAGES:
        assert f"| {stage} |" in table
    report = json.loads((out / "learn_objectives.json").read_text())
    assert [row["stage"] for row in report["rows"]] == STAGES
    assert report["learn_from"] == "last" and report["settings"]["fast"] is True
    assert (out / "learn_objectives.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    explored = (out / "shared" / "iter_1" / "explore.jsonl").read_bytes()
    for learn in ("sft", "dpo", "inverse_q"):
        assert (out / learn / "iter_1" / "explore.jsonl").read_bytes() == explored  # the same data
    shared_state = json.loads((out / "shared" / "state.json").read_text())["done"]
    assert shared_state[-1] == "iter_1/explore" and "iter_1/learn" not in shared_state

    other = run_script("--fast", "--quiet", "--out", str(out), "--seed", "1")
    assert other.returncode != 0 and "seed" in other.stderr


def test_settings_a_pairwise_objective_cannot_use_are_refused_before_any_work(tmp_path):
    out = tmp_path / "out"
    done = run_script("--fast", "--samples", "1", "--out", str(out))
    assert done.returncode == 2 and "samples_per_task" in done.stderr
    assert not out.exists()
