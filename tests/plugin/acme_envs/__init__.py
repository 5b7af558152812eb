"""A third-party env package, as users write them: registers through `evolgym.envs`."""

from __future__ import annotations

import time

import envs
from envs.core import TextEnv
from envs.params import task_param


def register() -> None:
    envs.register("acme/Counter-v0", "acme_envs:CounterEnv")


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
