"""The env HTTP client, kept under its old path: it lives in `envs.remote` (envs need no server code)."""

from envs.remote import *  # noqa: F403
from envs.remote import __all__  # noqa: F401
