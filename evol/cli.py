"""The `evol` command line: list, serve and play envs (more commands join per feature)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

import envs


def cmd_envs(args: argparse.Namespace) -> int:
    ids = args.ids or envs.env_ids()
    specs, rows = [], [("id", "reward", "max turns", "multimodal", "description")]
    for env_id in ids:
        try:
            specs.append(envs.env_spec(env_id))
        except KeyError as error:
            print(f"evol: {error.args[0]}", file=sys.stderr)
            return 2
        except ImportError as error:  # an optional dependency of that env is missing
            rows.append((env_id, "-", "-", "-", f"(unavailable: {error})"))
    for spec in specs:
        low, high = spec["reward_range"]
        rows.append(
            (
                spec["id"],
                f"[{low:g}, {high:g}]",
                str(spec["max_turns"]),
                "yes" if spec["multimodal"] else "no",
                spec["description"],
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[4])
    if args.cards or args.ids:
        for spec in specs:
            print(f"\n{'=' * 80}\n{spec['id']}\n{'=' * 80}\n{spec['card']}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from server.app import ServerLimits
    from server.serve import serve

    if not _check_env_ids(args.envs):
        return 2
    limits = ServerLimits(
        capacity=args.capacity,
        session_ttl=None if args.ttl <= 0 else args.ttl,
        step_timeout=None if args.step_timeout <= 0 else args.step_timeout,
        max_body_bytes=args.max_body,
        token=args.token,
        workers=args.workers,
        max_worker_rss=None if args.max_worker_memory <= 0 else int(args.max_worker_memory * (1 << 20)),
        allowed_hosts=tuple(args.allowed_hosts or ()),
    )
    try:
        overrides = _counterparts(args.envs, args.counterpart or [])
        for env_id, kwargs in _env_kwargs(args.env_kwargs, args.envs).items():
            overrides.setdefault(env_id, {}).update(kwargs)
    except ValueError as error:
        print(f"evol: {error}", file=sys.stderr)
        return 2
    serve(
        args.envs,
        host=args.host,
        port=args.port,
        threads=args.threads,
        limits=limits,
        env_overrides=overrides,
    )
    return 0


def _env_kwargs(text: str | None, env_ids: list[str]) -> dict[str, dict]:
    """`--env-kwargs` JSON: {env_id: {kwarg: value}} for the given env ids."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"--env-kwargs is not JSON: {error}") from None
    if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
        raise ValueError('--env-kwargs wants {"ENV_ID": {"kwarg": value}}')
    unknown = sorted(set(value) - set(env_ids))
    if unknown:
        raise ValueError(f"--env-kwargs names env(s) not in this command: {unknown}")
    return value


def _envs_taking(env_ids: list[str], kwarg: str) -> list[str]:
    """The env ids whose constructor takes `kwarg` (a counterpart, critique rounds, ...)."""
    import inspect

    return [e for e in env_ids if kwarg in inspect.signature(envs.env_class(e).__init__).parameters]


def _counterparts(env_ids: list[str], items: list[str]) -> dict[str, dict]:
    """`NAME=SPEC` counterpart agents (critic, defender, ...) for the served envs that take `NAME`."""
    overrides: dict[str, dict] = {}
    for item in items:
        name, _, spec = item.partition("=")
        if not name or not spec:
            raise ValueError(f"--counterpart wants NAME=AGENT_SPEC, got {item!r}")
        takers = _envs_taking(env_ids, name)
        if not takers:
            raise ValueError(f"no served env takes a {name!r} counterpart")
        if spec == "oracle":
            agent = spec  # envs with a built-in oracle accept the name
        else:
            from agents import LazyAgent

            # Each env worker process builds its own copy from the spec, on first use.
            agent = LazyAgent(spec)
        for env_id in takers:
            overrides.setdefault(env_id, {})[name] = agent
    return overrides


def _parse_options(text: str | None) -> dict | None:
    if text is None:
        return None
    options = json.loads(text)
    if not isinstance(options, dict):
        raise ValueError("--options must be a JSON object")
    return options


