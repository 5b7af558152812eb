"""`evol analyze PROBE`: read a model's internals on env episodes.

`evol analyze attention --model PATH --env evol/Sycophancy-v0 --out DIR` is MM-SY's probe of
where sycophancy lives (`evol.analysis.attention`): for a vision-language model, per layer, the
share of round-2 attention on the image tokens in image episodes that kept a right answer
under push-back against those that abandoned it for the user's option. It runs the model on
`--episodes` image tasks (or reads the episodes of `--trajectories`), writes `attention.json`
and `attention.png` in DIR and prints the table.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import envs
from evol.commands.common import non_negative, parse_env_kwargs, positive, refuse

ENV_ID = "evol/Sycophancy-v0"


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("analyze", help="probe a model on env episodes: attention on the image (MM-SY)")
    probes = p.add_subparsers(dest="probe", required=True, metavar="PROBE")
    q = probes.add_parser(
        "attention",
        help="share of round-2 attention on image tokens per layer, kept vs abandoned right answers",
        description="MM-SY's probe on evol/Sycophancy-v0 image episodes: per layer of a vision-language "
        "model, the share of attention on the image tokens in round 2, for episodes that kept a right "
        "answer under push-back vs those that switched to the user's wrong option. Writes "
        "attention.json and attention.png in --out and prints the table.",
    )
    q.add_argument("--model", required=True, metavar="PATH", help="a local vision-language checkpoint")
    q.add_argument("--env", required=True, metavar="ID", help=f"the env: {ENV_ID}")
    q.add_argument("--out", required=True, metavar="DIR", help="output directory")
    q.add_argument(
        "--trajectories",
        nargs="+",
        metavar="FILE",
        help="read these episodes (trajectory JSONL) instead of running the model; attention is "
        "still the model's (teacher-forced on each episode's conversation)",
    )
    q.add_argument("--episodes", type=positive, default=40, help="image tasks to run (default 40)")
    q.add_argument("--split", default="test", choices=["train", "test"], help="task split (default test)")
    q.add_argument("--start", type=non_negative, default=0, help="first task index (default 0)")
    q.add_argument(
        "--query",
        default="answer",
        choices=["answer", "last-prompt"],
        help="attention from every decoding step of the round-2 answer (default) or from the last "
        "prompt token only",
    )
    q.add_argument(
        "--env-kwargs",
        default=None,
        metavar="JSON",
        help=f'the env\'s constructor kwargs, for the run and the replay: \'{{"{ENV_ID}": {{"tone": "strong"}}}}\' '
        "(a run's episodes are image tasks whatever `modality` says)",
    )
    q.add_argument("--temperature", type=float, default=0.0, help="sampling temperature (default 0: greedy)")
    q.add_argument("--max-new-tokens", type=positive, default=16, help="tokens per reply (default 16)")
    q.add_argument("--max-images", type=positive, default=1, help="latest images the model sees (default 1)")
    q.add_argument("--concurrency", type=positive, default=8, help="episodes in flight (default 8)")
    q.add_argument("--device", default="auto", help="cpu, cuda, ... (default: cuda if available)")
    q.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    q.set_defaults(func=run_attention)


def check_paths(args: argparse.Namespace) -> str | None:
    """What is wrong with the paths given, before any model loads; None when nothing is."""
    model = Path(args.model)
    if not model.is_dir():
        return f"--model {args.model}: no such directory"
    if not (model / "config.json").is_file():
        return f"--model {args.model}: not a checkpoint directory (no config.json)"
    missing = [path for path in args.trajectories or [] if not Path(path).is_file()]
    if missing:
        return f"--trajectories: no such file: {', '.join(missing)}"
    if Path(args.out).exists() and not Path(args.out).is_dir():
        return f"--out {args.out}: exists and is not a directory"
    return None


def run_attention(args: argparse.Namespace) -> int:
    if args.env != ENV_ID:
        return refuse(f"--env {args.env}: the attention probe reads {ENV_ID}'s outcomes; use --env {ENV_ID}")
    problem = check_paths(args)
    if problem:
        return refuse(problem)
    try:
        env_kwargs = parse_env_kwargs(args.env_kwargs, [ENV_ID]).get(ENV_ID, {})
        envs.check_kwargs(ENV_ID, env_kwargs, from_client=False)
    except ValueError as error:
        return refuse(str(error))

    from evol.analysis.attention import (
        ImageAttentionProbe,
        NotAVisionModel,
        analyze,
        format_table,
        image_token_id,
        run_image_episodes,
        write_report,
    )
    from evol.trajectory import read_trajectories

    try:
        image_token_id(args.model)
    except (NotAVisionModel, OSError, ValueError) as error:
        return refuse(f"--model {args.model}: {error}")
    if args.trajectories:
        try:
            trajectories = [t for path in args.trajectories for t in read_trajectories(path)]
        except (ValueError, TypeError) as error:
            return refuse(f"--trajectories: cannot read the episodes: {error}")
        if not any(t.env == ENV_ID for t in trajectories):
            return refuse(f"--trajectories: no {ENV_ID} episode in {', '.join(args.trajectories)}")
    else:
        problem = other_agents(Path(args.out) / "trajectories.jsonl", f"hf-vision:{args.model}")
        if problem:
            return refuse(problem)
        trajectories = run_image_episodes(
            args.model,
            Path(args.out) / "trajectories.jsonl",
            args.episodes,
            split=args.split,
            start=args.start,
            env_kwargs=env_kwargs,
            temperature=args.temperature,
            max_new_tokens=args.max_new_tokens,
            device=args.device,
            max_images=args.max_images,
            seed=args.seed,
            concurrency=args.concurrency,
        )
    probe = ImageAttentionProbe(args.model, device=args.device, max_images=args.max_images)
    try:
        report = analyze(trajectories, probe, env_kwargs, args.query)
    finally:
        probe.close()
    report["model"] = str(args.model)
    report["source"] = (
        list(args.trajectories) if args.trajectories else str(Path(args.out) / "trajectories.jsonl")
    )
    json_path, png_path = write_report(report, args.out)
    print(format_table(report))
    print(f"evol: wrote {json_path} and {png_path}")
    return 0


def other_agents(path: Path, agent: str) -> str | None:
    """Why the episodes file of an earlier run in --out cannot be resumed by `agent`; None if it can."""
    if not path.is_file():
        return None
    from evol.trajectory import read_trajectories

    others = sorted({t.agent for t in read_trajectories(path)} - {agent})
    if others:
        return f"--out: {path} holds episodes of {', '.join(others)}; give a fresh --out for {agent}"
    return None
