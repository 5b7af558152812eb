"""The expert of the BabyAI env: minigrid's BabyAI bot, planning on the agent's map.

`new_bot` builds a bot for the rest of a mission from the current state (what the agent has
seen, what it carries); `high_level_action` turns the bot's next `GoNextTo` subgoal into the
env's one-turn high-level action where one is available.
"""

from __future__ import annotations

from collections.abc import Container

import numpy as np
from minigrid.envs.babyai.core.verifier import (
    AfterInstr,
    AndInstr,
    BeforeInstr,
    Instr,
    ObjDesc,
    PutNextInstr,
)
from minigrid.minigrid_env import MiniGridEnv
from minigrid.utils.baby_ai_bot import (
    BabyAIBot,
    DropSubgoal,
    GoNextToSubgoal,
    OpenSubgoal,
    PickupSubgoal,
)

from envs.babyai.describe import View


def pending_instrs(instr: Instr) -> list[Instr]:
    """The action instructions of `instr` still to do, in the order the verifier wants."""
    if isinstance(instr, BeforeInstr):
        if instr.a_done == "success":
            return pending_instrs(instr.instr_b)
        return pending_instrs(instr.instr_a) + pending_instrs(instr.instr_b)
    if isinstance(instr, AfterInstr):
        if instr.b_done == "success":
            return pending_instrs(instr.instr_a)
        return pending_instrs(instr.instr_b) + pending_instrs(instr.instr_a)
    if isinstance(instr, AndInstr):
        pending = []
        if instr.a_done != "success":
            pending += pending_instrs(instr.instr_a)
        if instr.b_done != "success":
            pending += pending_instrs(instr.instr_b)
        return pending
    return [instr]


def new_bot(env: MiniGridEnv, known: np.ndarray) -> BabyAIBot:
    """A bot planning the rest of `env`'s mission from here, with the agent's map `known`."""
    bot = BabyAIBot(env)
    bot.vis_mask = known.copy()
    bot.stack = []
    pending = pending_instrs(env.instrs)
    for instr in reversed(pending[1:]):
        bot._process_instr(instr)
    first, carrying = pending[0], env.carrying
    if isinstance(first, PutNextInstr) and carrying is not None and carrying in first.desc_move.obj_set:
        bot.stack.append(DropSubgoal(bot))
        bot.stack.append(GoNextToSubgoal(bot, first.desc_fixed, reason="PutNext"))
    else:
        bot._process_instr(first)
    if carrying is not None and _picks_up_before_dropping(bot.stack):
        drop_pos = bot._find_drop_pos()
        if drop_pos is not None:
            bot.stack.append(DropSubgoal(bot))
            bot.stack.append(GoNextToSubgoal(bot, drop_pos))
    return bot


def high_level_action(bot: BabyAIBot, view: View, actions: Container[str]) -> str | None:
    """The high-level action among `actions` that completes the bot's current `GoNextTo`
    subgoal (and the pickup or door opening under it) in one turn, on an object of `view`;
    it pops the subgoal it completes.
    """
    if not bot.stack:
        return None
    top = bot.stack[-1]
    if not isinstance(top, GoNextToSubgoal) or top.reason == "PutNext":
        return None
    if isinstance(top.datum, ObjDesc):
        _, pos = bot._find_obj_pos(top.datum)
    elif hasattr(top.datum, "cur_pos"):
        pos = top.datum.cur_pos
    else:
        pos = top.datum
    if pos is None:
        return None
    pos = (int(pos[0]), int(pos[1]))
    target = next((obj for obj in view.objects if obj.pos == pos), None)
    if target is None:
        return None
    below = bot.stack[-2] if len(bot.stack) > 1 else None
    candidates = [f"go to {target.label}"]
    if isinstance(below, PickupSubgoal):
        candidates.insert(0, f"pick up {target.label}")
    if isinstance(below, OpenSubgoal):
        candidates.insert(0, f"toggle and go through {target.label}")
    action = next((action for action in candidates if action in actions), None)
    if action is not None and not action.startswith("go to"):
        # The pickup or opening below is what the bot thinks it does next: on the next
        # replan it pops it as done.
        bot.stack.pop()
    return action


def _picks_up_before_dropping(stack: list) -> bool:
    """Whether the bot's plan (top of the stack first) picks something up before it drops."""
    for subgoal in reversed(stack):
        if isinstance(subgoal, DropSubgoal):
            return False
        if isinstance(subgoal, PickupSubgoal):
            return True
    return False
