"""Self-Demos against its baselines: zero-shot, few-shot, Self-ICL-style and Self-Demos.

    python benchmarks/self_demos_comparison.py --agent-base SPEC [--episodes 50] [--math-episodes 30]

Every strategy (`zero-shot:SPEC`, `few-shot:SPEC`, `self-icl:SPEC`, `self-demos:SPEC`, see
`agents.demo_baselines`) runs the same test tasks through the rollout engine as `evol eval`
does (`evol.evaluate.evaluate`, greedy):

- `evol/ToolUse-v0`, OOD split (`demos: ood`: no demonstration uses a function the query
  needs) and ID split (`demos: id`: one demonstration is of the query's own kind); OOD-Toolset's
  exact match (every gold call made) and partial match (1 all, 0.5 some, 0 none), from each
  episode's `outcome`;
- the math setting: `evol/MathCritique-v0` with `demos=K` worked problems of other topics
  (no critic, one attempt); accuracy.

`--agent-base scripted` (the default) is a scripted base whose outcomes are known, which
proves the harness without a model: it answers a tool query right only while the
demonstrations in its context show the function of the next gold call (at the first one they
do not show, it gives up: 0.5 partial match when an earlier call was made), and a math problem
right only when a demonstration in its context is of the problem's topic. Asked Self-Demos'
steps it names the query's functions (or topic) and writes correct examples for the query;
asked Self-ICL's pseudo-inputs, which never show the query, it rewrites the seed examples. So
zero-shot scores 0, few-shot and Self-ICL score 0 on OOD and 1 on ID, Self-Demos 1 on both;
in math only Self-Demos scores 1. Any agent spec serves as the base (`hf:PATH`,
`openai:URL#MODEL`, `vllm:PATH`).

Writes `--out`/self_demos_comparison.{json,md,png} (and each run's `evol eval` files under
`--work`).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from agents import STRATEGIES, load_agent
from agents.base import Agent, AgentInput, SamplingParams
from agents.self_demos import parse_demonstration
from envs.math.generator import generate_problem
from envs.tools.tasks import make_task
from evol.evaluate import evaluate
from evol.rollout import RolloutEngine

TOOLS_ENV = "evol/ToolUse-v0"
MATH_ENV = "evol/MathCritique-v0"
ORDER = ("zero-shot", "few-shot", "self-icl", "self-demos")
SPLITS = {"OOD": "ood", "ID": "id"}
DEMO_REGION = re.compile(r"(?ms)^# (?:More )?[Dd]emonstrations.*?(?=^# (?:Query|Problem)\n|\Z)")


# ---- the scripted base ----------------------------------------------------------------------
class ScriptedBase(Agent):
    """A base whose outcomes are known (module docstring); it reads the env (privileged) only to
    find the next gold call or the reference solution, and decides from its context alone."""

    name = "scripted"
    needs_env = True

    def __init__(self, tool_tasks: int, math_tasks: int):
        self.tools = {t.query: t for t in (make_task("test", k) for k in range(tool_tasks))}
        self.math = {p.question: p for p in (generate_problem(k, "test") for k in range(math_tasks))}
        self.written: dict[str, Any] = {}  # example text it wrote -> its calls, or its topic

    def generate(self, inputs: list[AgentInput], sampling: SamplingParams) -> list[list[str]]:
        return [self._reply(item, sampling.n) for item in inputs]

    def _reply(self, item: AgentInput, n: int) -> list[str]:
        prompt = item.messages[-1]["content"] if item.messages else ""
        if item.env is not None:
            return [self._turn(item)] * n
        # The query asked about is the prompt's last `Query:`/`Problem:` line (seed examples come first).
        queries = re.findall(r"(?m)^Query: (.+)$", prompt)
        problems = re.findall(r"(?m)^Problem: (.+)$", prompt)
        task = self.tools.get(queries[-1]) if queries else None
        problem = self.math.get(problems[-1]) if problems else None
        if "decide which function" in prompt and task is not None:
            return [f"Function to call: {', '.join(c.name for c in task.gold_calls)}"] * n
        if "write an example of when and how" in prompt and task is not None:
            return [self._tool_example(task.query, task.gold_calls, i) for i in range(n)]
        if "decide what a math problem needs" in prompt and problem is not None:
            return [f"A story about {problem.topic}s: {len(problem.lines)} steps."] * n
        if "write a worked example" in prompt and problem is not None:
            return [self._math_example(problem, i) for i in range(n)]
        if "check them and keep the best" in prompt:
            return ["Selection: <1>"] * n
        if "write a new query that they can solve" in prompt:  # Self-ICL: rewrite a seed example
            section = prompt.split("# Examples\n", 1)[-1].split("\n\nWrite one new", 1)[0]
            seeds = [d for d in map(parse_demonstration, section.split("\n\n")) if d is not None]
            replies = []
            for i in range(n):
                seed = seeds[i % len(seeds)] if seeds else {"query": "?", "calls": []}
                text = f"{seed['query']} (variant {i})"
                self.written[text] = seed["calls"]
                replies.append(f"Query: {text}")
            return replies
        if "answer this query with function calls" in prompt:
            query = re.search(r"(?m)^Query: (.+)$", prompt)
            calls = self.written.get(query.group(1)) if query else None
            return ["\n".join(json.dumps(c) for c in calls) if calls else "no idea"] * n
        if "write a new math word problem" in prompt:
            seeds = re.findall(r"(?m)^Problem: (.+)$", prompt)
            return [
                f"Query: {seeds[i % len(seeds)]} (variant {i})" if seeds else "Query: ?" for i in range(n)
            ]
        if "solve this math word problem" in prompt:
            return ["1 + 1 = 2\nThe answer is 2."] * n
        return ["I do not know."] * n

    def _tool_example(self, query: str, calls: Any, i: int) -> str:
        text = f"{query} (practice {i})"
        self.written[text] = calls
        lines = [json.dumps(c.as_dict()) for c in calls]
        return "\n".join([f"Query: {text}", "Function calls:", *lines])

    def _math_example(self, problem: Any, i: int) -> str:
        text = f"{problem.question} (practice {i})"
        self.written[text] = problem.topic
        return f"Problem: {text}\nSolution:\n{problem.solution}"

    def _turn(self, item: AgentInput) -> str:
        first = next((m["content"] for m in item.messages if m.get("role") == "user"), "")
        region = "\n".join(DEMO_REGION.findall(first))
        env = item.env
        if hasattr(env, "problem"):  # math: right only with a demonstration of the problem's topic
            shown = re.findall(r"(?m)^Problem: (.+)$", region)
            known = any(self.written.get(text) == env.problem.topic for text in shown)
            return env.expert_action() if known else "The answer is 0."
        action = env.expert_action()
        if action.startswith("Final Answer"):
            return action
        name = json.loads(action)["name"]
        return action if f'"name": "{name}"' in region else "Final Answer: I cannot tell."


# ---- the runs ---------------------------------------------------------------------------------
def strategy_agent(strategy: str, base: str, scripted: ScriptedBase | None) -> Agent:
    if scripted is None:
        return load_agent(f"{strategy}:{base}")
    from agents import demo_baselines, self_demos

    module = self_demos if strategy == "self-demos" else demo_baselines
    return getattr(module, STRATEGIES[strategy])(scripted)


def run_one(
    strategy: str, env_id: str, n: int, options: dict, env_kwargs: dict, args: Any, work: Path
) -> list[dict[str, Any]]:
    scripted = ScriptedBase(args.episodes, args.math_episodes) if args.agent_base == "scripted" else None
    agent = strategy_agent(strategy, args.agent_base, scripted)
    engine = RolloutEngine(
        agent,
        agent_name=f"{strategy}:{args.agent_base}",
        concurrency=args.concurrency,
        sampling=SamplingParams(max_new_tokens=args.max_new_tokens),
        env_kwargs={env_id: env_kwargs} if env_kwargs else None,
        progress=False,
    )
    tag = re.sub(r"[^A-Za-z0-9]+", "_", f"{strategy}_{env_id}_{options.get('demos', 'math')}")
    result = evaluate(
        engine,
        {env_id: n},
        work / tag,
        agent=engine.agent_name,
        options=options,
        env_kwargs={env_id: env_kwargs},
    )
    return [{"success": t.success, "error": t.error, **(t.outcome or {})} for t in result.trajectories]


def score(rows: list[dict[str, Any]], key: str) -> float:
    return sum(float(r.get(key) or 0.0) for r in rows) / len(rows) if rows else 0.0


def compare(args: Any) -> dict[str, Any]:
    """Every strategy on both splits and on math; the table's data."""
    from tqdm import tqdm

    work = Path(args.work or tempfile.mkdtemp(prefix="self_demos_"))
    strategies = [s for s in ORDER if s in args.strategies]
    jobs = [(s, split) for s in strategies for split in SPLITS] + [(s, "math") for s in strategies]
    table: dict[str, dict[str, Any]] = {s: {} for s in strategies}
    for strategy, split in tqdm(jobs, desc="strategy x setting", unit="run", disable=args.quiet):
        started = time.perf_counter()
        if split == "math":
            if not args.math_episodes:
                continue
            kwargs = {"demos": args.math_demos, "refine_rounds": 0}
            rows = run_one(strategy, MATH_ENV, args.math_episodes, {}, kwargs, args, work)
            table[strategy]["math"] = {"accuracy": score(rows, "success"), "episodes": len(rows)}
        else:
            options = {"demos": SPLITS[split]}
            rows = run_one(strategy, TOOLS_ENV, args.episodes, options, {}, args, work)
            table[strategy][split] = {
                "exact": score(rows, "exact_match"),
                "partial": score(rows, "partial_match"),
                "episodes": len(rows),
                "errors": sum(r["error"] is not None for r in rows),
            }
        table[strategy].setdefault("seconds", 0.0)
        table[strategy]["seconds"] += time.perf_counter() - started
    return {
        "base": args.agent_base,
        "tool_episodes": args.episodes,
        "math_episodes": args.math_episodes,
        "math_demos": args.math_demos,
        "work": str(work),
        "table": table,
    }


