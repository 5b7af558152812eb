"""What the commands that run an agent over env tasks share (`evol rollout`, `evol eval`): the
agent and engine flags, the engine they build, and the fault summary printed after a run."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from evol.commands.common import non_negative, non_negative_seconds, positive
from evol.runs import RunOutcome, fault_lines, prefix_cache_size

if TYPE_CHECKING:
    from evol.ray_rollout import RayRolloutEngine
    from evol.rollout import RolloutEngine


def add_agent_flags(p: argparse.ArgumentParser) -> None:
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
        type=non_negative,
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
        type=non_negative,
        default=5,
        help="infrastructure faults (a server unreachable, at capacity or busy, a session lost) are "
        "retried this many times per episode, each time in a fresh session (default 5); an episode "
        "that still fails is written as a failed attempt, which a rerun runs again",
    )
    p.add_argument(
        "--backoff",
        type=non_negative_seconds,
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
    p.add_argument(
        "--ray",
        nargs="?",
        const="auto",
        default=None,
        metavar="ADDRESS",
        help="run the episodes on Ray actors of the cluster at ADDRESS (default auto: this machine's "
        "cluster; local: start one in this process; HOST:PORT): each actor loads the agent itself "
        "(vllm: one actor per GPU) and trajectories come back to --out; needs the ray extra",
    )
    p.add_argument(
        "--ray-actors",
        type=positive,
        default=None,
        metavar="N",
        help="with --ray: actors to run the episodes (default: one per free CPU of the cluster, at "
        "most 32; vllm agents one per GPU); --concurrency is each actor's episodes in flight",
    )


def ray_flags_problem(args: argparse.Namespace) -> str | None:
    """What is wrong with the Ray flags (None when nothing is): `--ray-actors` needs `--ray`."""
    if args.ray_actors is not None and not args.ray:
        return "--ray-actors needs --ray (the actors run on a Ray cluster)"
    return None


def build_engine(
    args: argparse.Namespace, env_kwargs: dict[str, dict[str, Any]]
) -> RolloutEngine | RayRolloutEngine:
    """The rollout engine the agent flags describe, its envs built with `env_kwargs`; with
    `--ray`, a `RayRolloutEngine` whose actors load the agent (raises `evol.ray_rollout.
    RayUnavailable` when Ray is missing or the address has no cluster)."""
    from agents.base import SamplingParams

    kwargs = {}
    if args.agent.startswith("hf:"):
        kwargs["prefix_cache"] = prefix_cache_size(args.prefix_cache, args.concurrency)
    settings = dict(
        agent_name=args.agent,
        concurrency=args.concurrency,
        sampling=SamplingParams(
            temperature=args.temperature, top_p=args.top_p, max_new_tokens=args.max_new_tokens, n=1
        ),
        urls=args.url or None,
        token=args.token,
        max_turns=args.max_turns,
        max_tokens=args.max_episode_tokens,
        env_kwargs=env_kwargs,
        history_turns=args.history_turns,
        instruction_in_context=not args.no_instruction,
        retries=args.retries,
        backoff=args.backoff,
    )
    if args.ray:
        from agents import LazyAgent
        from evol.ray_rollout import RayRolloutEngine

        agent = LazyAgent(args.agent, **kwargs)  # checks the spec here; each actor loads the agent
        return RayRolloutEngine(agent, address=args.ray, actors=args.ray_actors, **settings)
    from agents import load_agent
    from evol.rollout import RolloutEngine

    return RolloutEngine(load_agent(args.agent, **kwargs), **settings)


def report_faults(outcome: RunOutcome) -> int:
    """Print what went wrong in a run; 1 when some episodes could not be completed, else 0."""
    if outcome.stats.restarts:
        print(f"evol: {outcome.stats.restarts} episode restarts after infrastructure faults")
    lines = fault_lines(outcome)
    for line in lines:
        print(line, file=sys.stderr)
    return 1 if lines else 0
