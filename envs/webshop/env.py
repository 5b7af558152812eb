"""`evol/WebShop-v0`: WebShop's pages and actions over a generated catalogue with BM25 search."""

from __future__ import annotations

import re
from dataclasses import asdict
from typing import Any

from envs.core import RENDER_MODE, TextEnv, turns_param
from envs.params import Param, choice_param, task_param
from envs.webshop.catalog import DEFAULT_PRODUCTS, MAX_PRODUCTS, Catalog, Product, catalog
from envs.webshop.goal import SPLITS, TASKS_PER_SPLIT, Goal, Score, best_choice, fulfils, make_goal, score
from envs.webshop.search import product_search

SEP = " [SEP] "
PER_PAGE = 10
RESULTS = 50  # WebShop shows the 50 best hits
BACK, PREV, NEXT = "Back to Search", "< Prev", "Next >"
DESCRIPTION, FEATURES, BUY = "Description", "Features", "Buy Now"
ACTION = re.compile(r"^(search|click)\s*\[(.*)\]$", re.IGNORECASE | re.DOTALL)

INSTRUCTION = """\
You are web shopping on WebShop, a shop of {size:,} products with a search engine.
Your task: {need}.

Every turn you see the current page as text, its parts separated by [SEP], and a last line \
listing the available actions. Reply with exactly one action per turn, and nothing else:
- search[<keywords>]: search the shop (only on the search page); the 50 best matches are \
shown 10 to a page.
- click[<button>]: click a button of the page, written as it is shown: a product id on a \
results page (e.g. click[B0ABC12345]), click[Next >] and click[< Prev] to turn pages or go \
back, click[Back to Search], an option value on a product page (e.g. click[navy]), \
click[Description], click[Features], click[Buy Now].
Choose every option the task asks for before you click Buy Now. Buying ends the episode; \
the purchase is scored by how well the product, its options and its price fit the task. \
You have {max_turns} turns."""


def _money(price: float) -> str:
    return f"${price:.2f}"


