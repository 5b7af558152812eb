"""`evol eval`: evaluate an agent on fixed test task sets (`evol.evaluate.evaluate`).

Writes `results.json`, `results.md` and `success.png`, and the reports the env families
register for the envs of the run (`envs.register_report`), whose flags (e.g. math's
`--refine R --critic SPEC`) this command adds without knowing any env; a report's figure is
written as PNG beside its JSON and printed as a table.

A report flag may name a model counterpart of the env (math's `--critic`): where it sets a
kwarg the env declares as a named built-in (`"oracle"`) and the value is none of those, the
value is an agent spec (`hf:PATH`, `openai:URL#MODEL`, ...), built once here and handed to
the envs as their counterpart, as `evol serve --counterpart NAME=SPEC` does for served envs.
It is asked once before any episode runs: a spec that names no agent, or a model that does
not answer, refuses the command (exit 2); a counterpart failing later fails its episodes
(faults, exit 1). A run in which no episode was completed exits 1.

`--best-of N --rm SPEC` runs N episodes of each task (sampling, so `--temperature` > 0) and
keeps one per task (`evol.rewards.best_of_n`: per episode, since a turn cannot be re-drawn
without replaying the env): SPEC `oracle` keeps the one with the highest env reward, a
directory is a reward model (`evol.rewards.classifier.ClassifierRM`, e.g. from `evol train
rm`) whose highest-scored episode is kept. One table (`best_of_n.md/.json/.png`) gives the
success of plain sampling, of BoN with the RM and of BoN with the oracle on the same episodes;
the usual reports cover all N samples (plain sampling).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import envs
from envs.registry import eval_reports
from evol.commands.agent_runs import add_agent_flags, build_engine, ray_flags_problem, report_faults
from evol.commands.common import parse_env_kwargs, refuse, unknown_env
from evol.commands.rollout import add_options_flag, parse_task_options, try_task_options

PROBE = [{"role": "user", "content": "Reply with OK."}]  # what a counterpart is asked before the run


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
    p.add_argument(
        "--best-of",
        type=int,
        default=None,
        metavar="N",
        help="Best-of-N: N episodes per task, the one --rm scores highest kept (needs --temperature > 0)",
    )
    p.add_argument(
        "--rm",
        default=None,
        metavar="SPEC",
        help="the reward model of --best-of: `oracle` (the env's reward), a reward-model "
        "checkpoint directory (evol train rm), or a spec of `evol rm-bench --rm`",
    )
    add_options_flag(p)
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


def model_counterparts(kwargs_by_env: dict[str, dict[str, Any]], remote: bool) -> dict[str, Any]:
    """Replace, in `kwargs_by_env`, each value that names a model counterpart (a kwarg declared
    as an object with named built-ins, given a string that is none of them) by the agent its
    spec names (`agents.LazyAgent`, one per spec, not built yet); returns them by spec. A
    ValueError says which kwarg is wrong: a spec that names no agent, or, with served envs
    (`remote`), any model (their server takes it: `evol serve --counterpart`)."""
    from agents import LazyAgent

    built: dict[str, Any] = {}
    for env_id, kwargs in kwargs_by_env.items():
        params = envs.env_class(env_id).kwarg_params
        for name, value in kwargs.items():
            param = params.get(name)
            if (
                not (isinstance(value, str) and param and "object" in param.kinds and param.choices)
                or value in param.choices
            ):
                continue
            if remote:
                raise ValueError(
                    f"{name} {value!r}: with --url the envs run on their server, which takes a model "
                    f"{name} when it starts (evol serve {env_id} --counterpart {name}={value}); here "
                    f"{name} is one of {list(param.choices)}"
                )
            if value not in built:
                try:
                    built[value] = LazyAgent(value)
                except ValueError as error:
                    raise ValueError(f"{name} {value!r}: {error}") from None
            kwargs[name] = built[value]
    return built


def probe_counterparts(counterparts: dict[str, Any], built: list[Any]) -> str | None:
    """Build each counterpart (appended to `built`, for closing) and ask it for one token; why
    one cannot answer, or None. An HTTP endpoint is asked with one retry only, so that a dead
    URL is told at once (the counterpart itself keeps the agent's usual retries)."""
    from agents import load_agent

    for spec, agent in counterparts.items():
        probe = None
        try:
            if spec.startswith("openai:"):
                probe = load_agent(spec, max_retries=1)
                probe.complete([PROBE], max_new_tokens=1)
            built.append(agent.load())
            if probe is None:
                agent.complete([PROBE], max_new_tokens=1)
        except Exception as error:
            return f"the counterpart {spec} cannot be used: {type(error).__name__}: {error}"
        finally:
            if probe is not None:
                probe.close()
    return None


def best_of_problem(args: argparse.Namespace) -> str | None:
    """Why `--best-of`/`--rm` cannot be used as given, or None."""
    if args.best_of is None and args.rm is None:
        return None
    if args.best_of is None:
        return "--rm needs --best-of N"
    if args.rm is None:
        return "--best-of needs --rm SPEC (oracle, or a reward-model checkpoint directory)"
    if args.best_of < 2:
        return f"--best-of must be >= 2, got {args.best_of}"
    if args.samples != 1:
        return "--best-of N runs N samples per task itself; leave --samples out"
    if args.temperature == 0:
        return "--best-of N with greedy decoding repeats one episode; set --temperature"
    if args.rm != "oracle" and (Path(args.rm).is_dir() or args.rm.startswith("classifier:")):
        from evol.rewards.classifier import check_checkpoint

        try:
            check_checkpoint(args.rm.removeprefix("classifier:"))
        except ValueError as error:
            return f"--rm {args.rm}: {error} (SPEC is `oracle` or a reward-model checkpoint directory)"
    elif args.rm != "oracle" and args.rm != "guard" and args.rm.partition(":")[0] not in ("judge", "openai"):
        return (
            f"--rm {args.rm}: not a checkpoint directory, nor a reward-model spec "
            "(oracle, guard, classifier:DIR, judge:AGENT_SPEC, openai:URL#MODEL)"
        )
    return None


def load_rm(spec: str) -> Any:
    """The reward model of `--rm SPEC` (None for `oracle`: the oracle is in every BoN table): a
    checkpoint directory, or any spec of `evol rm-bench --rm` (classifier:DIR, judge:AGENT,
    openai:URL#MODEL, guard)."""
    if spec == "oracle":
        return None
    from evol.rewards.backends import load_rm as load_spec

    return load_spec(f"classifier:{spec}" if Path(spec).is_dir() else spec)


def run(args: argparse.Namespace) -> int:
    from evol.evaluate import eval_specs, evaluate, markdown_table
    from evol.ray_rollout import RayUnavailable, ShardsFailed

    problem = unknown_env(args.env) or best_of_problem(args) or ray_flags_problem(args)
    if problem:
        return refuse(problem)
    rm = None
    if args.best_of is not None:
        try:
            rm = load_rm(args.rm)
        except Exception as error:
            return refuse(f"--rm {args.rm}: cannot be loaded: {type(error).__name__}: {error}")
        args.samples = args.best_of
    if args.samples > 1 and args.temperature == 0:
        return refuse("--samples > 1 with greedy decoding repeats one answer; set --temperature")
    try:
        env_kwargs = parse_env_kwargs(args.env_kwargs, args.env)
        reported = report_env_kwargs(args)
        counterparts = model_counterparts(reported, remote=bool(args.url))
        for env_id, kwargs in reported.items():
            env_kwargs.setdefault(env_id, {}).update(kwargs)
        options = parse_task_options(args.options, args.env)
    except ValueError as error:
        return refuse(str(error))
    tasks = dict.fromkeys(args.env, args.episodes)
    built: list[Any] = []
    try:
        problem = probe_counterparts(counterparts, built)
        if problem:
            return refuse(problem)
        if not args.url:
            try:
                try_task_options(eval_specs(tasks, 1, options), env_kwargs, options)
            except ValueError as error:
                return refuse(str(error))
        try:
            engine = build_engine(args, env_kwargs)
        except RayUnavailable as error:  # --ray: no Ray, or no cluster at the address
            return refuse(str(error))
        except ValueError as error:  # an agent spec that names no agent
            return refuse(f"--agent {args.agent}: {error}")
        try:
            result = evaluate(
                engine,
                tasks,
                args.out,
                agent=args.agent,
                samples=args.samples,
                env_kwargs=env_kwargs,
                log=print,
                options=options,
            )
        except ShardsFailed as error:  # --ray: the actors cannot build the agent
            return refuse(str(error))
    finally:
        for agent in built:
            agent.close()
    status = report_faults(result.run)
    print(markdown_table(result.summary, title=f"Evaluation of {args.agent}"))
    print(f"evol: faults this run: {result.run.stats.fault_summary()}")
    if not any(t.error is None for t in result.trajectories):
        print(
            "evol: no episode of this run was completed (see the faults above); the reports are empty",
            file=sys.stderr,
        )
        status = 1
    for written in result.reports:
        if written.error:
            print(
                f"evol: the {written.report.name} report of {written.env} failed: {written.error}",
                file=sys.stderr,
            )
            status = 1
            continue
        print(f"{written.report.name}: {json.dumps(written.headline())} (details in {written.path})")
        for note in written.notes():
            print(f"{written.report.name}: {note}")
        table = written.table()
        if table:
            print(f"\n{written.report.name} of {written.env} ({written.figure_path}):\n{table}")
    out = result.out
    print(f"evol: wrote {out / 'results.json'}, {out / 'results.md'}, {out / 'success.png'}")
    if args.best_of is not None:
        from evol.rewards.best_of_n import best_of_n, bon_table, write_bon

        try:
            bon = best_of_n(result.trajectories, rm)
        finally:
            if rm is not None:
                rm.close()
        title = f"Best-of-{args.best_of} of {args.agent} (RM: {args.rm})"
        paths = write_bon(bon, out, title)
        print(bon_table(bon, title))
        print(f"evol: wrote {paths['json']}, {paths['md']}, {paths['png']}")
    return status