def cmd_play(args: argparse.Namespace, read: Callable[[str], str] = input) -> int:
    options = _parse_options(args.options) or {}
    if args.task is not None:
        options["task"] = args.task
    if args.split is not None:
        options["split"] = args.split
    env = envs.make(args.env, url=args.url, token=args.token) if args.url else envs.make(args.env)
    try:
        observation, info = env.reset(seed=args.seed, options=options or None)
        print(f"# Instruction\n{info['instruction']}\n")
        total = 0.0
        while True:
            text = observation["text"] if isinstance(observation, dict) else observation
            print(text)
            if info.get("valid_actions"):
                print(f"[valid: {', '.join(info['valid_actions'][:30])}]")
            try:
                action = read("> ")
            except EOFError:
                print("\n(stopped)")
                return 1
            if action.strip() in {":quit", ":q"}:
                return 1
            observation, reward, terminated, truncated, info = env.step(action)
            total += reward
            flag = "  (invalid action)" if info.get("invalid") else ""
            print(f"[turn {info['turn']}/{env.max_turns}  reward {reward:g}  total {total:g}]{flag}")
            if terminated or truncated:
                print(observation["text"] if isinstance(observation, dict) else observation)
                outcome = "SUCCESS" if info.get("success") else "FAILURE"
                print(
                    f"\n{outcome}: episode {'ended' if terminated else 'truncated'} after {info['turn']} turns, total reward {total:g}"
                )
                return 0 if info.get("success") else 1
    finally:
        env.close()


def _sampling(args: argparse.Namespace):
    from agents.base import SamplingParams

    return SamplingParams(
        temperature=args.temperature, top_p=args.top_p, max_new_tokens=args.max_new_tokens, n=1
    )


