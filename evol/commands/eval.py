"""`evol eval`: evaluate an agent on fixed test task sets (`evol.evaluate.evaluate`).

Writes `results.json`, `results.md` and `success.png`, and the reports the env families
register for the envs of the run (`envs.register_report`), whose flags (e.g. math's
`--refine`) this command adds without knowing any env.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from envs.registry import eval_reports
from evol.commands.agent_runs import add_agent_flags, build_engine, report_faults
from evol.commands.common import parse_env_kwargs, refuse, unknown_env


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "eval",
        help="evaluate an agent on a fixed test task set; write results.json/.md/.png",
        description="Evaluate an agent on a fixed test task set. Exits 1 when some episodes could not "
        "be completed (the report covers the others; rerunning the command retries them).",
    )
    p.add_argument("--env", nargs="+", required=True, metavar="ID", help="env ids")
    p.add_argument("--episodes", type=int, required=True, help="test tasks per env")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument(
        "--samples",
        type=int,
        default=1,
        help="samples per task (majority vote and pass@k where the env reports them)",
    )
    add_agent_flags(p)
    add_report_flags(p)
    p.set_defaults(func=run)


def add_report_flags(p: argparse.ArgumentParser) -> None:
    """The flags of the registered env reports (`EvalReport.options`); one flag serves every
    report that declares it, and a flag `evol eval` has of its own is not taken."""
    for report in eval_reports():
        for name, option in report.options.items():
            try:
                p.add_argument(
                    "--" + name.replace("_", "-"),
                    dest=name,
                    type=option.type,
                    default=option.default,
                    metavar=option.metavar,
                    help=option.help,
                )
            except argparse.ArgumentError:  # declared by an earlier report, or one of ours
                continue


def report_env_kwargs(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """The env kwargs the report flags given ask for; a ValueError for a flag of a report that
    covers no env of the run."""
    kwargs: dict[str, dict[str, Any]] = {}
    for report in eval_reports():
        values = {name: getattr(args, name, option.default) for name, option in report.options.items()}
        given = [name for name, option in report.options.items() if values[name] != option.default]
        covered = [env_id for env_id in args.env if report.covers(env_id)]
        if given and not covered:
            flags = ", ".join("--" + name.replace("_", "-") for name in given)
            raise ValueError(f"{flags} needs an env of the {report.name} report ({', '.join(report.envs)})")
        for env_id in covered:
            kwargs.setdefault(env_id, {}).update(report.kwargs_for(values))
    return kwargs


def run(args: argparse.Namespace) -> int:
    from evol.evaluate import evaluate, markdown_table

    problem = unknown_env(args.env)
    if problem:
        return refuse(problem)
    if args.samples > 1 and args.temperature == 0:
        return refuse("--samples > 1 with greedy decoding repeats one answer; set --temperature")
    try:
        env_kwargs = parse_env_kwargs(args.env_kwargs, args.env)
        for env_id, kwargs in report_env_kwargs(args).items():
            env_kwargs.setdefault(env_id, {}).update(kwargs)
    except ValueError as error:
        return refuse(str(error))
    engine = build_engine(args, env_kwargs)
    tasks = dict.fromkeys(args.env, args.episodes)
    result = evaluate(
        engine, tasks, args.out, agent=args.agent, samples=args.samples, env_kwargs=env_kwargs, log=print
    )
    status = report_faults(result.run)
    print(markdown_table(result.summary, title=f"Evaluation of {args.agent}"))
    print(f"evol: faults this run: {result.run.stats.fault_summary()}")
    for written in result.reports:
        if written.error:
            print(
                f"evol: the {written.report.name} report of {written.env} failed: {written.error}",
                file=sys.stderr,
            )
            status = 1
        else:
            print(f"{written.report.name}: {json.dumps(written.headline())} (details in {written.path})")
    out = result.out
    print(f"evol: wrote {out / 'results.json'}, {out / 'results.md'}, {out / 'success.png'}")
    return status
