"""AgentGym's env-server protocol over EvolGym's sessions: `evol serve ENV --agentgym`.

AgentGym's clients and trainers (AgentGym, AgentGym-RL) talk to one server per env family and
name env instances by integers: `POST /create`, `POST /reset {id, data_idx}` (Maze: `game`,
Wordle: `seed`, WebShop: `{env_idx, session_id}`), `POST /step {id, action}`,
`GET /observation?id=`, `GET /available_actions?id=`, `GET /filtered_vocab?id=` (Wordle),
`POST /close {id}`. This package serves that protocol for the families both projects share
(`families.FAMILIES`: BabyAI, WebShop, Maze, Wordle, TextCraft, SciWorld), each family's reset key
mapped to the env's `task` option, over the native API's `EnvService` (its workers, capacity,
reaper, time and size limits, token and Host checks).
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass

import envs
from server.agentgym.app import AgentGymError, AgentGymService, create_agentgym_app
from server.agentgym.families import FAMILIES

PREFIX = re.compile(r"(/[A-Za-z0-9._~-]+)+")

__all__ = [
    "FAMILIES",
    "AgentGymError",
    "AgentGymOptions",
    "AgentGymService",
    "create_agentgym_app",
    "options_from_args",
]


@dataclass(frozen=True)
class AgentGymOptions:
    """How `--agentgym` serves: the routes' path prefix ("" for the root, e.g. "/maze") and the
    split AgentGym's task indices address (None: the env's default)."""

    prefix: str = ""
    split: str | None = None

    def check(self, env_ids: list[str]) -> None:
        """A ValueError saying what is wrong with serving `env_ids` this way."""
        if len(env_ids) != 1:
            raise ValueError(
                "--agentgym serves one env family per server, as AgentGym does: start one server per env"
            )
        env_id = env_ids[0]
        if env_id not in FAMILIES:
            raise ValueError(f"--agentgym serves {', '.join(FAMILIES)}; not {env_id}")
        if self.prefix and not PREFIX.fullmatch(self.prefix):
            raise ValueError(f"--agentgym-prefix must be a path such as /maze, got {self.prefix!r}")
        splits = envs.env_class(env_id).splits
        if self.split is not None and self.split not in splits:
            raise ValueError(f"--agentgym-split for {env_id} must be one of {', '.join(splits)}")


def options_from_args(args: argparse.Namespace) -> AgentGymOptions | None:
    """What `--agentgym`, `--agentgym-prefix` and `--agentgym-split` ask for (None: the native
    API); a ValueError says what is wrong."""
    if not args.agentgym:
        if args.agentgym_prefix or args.agentgym_split:
            raise ValueError("--agentgym-prefix and --agentgym-split need --agentgym")
        return None
    options = AgentGymOptions(prefix=args.agentgym_prefix.rstrip("/"), split=args.agentgym_split)
    options.check(args.envs)
    return options
