"""WebShop goals and their reward: what the shopper wants, and how well a purchase fits it.

A task is drawn from a target product (reproducibly, by split and task index): 1 to 3
of its attributes, one value of each of its options, and a price cap above its price
picked as WebShop does (from the next four multiples of 10, the larger of two drawn).

The reward is WebShop's (`web_agent_site/engine/goal.py`, `get_reward`):

    r = r_type * (|attributes matched| + |options matched| + [price <= cap])
               / (|attributes| + |options| + 1)

`r_type` is WebShop's type factor: 1 when the product's query (here: its type) is the
goal's, or its category path shares at least two levels with the goal's, or more than
20% of the goal name's nouns are in the bought name; 0.5 when none holds; 0.1 when that
share is under 10%; 0 when it is 0. The nouns of a name are, in this catalogue, the
words of the product's type (WebShop parses titles with spaCy). A goal attribute matches
when the product has it, or when it appears in the title, features or description; a
goal option matches when it is one of the option values chosen at purchase. WebShop
also accepts fuzzy matches (generated values are canonical, so equality is used here)
and counts over the chosen values, crediting one found in the product's text even if it
was not asked for; counting over the goal's options, as here, keeps r within [0, 1].
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from envs.webshop.catalog import Catalog, Product, indefinite_article
from envs.webshop.search import tokenize

SPLITS = ("train", "test")
TASKS_PER_SPLIT = {"train": 100_000, "test": 500}
TEST_EVERY = 10  # products whose index is a multiple of this are the test split's targets
PRICE_STEPS = tuple(10.0 * i for i in range(1, 100))  # WebShop's PRICE_RANGE
OPENERS = ("i need", "i am looking for", "i want", "find me", "i'm searching for", "i would like")
OPTION_PHRASES = {
    "color": "in {} color",
    "size": "in size {}",
    "flavor": "in {} flavor",
    "scent": "with {} scent",
    "roast": "in {}",
    "pack": "in a {}",
    "set": "in a {}",
    "model": "for {}",
    "length": "in {} length",
    "capacity": "with {} capacity",
    "thickness": "in {} thickness",
    "weight": "in {} weight",
}


@dataclass(frozen=True)
class Goal:
    """What the shopper wants: from `target`, these attributes, option values and cap."""

    target: Product
    attributes: tuple[str, ...]
    options: dict[str, str]  # option name -> wanted value
    price_upper: float
    text: str  # "i need a gluten free snack pack in chocolate flavor, and price lower than 30.00 dollars"

    @property
    def keywords(self) -> str:
        """The need's key terms: its attributes, product type and option values."""
        return " ".join((*self.attributes, self.target.product_type.name, *self.options.values()))


@dataclass(frozen=True)
class Score:
    """WebShop's reward of one purchase, with its parts."""

    reward: float
    type_factor: float
    attributes_matched: int
    options_matched: int
    price_ok: bool


def split_size(shop: Catalog, split: str) -> int:
    """How many products of `shop` are targets of `split`."""
    tests = -(-len(shop) // TEST_EVERY)
    return tests if split == "test" else len(shop) - tests


def split_product(shop: Catalog, split: str, rank: int) -> Product:
    """The `rank`-th target product of `split` (test: indices 0, 10, 20, ...; train: the rest)."""
    if split == "test":
        return shop.products[rank * TEST_EVERY]
    per_block = TEST_EVERY - 1
    return shop.products[rank // per_block * TEST_EVERY + rank % per_block + 1]


def price_cap(rng: random.Random, price: float) -> float:
    above = [step for step in PRICE_STEPS if step > price][:4]
    return max(rng.sample(above, 2)) if len(above) >= 2 else 1_000_000.0


def make_goal(shop: Catalog, split: str, task: int) -> Goal:
    """Task `task` of `split`: the same catalogue, split and index give the same goal."""
    rng = random.Random(f"webshop:{shop.seed}:{split}:{task}")
    target = split_product(shop, split, rng.randrange(split_size(shop, split)))
    attributes = tuple(rng.sample(target.attributes, rng.randint(1, min(3, len(target.attributes)))))
    options = {name: rng.choice(values) for name, values in target.options.items()}
    cap = price_cap(rng, target.price)
    return Goal(target, attributes, options, cap, need_text(rng, target, attributes, options, cap))


def need_text(
    rng: random.Random, target: Product, attributes: tuple[str, ...], options: dict[str, str], cap: float
) -> str:
    """The need in WebShop's words, e.g. 'i need a gluten free snack pack in chocolate flavor,
    and price lower than 30.00 dollars'.
    """
    kind = target.product_type
    before = [a for a in attributes if not a.startswith(("for ", "with "))]
    after = [a for a in attributes if a.startswith(("for ", "with "))]
    phrase = " ".join(filter(None, [" and ".join(before), kind.name, " and ".join(after)]))
    article = kind.article
    if article in ("a", "an"):
        article = indefinite_article(phrase)
    wanted = " and ".join(
        OPTION_PHRASES.get(name, name + " {}").format(value) for name, value in options.items()
    )
    need = " ".join(filter(None, [rng.choice(OPENERS), article, phrase, wanted]))
    return need + (f", and price lower than {cap:.2f} dollars" if cap < 1_000_000 else "")


# ---- the reward --------------------------------------------------------------------------
def type_factor(bought: Product, wanted: Product) -> float:
    """WebShop's `r_type`: how far `bought` is the kind of thing `wanted` is."""
    query_match = bought.product_type.name == wanted.product_type.name
    category_match = len(set(bought.category_path) & set(wanted.category_path)) >= 2
    wanted_nouns = set(tokenize(wanted.product_type.name))
    bought_nouns = set(tokenize(bought.product_type.name))
    title_score = len(wanted_nouns & bought_nouns) / len(wanted_nouns) if wanted_nouns else 0.2
    if title_score == 0.0:
        return 0.0
    if title_score < 0.1:
        return 0.1
    return 1.0 if query_match or category_match or title_score > 0.2 else 0.5


def attribute_matched(product: Product, attribute: str) -> bool:
    if attribute in product.attributes:
        return True
    texts = (product.title, " ".join(product.features), product.description)
    return any(attribute in text.lower() for text in texts)


def score(product: Product, chosen: dict[str, str], goal: Goal) -> Score:
    """WebShop's reward for buying `product` with the option values `chosen` under `goal`."""
    factor = type_factor(product, goal.target)
    attributes = sum(attribute_matched(product, attribute) for attribute in goal.attributes)
    picked = {value.lower() for value in chosen.values()}
    options = sum(value.lower() in picked for value in goal.options.values())
    price_ok = product.price <= goal.price_upper
    total = (attributes + options + price_ok) / (len(goal.attributes) + len(goal.options) + 1)
    return Score(total * factor, factor, attributes, options, price_ok)


def best_choice(product: Product, goal: Goal) -> dict[str, str]:
    """The goal's option values that `product` offers, by option name."""
    return {
        name: value
        for name, values in product.options.items()
        for value in goal.options.values()
        if value in values
    }


def fulfils(product: Product, goal: Goal) -> bool:
    """Whether buying `product` (with the goal's options) scores 1.0."""
    return score(product, best_choice(product, goal), goal).reward >= 1.0
