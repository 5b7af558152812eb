"""`evol train NAME [--config FILE] [--set FIELD=VALUE] [--FIELD VALUE]`: train an agent.

NAME picks a trainer of `evol.trainers.TRAINERS` (one config dataclass and one trainer class
each); `evol.trainers.config.parse_config` fills the config from the file, `--set` and flags,
and `evol train NAME --help` lists every field with its help and default.
"""

from __future__ import annotations

import argparse
import importlib
from typing import Any

from evol.commands.common import refuse
from evol.trainers import TRAINERS


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "train", help="train an agent: behaviour cloning or AgentEvol, from a YAML config and flags"
    )
    p.add_argument("algorithm", choices=sorted(TRAINERS), help="which trainer")
    p.add_argument(
        "config_args",
        nargs=argparse.REMAINDER,
        metavar="...",
        help="--config FILE (YAML mapping onto the trainer's config dataclass), --set FIELD=VALUE, "
        "--FIELD VALUE; `evol train NAME --help` lists the fields",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from evol.trainers.config import ConfigError, parse_config
    from evol.trainers.data import TrajectoryFileError

    module_name, config_name, trainer_name = TRAINERS[args.algorithm]
    module = importlib.import_module(module_name)
    try:
        config = parse_config(
            getattr(module, config_name), args.config_args, prog=f"evol train {args.algorithm}"
        )
    except ConfigError as error:
        return refuse(f"bad config: {error}")
    try:
        result = getattr(module, trainer_name)(config).train()
    except TrajectoryFileError as error:
        return refuse(f"bad data: {error}")
    if isinstance(result, dict):
        from evol.trainers.agentevol import format_table

        print(format_table(result))
    else:
        print(f"evol: trained model saved in {result.model_dir} ({result.tokens_per_s:.0f} tokens/s)")
    return 0
