"""`evol/Wordle-v0`: guess a five-letter word in six tries from per-letter colour feedback."""

from __future__ import annotations

import functools
import random
import re
from pathlib import Path
from typing import Any

import numpy as np

from envs.core import RENDER_MODE, TextEnv, turns_param
from envs.errors import ResetNeeded
from envs.params import choice_param, task_param

WORDS_PATH = Path(__file__).with_name("words.txt")
SPLITS = ("train", "test")
WORD_LENGTH = 5
MAX_GUESSES = 6
TEST_EVERY = 5  # every fifth answer (in a fixed shuffled order) is a test task
GREY, YELLOW, GREEN = 0, 1, 2
COLOUR_NAMES = ("grey", "yellow", "green")
ALL_GREEN = sum(GREEN * 3**i for i in range(WORD_LENGTH))
# The kept text ends at its last undecorated character: linear (a lazy `(.*?)` is quadratic).
DECORATION = re.compile(r"[`'\"*\s]*((?:.*[^`'\".!*\s])?)[`'\".!*\s]*", re.DOTALL)


@functools.cache
def word_lists() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(answers, every valid guess): the shipped `words.txt`, answers first in the guesses."""
    sections: dict[str, list[str]] = {}
    current = None
    for line in WORDS_PATH.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), [])
            continue
        current.append(line)
    answers = tuple(sections["answers"])
    return answers, answers + tuple(sections["guesses"])


@functools.cache
def split_answers(split: str) -> tuple[str, ...]:
    answers = list(word_lists()[0])
    random.Random("evol-wordle").shuffle(answers)
    test = answers[::TEST_EVERY]
    return tuple(test) if split == "test" else tuple(w for i, w in enumerate(answers) if i % TEST_EVERY)


def feedback(guess: str, answer: str) -> tuple[int, ...]:
    """Wordle's colours of `guess` against `answer`: GREEN, YELLOW or GREY per letter.

    Greens first; then, left to right, a letter is yellow while the answer still has an
    unmatched copy of it, grey once the copies are used up (so a doubled letter in the
    guess is yellow only as many times as the answer has spare copies).
    """
    colours = [GREEN if g == a else GREY for g, a in zip(guess, answer)]
    spare: dict[str, int] = {}
    for a, colour in zip(answer, colours):
        if colour != GREEN:
            spare[a] = spare.get(a, 0) + 1
    for i, g in enumerate(guess):
        if colours[i] != GREEN and spare.get(g, 0) > 0:
            colours[i] = YELLOW
            spare[g] -= 1
    return tuple(colours)


def pattern_code(colours: tuple[int, ...]) -> int:
    return sum(c * 3**i for i, c in enumerate(colours))


def letters(words: tuple[str, ...]) -> np.ndarray:
    return np.frombuffer("".join(words).encode(), dtype=np.uint8).reshape(len(words), WORD_LENGTH)


@functools.cache
def pattern_table() -> np.ndarray:
    """`table[g, a]`: the feedback code of guess g (every valid word) on answer a (answers).

    The same rule as `feedback`, vectorised: a non-green letter is yellow when fewer
    earlier non-green copies of it in the guess exist than unmatched copies in the answer.
    """
    answers, guesses = word_lists()
    ans, table = letters(answers), np.zeros((len(guesses), len(answers)), dtype=np.uint8)
    guess_letters = letters(guesses)
    for start in range(0, len(guesses), 512):
        g = guess_letters[start : start + 512]
        green = g[:, None, :] == ans[None, :, :]  # (G, A, 5)
        code = np.zeros(green.shape[:2], dtype=np.int32)
        for i in range(WORD_LENGTH):
            letter = g[:, i][:, None, None]
            spare = ((ans[None, :, :] == letter) & ~green).sum(axis=2)
            earlier = ((g[:, None, :i] == letter) & ~green[:, :, :i]).sum(axis=2)
            colour = np.where(green[:, :, i], GREEN, np.where(spare > earlier, YELLOW, GREY))
            code += colour * 3**i
        table[start : start + len(g)] = code
    return table


@functools.cache
def guess_index() -> dict[str, int]:
    return {w: i for i, w in enumerate(word_lists()[1])}


def best_guess(candidates: np.ndarray) -> int:
    """The guess (an index into all valid words) that splits `candidates` most evenly.

    Maximises the entropy of the feedback over the remaining candidate answers; a guess
    that may itself be the answer gets a small bonus (it can win now).
    """
    table = pattern_table()
    if len(candidates) <= 2:
        return int(candidates[0])  # answers come first among the guesses: same index
    codes = table[:, candidates].astype(np.int64) + 243 * np.arange(table.shape[0])[:, None]
    counts = np.bincount(codes.ravel(), minlength=243 * table.shape[0]).reshape(-1, 243)
    p = counts / len(candidates)
    with np.errstate(divide="ignore", invalid="ignore"):
        entropy = -np.nansum(np.where(p > 0, p * np.log2(p), 0.0), axis=1)
    bonus = np.zeros(table.shape[0])
    bonus[candidates] = 1.0 / len(candidates)
    return int(np.argmax(entropy + bonus))


@functools.cache
def opening_guess() -> int:
    return best_guess(np.arange(len(word_lists()[0])))


class WordleEnv(TextEnv):
    """
    Wordle: find a hidden five-letter word in six guesses from per-letter colour feedback.

    ## Description

    The classic word game. The hidden word is one of the ~1,700 common words in the
    `[answers]` section of the shipped `envs/games/words.txt`; a guess may be any of the
    ~3,000 words of the file. After each guess every letter is coloured: green (right
    letter, right place), yellow (in the word, elsewhere), grey (not in the word). A
    letter the guess repeats is yellow or green only as many times as the word has it:
    guessing SPEED for ABIDE gives E yellow for the first E and grey for the second.

    ## Instruction and action format

    `info["instruction"]` explains the rules. One action per turn: a five-letter word
    from the list (case, surrounding quotes and a final period are ignored). Example
    observation after a guess:

        Guess 2 of 6: CRANE
        Feedback: C grey, R yellow, A grey, N grey, E green
        You have 4 guesses left.

    A reply that is not a five-letter word, or a word not in the list, is invalid: the
    observation says why, `info["invalid"]` is true, and the turn counts (as AgentGym
    counts it) but no guess is used. A repeated guess is a valid guess.

    ## Rewards

    1 when the word is found, 0 on every other turn.

    ## Success

    The hidden word was guessed within six guesses.

    ## Termination

    Terminated when the word is found or after the sixth valid guess (the observation
    then reveals the word). Truncated after `max_turns` turns (default 8, AgentGym's
    limit), which counts invalid replies too.

    ## Task options

    `reset(seed, options={"task": k, "split": "train" | "test"})`: task `k` is the k-th
    answer of the split (a fixed shuffle of the answers: every fifth word is a test
    word, about 340; the rest, about 1,360, are train words); without `task`, `k` is drawn
    from the seed. `info` at the end holds `answer`. Constructor kwargs: `max_turns`,
    `render_mode` ("ansi" returns the last observation).

    ## Expert

    An entropy solver: it keeps the answers consistent with all feedback so far and
    guesses the word of the list whose feedback splits them most evenly (its opening is
    SLATE). It wins every one of the 1,699 answers (train and test) within five guesses,
    in 3.33 on average.

    ## Registered configurations

    - `evol/Wordle-v0`: six guesses, 8 turns.
    """

    reward_range = (0.0, 1.0)
    max_turns = 8
    success_rule = "the hidden word is guessed within six guesses"
    splits = SPLITS
    max_action_length = 256
    max_observation_length = 4096
    kwarg_params = {"max_turns": turns_param(8), "render_mode": RENDER_MODE}
    option_params = {
        "task": task_param(len(split_answers("train")), "answer index within the split"),
        "split": choice_param(SPLITS, help='"train" (default) or "test"'),
    }

    def __init__(self, max_turns: int | None = None, render_mode: str | None = None):
        super().__init__(max_turns=max_turns, render_mode=render_mode)
        answers, guesses = word_lists()
        self._valid = frozenset(guesses)
        self._answer = ""
        self._guesses: list[tuple[str, tuple[int, ...]]] = []
        self._won = False

    # ---- the contract ---------------------------------------------------------------
    def _reset(self, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        split = self.select_choice(options, "split", SPLITS, "train")
        answers = split_answers(split)
        task = self.select_task(options, len(answers))
        self._answer = answers[task]
        self._guesses = []
        self._won = False
        observation = (
            f"Guess the hidden five-letter word. You have {MAX_GUESSES} guesses. Reply with your first guess."
        )
        info = {"instruction": self._instruction(), "task": task, "split": split}
        return observation, info

    def _step(self, action: str) -> tuple[str, float, bool, dict[str, Any]]:
        word = DECORATION.fullmatch(action).group(1).lower()
        left = MAX_GUESSES - len(self._guesses)
        unused = f"This turn used no guess; you have {left} {'guess' if left == 1 else 'guesses'} left."
        shown = word if len(word) <= 40 else word[:37] + "..."
        if not (len(word) == WORD_LENGTH and word.isascii() and word.isalpha()):
            return self.invalid(
                f"Invalid guess: {shown!r} is not a five-letter word. Reply with one five-letter English "
                f"word and nothing else, such as CRANE. {unused}"
            )
        if word not in self._valid:
            return self.invalid(
                f"Invalid guess: {word.upper()} is not in the word list. Try another word. {unused}"
            )
        colours = feedback(word, self._answer)
        self._guesses.append((word, colours))
        self._won = word == self._answer
        left = MAX_GUESSES - len(self._guesses)
        text = f"Guess {len(self._guesses)} of {MAX_GUESSES}: {word.upper()}\n"
        info: dict[str, Any] = {"guesses_left": left}
        if self._won:
            text += f"Feedback: all green. You found the word {word.upper()}!"
        else:
            text += "Feedback: " + ", ".join(f"{g.upper()} {COLOUR_NAMES[c]}" for g, c in zip(word, colours))
            text += "\n" + (
                f"You have {left} {'guess' if left == 1 else 'guesses'} left."
                if left
                else f"You have no guesses left. The word was {self._answer.upper()}."
            )
        done = self._won or left == 0
        if done:
            info["answer"] = self._answer
        return text, float(self._won), done, info

    def _success(self) -> bool:
        return self._won

    def expert_action(self) -> str:
        """The entropy solver's guess given the feedback so far (see the card)."""
        if not self._answer:
            raise ResetNeeded("call reset() before expert_action()")
        if not self._guesses:
            return word_lists()[1][opening_guess()].upper()
        table, index = pattern_table(), guess_index()
        keep = np.ones(table.shape[1], dtype=bool)
        for word, colours in self._guesses:
            keep &= table[index[word]] == pattern_code(colours)
        return word_lists()[1][best_guess(np.flatnonzero(keep))].upper()

    # ---- text -----------------------------------------------------------------------
    def _instruction(self) -> str:
        return (
            "Let's play Wordle. Find the hidden five-letter English word in at most six guesses.\n"
            "Each turn, reply with one five-letter English word and nothing else (for example: CRANE). "
            "After each guess you get a colour for every letter:\n"
            "- green: the letter is in the word, in this position;\n"
            "- yellow: the letter is in the word, in another position;\n"
            "- grey: the letter is not in the word. If your guess has a letter more times than the word "
            "does, the extra copies are grey.\n"
            "A reply that is not a word from the game's list wastes the turn but uses no guess. "
            f"You have {self.max_turns} turns for your six guesses."
        )
