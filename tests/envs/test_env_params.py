"""Declared env parameters: every kwarg and reset option a client can set is declared, typed and bounded;
the env, `envs.check_kwargs` / `envs.check_options` and the JSON Schema refuse the same values; caches
built from client-chosen values stay bounded."""

from __future__ import annotations

import fcntl
import inspect
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import pytest

import envs
from envs.caches import BoundedCache
from envs.errors import EpisodeOver, ParamError, ResetNeeded, TaskOptionError
from envs.params import Param, check_params, params_schema
from envs.redteam.diversity import PromptMemory
from envs.textworld.games import GAME_FILE, GameCache, GameParams
from envs.webshop import catalog as webshop_catalog
from envs.webshop import search as webshop_search

ENV_IDS = envs.env_ids()  # the built-in envs and the test plugin's acme/Counter-v0
CHECKS = {"kwargs": envs.check_kwargs, "options": envs.check_options}


def declared(where: str) -> list[tuple[str, str, Param]]:
    """(env id, key, Param) of every parameter a client may set."""
    found = []
    for env_id in ENV_IDS:
        cls = envs.env_class(env_id)
        params = cls.kwarg_params if where == "kwargs" else cls.option_params
        found += [(env_id, key, param) for key, param in params.items() if not param.server_only]
    return found


NUMBERS = [
    (where, env_id, key, param)
    for where in CHECKS
    for env_id, key, param in declared(where)
    if {"int", "float"} & set(param.kinds)
]
CLIENT_PARAMS = [(where, env_id, key, param) for where in CHECKS for env_id, key, param in declared(where)]


def case_id(case: tuple) -> str:
    return f"{case[1]}-{case[0]}-{case[2]}"


# ---- declarations -------------------------------------------------------------------------
def test_the_test_plugin_env_is_among_the_checked_envs():
    assert "acme/Counter-v0" in ENV_IDS and "evol/WebShop-v0" in ENV_IDS


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_every_constructor_kwarg_is_declared(env_id):
    cls = envs.env_class(env_id)
    signature = inspect.signature(cls.__init__)
    assert set(signature.parameters) - {"self"} == set(cls.kwarg_params)


def test_a_client_settable_param_without_an_upper_bound_cannot_be_declared():
    with pytest.raises(ValueError, match="maximum"):
        Param("int", minimum=0)
    with pytest.raises(ValueError, match="max_length"):
        Param("str")
    with pytest.raises(ValueError, match="max_length"):
        Param("list", items=Param("int", maximum=3))
    assert Param("object", server_only=True).server_only  # files and objects: the server's business


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_schemas_are_valid_closed_and_bounded(env_id):
    spec = envs.env_spec(env_id)
    cls = envs.env_class(env_id)
    for name, params in (("kwargs_schema", cls.kwarg_params), ("options_schema", cls.option_params)):
        schema = spec[name]
        jsonschema.Draft202012Validator.check_schema(schema)
        assert schema["additionalProperties"] is False
        assert set(schema["properties"]) == {key for key, param in params.items() if not param.server_only}
        for prop in schema["properties"].values():
            text = str(prop)
            if "'integer'" in text or "'number'" in text:
                assert "maximum" in text.lower()  # maximum or exclusiveMaximum
            if "'string'" in text:
                assert "maxLength" in text or "enum" in text
            if "'array'" in text:
                assert "maxItems" in text


# ---- unknown keys -------------------------------------------------------------------------
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_unknown_kwargs_are_refused_by_the_check_and_the_constructor(env_id):
    with pytest.raises(ParamError, match="unknown kwarg.*bogus"):
        envs.check_kwargs(env_id, {"bogus": 1})
    with pytest.raises(ParamError, match="unknown kwarg.*bogus"):
        envs.make(env_id, bogus=1)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_unknown_options_are_refused_by_the_check_and_by_reset(env_id):
    with pytest.raises(TaskOptionError, match="unknown option.*bogus"):
        envs.check_options(env_id, {"bogus": 1})
    env = envs.make(env_id)
    try:
        with pytest.raises(TaskOptionError, match="unknown option.*bogus"):
            env.reset(seed=0, options={"task": 0, "bogus": 1})
    finally:
        env.close()