class WebShopEnv(TextEnv):
    """
    WebShop: find and buy the product a shopper describes, in a shop with a search engine.

    ## Description

    WebShop (Yao et al. 2022) as AgentGym serves it, over a generated catalogue (by
    default 5,000 products of 56 types in 7 departments, with brands, attributes such as
    "machine washable" or "gluten free", options such as size, colour and flavour,
    prices, features and descriptions). Search is BM25 over an inverted index of each
    product's title, type, attributes, options, features and description. Pages are
    WebShop's: the search page; results (the 50 best hits, 10 to a page); a product page
    (its options, title, price, rating, and the Description and Features pages); and the
    purchase, which ends the episode. Observations are WebShop's text pages, their parts
    separated by `[SEP]`, with a last line listing the available actions.

    ## Instruction and action format

    `info["instruction"]` gives the need, e.g. "i need a gluten free snack pack in
    chocolate flavor, and price lower than 30.00 dollars" (`info["goal"]` alone), and
    this format. One action per turn, WebShop's:

    | Action | Where | Effect |
    |---|---|---|
    | `search[<keywords>]` | search page | the first results page for the keywords |
    | `click[<product id>]` | results page | that product's page |
    | `click[Next >]`, `click[< Prev]` | results page | the next or previous 10 results |
    | `click[< Prev]` | product, description, features page | back one page |
    | `click[Back to Search]` | every page but search | the search page |
    | `click[<option value>]` | product page | choose that value of its option (one per option) |
    | `click[Description]`, `click[Features]` | product page | the product's description or features |
    | `click[Buy Now]` | product page | buy with the chosen options; the episode ends |

    Buttons match case-insensitively. Anything else (another text, a button not on the
    page, a search away from the search page, an empty query) is invalid: the
    observation says what was wrong and shows the page again, `info["invalid"]` is true,
    and the turn counts. `info["valid_actions"]` lists the page's clicks; on the search
    page it holds one search, for the need's own text.

    ## Rewards

    0 until the purchase; then WebShop's score (`web_agent_site/engine/goal.py`,
    `get_reward`), in [0, 1]:

        r = r_type * (|attributes matched| + |options matched| + [price <= cap])
                   / (|attributes| + |options| + 1)

    `r_type` is WebShop's type factor: 1 if the product is of the goal's type (WebShop:
    the same query), or shares two levels of its category path, or more than 20% of the
    goal type's nouns; 0.5 if none holds; 0.1 if under 10% of the nouns are shared; 0 if
    none is. An attribute matches if the product has it or its title, features or
    description say it; an option matches if its value was chosen at purchase.
    `info["score"]` holds the parts at the end.

    ## Success

    The purchase scores 1.0: the right type, every attribute, every option chosen, and a
    price within the cap. The goal's own product always can; so can any equivalent one.

    ## Termination

    Terminated at the purchase. Truncated after `max_turns` turns (default 10, as in
    AgentGym's WebShop) with reward 0.

    ## Task options

    `reset(seed, options={"task": k, "split": "train" | "test"})`. Task `k` (below
    100,000 in train, 500 in test) fixes the target product, the attributes and options
    asked for and the price cap; test targets (every tenth product) are never train
    targets. Without `task`, `k` is drawn from the env's seeded generator; the same seed
    and options replay the same episode. Constructor kwargs: `num_products` (catalogue
    size, default 5,000, at most 20,000), `catalog_seed` (default 0), `max_turns`, `render_mode`
    ("ansi" returns the last observation).

    ## Registered configurations

    - `evol/WebShop-v0`: 5,000 products, 10 turns.
    """

    reward_range = (0.0, 1.0)
    max_turns = 10
    success_rule = "the purchase scores 1.0 (type, every attribute and option, price within the cap)"
    splits = SPLITS
    max_action_length = 512
    max_observation_length = 16384
    kwarg_params = {
        "num_products": Param(
            "int", default=DEFAULT_PRODUCTS, minimum=10, maximum=MAX_PRODUCTS, help="catalogue size"
        ),
        "catalog_seed": Param("int", default=0, minimum=0, maximum=2**31 - 1, help="the catalogue's seed"),
        "max_turns": turns_param(10, maximum=100),
        "render_mode": RENDER_MODE,
    }
    option_params = {
        "task": task_param(TASKS_PER_SPLIT),
        "split": choice_param(SPLITS, help='"train" (default) or "test"'),
    }

    def __init__(
        self,
        num_products: int = DEFAULT_PRODUCTS,
        catalog_seed: int = 0,
        max_turns: int | None = None,
        render_mode: str | None = None,
    ):
        super().__init__(max_turns=max_turns, render_mode=render_mode)
        self.shop: Catalog = catalog(num_products, catalog_seed)
        self.index = product_search(self.shop)
        self.goal: Goal | None = None
        self._page = "search"
        self._hits: list[Product] = []
        self._page_no = 1
        self._product: Product | None = None
        self._chosen: dict[str, str] = {}
        self._score: Score | None = None
        self._fulfils: dict[str, bool] = {}

    # ---- episode ----------------------------------------------------------------------
    def _reset(self, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        if options.get("split") is None:
            options.pop("split", None)
        split = self.select_choice(options, "split", self.splits, "train")
        task = self.select_task(options, TASKS_PER_SPLIT[split])
        self.goal = make_goal(self.shop, split, task)
        self._page, self._hits, self._page_no = "search", [], 1
        self._product, self._chosen, self._score = None, {}, None
        self._fulfils = {}
        instruction = INSTRUCTION.format(size=len(self.shop), need=self.goal.text, max_turns=self.max_turns)
        info = {"instruction": instruction, "goal": self.goal.text, "split": split, "task": task}
        return self._observe(), info

    def _step(self, action: str) -> tuple[str, float, bool, dict[str, Any]]:
        match = ACTION.match(action)
        if match is None:
            shown = action if len(action) <= 60 else action[:57] + "..."
            return self._invalid(f"'{shown}' is not an action; write search[<keywords>] or click[<button>]")
        verb, argument = match.group(1).lower(), " ".join(match.group(2).split())
        if verb == "search":
            if self._page != "search":
                return self._invalid(f"there is no search bar on this page; click[{BACK}] first")
            if not argument:
                return self._invalid("the search keywords are empty, as in search[]")
            return self._search(argument)
        buttons = {button.lower(): button for button in self._buttons()}
        button = buttons.get(argument.lower())
        if button is None:
            return self._invalid(self._why_not_clickable(argument))
        return self._click(button)

    def _success(self) -> bool:
        return self._score is not None and self._score.reward >= 1.0

    def valid_actions(self) -> list[str]:
        if self._page == "search":
            return [f"search[{self.goal.text}]"] if self.goal is not None else []
        return [f"click[{button}]" for button in self._buttons()]

    # ---- pages --------------------------------------------------------------------------
    def _search(self, query: str) -> tuple[str, float, bool, dict[str, Any]]:
        self._hits = [self.shop.products[i] for i in self.index.search(query, RESULTS)]
        self._page, self._page_no = "results", 1
        return self._observe(), 0.0, False, {}

    def _click(self, button: str) -> tuple[str, float, bool, dict[str, Any]]:
        page = self._page
        if button == BACK:
            self._page, self._hits, self._product, self._chosen = "search", [], None, {}
        elif page == "results" and button in (NEXT, PREV):
            self._page_no += 1 if button == NEXT else -1
        elif page == "results":
            self._product, self._chosen = self.shop.by_asin[button], {}
            self._page = "item"
        elif button == PREV:
            self._page = "results" if page == "item" else "item"
        elif button in (DESCRIPTION, FEATURES):
            self._page = button.lower()
        elif button == BUY:
            return self._buy()
        else:
            name = next(name for name, values in self._product.options.items() if button in values)
            self._chosen[name] = button
        return self._observe(), 0.0, False, {}

    def _buy(self) -> tuple[str, float, bool, dict[str, Any]]:
        product = self._product
        self._score = score(product, self._chosen, self.goal)
        self._page = "done"
        chosen = ", ".join(f"{name}: {value}" for name, value in self._chosen.items()) or "none"
        text = SEP.join(
            [
                "Thank you for shopping with us!",
                "Purchased",
                product.asin,
                product.title,
                _money(product.price),
                f"Options: {chosen}",
                "Your score (min 0.0, max 1.0)",
                f"{self._score.reward:.2f}",
            ]
        )
        info = {"purchased": product.asin, "chosen": dict(self._chosen), "score": asdict(self._score)}
        return text, self._score.reward, True, info

    def _page_hits(self) -> list[Product]:
        start = (self._page_no - 1) * PER_PAGE
        return self._hits[start : start + PER_PAGE]

    def _buttons(self) -> list[str]:
        """The page's clickable buttons, in the order the page shows them."""
        page = self._page
        if page == "results":
            buttons = [BACK]
            if self._page_no > 1:
                buttons.append(PREV)
            if self._page_no * PER_PAGE < len(self._hits):
                buttons.append(NEXT)
            return buttons + [product.asin for product in self._page_hits()]
        if page == "item":
            values = [value for values in self._product.options.values() for value in values]
            return [BACK, PREV, *values, DESCRIPTION, FEATURES, BUY]
        if page in ("description", "features"):
            return [BACK, PREV]
        return []

    def _observe(self) -> str:
        head = ["Instruction:", self.goal.text]
        page = self._page
        if page == "search":
            return SEP.join(["WebShop", *head, "Search"]) + "\nAvailable actions: search[<keywords>]"
        parts = [*head, BACK]
        if page == "results":
            if self._page_no > 1:
                parts.append(PREV)
            parts.append(f"Page {self._page_no} (Total results: {len(self._hits)})")
            if self._page_no * PER_PAGE < len(self._hits):
                parts.append(NEXT)
            for product in self._page_hits():
                parts += [product.asin, product.title, _money(product.price)]
            if not self._hits:
                parts.append("No products match your search.")
        elif page == "item":
            product = self._product
            parts.append(PREV)
            for name, values in product.options.items():
                parts += [name, *values]
            parts += [
                product.title,
                f"Price: {_money(product.price)}",
                f"Rating: {product.rating:.1f}",
                DESCRIPTION,
                FEATURES,
                BUY,
            ]
        elif page == "description":
            parts += [PREV, self._product.description]
        else:
            parts += [PREV, *self._product.features]
        text = SEP.join(parts)
        if page == "item" and self._chosen:
            text += "\nSelected options: " + ", ".join(f"{k}: {v}" for k, v in self._chosen.items())
        return text + "\nAvailable actions: " + ", ".join(f"click[{b}]" for b in self._buttons())

    def _invalid(self, reason: str) -> tuple[str, float, bool, dict[str, Any]]:
        return self.invalid(f"Invalid action: {reason}.\n{self._observe()}")

    def _why_not_clickable(self, button: str) -> str:
        """Say exactly why `button` cannot be clicked on this page."""
        page, wanted = self._page, button.lower()
        if not button:
            return "the button is empty, as in click[]"
        if page == "search":
            return "the search page has no buttons; search first, as in search[<keywords>]"
        if wanted == NEXT.lower() and page == "results":
            return "this is the last page of results"
        if wanted == PREV.lower() and page == "results":
            return "this is the first page of results"
        if wanted in (DESCRIPTION.lower(), FEATURES.lower(), BUY.lower()):
            return f"'{button}' is a button of a product page; open a product first"
        product = self.shop.by_asin.get(button.upper())
        if product is not None:
            if page != "results":
                return f"product {product.asin} can be opened from a results page only"
            return f"product {product.asin} is not on this page of results"
        if page == "item":
            return f"'{button}' is not an option of this product nor a button of this page"
        return f"there is no '{button}' button on this page"

    # ---- expert -----------------------------------------------------------------------
    def _is_match(self, product: Product) -> bool:
        if product.asin not in self._fulfils:
            self._fulfils[product.asin] = fulfils(product, self.goal)
        return self._fulfils[product.asin]

    def expert_action(self) -> str:
        """Search the need's key terms, open the first product that fully fits it (turning
        pages if it is further down), choose the wanted options, buy.
        """
        goal, page = self.goal, self._page
        if goal is None or page == "done":
            return f"click[{BACK}]"
        if page == "search":
            return f"search[{goal.keywords}]"
        if page == "results":
            for product in self._page_hits():
                if self._is_match(product):
                    return f"click[{product.asin}]"
            first = next((i for i, product in enumerate(self._hits) if self._is_match(product)), None)
            if first is None:
                return f"click[{BACK}]"
            return f"click[{NEXT}]" if first // PER_PAGE + 1 > self._page_no else f"click[{PREV}]"
        if page == "item" and self._is_match(self._product):
            for value in best_choice(self._product, goal).values():
                if self._chosen.get(self._option_of(value)) != value:
                    return f"click[{value}]"
            return f"click[{BUY}]"
        return f"click[{PREV}]"

    def _option_of(self, value: str) -> str:
        return next(name for name, values in self._product.options.items() if value in values)
