"""The procedural problem generator: `generate_problem(task, split, difficulty)`.

It writes a GSM8K-style word problem (a short story of quantities changing hands, with
distractor facts on harder levels) and its reference solution, one step a line with its
exact computation, kept as a `Derivation`. Answers are integers. The same (split,
difficulty, task) always gives the same problem; train and test draw from different
seeds and disjoint name pools, so no problem text is in both splits.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from envs.math.derivation import Derivation, Operand, Step, apply
from envs.math.problems import DIFFICULTIES, LEVEL_SPECS, SPLITS, Problem, task_level
from envs.numbers import format_number

MAX_VALUE = 10**6


def generate_problem(task: int, split: str = "train", difficulty: str = "mixed") -> Problem:
    """Problem `task` of `split` at `difficulty` (a level, or "mixed"): always the same one."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if difficulty not in DIFFICULTIES:
        raise ValueError(f"difficulty must be one of {DIFFICULTIES}, got {difficulty!r}")
    level = task_level(task, difficulty)
    rng = random.Random(f"evol-math|{split}|{level}|{task}")
    for _ in range(200):
        problem = _Story(rng, level, split).write()
        if problem is not None:
            problem.split, problem.task = split, task
            return problem
    raise RuntimeError(f"could not generate problem {task} of {split}/{level}")  # pragma: no cover


# ---- the story writer -----------------------------------------------------------------
@dataclass(frozen=True)
class Topic:
    item: str
    items: str
    container: str
    containers: str
    get: str  # "buys": how the hero comes by more items
    worth: str  # "sells each {item} for": how items turn into money


TOPICS = (
    Topic("pencil", "pencils", "pack", "packs", "buys", "sells each pencil for"),
    Topic("cookie", "cookies", "tray", "trays", "bakes", "sells each cookie for"),
    Topic("apple", "apples", "basket", "baskets", "picks", "sells each apple for"),
    Topic("egg", "eggs", "carton", "cartons", "collects", "sells each egg for"),
    Topic("book", "books", "box", "boxes", "gets", "sells each book for"),
    Topic("sticker", "stickers", "sheet", "sheets", "buys", "trades each sticker for"),
    Topic("cupcake", "cupcakes", "box", "boxes", "bakes", "sells each cupcake for"),
    Topic("marble", "marbles", "bag", "bags", "wins", "sells each marble for"),
    Topic("seed packet", "seed packets", "crate", "crates", "orders", "sells each seed packet for"),
    Topic("bottle", "bottles", "crate", "crates", "fills", "sells each bottle for"),
    Topic("toy car", "toy cars", "case", "cases", "builds", "sells each toy car for"),
    Topic("candle", "candles", "box", "boxes", "makes", "sells each candle for"),
)
NAMES = (
    ("Tom", "he"), ("Mia", "she"), ("Liam", "he"), ("Ava", "she"), ("Noah", "he"), ("Emma", "she"),
    ("Omar", "he"), ("Sofia", "she"), ("Ravi", "he"), ("Lena", "she"), ("Kenji", "he"), ("Zara", "she"),
    ("Diego", "he"), ("Nora", "she"), ("Ivan", "he"), ("Aisha", "she"), ("Hugo", "he"), ("Chloe", "she"),
    ("Felix", "he"), ("Priya", "she"), ("Mateo", "he"), ("Yuki", "she"), ("Samuel", "he"), ("Elena", "she"),
)  # fmt: skip
SPLIT_NAMES = {  # disjoint pools: no problem text can be in both splits
    "train": tuple(n for i, n in enumerate(NAMES) if i % 4 < 2),
    "test": tuple(n for i, n in enumerate(NAMES) if i % 4 >= 2),
}
PURCHASES = ("a new backpack", "lunch", "a book", "paint", "a movie ticket", "a gift", "bus fares", "a plant")
FRACTION_WORDS = {2: "half", 3: "a third", 4: "a quarter", 5: "a fifth"}
PERCENTS = (10, 20, 25, 30, 40, 50, 60, 75, 80)


