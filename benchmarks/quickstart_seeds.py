"""The quickstart's learning efficacy over seeds: its config (or a variant) run for each seed, one table.

    python benchmarks/quickstart_seeds.py                                 # the quickstart, seeds 0 1 2
    python benchmarks/quickstart_seeds.py --name k4 --set samples_per_task=4 --set explore_tasks=300
    python benchmarks/quickstart_seeds.py --name screen --set eval_tasks=100 --seeds 0 1
    python benchmarks/quickstart_seeds.py --name dpo --set learn=dpo --set samples_per_task=4 \\
        --bc-from runs/quickstart_seeds/default            # reuse those runs' BC stage (same BC settings)

Each seed (the config's `seed`: the preset model's initialisation and the policy's sampling; the
expert data does not depend on it) runs in its own directory, `OUT/NAME/seed_S`, and resumes there
if rerun. The table gives, per seed, held-out success untrained / after BC / after each AgentEvol
iteration on every env, the last iteration's margin over BC (points), the mean and spread
(sample standard deviation) over seeds, the wall time of each run and the machine's load while it
ran (1-minute load average, sampled every 5 s: the quickstart's 15-minute budget is for a quiet
machine, 2 cores), the tokens trained and the episodes run. `--bc-from DIR` copies the stages up to
BC's evaluation from `DIR/seed_S` (refused when a setting they depend on differs, naming it): the
variant's own time is then its iterations', and the reused phases' seconds are counted in `phases_s`.
`--fast` starts from `evol quickstart --fast`'s config. Results: `benchmarks/results/quickstart_seeds[_NAME].json`
and `.png`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import threading
import time
from pathlib import Path
from typing import Any

import yaml

from evol.quickstart import BABYAI, TEXTWORLD, quickstart_config
from evol.trainers.agentevol import AgentEvolConfig, AgentEvolTrainer
from evol.trainers.config import ConfigError, from_mapping, read_yaml, to_mapping

# the settings the stages up to eval/bc depend on: --bc-from refuses a source run that differs in one
BC_FIELDS = ("envs", "base_model", "expert_data", "env_kwargs",
             "counterparts", "history_turns", "instruction_in_context", "max_new_tokens", "eval_untrained",
             "seed", "bc_train", "backend", "prefix_cache")  # fmt: skip
BC_PHASES = ("expert", "base_model", "eval/untrained", "bc", "eval/bc")
BC_STAGES = ("untrained", "bc")


def variant(fast: bool, sets: list[str], run_dir: str, seed: int) -> AgentEvolConfig:
    """The quickstart's config with `--set FIELD=VALUE` overrides (dotted for nested settings)."""
    data = to_mapping(quickstart_config(run_dir, fast=fast))
    for item in sets:
        name, equals, text = item.partition("=")
        if not equals:
            raise ConfigError(f"--set {item}: write FIELD=VALUE")
        *parents, last = name.split(".")
        node = data
        for parent in parents:
            node = node.setdefault(parent, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {name}: {parent} is not a mapping of settings")
        node[last] = yaml.safe_load(text)
    data.update(run_dir=run_dir, seed=seed, progress=False)
    for section in ("bc_train", "train", "dpo", "inverse_q"):
        if isinstance(data.get(section), dict) and "progress" in data[section]:
            data[section]["progress"] = False
    return from_mapping(AgentEvolConfig, data, where="quickstart variant")


def _settings(config: AgentEvolConfig) -> dict[str, Any]:
    """A config as a mapping, defaults filled in, without the progress switches."""
    data = to_mapping(config)
    for value in data.values():
        if isinstance(value, dict):
            value.pop("progress", None)
    return data


def check_source(source: Path, config: AgentEvolConfig) -> None:
    """Refuse a `--bc-from` run whose settings up to eval/bc differ from `config`'s, naming the field."""
    if not (source / "config.yaml").exists():
        raise ConfigError(f"--bc-from: {source} holds no run")
    theirs, ours = (
        _settings(from_mapping(AgentEvolConfig, read_yaml(source / "config.yaml"))),
        _settings(config),
    )
    for env_id in config.envs:  # the task counts of BC and of evaluation, per env
        for kind in ("base_tasks", "eval_tasks"):
            there = theirs.get("env_tasks", {}).get(env_id, {}).get(kind, theirs.get(kind))
            if there != config.tasks(env_id, kind):
                raise ConfigError(
                    f"--bc-from {source}: {kind} of {env_id} differs ({there} there, {config.tasks(env_id, kind)} here)"
                )
    for name in BC_FIELDS:
        if theirs.get(name) != ours.get(name):
            raise ConfigError(
                f"--bc-from {source}: {name} differs ({theirs.get(name)!r} there, {ours.get(name)!r} here)"
            )


def reuse_bc(source: Path, config: AgentEvolConfig) -> list[float]:
    """Copy the stages up to eval/bc of the run in `source` into `config.run_dir`; their seconds."""
    check_source(source, config)
    done = json.loads((source / "state.json").read_text())["done"] if (source / "state.json").exists() else []
    missing = [
        phase
        for phase in BC_PHASES
        if phase not in done and (phase != "eval/untrained" or config.eval_untrained)
    ]
    if missing:
        raise ConfigError(f"--bc-from {source}: phases {missing} not finished there")
    target = Path(config.run_dir)
    target.mkdir(parents=True, exist_ok=True)
    for part in ("expert.jsonl", "base_model", "bc", "eval/untrained", "eval/bc"):
        if (source / part).is_dir():
            shutil.copytree(source / part, target / part, dirs_exist_ok=True)
        elif (source / part).exists():
            shutil.copy2(source / part, target / part)
    rows = [json.loads(line) for line in (source / "metrics.jsonl").read_text().splitlines()]
    kept = [
        r for r in rows if r.get("phase") in BC_PHASES or (r.get("stage") in BC_STAGES and "phase" not in r)
    ]
    (target / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in kept))
    (target / "state.json").write_text(json.dumps({"done": [p for p in done if p in BC_PHASES]}, indent=2))
    return [r["seconds"] for r in kept if "phase" in r]