def _engine(args: argparse.Namespace, env_kwargs: dict[str, dict] | None = None):
    from agents import load_agent
    from evol.rollout import RolloutEngine

    kwargs = {}
    if args.agent.startswith("hf:"):
        kwargs["prefix_cache"] = 2 * args.concurrency if args.prefix_cache is None else args.prefix_cache
    return RolloutEngine(
        load_agent(args.agent, **kwargs),
        agent_name=args.agent,
        concurrency=args.concurrency,
        sampling=_sampling(args),
        urls=args.url or None,
        token=args.token,
        max_turns=args.max_turns,
        max_tokens=args.max_episode_tokens,
        env_kwargs=env_kwargs if env_kwargs is not None else _env_kwargs(args.env_kwargs, args.env),
        history_turns=args.history_turns,
        instruction_in_context=not args.no_instruction,
        retries=args.retries,
        backoff=args.backoff,
    )


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _non_negative_seconds(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0 seconds, got {text}")
    return value


def _check_env_ids(env_ids: list[str]) -> bool:
    for env_id in env_ids:
        try:
            envs.env_class(env_id)
        except KeyError as error:
            print(f"evol: {error.args[0]}", file=sys.stderr)
            return False
    return True


def _run_engine(engine, specs: list, writer) -> list:
    try:
        return engine.run(specs, writer)
    finally:
        engine.close()


def _report_faults(engine, specs: list, writer, finished: list) -> int:
    """Print what went wrong in a run; 1 when some episodes could not be completed, else 0."""
    stats = engine.stats
    if stats.restarts:
        print(f"evol: {stats.restarts} episode restarts after infrastructure faults")
    incomplete = [spec for spec in specs if spec.key not in writer.done]
    if not incomplete:
        return 0
    print(
        f"evol: {len(incomplete)} of {len(specs)} episodes could not be completed "
        f"(failed attempts this run: {stats.fault_summary()}); they are in {writer.path} as failed "
        "attempts, and rerunning this command retries them",
        file=sys.stderr,
    )
    seen = set()
    for trajectory in finished:
        if trajectory.fault and trajectory.fault not in seen:
            seen.add(trajectory.fault)
            print(f"evol: e.g. {trajectory.fault} fault: {trajectory.error}", file=sys.stderr)
    return 1


def _resume_note(specs: list, writer) -> None:
    done = sum(spec.key in writer.done for spec in specs)
    failed = sum(spec.key in writer.failed for spec in specs)
    if done or failed:
        retried = f"; {failed} failed attempts are run again" if failed else ""
        print(f"evol: resuming; {done} of {len(specs)} episodes are already in {writer.path}{retried}")


def cmd_rollout(args: argparse.Namespace) -> int:
    from evol.rollout import task_specs
    from evol.trajectory import TrajectoryWriter

    if not _check_env_ids(args.env):
        return 2
    specs = task_specs(args.env, args.episodes, split=args.split, samples=args.samples, start=args.start)
    engine = _engine(args)
    with TrajectoryWriter(args.out) as writer:
        _resume_note(specs, writer)
        finished = _run_engine(engine, specs, writer)
        stats = engine.stats
        print(
            f"evol: {stats.episodes} episodes, success {stats.success_rate:.1%}, {stats.steps} steps, "
            f"faults: {stats.fault_summary()}, {stats.wall_s:.1f}s "
            f"(agent {stats.agent_s:.1f}s, env {stats.env_s:.1f}s) -> {args.out}"
        )
        return _report_faults(engine, specs, writer, finished)


def cmd_eval(args: argparse.Namespace) -> int:
    from pathlib import Path

    from evol.evaluate import markdown_table, write_report
    from evol.rollout import task_specs
    from evol.trajectory import TrajectoryWriter, final_attempts, read_trajectories

    if not _check_env_ids(args.env):
        return 2
    if args.samples > 1 and args.temperature == 0:
        print(
            "evol: --samples > 1 with greedy decoding repeats one answer; set --temperature", file=sys.stderr
        )
        return 2
    try:
        env_kwargs = _env_kwargs(args.env_kwargs, args.env)
    except ValueError as error:
        print(f"evol: {error}", file=sys.stderr)
        return 2
    math_envs = _envs_taking(args.env, "refine_rounds")
    if args.refine:
        if not math_envs:
            print("evol: --refine needs an env with critique rounds (evol/MathCritique-v0)", file=sys.stderr)
            return 2
        for env_id in math_envs:
            env_kwargs.setdefault(env_id, {}).update({"critic": args.critic, "refine_rounds": args.refine})
    out = Path(args.out)
    specs = task_specs(args.env, args.episodes, split="test", samples=args.samples)
    keys = {spec.key for spec in specs}
    engine = _engine(args, env_kwargs)
    with TrajectoryWriter(out / "trajectories.jsonl") as writer:
        _resume_note(specs, writer)
        finished = _run_engine(engine, specs, writer)
        status = _report_faults(engine, specs, writer, finished)
    trajectories = final_attempts(t for t in read_trajectories(out / "trajectories.jsonl") if t.key in keys)
    summary = write_report(trajectories, out, args.agent)
    print(markdown_table(summary, title=f"Evaluation of {args.agent}"))
    print(f"evol: faults this run: {engine.stats.fault_summary()}")
    if math_envs:
        from evol.test_time import scaling_report

        math_trajectories = [t for t in trajectories if t.env in math_envs]
        report = scaling_report(math_trajectories, env_kwargs=env_kwargs.get(math_envs[0]))
        (out / "test_time.json").write_text(json.dumps(report, indent=2))
        print(json.dumps({k: v for k, v in report.items() if k != "per_task"}, indent=2))
        print(f"evol: test-time scaling report in {out / 'test_time.json'}")
    if "evol/Sycophancy-v0" in args.env:
        from envs.sycophancy.metrics import mmsy_report

        report = mmsy_report(
            [t for t in trajectories if t.env == "evol/Sycophancy-v0"],
            env_kwargs=env_kwargs.get("evol/Sycophancy-v0"),
        )
        (out / "mmsy.json").write_text(json.dumps(report, indent=2))
        rates = {k: report[k] for k in ("acc_r1", "sycophancy_rate", "correction_rate")}
        print(f"MM-SY rates: {json.dumps(rates)} (details in {out / 'mmsy.json'})")
    print(f"evol: wrote {out / 'results.json'}, {out / 'results.md'}, {out / 'success.png'}")
    return status


def cmd_train(args: argparse.Namespace) -> int:
    import importlib

    from evol.trainers import TRAINERS
    from evol.trainers.config import ConfigError, load_config

    module_name, config_name, trainer_name = TRAINERS[args.algorithm]
    module = importlib.import_module(module_name)
    overrides = {}
    for item in args.set or []:
        key, _, value = item.partition("=")
        overrides[key] = _yaml_value(value)
    try:
        config = load_config(getattr(module, config_name), args.config, overrides)
    except ConfigError as error:
        print(f"evol: bad config: {error}", file=sys.stderr)
        return 2
    result = getattr(module, trainer_name)(config).train()
    if isinstance(result, dict):
        from evol.trainers.agentevol import format_table

        print(format_table(result))
    else:
        print(f"evol: trained model saved in {result.model_dir} ({result.tokens_per_s:.0f} tokens/s)")
    return 0


def _yaml_value(text: str):
    import yaml

    return yaml.safe_load(text)


def cmd_data(args: argparse.Namespace) -> int:
    if args.kind == "critiques":
        from envs.math.data import write_critique_data

        written = write_critique_data(args.n, args.out, seed=args.seed, split=args.split)
    else:
        from envs.charts.data import write_chart_data

        written = write_chart_data(
            args.n, args.out, seed=args.seed, split=args.split, processes=args.processes
        )
    print(f"evol: wrote {written} {args.kind} examples to {args.out}")
    return 0


def cmd_quickstart(args: argparse.Namespace) -> int:
    from evol.quickstart import run_quickstart

    return run_quickstart(args.out, fast=args.fast)


def _add_agent_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--agent", required=True, help="agent spec: expert, random, hf:PATH, vllm:PATH, openai:URL#MODEL"
    )
    p.add_argument(
        "--url", action="append", help="env server URL (repeat to spread over several); default: local envs"
    )
    p.add_argument("--token", default=None, help="bearer token for the env servers")
    p.add_argument("--concurrency", type=int, default=32, help="episodes in flight (default 32)")
    p.add_argument("--temperature", type=float, default=0.0, help="sampling temperature (default 0: greedy)")
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--max-new-tokens", type=int, default=64, help="tokens per agent reply (default 64)")
    p.add_argument(
        "--max-turns", type=int, default=None, help="cap on turns per episode (default: the env's)"
    )
    p.add_argument("--max-episode-tokens", type=int, default=None, help="cap on generated tokens per episode")
    p.add_argument(
        "--history-turns",
        type=_non_negative,
        default=None,
        metavar="K",
        help="the agent sees the last K turns and the current observation (default: the whole episode)",
    )
    p.add_argument(
        "--no-instruction",
        action="store_true",
        help="leave the env's instruction (system message) out of what the agent sees",
    )
    p.add_argument(
        "--env-kwargs", default=None, metavar="JSON", help='per-env kwargs: \'{"ENV_ID": {"kwarg": value}}\''
    )
    p.add_argument(
        "--retries",
        type=_non_negative,
        default=5,
        help="infrastructure faults (a server unreachable, at capacity or busy, a session lost) are "
        "retried this many times per episode, each time in a fresh session (default 5); an episode "
        "that still fails is written as a failed attempt, which a rerun runs again",
    )
    p.add_argument(
        "--backoff",
        type=_non_negative_seconds,
        default=1.0,
        metavar="SECONDS",
        help="wait before the first retry, doubling each time, at most 30 s, never under the "
        "server's Retry-After (default 1)",
    )
    p.add_argument(
        "--prefix-cache",
        type=int,
        default=None,
        help="hf agents: keep the KV cache of this many conversations between turns (default: twice --concurrency; 0: off)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="evol", description="EvolGym: serve environments, run agents, evolve them."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("envs", help="list registered envs and show their cards")
    p.add_argument("ids", nargs="*", help="show the full card of these env ids")
    p.add_argument("--cards", action="store_true", help="print every env's card after the table")
    p.set_defaults(func=cmd_envs)

    p = sub.add_parser("serve", help="serve envs over HTTP (waitress)")
    p.add_argument("envs", nargs="+", metavar="ENV", help="env ids to serve, e.g. evol/BabyAI-v0")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1: loopback only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--threads", type=int, default=8, help="request threads (default 8)")
    p.add_argument(
        "--capacity", type=int, default=256, help="live sessions at most (default 256); more get 429"
    )
    p.add_argument(
        "--ttl",
        type=float,
        default=600.0,
        help="seconds before an idle session is reaped (default 600; 0 = never)",
    )
    p.add_argument(
        "--step-timeout",
        type=float,
        default=30.0,
        help="seconds a reset/step may take (default 30; 0 = no limit)",
    )
    p.add_argument(
        "--max-body", type=int, default=1 << 20, help="largest request body in bytes (default 1 MiB)"
    )
    p.add_argument(
        "--token", default=None, help="bearer token required on every route but /health (or set EVOL_TOKEN)"
    )
    p.add_argument(
        "--workers",
        type=int,
        default=0,
        help="env worker processes; each session lives in one (default 0: one per CPU core)",
    )
    p.add_argument(
        "--max-worker-memory",
        type=float,
        default=1024.0,
        metavar="MB",
        help="a worker whose memory grew past this takes no new sessions and is replaced once its "
        "sessions end (default 1024; 0 = no limit)",
    )
    p.add_argument(
        "--allowed-hosts",
        nargs="+",
        metavar="NAME",
        help="Host names the server answers to besides loopback names, IP addresses and --host "
        "(guards against DNS rebinding; '*' accepts any)",
    )
    p.add_argument(
        "--env-kwargs",
        default=None,
        metavar="JSON",
        help='kwargs for the served envs, e.g. \'{"evol/MathCritique-v0": {"data": "gsm8k_test.jsonl"}}\'',
    )
    p.add_argument(
        "--counterpart",
        action="append",
        metavar="NAME=AGENT",
        help="a counterpart agent for the envs that take one, e.g. critic=oracle or "
        "critic=openai:http://127.0.0.1:8100/v1#model",
    )
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("play", help="play an episode yourself in the terminal")
    p.add_argument("env", help="env id, e.g. evol/TextWorld-v0")
    p.add_argument("--url", default=None, help="play on a server instead of locally")
    p.add_argument("--token", default=None, help="bearer token for --url")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--task", type=int, default=None, help="task index (reproducible)")
    p.add_argument("--split", default=None, help="task split, e.g. train or test")
    p.add_argument(
        "--options", default=None, help='more reset options as JSON, e.g. \'{"difficulty": "easy"}\''
    )
    p.set_defaults(func=cmd_play)

    p = sub.add_parser(
        "rollout",
        help="collect trajectories (JSONL; reruns resume)",
        description="Collect trajectories. Exits 1 when some episodes could not be completed "
        "(they are written as failed attempts; rerunning the command retries them).",
    )
    p.add_argument("--env", nargs="+", required=True, metavar="ID", help="env ids")
    p.add_argument("--episodes", type=int, required=True, help="tasks per env")
    p.add_argument("--out", required=True, help="trajectory JSONL file")
    p.add_argument("--samples", type=int, default=1, help="episodes per task (default 1)")
    p.add_argument("--split", default="train", help="task split where the env has splits (default train)")
    p.add_argument("--start", type=int, default=0, help="first task index (default 0)")
    _add_agent_flags(p)
    p.set_defaults(func=cmd_rollout)

    p = sub.add_parser(
        "eval",
        help="evaluate an agent on a fixed test task set; write results.json/.md/.png",
        description="Evaluate an agent on a fixed test task set. Exits 1 when some episodes could not "
        "be completed (the report covers the others; rerunning the command retries them).",
    )
    p.add_argument("--env", nargs="+", required=True, metavar="ID", help="env ids")
    p.add_argument("--episodes", type=int, required=True, help="test tasks per env")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument(
        "--samples", type=int, default=1, help="samples per task: majority vote and pass@k (math envs)"
    )
    p.add_argument(
        "--refine", type=int, default=0, metavar="R", help="critique-then-refine rounds (math envs)"
    )
    p.add_argument(
        "--critic", default="oracle", help="critic for --refine: oracle (default), or set it on the server"
    )
    _add_agent_flags(p)
    p.set_defaults(func=cmd_eval)

    from evol.agent_server_cli import add_serve_agent_parser

    add_serve_agent_parser(sub)

    p = sub.add_parser("data", help="write training data sets: critiques (math) or charts")
    data = p.add_subparsers(dest="kind", required=True, metavar="KIND")
    q = data.add_parser(
        "critiques",
        help="AutoMathCritique-style SFT examples (question, flawed solution, critique, refinement)",
    )
    q.add_argument("--n", type=int, required=True, help="examples to write")
    q.add_argument("--out", required=True, help="JSONL file")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--split", default="train")
    q.set_defaults(func=cmd_data)
    q = data.add_parser("charts", help="chart images, plotting code and QA JSONL (ReachQA fields)")
    q.add_argument("--n", type=int, required=True, help="charts to write")
    q.add_argument("--out", required=True, help="output directory")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--split", default="train")
    q.add_argument("--processes", type=int, default=2, help="rendering processes (default 2)")
    q.set_defaults(func=cmd_data)

    p = sub.add_parser("train", help="train an agent: behaviour cloning or AgentEvol, from a YAML config")
    p.add_argument("algorithm", choices=["bc", "agentevol"], help="which trainer")
    p.add_argument("--config", required=True, help="YAML file mapping onto the trainer's config dataclass")
    p.add_argument(
        "--set", action="append", metavar="FIELD=VALUE", help="override one config field (YAML value)"
    )
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "quickstart", help="the main job: evolve a tiny agent from scratch (BC, then AgentEvol)"
    )
    p.add_argument("--out", default="runs/quickstart", help="run directory (default runs/quickstart)")
    p.add_argument(
        "--fast", action="store_true", help="a much smaller run that checks the pipeline in ~2 minutes"
    )
    p.set_defaults(func=cmd_quickstart)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