class _Story:
    """Writes one problem: an opening, moves that change the hero's quantity, a question."""

    def __init__(self, rng: random.Random, level: str, split: str):
        self.rng = rng
        self.level = level
        self.spec = LEVEL_SPECS[level]
        self.topic = rng.choice(TOPICS)
        (self.name, self.pron), (self.friend, _) = rng.sample(SPLIT_NAMES[split], 2)
        self.steps: list[Step] = []
        self.values: list[Fraction] = []
        self.sentences: list[str] = []
        self.givens: list[Fraction] = []
        self.current: Operand | None = None
        self.current_value = Fraction(0)
        self.money = False
        self.earning = False  # the last move made money (a weekly amount makes sense)
        self.question = ""

    # ---- building blocks --------------------------------------------------------------
    def number(self, low: int | None = None, high: int | None = None) -> int:
        lo, hi = self.spec.numbers
        hi = min(hi, high or hi)
        lo = min(max(lo, low or lo), hi)
        value = self.rng.randint(lo, hi)
        for _ in range(4):  # distinct numbers keep "used the wrong number" errors visible
            if Fraction(value) not in self.givens:
                break
            value = self.rng.randint(lo, hi)
        return value

    def price(self) -> int:
        return self.rng.randint(*self.spec.prices)

    def given(self, value: int) -> Operand:
        self.givens.append(Fraction(value))
        return Operand(given=Fraction(value))

    def step(self, label: str, operands: list[Operand], ops: list[str], unit: str | None = None) -> Operand:
        unit = unit or ("$" if self.money else self.topic.items)
        step = Step(label, tuple(operands), tuple(ops), unit)
        value = apply(step.ops, Derivation.operand_values(step, self.values))
        self.steps.append(step)
        self.values.append(value)
        return Operand(step=len(self.steps) - 1)

    def set_current(self, operand: Operand) -> None:
        self.current = operand
        self.current_value = operand.given if operand.step is None else self.values[operand.step]

    def fill(self, template: str) -> str:
        t = self.topic
        text = template.format(
            name=self.name, pron=self.pron, friend=self.friend, item=t.item, items=t.items,
            container=t.container, containers=t.containers, get=t.get, worth=t.worth,
        )  # fmt: skip
        return text[0].upper() + text[1:]

    def say(self, template: str, **numbers: Any) -> None:
        self.sentences.append(self.fill(template.format(**{k: "{" + k + "}" for k in _FIELDS}, **numbers)))

    # ---- the problem --------------------------------------------------------------------
    def write(self) -> Problem | None:
        low, high = self.spec.steps
        target = self.rng.randint(low, high)
        self.rng.choice(OPENINGS)(self)
        last = None
        while len(self.steps) < target:
            remaining = target - len(self.steps)
            moves = [
                move
                for move in (MONEY_MOVES if self.money else ITEM_MOVES)
                if move is not last
                and move.size <= remaining
                and (not move.final or move.size == remaining)
                and move.fits(self)
            ]
            if not moves:
                return None
            last = self.rng.choices(moves, weights=[m.weight for m in moves])[0]
            last.apply(self)
            if any(v <= 0 or v > MAX_VALUE or v.denominator != 1 for v in self.values):
                return None
        if not self.question:
            self.question = self.fill(
                "How much money does {name} have now?"
                if self.money
                else "How many {items} does {name} have now?"
            )
        self.add_distractors()
        derivation = Derivation(self.steps)
        answer = format_number(self.values[-1])
        return Problem(
            question=" ".join([*self.sentences, self.question]),
            answer=answer,
            lines=derivation.lines(),
            line_values=list(self.values),
            givens=list(self.givens),
            derivation=derivation,
            difficulty=self.level,
            topic=self.topic.item,
        )

    def add_distractors(self) -> None:
        templates = self.rng.sample(DISTRACTORS, self.spec.distractors)
        for template in templates:
            value = self.number()
            self.givens.append(Fraction(value))
            position = self.rng.randint(1, len(self.sentences))
            self.sentences.insert(position, self.fill(template.replace("{x}", str(value))))


_FIELDS = ("name", "pron", "friend", "item", "items", "container", "containers", "get", "worth")