class LoadSampler:
    """The 1-minute load average, sampled every `every` seconds while a run lasts."""

    def __init__(self, every: float = 5.0):
        self.samples: list[float] = [os.getloadavg()[0]]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, args=(every,), daemon=True)

    def _loop(self, every: float) -> None:
        while not self._stop.wait(every):
            self.samples.append(os.getloadavg()[0])

    def __enter__(self) -> LoadSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append(os.getloadavg()[0])


def _lines(path: Path) -> int:
    return sum(1 for _ in path.open()) if path.exists() else 0


def run_seed(config: AgentEvolConfig, source: Path | None) -> dict[str, Any]:
    run_dir = Path(config.run_dir)
    reused = reuse_bc(source, config) if source is not None and not (run_dir / "state.json").exists() else []
    started = time.perf_counter()
    with LoadSampler() as load:
        table = AgentEvolTrainer(config, log=lambda line: print(f"  {line}", flush=True)).train()
    wall = time.perf_counter() - started
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    phases = {r["phase"]: r["seconds"] for r in rows if "phase" in r}
    trained = {r["stage"]: r["tokens"] for r in rows if "tokens" in r}
    episodes = {"expert": _lines(run_dir / "expert.jsonl")}
    for i in range(1, config.iterations + 1):
        episodes[f"iter_{i}/explore"] = _lines(run_dir / f"iter_{i}" / "explore.jsonl")
    episodes["eval"] = sum(_lines(p) for p in (run_dir / "eval").glob("*/*.jsonl"))
    return {
        "seed": config.seed,
        "run_dir": str(run_dir),
        "success": table,
        "wall_s": round(wall, 1),
        "phases_s": round(sum(phases.values()), 1),
        "reused_bc_s": round(sum(reused), 1),
        "phase_seconds": phases,
        "load_mean": round(statistics.mean(load.samples), 2),
        "load_max": round(max(load.samples), 2),
        "tokens_trained": trained,
        "episodes": episodes,
    }


def summarise(runs: list[dict[str, Any]], envs: list[str], last: str) -> dict[str, Any]:
    """Mean and spread over seeds of every stage's success and of the last iteration's margin over BC."""
    stages = list(runs[0]["success"])
    summary: dict[str, Any] = {"stages": {}, "margin": {}}
    for env_id in envs:
        for stage in stages:
            values = [100 * r["success"].get(stage, {}).get(env_id, float("nan")) for r in runs]
            summary["stages"].setdefault(env_id, {})[stage] = _spread(values)
        margins = [100 * (r["success"][last][env_id] - r["success"]["bc"][env_id]) for r in runs]
        summary["margin"][env_id] = {"per_seed": [round(m, 1) for m in margins], **_spread(margins)}
    return summary


def _spread(values: list[float]) -> dict[str, float]:
    return {
        "mean": round(statistics.mean(values), 2),
        "sd": round(statistics.stdev(values), 2) if len(values) > 1 else 0.0,
    }


