"""EvolGym environments: one contract (`TextEnv`), one registry, one subpackage per family.

import envs
env = envs.make("evol/BabyAI-v0")                       # local
env = envs.make("evol/BabyAI-v0", url="http://127.0.0.1:8000")   # served
"""

from __future__ import annotations

from typing import Any

from envs.core import TextEnv, TextSpace
from envs.errors import EpisodeOver, EpisodeStateError, ParamError, ResetNeeded, TaskOptionError
from envs.expert import run_expert
from envs.params import Param
from envs.registry import (
    EvalOption,
    EvalReport,
    check_kwargs,
    check_options,
    env_class,
    env_ids,
    env_spec,
    make_local,
    register,
    register_builtin,
    register_report,
    reports_for,
)

register_builtin()


def make(env_id: str, url: str | list[str] | None = None, **kwargs: Any):
    """A local env, or with `url` (one or several server URLs) a `RemoteEnv` on a server."""
    if url is None:
        return make_local(env_id, **kwargs)
    from envs.remote import RemoteEnv  # requests and the wire format, loaded only for served envs

    token = kwargs.pop("token", None)
    return RemoteEnv(env_id, url=url, token=token, env_kwargs=kwargs)


__all__ = [
    "EpisodeOver",
    "EpisodeStateError",
    "EvalOption",
    "EvalReport",
    "Param",
    "ParamError",
    "ResetNeeded",
    "TaskOptionError",
    "TextEnv",
    "TextSpace",
    "check_kwargs",
    "check_options",
    "env_class",
    "env_ids",
    "env_spec",
    "make",
    "make_local",
    "register",
    "register_report",
    "reports_for",
    "run_expert",
]