@dataclass(frozen=True)
class Move:
    apply: Callable[[_Story], None]
    size: int  # solution lines it adds
    fits: Callable[[_Story], bool] = lambda story: True
    final: bool = False  # it asks the question: only as the last move
    weight: float = 1.0


# ---- openings -------------------------------------------------------------------------
def _open_groups(s: _Story) -> None:
    a, b = s.number(high=15), s.number()
    s.say(
        s.rng.choice(
            (
                "{name} {get} {a} {containers} of {items}, with {b} {items} in each {container}.",
                "{name} has {a} {containers}. Each {container} holds {b} {items}.",
            )
        ),
        a=a,
        b=b,
    )
    s.set_current(
        s.step(
            s.fill(f"{{name}} starts with {a} {{containers}} of {b} {{items}}"),
            [s.given(a), s.given(b)],
            ["*"],
        )
    )


def _open_plain(s: _Story) -> None:
    a = s.number(low=10) * s.rng.choice((1, 2, 3))
    s.say("{name} has {a} {items}.", a=a)
    s.set_current(s.given(a))


def _open_money(s: _Story) -> None:
    a = s.number() * s.rng.choice((5, 10))
    s.money = True
    s.say("{name} has ${a} in savings.", a=a)
    s.set_current(s.given(a))


OPENINGS = (_open_groups, _open_groups, _open_plain, _open_money)


# ---- moves on items -------------------------------------------------------------------
def _more(s: _Story) -> None:
    c = s.number()
    s.say(
        s.rng.choice(
            ("Then {pron} {get} {c} more {items}.", "Later, {friend} gives {name} {c} more {items}.")
        ),
        c=c,
    )
    s.set_current(s.step(s.fill(f"After getting {c} more {{items}}"), [s.current, s.given(c)], ["+"]))


def _more_groups(s: _Story) -> None:
    c, d = s.number(high=12), s.number()
    s.say("{pron} also {get} {c} {containers} with {d} {items} in each.", c=c, d=d)
    extra = s.step(s.fill(f"The {c} extra {{containers}} hold"), [s.given(c), s.given(d)], ["*"])
    s.set_current(s.step(s.fill("Together {name} has"), [s.current, extra], ["+"]))


def _give(s: _Story) -> None:
    c = s.number(high=int(s.current_value) - 1)
    s.say(s.rng.choice(("{pron} gives {c} {items} to {friend}.", "{name} loses {c} of the {items}.")), c=c)
    s.set_current(s.step(s.fill(f"After {c} {{items}} are gone"), [s.current, s.given(c)], ["-"]))


def _divisors(value: Fraction, choices: Any) -> list[int]:
    return [d for d in choices if value.denominator == 1 and value.numerator % d == 0]


def _give_fraction(s: _Story) -> None:
    d = s.rng.choice(_divisors(s.current_value, FRACTION_WORDS))
    s.say(f"{{pron}} gives {FRACTION_WORDS[d]} of the {{items}} to {{friend}}.")
    part = s.step(s.fill(f"{{friend}} gets {FRACTION_WORDS[d]} of them"), [s.current, s.given(d)], ["/"])
    s.set_current(s.step(s.fill("{name} keeps"), [s.current, part], ["-"]))


def _percent_choices(value: Fraction) -> list[int]:
    return [p for p in PERCENTS if value.denominator == 1 and (value.numerator * p) % 100 == 0]


def _sell_percent(s: _Story) -> None:
    p = s.rng.choice(_percent_choices(s.current_value))
    s.say(s.rng.choice(("{pron} sells {p}% of the {items}.", "{p}% of the {items} get broken.")), p=p)
    part = s.step(
        s.fill(f"{p}% of the {{items}}"), [s.current, s.given(p), Operand(given=Fraction(100))], ["*", "/"]
    )
    s.set_current(s.step(s.fill("The rest of the {items}"), [s.current, part], ["-"]))


def _split(s: _Story) -> None:
    d = s.rng.choice(_divisors(s.current_value, range(2, 13)))
    s.say("{pron} puts all the {items} equally into {d} {containers}.", d=d)
    s.step(s.fill("{items} in each {container}"), [s.current, s.given(d)], ["/"])
    s.question = s.fill("How many {items} are in each {container}?")


