# A shim for tests, in place of AgentGym's agentenv/agentenv/envs/__init__.py (commit
# 3ef9235d23e68e7c2920c5422ad957dc8ced5c6c): it imports the clients of the env families EvolGym serves
# (vendored beside it, unchanged) and none of the others.
from .babyai import BabyAIEnvClient, BabyAITask
from .lmrlgym import MazeEnvClient, MazeTask, WordleEnvClient, WordleTask
from .sciworld import SciWorldAdapter, SciworldEnvClient, SciworldTask
from .textcraft import TextCraftEnvClient, TextCraftTask
from .webshop import WebshopAdapter, WebshopEnvClient, WebshopTask