def test_none_valued_options_mean_the_default():
    assert envs.check_options("evol/Maze-v0", {"task": 3, "split": None, "size": None}) == {"task": 3}
    assert envs.check_kwargs("evol/Maze-v0", {"max_turns": None}) == {"max_turns": None}


# ---- bounds and types ---------------------------------------------------------------------
@pytest.mark.parametrize("where, env_id, key, param", NUMBERS, ids=map(case_id, NUMBERS))
def test_numbers_outside_the_declared_range_are_refused_and_the_bounds_accepted(where, env_id, key, param):
    check = CHECKS[where]
    integer = "int" in param.kinds
    above = int(param.maximum) + 1 if integer else param.maximum * 2 + 1
    with pytest.raises(ParamError) as refused:
        check(env_id, {key: above})
    message = str(refused.value)
    assert key in message and repr(above) in message and str(int(param.maximum)) in message
    if not param.exclusive_maximum:
        maximum = int(param.maximum) if integer else param.maximum
        assert check(env_id, {key: maximum}) == {key: maximum}
    if param.minimum is not None:
        below = int(param.minimum) - 1 if integer else param.minimum - 0.5
        with pytest.raises(ParamError, match=key):
            check(env_id, {key: below})
        assert check(env_id, {key: param.minimum})[key] == param.minimum


@pytest.mark.parametrize("where, env_id, key, param", NUMBERS, ids=map(case_id, NUMBERS))
def test_the_schema_bounds_are_the_checked_bounds(where, env_id, key, param):
    schema = params_schema(
        envs.env_class(env_id).kwarg_params if where == "kwargs" else envs.env_class(env_id).option_params
    )
    integer = "int" in param.kinds
    above = int(param.maximum) + 1 if integer else param.maximum * 2 + 1
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({key: above}, schema)
    if not param.exclusive_maximum:
        jsonschema.validate({key: int(param.maximum) if integer else param.maximum}, schema)


def wrong_values(param: Param) -> list:
    """Values of a type `param` does not take: bools for numbers, numbers written as strings, ..."""
    candidates = [True, "7", "x", 7, 2.5, ["x"], {"k": 1}]
    kinds = set(param.kinds)
    if "object" in kinds:  # from a client, only the choices
        return [value for value in candidates if value not in (param.choices or ())]
    accepted = {
        bool: {"bool"},
        str: {"str"},
        int: {"int", "float"},
        float: {"float"},
        list: {"list"},
        dict: {"dict"},
    }
    return [value for value in candidates if not accepted[type(value)] & kinds]


@pytest.mark.parametrize("where, env_id, key, param", CLIENT_PARAMS, ids=map(case_id, CLIENT_PARAMS))
def test_values_of_the_wrong_type_are_refused(where, env_id, key, param):
    wrong = wrong_values(param)
    assert wrong
    for value in wrong:
        with pytest.raises(ParamError) as refused:
            CHECKS[where](env_id, {key: value})
        assert key in str(refused.value)


def test_a_bool_is_not_an_integer_and_a_number_written_as_text_is_not_a_number():
    params = {"n": Param("int", maximum=10), "x": Param("float", maximum=1.0)}
    for values in ({"n": True}, {"n": "3"}, {"n": 2.0}, {"x": "0.5"}, {"x": False}, {"x": float("nan")}):
        with pytest.raises(ParamError):
            check_params(params, values)
    assert check_params(params, {"n": 3, "x": 1}) == {"n": 3, "x": 1.0}


def test_huge_or_nested_values_are_refused_with_a_short_message():
    nested: list = []
    for _ in range(3000):
        nested = [nested]
    for value in (10**5000, list(range(100_000)), "x" * 100_000, nested, [None]):
        with pytest.raises(ParamError) as refused:
            envs.check_kwargs("evol/BabyAI-v0", {"levels": value})
        assert len(str(refused.value)) < 600