def table_text(runs: list[dict[str, Any]], summary: dict[str, Any], envs: list[str], last: str) -> str:
    stages = list(runs[0]["success"])
    short = {BABYAI: "BabyAI", TEXTWORLD: "TextWorld"}
    head = ["seed"]
    for env_id in envs:
        name = short.get(env_id, env_id)
        head += [f"{name} {stage}" for stage in stages] + [f"{name} {last}−BC"]
    head += ["wall", "load (mean/max)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for run in runs:
        cells = [str(run["seed"])]
        for env_id in envs:
            cells += [f"{100 * run['success'][s].get(env_id, float('nan')):.1f}" for s in stages]
            cells.append(f"{100 * (run['success'][last][env_id] - run['success']['bc'][env_id]):+.1f}")
        wall = f"{run['wall_s'] / 60:.1f} min"
        if run["reused_bc_s"]:
            wall += f" (+{run['reused_bc_s'] / 60:.1f} BC reused)"
        elif run["phases_s"] > 1.1 * run["wall_s"]:  # a rerun that resumed: the phases' own time
            wall = f"{run['phases_s'] / 60:.1f} min (resumed)"
        cells += [wall, f"{run['load_mean']:.1f}/{run['load_max']:.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
    cells = ["mean ± sd"]
    for env_id in envs:
        cells += [f"{v['mean']:.1f} ± {v['sd']:.1f}" for v in summary["stages"][env_id].values()]
        m = summary["margin"][env_id]
        cells.append(f"{m['mean']:+.1f} ± {m['sd']:.1f}")
    cells += [f"{statistics.mean(r['wall_s'] for r in runs) / 60:.1f} min", ""]
    lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(runs: list[dict[str, Any]], envs: list[str], out: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stages = list(runs[0]["success"])
    figure, axes = plt.subplots(1, len(envs), figsize=(max(6.5, 4.6 * len(envs)), 4.0), squeeze=False)
    for axis, env_id in zip(axes[0], envs):
        for run in runs:
            values = [100 * run["success"][s].get(env_id, float("nan")) for s in stages]
            axis.plot(stages, values, marker="o", alpha=0.45, label=f"seed {run['seed']}")
        mean = [
            statistics.mean(100 * r["success"][s].get(env_id, float("nan")) for r in runs) for s in stages
        ]
        axis.plot(stages, mean, marker="s", color="black", linewidth=2.2, label="mean")
        axis.set_title(env_id)
        axis.set_ylabel("held-out success (%)")
        axis.set_ylim(-2, 102)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    figure.savefig(out, dpi=100)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--name", default="default", help="the variant's name (run dirs and result files)")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="override a field of the quickstart config (YAML value; dotted for nested)")  # fmt: skip
    parser.add_argument("--fast", action="store_true", help="start from `evol quickstart --fast`'s config")
    parser.add_argument("--out", default="runs/quickstart_seeds", help="where the run dirs go")
    parser.add_argument(
        "--bc-from", default=None, metavar="DIR", help="reuse DIR/seed_S's stages up to eval/bc"
    )
    parser.add_argument("--results", default="benchmarks/results")
    args = parser.parse_args()

    configs = [
        variant(args.fast, args.set, str(Path(args.out) / args.name / f"seed_{s}"), s) for s in args.seeds
    ]
    if args.bc_from:  # check every seed's source before any work
        for config in configs:
            if not (Path(config.run_dir) / "state.json").exists():
                check_source(Path(args.bc_from) / f"seed_{config.seed}", config)
    envs = configs[0].envs
    last = f"iter_{configs[0].iterations}" if configs[0].iterations else "bc"
    print(f"quickstart variant {args.name!r}: {' '.join(args.set) or '(the quickstart as it is)'}")
    runs = []
    for config in configs:
        print(f"seed {config.seed} -> {config.run_dir} (load {os.getloadavg()[0]:.2f})", flush=True)
        source = Path(args.bc_from) / f"seed_{config.seed}" if args.bc_from else None
        runs.append(run_seed(config, source))
        run = runs[-1]
        print(f"seed {config.seed}: {run['wall_s'] / 60:.1f} min, load {run['load_mean']:.1f} "
              + ", ".join(f"{s} {100 * v.get(envs[0], float('nan')):.1f}%" for s, v in run["success"].items()), flush=True)  # fmt: skip
    summary = summarise(runs, envs, last)
    text = table_text(runs, summary, envs, last)
    print(
        f"\nHeld-out success (%) per seed; {last}−BC in points; wall time of each run and load meanwhile:\n"
    )
    print(text)
    suffix = "" if args.name == "default" else f"_{args.name}"
    results = Path(args.results)
    results.mkdir(parents=True, exist_ok=True)
    out = {"name": args.name, "sets": args.set, "fast": args.fast, "bc_from": args.bc_from,
           "config": to_mapping(configs[0]) | {"run_dir": None, "seed": None}, "runs": runs,
           "summary": summary, "table": text, "cpus": os.cpu_count()}  # fmt: skip
    (results / f"quickstart_seeds{suffix}.json").write_text(json.dumps(out, indent=2))
    first = envs[0].removeprefix("evol/")
    margin = summary["margin"][envs[0]]["mean"]
    title = f"quickstart {args.name}: {last}−BC on {first} {margin:+.1f} pts (mean of {len(runs)} seeds)"
    plot(runs, envs, results / f"quickstart_seeds{suffix}.png", title)
    print(f"\n{results / f'quickstart_seeds{suffix}.json'}, {results / f'quickstart_seeds{suffix}.png'}")


if __name__ == "__main__":
    main()
