"""`evol/SciWorld-v0`: ScienceWorld's elementary-science tasks on the `scienceworld` package (Java)."""

from __future__ import annotations

import atexit
import logging
import re
import shutil
import subprocess
import threading
import weakref
from functools import partial
from typing import Any

from envs.core import RENDER_MODE, TextEnv, turns_param
from envs.errors import ResetNeeded, TaskOptionError
from envs.params import Param, choice_param, task_param

SPLITS = ("train", "dev", "test")
TASKS_PER_SPLIT = {"train": 10_000, "dev": 1_000, "test": 1_000}
MAX_NAME_LENGTH = 80  # characters of a task name (the longest of ScienceWorld's 30 has 48)
MAX_VARIATION = 10_000  # above every task's variation count
# The tasks whose gold paths reach the full score within 28 actions on every test variation
# (each checked; and the first train and dev ones): they fit AgentGym's 30 turns. In
# ScienceWorld's task order.
DEFAULT_TASKS = (
    "use-thermometer",
    "power-component",
    "power-component-renewable-vs-nonrenewable-energy",
    "find-living-thing",
    "find-non-living-thing",
    "find-plant",
    "find-animal",
    "chemistry-mix-paint-secondary-color",
    "lifespan-longest-lived",
    "lifespan-shortest-lived",
    "lifespan-longest-lived-then-shortest-lived",
    "identify-life-stages-2",
)
# Why: with the JVM's default (random) identity hashes, ScienceWorld lists a room's objects
# and builds its gold paths in a different order on every load; constant hashes make a
# (task, variation) replay identically.
JAVA_OPTIONS = ["-XX:+UnlockExperimentalVMOptions", "-XX:hashCode=2"]
STEP_LIMIT = 1_000_000  # scienceworld's own move limit; the turn limit is ours
NO_MATCH = "No known action matches that input."
UNKNOWN_CHOICE = "Unknown action."  # the reply to a non-number after an ambiguity prompt
BLOCKED = {"reset task": "`reset task` is not available here: the episode is reset by the environment."}
# The kept text ends at its last undecorated character: linear (a lazy `(.*?)` is quadratic).
DECORATION = re.compile(r"[`\"\s]*((?:.*[^`\".\s])?)[`\".\s]*", re.DOTALL)

log = logging.getLogger(__name__)
_start_lock = threading.Lock()
_open_envs: weakref.WeakSet[SciWorldEnv] = weakref.WeakSet()


def task_names() -> list[str]:
    """ScienceWorld's 30 task names (read from the package, no Java needed)."""
    try:
        from scienceworld.constants import ID2TASK
        from scienceworld.utils import infer_task
    except ImportError as exc:
        raise ImportError(
            "evol/SciWorld-v0 needs the scienceworld package (pip install scienceworld) and Java 17+"
        ) from exc

    return [infer_task(name) for name in ID2TASK.values()]


def start_simulator() -> Any:
    """A `scienceworld.ScienceWorldEnv` whose JVM runs with `JAVA_OPTIONS`."""
    if shutil.which("java") is None:
        raise RuntimeError("ScienceWorld needs Java (OpenJDK 17 or newer) on PATH: no `java` was found")
    import scienceworld.scienceworld as module
    from py4j.java_gateway import launch_gateway

    with _start_lock:  # the module's launcher is swapped only while this env starts
        module.launch_gateway = partial(launch_gateway, javaopts=JAVA_OPTIONS)
        try:
            return module.ScienceWorldEnv("", envStepLimit=STEP_LIMIT)
        except Exception:  # a JVM without these options: run, but without exact replays
            log.warning("the JVM refused %s; ScienceWorld episodes will not replay identically", JAVA_OPTIONS)
        finally:
            module.launch_gateway = launch_gateway
    return module.ScienceWorldEnv("", envStepLimit=STEP_LIMIT)


def stop_simulator(simulator: Any) -> None:
    """Shut the gateway and make sure the Java process has exited (killed after 5 s)."""
    process = simulator._gateway.java_process
    try:
        simulator.close()
    except Exception:  # a gateway that is already broken still leaves a process to end
        pass
    try:
        process.wait(5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)
    # scienceworld's own __del__ would shut the gateway again at garbage collection.
    simulator.close = lambda: None


@atexit.register
def _close_all() -> None:
    for env in list(_open_envs):
        env.close()


def simulate(simulator: Any, command: str) -> tuple[str, int, bool]:
    """One command: (observation, score 0-100 or negative, completed), as scienceworld's `step` computes them.

    Why not `simulator.step`: it also asks the JVM for the room, the inventory and every
    valid action after each command, which makes a step about seven times slower.
    """
    server = simulator.server
    observation = server.step(command)
    score = int(round(100 * server.getScore()))
    return observation, score, bool(server.getCompleted()) or score < 0