def test_an_error_names_the_key_what_was_expected_and_what_was_given():
    with pytest.raises(ParamError) as refused:
        envs.check_kwargs("evol/WebShop-v0", {"num_products": 200_000})
    message = str(refused.value)
    assert "num_products" in message and "[10, 20000]" in message and "200000" in message


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_kwargs_only_the_server_sets_are_refused_from_a_client(env_id):
    cls = envs.env_class(env_id)
    for key in (key for key, param in cls.kwarg_params.items() if param.server_only):
        with pytest.raises(ParamError, match=f"{key} is set by the server only"):
            envs.check_kwargs(env_id, {key: "/etc/passwd"})


def test_counterpart_names_are_accepted_from_a_client_and_file_specs_are_not():
    assert envs.check_kwargs("evol/MathCritique-v0", {"critic": "oracle"}) == {"critic": "oracle"}
    assert envs.check_kwargs("evol/RedTeam-Attacker-v0", {"defender": "robust", "judge": "guard"})
    for kwargs in ({"judge": "classifier:/tmp/model"}, {"defender": {"act": 1}}, {"critic": "mine"}):
        env_id = "evol/MathCritique-v0" if "critic" in kwargs else "evol/RedTeam-Attacker-v0"
        with pytest.raises(ParamError):
            envs.check_kwargs(env_id, kwargs)
    with pytest.raises(ParamError, match="attacker is set by the server only"):
        envs.check_kwargs("evol/RedTeam-Defender-v0", {"attacker": "expert"})


# ---- the cases --------------------------------------------------------------------
def test_babyai_levels_must_be_names_of_known_levels():
    for levels in ([1], "GoToLocal", [["GoToLocal"]], ["NoSuchLevel"]):
        with pytest.raises(ParamError, match="levels"):
            envs.check_kwargs("evol/BabyAI-v0", {"levels": levels})
        with pytest.raises(ParamError, match="levels"):
            envs.make("evol/BabyAI-v0", levels=levels)
    env = envs.make("evol/BabyAI-v0", levels=["GoToLocal", "BabyAI-PickupLoc-v0"])
    assert env.levels == ("GoToLocal", "PickupLoc")


@pytest.mark.parametrize("timeout", ["x", -1, 0, True, 1e9, float("inf")])
def test_math_answer_timeout_out_of_range_is_refused_at_construction(timeout):
    with pytest.raises(ParamError, match="answer_timeout"):
        envs.check_kwargs("evol/MathCritique-v0", {"answer_timeout": timeout})
    with pytest.raises(ParamError, match="answer_timeout"):
        envs.make("evol/MathCritique-v0", answer_timeout=timeout)


def test_math_refine_rounds_are_bounded():
    for rounds in (1_000_000, -1, 2.0):
        with pytest.raises(ParamError, match="refine_rounds"):
            envs.make("evol/MathCritique-v0", refine_rounds=rounds)
    with pytest.raises(ParamError, match="max_turns"):
        envs.make("evol/MathCritique-v0", refine_rounds=16)  # more rounds than the 10 default turns
    assert envs.make("evol/MathCritique-v0", refine_rounds=16, max_turns=17).refine_rounds == 16


def test_redteam_memory_must_be_a_prompt_memory_and_is_never_a_clients():
    with pytest.raises(ParamError, match="memory"):
        envs.make("evol/RedTeam-Attacker-v0", memory={})
    with pytest.raises(ParamError, match="memory is set by the server only"):
        envs.check_kwargs("evol/RedTeam-Attacker-v0", {"memory": {}})
    shared = PromptMemory(window=4)
    assert envs.make("evol/RedTeam-Attacker-v0", memory=shared).memory is shared
    with pytest.raises(ParamError, match="memory_window"):
        envs.make("evol/RedTeam-Attacker-v0", memory_window=None)  # an unbounded memory