def markdown(data: dict[str, Any]) -> str:
    lines = [
        f"## Self-Demos against its baselines (base: {data['base']})",
        "",
        f"ToolUse-v0: {data['tool_episodes']} test tasks per split; MathCritique-v0: "
        f"{data['math_episodes']} test problems with {data['math_demos']} demonstrations of other topics.",
        "",
        "| strategy | OOD exact | OOD partial | ID exact | ID partial | math accuracy |",
        "|---|---|---|---|---|---|",
    ]
    for strategy, row in data["table"].items():
        cells = [f"{row[s][m]:.3f}" if s in row else "" for s in SPLITS for m in ("exact", "partial")]
        cells.append(f"{row['math']['accuracy']:.3f}" if "math" in row else "")
        lines.append("| " + " | ".join([strategy, *cells]) + " |")
    return "\n".join(lines) + "\n"


def plot(data: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    strategies = list(data["table"])
    groups = [(f"{s} {m}", s, m) for s in SPLITS for m in ("exact", "partial")] + [
        ("math acc.", "math", "accuracy")
    ]
    figure, axes = plt.subplots(figsize=(9, 4))
    width = 0.8 / max(1, len(strategies))
    for i, strategy in enumerate(strategies):
        row = data["table"][strategy]
        values = [row.get(s, {}).get(m, 0.0) for _, s, m in groups]
        xs = [g + (i - (len(strategies) - 1) / 2) * width for g in range(len(groups))]
        axes.bar(xs, values, width, label=strategy)
    axes.set_xticks(range(len(groups)), [g[0] for g in groups])
    axes.set_ylim(0, 1.05)
    axes.set_ylabel("score")
    axes.set_title(f"Self-Demos vs baselines (base: {data['base']})")
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def write(data: dict[str, Any], out: Path) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = {k: out / f"self_demos_comparison.{k}" for k in ("json", "md", "png")}
    paths["json"].write_text(json.dumps(data, indent=2))
    paths["md"].write_text(markdown(data))
    plot(data, paths["png"])
    return paths


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--agent-base", default="scripted", help="scripted, hf:PATH, openai:URL#MODEL, vllm:PATH")
    p.add_argument("--episodes", type=int, default=50, help="ToolUse test tasks per split")
    p.add_argument("--math-episodes", type=int, default=30, help="MathCritique test problems (0: skip)")
    p.add_argument("--math-demos", type=int, default=3, help="worked demonstrations of other topics")
    p.add_argument("--strategies", nargs="+", default=list(ORDER), help="a subset of " + ", ".join(ORDER))
    p.add_argument("--max-new-tokens", type=int, default=256)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--out", default="benchmarks/results")
    p.add_argument("--work", default=None, help="where each run's evol eval files go (default: a temp dir)")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    problem = check_args(args)
    if problem:
        p.error(problem)  # exit 2
    return args


def check_args(args: argparse.Namespace) -> str | None:
    """Why the arguments cannot be used, or None (checked before any work)."""
    bad = [s for s in args.strategies if s not in ORDER]
    if bad:
        return f"--strategies: unknown {bad}; choose from {list(ORDER)}"
    if args.episodes < 1 or args.math_episodes < 0:
        return "--episodes must be >= 1 and --math-episodes >= 0"
    if not 1 <= args.math_demos <= 8:
        return f"--math-demos must be in [1, 8], got {args.math_demos}"
    if args.agent_base != "scripted":
        kind = args.agent_base.partition(":")[0]
        if (
            kind in STRATEGIES
            or kind not in ("hf", "vllm", "openai")
            or not args.agent_base.partition(":")[2]
        ):
            return f"--agent-base {args.agent_base!r}: scripted, hf:PATH, vllm:PATH or openai:URL#MODEL"
    return None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    data = compare(args)
    paths = write(data, Path(args.out))
    print(markdown(data))
    print(f"wrote {paths['json']}, {paths['md']}, {paths['png']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
