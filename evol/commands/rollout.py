"""`evol rollout`: collect trajectories (JSONL; reruns resume).

`--options JSON` (here and in `evol eval`) adds task options to every episode's reset, e.g.
`'{"difficulty": "hard", "guidance": "state_reset", "prefix_steps": 2}'` on
`evol/MathCritique-v0`; each must be one the env declares (`option_params`, shown by `evol envs`),
checked before any episode runs.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from evol.commands.agent_runs import add_agent_flags, build_engine, ray_flags_problem, report_faults
from evol.commands.common import parse_env_kwargs, refuse, unknown_env


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
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
    add_options_flag(p)
    add_agent_flags(p)
    p.set_defaults(func=run)


def add_options_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--options",
        default=None,
        metavar="JSON",
        help='task options for every episode\'s reset, e.g. \'{"difficulty": "hard", "guidance": "answer"}\' '
        "(each one the envs declare; see evol envs)",
    )


def parse_task_options(text: str | None, env_ids: list[str]) -> dict[str, Any]:
    """`--options` JSON checked against the options of every env of the run (`evol.rollout.
    check_task_options`); a ValueError names what is wrong."""
    from evol.rollout import check_task_options

    if text is None:
        return {}
    try:
        options = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"--options is not JSON: {error}") from None
    return check_task_options(env_ids, options)


def try_task_options(
    specs: list[Any], env_kwargs: dict[str, dict[str, Any]], options: dict[str, Any]
) -> None:
    """With task `options` given, reset a local env of each env id of `specs` on its first task,
    so that options an env refuses together (e.g. `prefix_steps` without `guidance`
    `state_reset`) are told before the run; a ValueError names the option."""
    if not options:
        return
    import envs
    from envs.errors import ParamError

    firsts = {}
    for spec in specs:
        firsts.setdefault(spec.env, spec)
    for env_id, spec in firsts.items():
        try:
            env = envs.make(env_id, **env_kwargs.get(env_id, {}))
        except ParamError as error:
            raise ValueError(f"{env_id}: {error}") from None
        except Exception:  # not the options' doing: the run reports it
            continue
        try:
            env.reset(seed=spec.seed, options=spec.options)
        except ParamError as error:
            raise ValueError(f"--options: {env_id}: {error}") from None
        finally:
            env.close()


def run(args: argparse.Namespace) -> int:
    from evol.ray_rollout import RayUnavailable, ShardsFailed
    from evol.rollout import task_specs
    from evol.runs import run_specs

    problem = unknown_env(args.env) or ray_flags_problem(args)
    if problem:
        return refuse(problem)
    try:
        env_kwargs = parse_env_kwargs(args.env_kwargs, args.env)
        options = parse_task_options(args.options, args.env)
    except ValueError as error:
        return refuse(str(error))
    specs = task_specs(
        args.env, args.episodes, split=args.split, samples=args.samples, start=args.start, options=options
    )
    if not args.url:
        try:
            try_task_options(specs, env_kwargs, options)
        except ValueError as error:
            return refuse(str(error))
    try:
        engine = build_engine(args, env_kwargs)
    except RayUnavailable as error:  # --ray: no Ray, or no cluster at the address
        return refuse(str(error))
    except ValueError as error:  # an agent spec that names no agent
        return refuse(f"--agent {args.agent}: {error}")
    try:
        outcome = run_specs(engine, specs, args.out, log=print)
    except ShardsFailed as error:  # --ray: the actors cannot build the agent
        return refuse(str(error))
    stats = outcome.stats
    print(
        f"evol: {stats.episodes} episodes, success {stats.success_rate:.1%}, {stats.steps} steps, "
        f"faults: {stats.fault_summary()}, {stats.wall_s:.1f}s "
        f"(agent {stats.agent_s:.1f}s, env {stats.env_s:.1f}s) -> {args.out}"
    )
    return report_faults(outcome)