def test_chartqa_chart_type_must_be_one_chart_type():
    env = envs.make("evol/ChartQA-v0")
    for chart_type in (["bar"], "no-such-chart", 3):
        with pytest.raises(TaskOptionError, match="chart_type"):
            envs.check_options("evol/ChartQA-v0", {"chart_type": chart_type})
        with pytest.raises(TaskOptionError, match="chart_type"):
            env.reset(options={"task": 0, "chart_type": chart_type})


def test_webshop_huge_catalogue_is_refused_before_anything_is_built():
    before = webshop_catalog.CATALOGS.keys()
    start = time.perf_counter()
    with pytest.raises(ParamError, match="num_products"):
        envs.make("evol/WebShop-v0", num_products=200_000)
    assert time.perf_counter() - start < 1.0
    assert webshop_catalog.CATALOGS.keys() == before


def test_negative_and_non_integer_seeds_are_refused_at_reset():
    env = envs.make("evol/Maze-v0")
    for seed in (-1, True, "3", 2.5, 2**64):
        with pytest.raises(TaskOptionError, match="seed"):
            env.reset(seed=seed)
    env.reset(seed=2**63 - 1)


# ---- the expert follows the episode protocol ---------------------------------------------
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_expert_before_reset_raises_reset_needed(env_id):
    env = envs.make(env_id)
    try:
        with pytest.raises(ResetNeeded):
            env.expert_action()
    finally:
        env.close()


@pytest.mark.parametrize(
    "env_id", ["evol/Maze-v0", "evol/ToolUse-v0", "evol/MathCritique-v0", "evol/Wordle-v0", "acme/Counter-v0"]
)
def test_expert_after_the_episode_ended_raises_episode_over(env_id):
    env = envs.make(env_id)
    envs.run_expert(env, seed=0, options={"task": 1})
    with pytest.raises(EpisodeOver):
        env.expert_action()
    env.reset(seed=0, options={"task": 1})
    assert isinstance(env.expert_action(), str)


# ---- caches -------------------------------------------------------------------------------
def test_bounded_cache_drops_least_recently_used_by_weight():
    cache: BoundedCache[list] = BoundedCache(10, weight=len)
    made = []

    def make(n):
        made.append(n)
        return [0] * n

    for n in (4, 3, 2):
        cache.get(n, lambda n=n: make(n))
    cache.get(4, lambda: make(4))  # a hit: 4 is now the most recent
    cache.get(5, lambda: make(5))  # 4 + 3 + 2 + 5 > 10: 3 then 2 go
    assert cache.keys() == [4, 5] and cache.total_weight == 9 and made == [4, 3, 2, 5]
    assert len(cache.get(11, lambda: make(11))) == 11 and cache.keys() == [4, 5]  # too big to keep


def test_webshop_catalogues_and_indexes_stay_within_the_declared_product_bound(monkeypatch):
    assert (
        webshop_catalog.MAX_CACHED_PRODUCTS >= webshop_catalog.DEFAULT_PRODUCTS + webshop_catalog.MAX_PRODUCTS
    )
    assert webshop_catalog.CATALOGS.max_weight == webshop_search.INDEXES.max_weight
    for cache in (webshop_catalog.CATALOGS, webshop_search.INDEXES):
        monkeypatch.setattr(cache, "max_weight", 100)
    for size in (30, 40, 50, 20, 10):
        env = envs.make("evol/WebShop-v0", num_products=size, catalog_seed=7)
        env.reset(seed=0, options={"task": 0})
        for cache in (webshop_catalog.CATALOGS, webshop_search.INDEXES):
            assert cache.total_weight <= 100
    assert webshop_catalog.CATALOGS.keys() == [(50, 7), (20, 7), (10, 7)]
    assert webshop_search.INDEXES.keys() == [(50, 7), (20, 7), (10, 7)]


