"""`evol rm-bench`: RMB's pairwise and Best-of-N accuracy of a reward model on RMB-format data."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from evol.commands.common import refuse


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "rm-bench",
        help="benchmark a reward model on RMB-format data (pairwise and Best-of-N accuracy)",
        description=(
            "Score every item of RMB-format data (Pairwise_set/ and BoN_set/, Helpfulness and "
            "Harmlessness, JSON or JSONL) with a reward model; write results.json, results.md and "
            "results.png (accuracy per category) into --out. Resumable: scores are cached per item "
            "in OUT/scores.jsonl and a rerun skips the items already scored."
        ),
    )
    parser.add_argument(
        "--rm",
        required=True,
        metavar="SPEC",
        help="classifier:DIR, judge:AGENT_SPEC (hf:PATH, vllm:PATH, openai:URL#MODEL), openai:URL#MODEL, or guard",
    )
    parser.add_argument(
        "--data",
        default=None,
        metavar="DIR",
        help="RMB-format directory or file (default: the shipped sample)",
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="output directory (a rerun resumes it)")
    parser.add_argument("--batch-size", type=int, default=16, help="items per RM call (default 16)")
    judge = parser.add_argument_group("generative judges (judge:, openai:)")
    judge.add_argument(
        "--judge-mode",
        choices=("pointwise", "pairwise"),
        default=None,
        help="score each answer 1-10, or choose among them (default pointwise)",
    )
    judge.add_argument(
        "--judge-style",
        choices=("direct", "reasoning"),
        default=None,
        help="the verdict only, or a short assessment first (default direct)",
    )
    judge.add_argument(
        "--criteria", default=None, help="the evaluation criteria text put in the judge's prompt"
    )
    judge.add_argument(
        "--votes", type=int, default=None, help="samples per judgement, combined by majority vote (default 1)"
    )
    judge.add_argument(
        "--temperature",
        type=float,
        default=None,
        help="sampling temperature (default 0 for one vote, 0.7 for several)",
    )
    judge.add_argument("--max-new-tokens", type=int, default=None, help="tokens per judge reply")
    clf = parser.add_argument_group("classifiers (classifier:)")
    clf.add_argument("--device", default=None, help="cpu, cuda, ... (default cpu)")
    clf.add_argument("--max-length", type=int, default=None, help="tokens per scored input (default 1024)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from envs.rewardjudge.data import SAMPLE_DIR
    from evol.rewards.backends import load_rm
    from evol.rewards.bench import BenchRunError, run_rm_bench

    data = Path(args.data) if args.data else SAMPLE_DIR
    if not data.exists():
        return refuse(f"--data: no such directory or file: {data}")
    if args.batch_size < 1:
        return refuse(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.votes is not None and args.votes < 1:
        return refuse(f"--votes must be >= 1, got {args.votes}")
    if args.max_new_tokens is not None and args.max_new_tokens < 1:
        return refuse(f"--max-new-tokens must be >= 1, got {args.max_new_tokens}")
    if args.temperature is not None and args.temperature < 0:
        return refuse(f"--temperature must be >= 0, got {args.temperature}")
    kind = args.rm.partition(":")[0]
    options: dict[str, Any] = {}
    if kind in ("judge", "openai"):
        options = dict(
            mode=args.judge_mode,
            style=args.judge_style,
            criteria=args.criteria,
            votes=args.votes,
            temperature=args.temperature,
            max_new_tokens=args.max_new_tokens,
        )
    elif kind == "classifier":
        options = dict(device=args.device, max_length=args.max_length)
    given = {
        "--judge-mode": args.judge_mode,
        "--judge-style": args.judge_style,
        "--criteria": args.criteria,
        "--votes": args.votes,
        "--temperature": args.temperature,
        "--max-new-tokens": args.max_new_tokens,
        "--device": args.device,
        "--max-length": args.max_length,
    }
    unused = [
        flag
        for flag, value in given.items()
        if value is not None and flag.lstrip("-").replace("-", "_").replace("judge_", "") not in options
    ]
    if unused:
        return refuse(f"{', '.join(unused)} do(es) not apply to --rm {args.rm}")
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    try:
        rm = load_rm(args.rm, **options)
    except (ValueError, OSError) as error:
        return refuse(f"--rm: {error}")
    try:
        results = run_rm_bench(
            rm, data, args.out, rm_spec=args.rm, batch_size=args.batch_size, progress=not args.no_progress
        )
    except BenchRunError as error:
        return refuse(f"--out: {error}")
    finally:
        rm.close()
    out = Path(args.out)
    print((out / "results.md").read_text(encoding="utf-8"))
    if results["skipped"]:
        print(
            f"{results['skipped']} record(s) skipped, each with its place and reason in {out / 'skipped.jsonl'}"
        )
    if results["unscored"]:
        print(
            f"{results['unscored']} item(s) the RM could not score (counted wrong): {out / 'failures.jsonl'}"
        )
    print(f"wrote {out / 'results.json'}, {out / 'results.md'}, {out / 'results.png'}")
    return 0
