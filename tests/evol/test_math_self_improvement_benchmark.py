"""benchmarks/math_self_improvement.py at its smoke size: the script runs end to end (the shared
start, one copy of it per loop, three loops, table, figure, JSON), every loop starts from the
same checkpoint, and bad settings are refused before any work. A pipeline check, not a result."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow  # a check of the benchmark script: `python -m pytest -m slow`

SCRIPT = ROOT / "benchmarks" / "math_self_improvement.py"
LOOPS = ("vanilla", "critique", "gsi")


def script_module():
    spec = importlib.util.spec_from_file_location("math_self_improvement", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_script(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=240
    )


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_smoke_run_writes_the_table_figure_and_json_from_one_shared_start(tmp_path):
    out = tmp_path / "out"
    done = run_script("--smoke", "--quiet", "--out", str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    table = done.stdout[done.stdout.index("| loop | stage |") :]
    assert "| start | start |" in table
    for loop in LOOPS:
        assert f"| {loop} | iter_1 |" in table
    assert (out / "math_self_improvement.md").read_text().count("| iter_1 |") == 3
    report = json.loads((out / "math_self_improvement.json").read_text())
    assert [(row["loop"], row["stage"]) for row in report["rows"]] == [
        ("start", "start"), *((loop, "iter_1") for loop in LOOPS)
    ]  # fmt: skip
    assert report["settings"]["smoke"] is True and report["load_average"]["max"] >= 0
    assert (out / "math_self_improvement.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # the same start: every loop's BC checkpoint is the start's, and each iteration learned from it
    start = out / "start" / "bc" / "model" / "model.safetensors"
    for loop in LOOPS:
        assert digest(out / loop / "bc" / "model" / "model.safetensors") == digest(start)
        config = (out / loop / "config.yaml").read_text()
        assert str((out / "start" / "bc" / "model").resolve()) in config
    # the budget of the smoke sizes: 3 questions; vanilla 2 samples, critique and GSI 1 (+1 round)
    rows = {row["loop"]: row for row in report["rows"]}
    assert rows["vanilla"]["attempts"] == 6 and rows["vanilla"]["episodes"] == 6
    assert rows["critique"]["episodes"] == 3 and 3 <= rows["critique"]["attempts"] <= 6
    assert 3 <= rows["gsi"]["attempts"] <= 6 and (out / "gsi" / "iter_1" / "round_0.jsonl").exists()
    assert all(0 <= rows[loop]["coverage"] <= 1 for loop in LOOPS)

    with pytest.raises(SystemExit, match="seed"):  # other settings in the same --out: refused
        script_module().main(["--smoke", "--quiet", "--out", str(out), "--seed", "1"])


def test_bad_settings_are_refused_before_any_work(tmp_path, capsys):
    module = script_module()
    for args, field in ((["--sft-mix", "1,2"], "--sft-mix"), (["--samples", "0"], "samples_per_task"),
                        (["--threshold", "0"], "resample_threshold")):  # fmt: skip
        out = tmp_path / "out"
        with pytest.raises(SystemExit) as refused:
            module.main(["--smoke", "--out", str(out), *args])
        assert refused.value.code == 2 and field in capsys.readouterr().err
        assert not out.exists()