LEFTOVER_MAKER = """
import fcntl, os, sys, tempfile, time
root, key = sys.argv[1:]
lock = os.open(os.path.join(root, key + ".lock"), os.O_CREAT | os.O_RDWR)
fcntl.flock(lock, fcntl.LOCK_EX)  # as GameCache does while it generates a game
tempfile.mkdtemp(prefix=f".{key}.", dir=root)
print("generating", flush=True)
time.sleep(60)
"""


def generating_process(root: Path, key: str) -> subprocess.Popen:
    """A process in the middle of generating game `key` into `root`: lock held, staging folder made."""
    process = subprocess.Popen(
        [sys.executable, "-c", LEFTOVER_MAKER, str(root), key], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout.readline().strip() == "generating"
    return process


def killed(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait()


def test_textworld_cache_removes_a_killed_generators_leftovers_and_keeps_a_live_ones(tmp_path, request):
    root = tmp_path / "games"
    root.mkdir()
    dead, alive = generating_process(root, "r1-dead"), generating_process(root, "r1-alive")
    request.addfinalizer(lambda: alive.poll() is None and killed(alive))
    killed(dead)
    assert sorted(p.name.split(".")[1] if p.name.startswith(".") else p.name for p in root.iterdir()) == [
        "r1-alive",
        "r1-alive.lock",
        "r1-dead",
        "r1-dead.lock",
    ]
    GameCache(root)  # opening the cache cleans: the dead process's lock file and staging folder go
    left = sorted(p.name for p in root.iterdir())
    assert "r1-dead.lock" not in left and not any(name.startswith(".r1-dead.") for name in left)
    assert "r1-alive.lock" in left and any(name.startswith(".r1-alive.") for name in left)
    killed(alive)
    assert set(GameCache(root).clean()) <= set(left)
    assert list(root.iterdir()) == []


def make_game_folder(root: Path, name: str, size: int, used: float) -> Path:
    folder = root / name
    folder.mkdir()
    (folder / GAME_FILE).write_bytes(b"z" * size)
    os.utime(folder, (used, used))
    return folder


def test_textworld_cache_evicts_least_recently_used_games_past_its_bound(tmp_path):
    params = GameParams(1, 1, 1, seed=4)
    now = time.time()
    for i, name in enumerate(["g-old", params.key, "g-mid", "g-new"]):
        make_game_folder(tmp_path, name, 1000, now - 100 + i)
    cache = GameCache(tmp_path, max_bytes=10_000)
    assert cache.get(params) == tmp_path / params.key / GAME_FILE  # a hit: now the most recent
    cache.max_bytes = 2500
    assert cache.evict() == ["g-old", "g-mid"]
    assert [folder.name for folder in cache.games()] == ["g-new", params.key] and cache.size() == 2000


def test_textworld_cache_generates_within_its_bound_and_leaves_no_lock_behind(tmp_path):
    now = time.time()
    for i in range(3):
        make_game_folder(tmp_path, f"g-{i}", 300_000, now - 100 + i)
    cache = GameCache(tmp_path, max_bytes=1_000_000)  # room for the newest fake and a game (~0.4 MB)
    params = GameParams(1, 1, 1, seed=6)
    path = cache.get(params)
    assert path.is_file() and cache.size() <= 1_000_000
    assert [folder.name for folder in cache.games()] == ["g-2", params.key]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g-2", params.key]  # no lock, no staging


def test_textworld_cache_lock_is_exclusive_between_processes(tmp_path):
    alive = generating_process(tmp_path, "r1-busy")
    try:
        with GameCache(tmp_path)._lock("r1-busy", wait=False) as held:
            assert held is False
    finally:
        killed(alive)
    with GameCache(tmp_path)._lock("r1-busy", wait=False) as held:
        assert held is True
        fd = os.open(tmp_path / "r1-busy.lock", os.O_RDWR)
        with pytest.raises(BlockingIOError):
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.close(fd)
    assert not (tmp_path / "r1-busy.lock").exists()
