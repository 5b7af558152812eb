"""A third-party env package, as users write them: registers through `evolgym.envs`."""

from __future__ import annotations

import time

import envs
from envs.core import TextEnv
from envs.params import task_param


def register() -> None:
    envs.register("acme/Counter-v0", "acme_envs:CounterEnv")
    envs.register("acme/Signal-v0", "acme_envs:SignalEnv")


class CounterEnv(TextEnv):
    """Count up to a target number.

    ## Description
    The agent must bring a counter from 0 to the task's target and submit it.

    ## Instruction and action format
    | action | effect |
    |---|---|
    | `inc` | counter + 1 |
    | `dec` | counter - 1 |
    | `submit` | ends the episode |
    | `wait S` | sleeps S seconds (lets tests provoke the server's step time limit) |
    | `crash` | raises inside the env (lets tests check that a broken env is contained) |

    ## Rewards
    1 on submitting the target, else 0.

    ## Success
    The submitted counter equals the target.

    ## Termination
    On `submit`; truncated after `max_turns` (12).

    ## Task options
    `task`: 0..99, the target is `task % 7 + 1`.
    """

    max_turns = 12
    success_rule = "the submitted counter equals the target"
    option_params = {"task": task_param(100)}

    def _reset(self, options):
        self.target = self.select_task(options, 100) % 7 + 1
        self.counter = 0
        self.submitted = False
        return f"Counter: 0. Target: {self.target}.", {
            "instruction": "Reach the target with one of: inc, dec, submit.",
            "task": {"target": self.target},
        }

    def _step(self, action):
        if action.startswith("wait "):
            time.sleep(float(action.split()[1]))
            return f"Counter: {self.counter}.", 0.0, False, {}
        if action == "crash":
            raise RuntimeError("the counter broke")
        if action == "inc":
            self.counter += 1
        elif action == "dec":
            self.counter -= 1
        elif action == "submit":
            self.submitted = True
            return f"Submitted {self.counter}.", float(self._success()), True, {}
        else:
            return self.invalid(f"Invalid action {action!r}: use inc, dec or submit.")
        return f"Counter: {self.counter}.", 0.0, False, {}

    def _success(self):
        return self.submitted and self.counter == self.target

    def expert_action(self):
        if self.counter < self.target:
            return "inc"
        if self.counter > self.target:
            return "dec"
        return "submit"

    def valid_actions(self):
        return ["inc", "dec", "submit"]


SIGNALS = {"red": "stop", "green": "go", "yellow": "wait", "blue": "turn"}


class SignalEnv(TextEnv):
    """Answer a signal with its action: a task a tiny model learns in seconds from what it sees.

    ## Description
    The observation names a signal colour; the agent answers with the action it stands for. There is no split: trainers hold out tasks by hash.

    ## Instruction and action format
    One word: `stop` (red), `go` (green), `wait` (yellow) or `turn` (blue).

    ## Rewards
    1 for the signal's action, else 0.

    ## Success
    The answer is the signal's action.

    ## Termination
    After the first answer (one of the four words; anything else is invalid and counts as a
    turn); truncated after `max_turns` (5).

    ## Task options
    `task`: 0..999; the colour is `task % 4` of red, green, yellow, blue.
    """

    max_turns = 5
    success_rule = "the answer is the signal's action"
    option_params = {"task": task_param(1000)}

    def _reset(self, options):
        self.colour = list(SIGNALS)[self.select_task(options, 1000) % 4]
        self.answer = ""
        return f"Signal: {self.colour}.", {
            "instruction": "Answer the signal with one word: stop, go, wait or turn.",
            "task": {"colour": self.colour},
        }

    def _step(self, action):
        answer = action.strip().lower()
        if answer not in SIGNALS.values():
            return self.invalid(f"Invalid answer {action!r}: answer stop, go, wait or turn.")
        self.answer = answer
        return "Done.", float(self._success()), True, {}

    def _success(self):
        return self.answer == SIGNALS[self.colour]

    def expert_action(self):
        return SIGNALS[self.colour]

    def valid_actions(self):
        return list(SIGNALS.values())