def _friend_times(s: _Story) -> None:
    c = s.rng.randint(2, 5)
    s.say("{friend} has {c} times as many {items} as {name}.", c=c)
    other = s.step(s.fill("{friend} has"), [s.current, s.given(c)], ["*"])
    s.step(s.fill("Together they have"), [s.current, other], ["+"])
    s.question = s.fill("How many {items} do {name} and {friend} have together?")


def _sell(s: _Story) -> None:
    p = s.price()
    s.say("{pron} {worth} ${p}.", p=p)
    s.money = True
    s.set_current(s.step(s.fill("Money from the {items}"), [s.current, s.given(p)], ["*"]))
    s.question = s.fill("How much money does {name} make?")
    s.earning = True


ITEM_MOVES = (
    Move(_more, 1),
    Move(_more_groups, 2),
    Move(_give, 1, lambda s: s.current_value > s.spec.numbers[0] + 1),
    Move(_give_fraction, 2, lambda s: bool(_divisors(s.current_value, FRACTION_WORDS))),
    Move(_sell_percent, 2, lambda s: bool(_percent_choices(s.current_value))),
    Move(_split, 1, lambda s: bool(_divisors(s.current_value, range(2, 13))), final=True),
    Move(_friend_times, 2, final=True),
    Move(_sell, 1, lambda s: s.current_value * s.spec.prices[1] <= MAX_VALUE, weight=1.5),
)


# ---- moves on money -------------------------------------------------------------------
def _spend(s: _Story) -> None:
    c = s.rng.randint(1, int(s.current_value) - 1)
    s.say(f"{{pron}} spends ${c} on {s.rng.choice(PURCHASES)}.")
    s.set_current(s.step(f"After spending ${c}", [s.current, s.given(c)], ["-"]))
    s.question, s.earning = "", False


def _earn(s: _Story) -> None:
    c = s.number() * s.rng.choice((1, 2, 5))
    s.say(
        s.rng.choice(
            ("{pron} earns ${c} more by helping {friend}.", "{friend} pays {name} ${c} for a favor.")
        ),
        c=c,
    )
    s.set_current(s.step(f"After earning ${c} more", [s.current, s.given(c)], ["+"]))
    s.question, s.earning = "", False


def _buy_several(s: _Story) -> None:
    limit = int(s.current_value) - 1
    c = s.rng.randint(2, max(2, min(6, limit // 2)))
    d = s.rng.randint(1, max(1, limit // c))
    things = s.rng.choice(("notebooks", "tickets", "snacks", "pens"))
    s.say(f"{{pron}} buys {c} {things} that cost ${d} each.")
    cost = s.step(f"{c} {things} at ${d} each cost", [s.given(c), s.given(d)], ["*"])
    s.set_current(s.step("Money left", [s.current, cost], ["-"]))
    s.question, s.earning = "", False


def _weeks(s: _Story) -> None:
    w = s.rng.randint(2, 6)
    s.say("{name} makes the same amount every week for {w} weeks.", w=w)
    s.set_current(s.step(f"Money after {w} weeks", [s.current, s.given(w)], ["*"]))
    s.question = s.fill("How much money does {name} make in those weeks?")
    s.earning = False


def _share_money(s: _Story) -> None:
    d = s.rng.choice(_divisors(s.current_value, range(2, 9)))
    s.say("{name} shares the money equally among {d} friends.", d=d)
    s.step("Each friend gets", [s.current, s.given(d)], ["/"])
    s.question = "How many dollars does each friend get?"


MONEY_MOVES = (
    Move(_spend, 1, lambda s: s.current_value > 2),
    Move(_earn, 1),
    Move(_buy_several, 2, lambda s: s.current_value > 5),
    Move(_weeks, 1, lambda s: s.earning and s.current_value * 6 <= MAX_VALUE),
    Move(_share_money, 1, lambda s: bool(_divisors(s.current_value, range(2, 9))), final=True),
)

DISTRACTORS = (
    "{friend} has {x} stamps in an album.",
    "{name}'s school has {x} classrooms.",
    "The shop is {x} minutes away from {name}'s house.",
    "Each {container} is {x} centimeters wide.",
    "{friend} read {x} pages of a book last week.",
)
