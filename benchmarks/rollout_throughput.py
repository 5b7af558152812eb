"""Rollout engine throughput against AgentGym's sequential way of evaluating.

Both sides use the same randomly initialised tiny transformers model (built here, no
download, 4096 positions so a whole episode fits) on BabyAI through a live env server,
20 turns per episode (AgentGym's BabyAI max rounds), the whole conversation sent every turn:
- baseline: one episode at a time, batch size 1 (AgentGym's evaluator);
- engine: `RolloutEngine` with C episodes in flight, one batched model call per turn,
  batch env steps; with `--backend hf` the agent keeps each conversation's KV cache
  (`prefix_cache`), with `--backend vllm` vLLM's own prefix caching does.
Prints episodes/s of each, the speed-up, and the share of the engine's wall time spent
outside model generation (env, HTTP, bookkeeping).

    python benchmarks/rollout_throughput.py [--episodes 64] [--baseline-episodes 8] [--concurrency 32]
        [--max-turns 20] [--backend hf|vllm] [--device auto|cpu|cuda] [--context 4096]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from agents.base import Agent, AgentInput, SamplingParams
from agents.hf import HFAgent
from agents.tiny import build_tiny_model
from evol.rollout import RolloutEngine, task_specs, user_content
from server.client import RemoteEnv
from server.launch import LaunchedServer

ENV = "evol/BabyAI-v0"


def build_model(path: Path, context: int = 4096) -> Path:
    """A tiny model whose random replies never end early (so every turn costs the same)."""
    import envs

    env = envs.make(ENV)
    corpus = []
    for k in range(50):
        episode = envs.run_expert(env, seed=k, options={"task": k})
        corpus += [episode.instruction, *episode.observations, *episode.actions]
    build_tiny_model(path, corpus, max_length=context)
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(path)
    with torch.no_grad():
        for special in range(5):  # the special tokens, <|im_end|> among them, are never sampled
            model.model.embed_tokens.weight[special].zero_()
    model.save_pretrained(path)
    return path


def sequential(agent: Agent, url: str, episodes: int, sampling: SamplingParams, max_turns: int) -> dict:
    started = time.perf_counter()
    generate_s = 0.0
    turns = 0
    env = RemoteEnv(ENV, url=url)
    for spec in task_specs([ENV], episodes, split="test"):
        observation, info = env.reset(seed=spec.seed, options=spec.options)
        messages = [
            {"role": "system", "content": info["instruction"]},
            {"role": "user", "content": observation},
        ]
        for _ in range(max_turns):
            tick = time.perf_counter()
            output = agent.act([AgentInput(messages=messages, info=info)], sampling)[0]
            generate_s += time.perf_counter() - tick
            observation, reward, terminated, truncated, info = env.step(output.action)
            turns += 1
            messages += [
                {"role": "assistant", "content": output.text},
                {"role": "user", "content": user_content(observation)},
            ]
            if terminated or truncated:
                break
    env.close()
    wall = time.perf_counter() - started
    return {
        "episodes": episodes,
        "turns": turns,
        "wall_s": wall,
        "episodes_per_s": episodes / wall,
        "generate_s": generate_s,
    }


def engine(
    agent: Agent, url: str, episodes: int, sampling: SamplingParams, max_turns: int, concurrency: int
) -> dict:
    runner = RolloutEngine(
        agent, concurrency=concurrency, sampling=sampling, urls=[url], max_turns=max_turns, progress=False
    )
    started = time.perf_counter()
    trajectories = runner.run(task_specs([ENV], episodes, split="test"))
    wall = time.perf_counter() - started
    runner.pool.close()
    turns = sum(t.turns for t in trajectories)
    return {
        "episodes": episodes,
        "turns": turns,
        "wall_s": wall,
        "episodes_per_s": episodes / wall,
        "generate_s": runner.stats.agent_s,
        "env_s": runner.stats.env_s,
        "outside_generation_share": 1 - runner.stats.agent_s / wall,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--episodes", type=int, default=64, help="engine episodes")
    parser.add_argument("--baseline-episodes", type=int, default=8, help="sequential baseline episodes")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--max-turns", type=int, default=20, help="turns per episode (both sides)")
    parser.add_argument("--max-new-tokens", type=int, default=8)
    parser.add_argument("--device", default="auto", help="hf backend: auto, cpu or cuda")
    parser.add_argument("--backend", choices=["hf", "vllm"], default="hf")
    parser.add_argument(
        "--context", type=int, default=4096, help="model positions (shorter: long episodes get truncated)"
    )
    parser.add_argument("--batch-size", type=int, default=64, help="most sequences in one model forward")
    parser.add_argument("--out", default="benchmarks/results/rollout_throughput.json")
    args = parser.parse_args()

    sampling = SamplingParams(temperature=1.0, max_new_tokens=args.max_new_tokens)
    with tempfile.TemporaryDirectory() as tmp, LaunchedServer([ENV], "--capacity", "1024") as server:
        model = build_model(Path(tmp) / "tiny", args.context)
        if args.backend == "hf":
            agent = HFAgent(str(model), device=args.device, seed=0, batch_size=args.batch_size)
            fast_agent = HFAgent(
                str(model),
                device=args.device,
                seed=0,
                batch_size=args.batch_size,
                prefix_cache=2 * args.concurrency,
            )
            device = agent.device
        else:
            from agents.vllm_backend import VLLMAgent

            agent = fast_agent = VLLMAgent(
                str(model), max_model_len=args.context, seed=0, gpu_memory_utilization=0.3
            )
            device = "cuda" if torch.cuda.is_available() else "cpu"
        agent.act([AgentInput(messages=[{"role": "user", "content": "warm up"}])], sampling)
        base = sequential(agent, server.url, args.baseline_episodes, sampling, args.max_turns)
        fast = engine(fast_agent, server.url, args.episodes, sampling, args.max_turns, args.concurrency)
    cache = getattr(fast_agent, "prefix_cache", None)
    if cache is not None:
        fast["prefix_cache_hit_share"] = cache.hits / max(1, cache.hits + cache.misses)
    speedup = fast["episodes_per_s"] / base["episodes_per_s"]
    print(
        f"backend: {args.backend} on {device}; {args.max_turns} turns per episode, {args.max_new_tokens} new tokens per turn, full conversation every turn"
    )
    print(
        f"sequential (batch 1):        {base['episodes_per_s']:.3f} episodes/s  ({base['episodes']} episodes, {base['wall_s']:.1f}s)"
    )
    print(
        f"engine (C={args.concurrency}):              {fast['episodes_per_s']:.3f} episodes/s  ({fast['episodes']} episodes, {fast['wall_s']:.1f}s)"
    )
    line = f"speed-up: {speedup:.1f}x; engine time outside generation: {fast['outside_generation_share']:.1%}"
    if "prefix_cache_hit_share" in fast:
        line += f"; prompt tokens served from the prefix cache: {fast['prefix_cache_hit_share']:.1%}"
    print(line)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(
        json.dumps(
            {
                "backend": args.backend,
                "device": device,
                "max_turns": args.max_turns,
                "max_new_tokens": args.max_new_tokens,
                "concurrency": args.concurrency,
                "context": args.context,
                "sequential": base,
                "engine": fast,
                "speedup": speedup,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
