"""`evol data KIND`: write training data sets: math critiques and self-talk, chart images with
their QA, or preference pairs from rollout files."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("data", help="write training data sets: critiques (math) or charts")
    kinds = p.add_subparsers(dest="kind", required=True, metavar="KIND")
    q = kinds.add_parser(
        "critiques",
        help="AutoMathCritique-style critic SFT records in MathCritique's alpaca format "
        "(correct, inserted, sampled and resampled solutions; Monte-Carlo filtered critiques)",
    )
    q.add_argument("--n", type=int, required=True, help="records to write")
    q.add_argument("--out", required=True, help="JSONL file (a .json path: one JSON list, as released)")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--split", default="train", help="train (default) or test")
    q.add_argument(
        "--difficulty", default="mixed", help="easy, medium, hard or mixed (levels take turns; default)"
    )
    q.add_argument(
        "--data", metavar="FILE", help="a GSM8K- or MATH-style problem file instead of generated ones"
    )
    q.add_argument(
        "--actor",
        metavar="SPEC",
        help="agent spec that samples solutions (sampled, resampled-from-a-step); default none",
    )
    q.add_argument(
        "--methods",
        help="comma-separated flawed-solution methods taking turns: inserted, sampled, resampled "
        "(default: inserted, plus sampled and resampled with --actor)",
    )
    q.add_argument(
        "--correct-share", type=float, default=0.25, help="share of correct-solution records (default 0.25)"
    )
    q.add_argument("--samples", type=int, default=4, help="actor samples per question (default 4)")
    q.add_argument(
        "--temperature", type=float, default=0.7, help="actor and refiner temperature (default 0.7)"
    )
    q.add_argument(
        "--refiner",
        default="oracle",
        metavar="SPEC",
        help="who writes the refinements of the Monte-Carlo filter: oracle (default; `expert` too) or an agent spec",
    )
    q.add_argument("--mc-k", type=int, default=4, help="refinements per critique (default 4)")
    q.add_argument(
        "--mc-threshold",
        type=float,
        default=0.5,
        help="keep a critique if at least this share of its refinements reach the gold answer (default 0.5)",
    )
    q.add_argument(
        "--max-new-tokens", type=int, default=512, help="tokens per actor or refiner reply (default 512)"
    )
    q.set_defaults(func=run_critiques)
    q = kinds.add_parser(
        "charts",
        help="chart images, plotting code and QA JSONL (ReachQA fields): from the template generator "
        "(default) or written by a model (--synth agent: Code-as-Intermediary Translation)",
    )
    q.add_argument("--n", type=int, required=True, help="charts to write (kept, with --synth agent)")
    q.add_argument("--out", required=True, help="output directory")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--split", default="train")
    q.add_argument("--processes", type=int, default=2, help="rendering processes (default 2)")
    q.add_argument(
        "--synth",
        default="template",
        choices=["template", "agent"],
        help="template: the offline generator (default); agent: a model writes the plotting code and QA",
    )
    q.add_argument(
        "--agent", metavar="SPEC", help="--synth agent: the model, e.g. openai:URL#MODEL or hf:PATH"
    )
    q.add_argument(
        "--seeds", type=int, help="--synth agent: template charts whose code seeds self-instruct (default 18)"
    )
    q.add_argument(
        "--rounds",
        type=int,
        help="--synth agent: 1 self-instruct round, then evol-instruct rounds (default 2)",
    )
    q.add_argument("--tries", type=int, help="--synth agent: prompts a round may use, per chart (default 3)")
    q.add_argument("--temperature", type=float, help="--synth agent: sampling temperature (default 0.7)")
    q.add_argument("--max-new-tokens", type=int, help="--synth agent: tokens per reply (default 1024)")
    q.add_argument("--timeout", type=float, help="--synth agent: seconds a script may run (default 10)")
    q.set_defaults(func=run)
    q = kinds.add_parser(
        "pairs",
        help="preference pairs (TRL's {prompt, chosen, rejected}) from rollouts with K samples per task",
    )
    q.add_argument(
        "--from", dest="sources", nargs="+", required=True, metavar="ROLLOUT", help="trajectory JSONL files"
    )
    q.add_argument("--out", required=True, help="JSONL file")
    q.add_argument(
        "--pairing",
        default="first_divergence",
        choices=["first_divergence", "whole"],
        help="cut at the first differing reply (default) or pair whole episodes",
    )
    q.add_argument("--pairs-per-task", type=int, default=1, help="the most pairs one task gives (default 1)")
    q.set_defaults(func=run_pairs)
    q = kinds.add_parser(
        "mmsy",
        help="MM-SY's DPO pairs (steadfast > caving, a correction taken > a wrong answer kept) "
        "from evol/Sycophancy-v0 episodes",
    )
    q.add_argument("--from", dest="source", required=True, metavar="ROLLOUT", help="trajectory JSONL file")
    q.add_argument("--out", required=True, help="JSONL file (TRL's preference format)")
    q.add_argument(
        "--env-kwargs",
        default="{}",
        metavar="JSON",
        help='the constructor kwargs of the run, e.g. \'{"modality": "image"}\' (default {})',
    )
    q.set_defaults(func=run_mmsy)
    q = kinds.add_parser(
        "self-talk",
        help="self-talk SFT records for evol/MathCritique-v0: solutions that check themselves and correct "
        "themselves inline, from critique-refine episodes or made offline (trajectory JSONL for evol train bc)",
    )
    source = q.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--from",
        dest="sources",
        nargs="+",
        metavar="ROLLOUT",
        help="critique-refine episodes: trajectory JSONL of evol rollout on evol/MathCritique-v0 with a critic",
    )
    source.add_argument(
        "--n",
        type=int,
        help="records made offline: reference solutions and inserted mistakes, the oracle critic's critiques",
    )
    q.add_argument("--out", required=True, help="JSONL file")
    q.add_argument(
        "--data", metavar="FILE", help="the GSM8K- or MATH-style problem file (of the run, with --from)"
    )
    q.add_argument("--seed", type=int, help="--n: draws the inserted mistakes (default 0)")
    q.add_argument("--split", help="--n: train (default) or test")
    q.add_argument("--start", type=int, help="--n: the first task (default 0)")
    q.add_argument("--difficulty", help="--n: easy, medium, hard or mixed (level task mod 3; default)")
    q.add_argument(
        "--correct-share", type=float, help="--n: share of records whose solution is right (default 0.5)"
    )
    q.set_defaults(func=run_self_talk)


AGENT_SYNTH_FLAGS = ("agent", "seeds", "rounds", "tries", "temperature", "max_new_tokens", "timeout")


def run(args: argparse.Namespace) -> int:
    from envs.charts.data import write_chart_data
    from evol.commands.common import refuse

    if args.n < 0:
        return refuse(f"--n must be >= 0, got {args.n}")
    if args.synth == "agent":
        return run_chart_synthesis(args)
    given = [f"--{name.replace('_', '-')}" for name in AGENT_SYNTH_FLAGS if getattr(args, name) is not None]
    if given:
        return refuse(f"{', '.join(given)}: applies to --synth agent only")
    written = write_chart_data(args.n, args.out, seed=args.seed, split=args.split, processes=args.processes)
    print(f"evol: wrote {written} {args.kind} examples to {args.out}")
    return 0


def run_chart_synthesis(args: argparse.Namespace) -> int:
    from pathlib import Path

    from agents import LazyAgent
    from evol.charts_synthesis import SynthesisSettings, synthesize_charts
    from evol.commands.common import refuse

    if not args.agent:
        return refuse("--agent: --synth agent needs the model that writes the charts (an agent spec)")
    given = {name: getattr(args, name) for name in AGENT_SYNTH_FLAGS[1:] if getattr(args, name) is not None}
    settings = SynthesisSettings(
        n=args.n, processes=args.processes, split=args.split, seed=args.seed, **given
    )
    problems = settings.problems()
    if problems:
        name, reason = problems[0]
        return refuse(f"--{name.replace('_', '-')}: {reason}")
    if Path(args.out).exists() and not Path(args.out).is_dir():
        return refuse(f"--out: {args.out} is a file, not a directory")
    try:
        agent = LazyAgent(args.agent)
    except ValueError as error:
        return refuse(f"--agent: {error}")
    if agent.needs_env:
        return refuse(f"--agent {args.agent}: writes no text without an env; give a model")
    try:
        agent.load()
    except (OSError, ValueError) as error:
        return refuse(f"--agent {args.agent}: cannot load it: {error}")
    report = synthesize_charts(agent, args.out, settings, log=lambda line: print(f"evol: {line}"))
    print(report.table())
    print(
        f"evol: wrote {report.records} QA records of {report.charts['kept']} charts to {args.out}/{args.split}.jsonl; "
        f"rejections in {args.out}/synthesis_report.json"
    )
    return 0 if report.records else 1


def run_critiques(args: argparse.Namespace) -> int:
    from agents import LazyAgent
    from envs.errors import ParamError
    from envs.math.critique_data import ProblemSource
    from envs.math.data import CritiqueDataSettings, SettingError, write_critique_data
    from evol.commands.common import refuse

    if args.n < 0:
        return refuse(f"--n must be >= 0, got {args.n}")
    try:
        settings = CritiqueDataSettings(
            seed=args.seed,
            split=args.split,
            difficulty=args.difficulty,
            data=args.data,
            methods=tuple(m.strip() for m in args.methods.split(",")) if args.methods is not None else None,
            correct_share=args.correct_share,
            samples=args.samples,
            temperature=args.temperature,
            mc_k=args.mc_k,
            mc_threshold=args.mc_threshold,
            max_new_tokens=args.max_new_tokens,
        )
        actor = LazyAgent(args.actor) if args.actor else None
        settings.methods_for(actor)
        ProblemSource(settings.split, settings.difficulty, settings.data)
    except SettingError as error:
        return refuse(f"--{error.field.replace('_', '-')}: {error.reason}")
    except ParamError as error:
        return refuse(str(error))
    except ValueError as error:
        return refuse(f"--actor: {error}")
    try:
        refiner = "oracle" if args.refiner in ("oracle", "expert") else LazyAgent(args.refiner)
    except ValueError as error:
        return refuse(f"--refiner: {error}")
    for flag, agent in (("--actor", actor), ("--refiner", refiner)):
        if isinstance(agent, LazyAgent) and not agent.needs_env:
            try:
                agent.load()
            except (OSError, ValueError) as error:
                return refuse(f"{flag} {agent.spec}: cannot load it: {error}")
    report = write_critique_data(args.n, args.out, settings, actor=actor, refiner=refiner, progress=True)
    print(f"evol: wrote {report.summary()} to {args.out}")
    return 0


def run_pairs(args: argparse.Namespace) -> int:
    from pathlib import Path

    from evol.commands.common import refuse
    from evol.trainers.pairs import pairs_from_trajectories, write_pairs
    from evol.trajectory import read_trajectories

    missing = [path for path in args.sources if not Path(path).is_file()]
    if missing:
        return refuse(f"no such rollout file: {', '.join(missing)}")
    if args.pairs_per_task < 1:
        return refuse("--pairs-per-task must be >= 1")
    try:
        trajectories = sorted(
            (t for path in args.sources for t in read_trajectories(path)), key=lambda t: t.key
        )
    except (ValueError, TypeError) as error:
        return refuse(f"cannot read the rollouts: {error}")
    pairs = pairs_from_trajectories(trajectories, args.pairing, args.pairs_per_task)
    written = write_pairs(pairs, args.out)
    tasks = len({p["key"].rsplit("|", 1)[0] for p in pairs})
    print(f"evol: wrote {written} pairs from {len(trajectories)} episodes ({tasks} tasks) to {args.out}")
    return 0


def run_mmsy(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from envs.errors import ParamError
    from envs.sycophancy.env import SycophancyEnv
    from envs.sycophancy.mitigation import write_preference_pairs
    from evol.commands.common import refuse

    if not Path(args.source).is_file():
        return refuse(f"no such rollout file: {args.source}")
    try:
        env_kwargs = json.loads(args.env_kwargs)
    except json.JSONDecodeError as error:
        return refuse(f"--env-kwargs is not JSON: {error}")
    if not isinstance(env_kwargs, dict):
        return refuse("--env-kwargs must be a JSON object")
    try:
        SycophancyEnv(**env_kwargs).close()
    except (ParamError, TypeError) as error:
        return refuse(f"--env-kwargs: {error}")
    try:
        written = write_preference_pairs(args.source, args.out, env_kwargs)
    except (ValueError, KeyError, TypeError) as error:
        return refuse(f"cannot read the rollouts in {args.source}: {error}")
    print(f"evol: wrote {written} MM-SY pairs to {args.out}")
    return 0


SELF_TALK_SETTINGS = ("seed", "split", "start", "difficulty", "correct_share")


def run_self_talk(args: argparse.Namespace) -> int:
    from envs.math.self_talk import (
        SelfTalkError,
        SelfTalkSettings,
        generate_self_talk,
        self_talk_from_rollouts,
        write_self_talk,
    )
    from evol.commands.common import refuse

    given = {name: getattr(args, name) for name in SELF_TALK_SETTINGS if getattr(args, name) is not None}
    try:
        if args.sources is not None:
            if given:
                flags = ", ".join(f"--{name.replace('_', '-')}" for name in given)
                return refuse(f"{flags}: applies to --n (records made offline), not to --from")
            records, report = self_talk_from_rollouts(args.sources, args.data, progress=True)
            origin = ", ".join(args.sources)
        else:
            settings = SelfTalkSettings(data=args.data, **given)
            records, report = generate_self_talk(args.n, settings, progress=True)
            origin = f"{settings.split} tasks from task {settings.start}"
    except SelfTalkError as error:
        return refuse(f"--{error.field.replace('_', '-')}: {error}" if error.field else str(error))
    if not records:
        return refuse(f"no self-talk record could be made from {origin} ({report.summary()})")
    write_self_talk(records, args.out)
    print(f"evol: wrote {report.summary()} to {args.out} (from {origin})")
    return 0