def forget_cached_routes(simulator: Any) -> None:
    """Clear ScienceWorld's cache of search routes (per start room) before a gold path is made.

    Why: the cache outlives a load, so without this a gold path would depend on the
    episodes this Java process played before (every load seeds its random numbers anew).
    """
    from py4j.protocol import Py4JError

    try:
        simulator._gateway.jvm.scienceworld.goldagent.PathFinder.precomputedExhaustivePaths().clear()
    except Py4JError:  # a scienceworld without the cache: nothing to forget
        pass


def normalise(action: str) -> str:
    return " ".join(action.lower().split())


class SciWorldEnv(TextEnv):
    """
    ScienceWorld: elementary-school science experiments in a simulated house and garden.

    ## Description

    [ScienceWorld](https://github.com/allenai/ScienceWorld)'s 30 tasks (find a living
    thing, boil water, grow a plant, mix paints, build a circuit, ...) on the
    `scienceworld` package, which runs its simulator in a Java process (OpenJDK 17 or newer
    on PATH). Each task has many variations (other rooms, objects, substances) split by
    ScienceWorld into train, dev and test. The agent moves between rooms, opens doors and
    containers, picks up, moves, mixes, heats and focuses on objects. One Java process per
    env serves every episode (it starts on the first reset, about a second, and each reset
    loads the task and its gold path, 0.1 to 3 s); `close()` ends it.

    The default mix holds the 12 tasks whose gold paths fit AgentGym's 30 turns: at most 28
    actions to the full score on every test variation (and on the first train and dev
    ones). Actions to the full score on the test variations: use-thermometer 11 to 23;
    power-component 6 to 12; power-component-renewable-vs-nonrenewable-energy 9 to 28;
    find-living-thing, find-animal 8 to 16; find-non-living-thing 3 to 11; find-plant 8
    to 14; chemistry-mix-paint-secondary-color 6 to 28; lifespan-longest-lived,
    lifespan-shortest-lived 1 to 7; lifespan-longest-lived-then-shortest-lived 2 to 8;
    identify-life-stages-2 10 to 15. The other 18 tasks are available through `task_name`
    or the `tasks` kwarg with a larger `max_turns`: chemistry-mix-paint-tertiary-color
    takes up to 33 actions, measure-melting-point-known-substance and
    identify-life-stages-1 up to 40, test-conductivity and
    test-conductivity-of-unknown-substances 14 to about 50 (over 30 on about a third of
    their test variations), chemistry-mix 15 to 55; melt, freeze, boil,
    change-the-state-of-matter-of, grow-plant, grow-fruit, inclined-plane-determine-angle
    and measure-melting-point-unknown-substance 40 to 160; inclined-plane-friction-* and
    mendelian-genetics-* up to 260 (one mendelian variation's gold path fails).

    ## Instruction and action format

    `info["instruction"]` gives the task and the action templates; the first observation
    is the task description and the room the agent starts in. One action per turn, in
    ScienceWorld's words: `look around`, `look at OBJ`, `look in OBJ`, `go to LOC`,
    `open OBJ`, `close OBJ`, `pick up OBJ`, `put down OBJ`, `move OBJ to OBJ`,
    `pour OBJ in OBJ`, `dunk OBJ in OBJ`, `mix OBJ`, `activate OBJ`, `deactivate OBJ`,
    `use OBJ on OBJ`, `connect OBJ to OBJ`, `disconnect OBJ`, `eat OBJ`, `flush OBJ`,
    `read OBJ`, `focus on OBJ`, `wait`, `wait1`, `inventory`, `task`. When a name is
    ambiguous the simulator lists the matches and the next action is the number of one.
    Case, spacing, surrounding quotes and a final period are ignored.

    An empty action, `reset task`, and any text the simulator cannot parse ("No known
    action matches that input.") are invalid: the observation says so, `info["invalid"]`
    is true, the turn counts, and the simulator's state is unchanged.

    ## Rewards

    ScienceWorld scores each episode from 0 to 100 as the task's subgoals are reached. The
    reward of a step is the rise of the best score so far, divided by 100: in [0, 1], and
    the rewards of an episode add up to the best score / 100. `info["score"]` carries the
    simulator's current score (negative after a failing move, such as focusing on the
    wrong object).

    ## Success

    The full score, 100 (the simulator marks the task completed).

    ## Termination

    Terminated when the simulator ends the task: completed (score 100) or failed (a
    negative score, e.g. focusing on the wrong object). Truncated after `max_turns` turns
    (default 30, AgentGym's limit).

    ## Task options

    `reset(seed, options={"task": k, "split": "train" | "dev" | "test", "task_name": name,
    "variation": v})`. `task_name` is one of ScienceWorld's 30 task names (such as
    `"boil"`; its ids such as `"1-1"` work too); without it, task `k` plays task
    `k mod (number of tasks)` of the mix. The variation is `v` when given (it must belong
    to the split), else the `j`-th variation of the split, `j = k // (tasks in the mix)`
    (or `k` with `task_name`), wrapping around. `k` is below 10,000 in train and 1,000 in
    dev and test, drawn from the seed when absent; the split defaults to train. Same
    options, same episode. `info` carries `task_name`, `variation`, `score` and `moves`.
    Constructor kwargs: `tasks` (the mix), `simplifications` (ScienceWorld's, e.g.
    `"easy"` or `"openDoors,teleportAction"`; default none), `max_turns`, `render_mode`.

    ## Expert

    ScienceWorld's gold action sequence for the loaded variation, followed from where it
    left off: the agent's other actions do not move it (its own valid actions may leave
    the plan behind). A few gold paths hold an action the simulator refuses (test-
    conductivity names a block's terminal it does not know); the expert moves past it, as
    ScienceWorld's own gold replay does, and still reaches the full score.

    ## Registered configurations

    - `evol/SciWorld-v0`: the 12-task mix, 30 turns.
    """

    reward_range = (0.0, 1.0)
    max_turns = 30
    success_rule = "ScienceWorld's full score, 100 (the task is completed)"
    splits = SPLITS
    max_action_length = 512
    max_observation_length = 65536
    worker_resources = {"num_cpus": 1, "memory": 2 << 30}  # Why: each session's JVM holds about 1 GiB
    kwarg_params = {
        "tasks": Param(
            "list",
            max_length=30,
            items=Param("str", max_length=MAX_NAME_LENGTH),
            help="the task mix: ScienceWorld task names or ids (default: the 12-task mix)",
        ),
        "simplifications": Param(
            "str",
            default="",
            max_length=200,
            help='ScienceWorld\'s, e.g. "easy" or "openDoors,teleportAction"',
        ),
        "max_turns": turns_param(30),
        "render_mode": RENDER_MODE,
    }
    option_params = {
        "task": task_param(TASKS_PER_SPLIT),
        "split": choice_param(SPLITS, help='"train" (default), "dev" or "test"'),
        "task_name": Param("str", max_length=MAX_NAME_LENGTH, help="a ScienceWorld task name or id"),
        "variation": Param("int", minimum=0, maximum=MAX_VARIATION, help="a variation of the split"),
    }

    def __init__(
        self,
        tasks: list[str] | tuple[str, ...] | None = None,
        simplifications: str = "",
        max_turns: int | None = None,
        render_mode: str | None = None,
    ):
        super().__init__(max_turns=max_turns, render_mode=render_mode)
        self.tasks = tuple(self._task_name(name, "tasks") for name in (tasks or DEFAULT_TASKS))
        if not self.tasks:
            raise ValueError("tasks must name at least one ScienceWorld task")
        self.simplifications = simplifications
        self._simulator: Any = None
        self._variations: dict[str, dict[str, list[int]]] = {}
        self._gold: list[str] = []
        self._gold_position = 0
        self._score = 0
        self._best = 0
        self._completed = False
        self._episode: dict[str, Any] = {}

    @staticmethod
    def _task_name(name: Any, where: str) -> str:
        known = task_names()
        from scienceworld.utils import infer_task

        resolved = infer_task(name) if isinstance(name, str) else None
        if resolved not in known:
            raise TaskOptionError(f"{where}: unknown ScienceWorld task {name!r}; known: {', '.join(known)}")
        return resolved

    # ---- the simulator ----------------------------------------------------------------
    @property
    def simulator(self) -> Any:
        """The `scienceworld.ScienceWorldEnv` of this env (its Java process starts on first use)."""
        if self._simulator is None:
            self._simulator = start_simulator()
            _open_envs.add(self)
        return self._simulator

    @property
    def java_pid(self) -> int | None:
        """The Java process's id while it runs, else None."""
        return None if self._simulator is None else self._simulator._gateway.java_process.pid

    def _split_variations(self, task_name: str) -> dict[str, list[int]]:
        if task_name not in self._variations:
            sim = self.simulator
            sim.load(task_name, 0, self.simplifications)
            self._variations[task_name] = {
                "train": sim.get_variations_train(),
                "dev": sim.get_variations_dev(),
                "test": sim.get_variations_test(),
            }
        return self._variations[task_name]

    def close(self) -> None:
        """End the Java process (idempotent; also at garbage collection and interpreter exit)."""
        simulator, self._simulator = self._simulator, None
        if simulator is not None:
            _open_envs.discard(self)
            stop_simulator(simulator)
            self._status, self._episode = "new", {}  # a step now needs a reset (and a new process)
        super().close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    # ---- the contract ---------------------------------------------------------------
    def _reset(self, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        split = self.select_choice(options, "split", SPLITS, "train")
        task = self.select_task(options, TASKS_PER_SPLIT[split])
        if "task_name" in options:
            task_name, index = self._task_name(options["task_name"], "options.task_name"), task
        else:
            task_name, index = self.tasks[task % len(self.tasks)], task // len(self.tasks)
        variations = self._split_variations(task_name)[split]
        variation = options.get("variation")
        if variation is None:
            variation = variations[index % len(variations)]
        elif isinstance(variation, bool) or variation not in variations:
            raise TaskOptionError(
                f"options.variation must be a {split} variation of {task_name} "
                f"({variations[0]} to {variations[-1]}), got {variation!r}"
            )
        sim = self.simulator
        forget_cached_routes(sim)
        sim.load(task_name, int(variation), self.simplifications, generateGoldPath=True)
        look, _ = sim.reset()
        self._gold = [normalise(action) for action in sim.get_gold_action_sequence()]
        self._gold_position = 0
        self._score = self._best = 0
        self._completed = False
        description = sim.get_task_description().strip()
        self._episode = {"task": task, "split": split, "task_name": task_name, "variation": int(variation)}
        info = {
            "instruction": self._instruction(description),
            **self._episode,
            "score": 0,
            "moves": sim.get_num_moves(),
        }
        return f"{description}\n\n{look.strip()}", info

    def _step(self, action: str) -> tuple[str, float, bool, dict[str, Any]]:
        command = normalise(DECORATION.fullmatch(action).group(1))
        if not command:
            return self._refuse(
                "Invalid action: the action is empty. Type one action, such as `look around`."
            )
        if command in BLOCKED:
            return self._refuse(f"Invalid action: {BLOCKED[command]}")
        if self._gold_position < len(self._gold) and command == self._gold[self._gold_position]:
            self._gold_position += 1  # even if refused: a few gold actions name no object (as in its replays)
        observation, score, completed = simulate(self.simulator, command)
        observation = observation.strip()
        if observation == NO_MATCH or observation.startswith(UNKNOWN_CHOICE):
            shown = command if len(command) <= 60 else command[:57] + "..."
            return self._refuse(
                f"Invalid action: ScienceWorld does not understand {shown!r} ({observation}) Use one of the "
                "action templates, with object names as the observations print them."
            )
        self._score = score
        best = max(self._best, min(max(self._score, 0), 100))
        reward = (best - self._best) / 100
        self._best = best
        self._completed = bool(completed)
        return observation or "Nothing happens.", reward, self._completed, self._progress()

    def _refuse(self, message: str) -> tuple[str, float, bool, dict[str, Any]]:
        observation, reward, terminated, info = self.invalid(message)
        return observation, reward, terminated, {**info, **self._progress()}

    def _progress(self) -> dict[str, Any]:
        return {**self._episode, "score": self._score, "moves": self.simulator.get_num_moves()}

    def _success(self) -> bool:
        return self._score >= 100

    def expert_action(self) -> str:
        """The next action of ScienceWorld's gold path (see the card)."""
        if not self._episode:
            raise ResetNeeded("call reset() before expert_action()")
        if self._gold_position < len(self._gold):
            return self._gold[self._gold_position]
        return "look around"

    # ---- text -----------------------------------------------------------------------
    def _instruction(self, description: str) -> str:
        return (
            "You are an agent in ScienceWorld, a simulated house and garden where you do elementary "
            f"science experiments.\n{description}\n"
            "Each turn, reply with exactly one action and nothing else. The actions (OBJ and LOC are "
            "names as the observations print them):\n"
            "- look around; look at OBJ; look in OBJ; inventory; task (repeat the task)\n"
            "- go to LOC (through an open door); open OBJ; close OBJ\n"
            "- pick up OBJ; put down OBJ; move OBJ to OBJ; pour OBJ in OBJ; dunk OBJ in OBJ; mix OBJ\n"
            "- activate OBJ; deactivate OBJ; use OBJ on OBJ; connect OBJ to OBJ; disconnect OBJ\n"
            "- eat OBJ; flush OBJ; read OBJ; wait (10 steps); wait1 (1 step)\n"
            "- focus on OBJ: mark the object the task is about. Focus only on what the task names: "
            "focusing on a wrong object fails the task.\n"
            "When a name is ambiguous you are shown numbered choices: reply with the number. "
            f"You have {self.max_turns} turns."
        )
