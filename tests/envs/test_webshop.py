"""evol/WebShop-v0: the catalogue, BM25 search, WebShop's score, pages, invalid actions, expert."""

from __future__ import annotations

import math
import re
from dataclasses import replace

import pytest

import envs
from envs.errors import TaskOptionError
from envs.webshop.catalog import PRODUCT_TYPES, Product, ProductType, catalog, generate_catalog
from envs.webshop.env import WebShopEnv
from envs.webshop.goal import TASKS_PER_SPLIT, Goal, fulfils, make_goal, score, type_factor
from envs.webshop.search import SearchIndex, fold, product_search, tokenize


@pytest.fixture(scope="module")
def env() -> WebShopEnv:
    return envs.make("evol/WebShop-v0")


def clickables(observation: str) -> list[str]:
    return re.findall(r"click\[([^\]]+)\]", observation.splitlines()[-1])


# ---- the catalogue ----------------------------------------------------------------------------
def test_catalog_is_deterministic_from_its_seed_and_sized_by_its_argument():
    first, again, other = (
        generate_catalog(300, seed=3),
        generate_catalog(300, seed=3),
        generate_catalog(300, seed=4),
    )
    assert first == again
    assert [p.title for p in first.products] != [p.title for p in other.products]
    assert len(first) == 300 and len(generate_catalog(40, seed=3)) == 40
    assert len(first.by_asin) == 300
    assert all(re.fullmatch(r"B0[0-9A-Z]{8}", p.asin) for p in first.products)


def test_default_catalog_is_varied():
    shop = catalog()
    assert len(shop) == 5000
    assert len({p.product_type.name for p in shop.products}) == len(PRODUCT_TYPES) == 56
    assert len({p.department for p in shop.products}) == 7
    assert len({a for p in shop.products for a in p.attributes}) > 200
    assert len({v for p in shop.products for vs in p.options.values() for v in vs}) > 150
    assert len(product_search(shop).vocabulary) > 800
    for product in shop.products[:200]:
        assert 2 <= len(product.attributes) <= 5
        assert product.options and all(2 <= len(values) <= 6 for values in product.options.values())
        values = [v for vs in product.options.values() for v in vs]
        assert len(values) == len(set(values)), "option values must be unambiguous buttons"
        assert product.product_type.name.lower() in product.title.lower()
        assert len(product.features) == len(product.attributes) and product.description
        low, high = product.product_type.price
        assert low <= product.price <= high + 1


# ---- search -----------------------------------------------------------------------------------
def test_fold_and_tokenize():
    assert [fold(w) for w in ("shoes", "berries", "dresses", "boxes", "glass", "pants", "oz")] == [
        "shoe", "berry", "dress", "box", "glass", "pant", "oz",
    ]  # fmt: skip
    assert tokenize("I need Gluten-Free snack packs, 12 count!") == [
        "gluten",
        "free",
        "snack",
        "pack",
        "12",
        "count",
    ]


def test_bm25_scores_match_the_formula_on_a_small_corpus():
    documents = ["red ball red", "blue ball", "green cube cube cube", "red cube"]
    index = SearchIndex(documents, k1=0.9, b=0.4)
    lengths = [3, 2, 4, 2]
    average = sum(lengths) / 4

    def bm25(tf: int, df: int, length: int) -> float:
        idf = math.log(1 + (4 - df + 0.5) / (df + 0.5))
        return idf * tf * 1.9 / (tf + 0.9 * (1 - 0.4 + 0.4 * length / average))

    expected = [bm25(2, 2, 3) + bm25(1, 2, 3), bm25(1, 2, 2), 0.0, bm25(1, 2, 2)]
    assert index.scores("red ball") == pytest.approx(expected)
    assert index.search("red ball") == [0, 1, 3]  # 1 and 3 tie: catalogue order
    assert index.search("cube", limit=1) == [2]
    assert index.search("purple") == []


def test_search_ranks_the_target_on_the_first_page_for_most_tasks():
    shop = catalog()
    index = product_search(shop)
    target_first, match_first, need_first = 0, 0, 0
    tasks = 100
    for k in range(tasks):
        goal = make_goal(shop, "test", k)
        hits = index.search(goal.keywords)
        target_first += goal.target.index in hits[:10]
        match_first += any(fulfils(shop.products[i], goal) for i in hits[:10])
        need_first += goal.target.index in index.search(goal.text)[:10]
    assert target_first >= 0.8 * tasks  # measured: 89% over the 500 test tasks
    assert need_first >= 0.8 * tasks  # the need's own text as the query: 87%
    assert match_first >= 0.97 * tasks  # some product that fully fits: 99.8%


# ---- WebShop's score --------------------------------------------------------------------------
SNACK_PACK = ProductType(
    "snack pack",
    ("Snacks", "Snack Packs"),
    {"flavor": ("chocolate", "vanilla"), "size": ("12 count", "24 count")},
    (8, 35),
    (),
    (),
    "a",
)
BASE = Product(
    index=0,
    asin="B0TARGET00",
    department="Grocery & Gourmet Food",
    product_type=SNACK_PACK,
    brand="Nutri Valley",
    title="Nutri Valley Snack Pack, Gluten Free",
    price=20.0,
    attributes=("gluten free", "non gmo", "vegan"),
    options={"flavor": ("chocolate", "vanilla"), "size": ("12 count", "24 count")},
    features=("Gluten Free - made for lunch boxes.",),
    description="A crunchy snack.",
    rating=4.5,
)
GOAL = Goal(BASE, ("gluten free", "non gmo"), {"flavor": "chocolate", "size": "12 count"}, 30.0, "i need ...")
WANTED = {"flavor": "chocolate", "size": "12 count"}


def bought(**changes) -> Product:
    return replace(BASE, **changes)


def kind(name: str, path: tuple[str, ...]) -> ProductType:
    return replace(SNACK_PACK, name=name, path=path)


@pytest.mark.parametrize(
    ("product", "chosen", "reward"),
    [
        # everything: (2 attributes + 2 options + price) / (2 + 2 + 1)
        (BASE, WANTED, 1.0),
        # an option not chosen: (2 + 1 + 1) / 5
        (BASE, {"flavor": "chocolate"}, 0.8),
        # the other value of an option: (2 + 1 + 1) / 5
        (BASE, {"flavor": "vanilla", "size": "12 count"}, 0.8),
        # no option chosen at all: (2 + 0 + 1) / 5
        (BASE, {}, 0.6),
        # over the price cap: (2 + 2 + 0) / 5
        (bought(price=30.01), WANTED, 0.8),
        # exactly at the cap is within it
        (bought(price=30.0), WANTED, 1.0),
        # an attribute missing everywhere: (1 + 2 + 1) / 5
        (bought(attributes=("gluten free", "vegan")), WANTED, 0.8),
        # an attribute not listed but said in the description still matches
        (bought(attributes=("gluten free",), description="Non GMO oats."), WANTED, 1.0),
        # "gluten free" only in the features, "non gmo" nowhere, an option missing, over
        # the price: (1 + 1 + 0) / 5
        (
            bought(attributes=("vegan",), title="Nutri Valley Snack Pack", price=31.0),
            {"flavor": "chocolate"},
            0.4,
        ),
        # wrong type from the same aisle: no noun shared, so r_type 0 despite the category
        (bought(product_type=kind("trail mix", ("Snacks", "Nuts & Trail Mix"))), WANTED, 0.0),
        # another type sharing a noun (1/2 > 20%): WebShop counts it the same type
        (bought(product_type=kind("snack bar", ("Snacks", "Bars"))), WANTED, 1.0),
    ],
)
def test_score_matches_hand_computed_cases(product, chosen, reward):
    assert score(product, chosen, GOAL).reward == pytest.approx(reward)


def test_type_factor_follows_webshops_thresholds():
    sheet_set = bought(
        product_type=kind("extra long twin bed sheet", ("Bedding", "Sheets")), department="Home"
    )
    craft_sheet = bought(product_type=kind("wool sheet", ("Crafts", "Fabric")), department="Arts")
    bedding_sheet = bought(product_type=kind("wool sheet", ("Bedding", "Sheets")), department="Arts")
    # 1 of 5 nouns (20%, not above it), no category match: 0.5
    assert type_factor(craft_sheet, sheet_set) == 0.5
    # the same with two levels of the category path shared: 1.0
    assert type_factor(bedding_sheet, sheet_set) == 1.0
    # 1 of 11 nouns (under 10%): 0.1, whatever the category
    eleven = replace(
        sheet_set, product_type=kind(" ".join(f"w{i}" for i in range(10)) + " sheet", ("Bedding", "Sheets"))
    )
    assert type_factor(bedding_sheet, eleven) == 0.1
    # the factor scales the share: 0.5 * (2 + 2 + 1) / 5
    assert score(craft_sheet, WANTED, replace(GOAL, target=sheet_set)).reward == 0.5


def test_every_goal_is_fulfilled_by_its_own_target():
    shop = catalog()
    for split in ("train", "test"):
        for k in range(200):
            goal = make_goal(shop, split, k)
            assert fulfils(goal.target, goal)
            assert goal.target.price <= goal.price_upper <= goal.target.price + 40
            assert f"price lower than {goal.price_upper:.2f} dollars" in goal.text
            assert goal.target.product_type.name in goal.text
            assert all(value in goal.text for value in goal.options.values())


def test_buying_without_options_through_the_env_scores_the_partial_reward(env):
    env.reset(options={"task": 3, "split": "test"})
    goal = env.goal
    while env._page != "item":  # the expert opens a product that fits
        env.step(env.expert_action())
    _, reward, terminated, _, info = env.step("click[Buy Now]")
    attributes, options = len(goal.attributes), len(goal.options)
    assert terminated and not info["success"]
    assert reward == pytest.approx((attributes + 0 + 1) / (attributes + options + 1))
    assert info["score"]["options_matched"] == 0


# ---- tasks and splits ---------------------------------------------------------------------------
def test_tasks_replay_and_splits_are_disjoint(env):
    _, info = env.reset(options={"task": 7, "split": "test"})
    first = (env.goal.target.asin, info["goal"])
    _, info = env.reset(seed=99, options={"task": 7, "split": "test"})
    assert (env.goal.target.asin, info["goal"]) == first
    shop = env.shop
    assert all(make_goal(shop, "test", k).target.index % 10 == 0 for k in range(100))
    assert all(make_goal(shop, "train", k).target.index % 10 != 0 for k in range(300))
    assert TASKS_PER_SPLIT == {"train": 100_000, "test": 500}
    with pytest.raises(TaskOptionError):
        env.reset(options={"task": 500, "split": "test"})
    with pytest.raises(TaskOptionError):
        env.reset(options={"split": "dev"})


# ---- pages ------------------------------------------------------------------------------------
def test_pages_list_their_clickables_in_webshops_text_format(env):
    obs, info = env.reset(options={"task": 0, "split": "test"})
    need = info["goal"]
    assert obs.startswith(f"WebShop [SEP] Instruction: [SEP] {need} [SEP] Search")
    assert info["valid_actions"] == [f"search[{need}]"]
    obs, *_, info = env.step(f"search[{env.goal.keywords}]")
    assert obs.startswith(
        f"Instruction: [SEP] {need} [SEP] Back to Search [SEP] Page 1 (Total results: 50) [SEP] Next > [SEP] B0"
    )
    assert info["valid_actions"] == [f"click[{b}]" for b in clickables(obs)]
    asin = clickables(obs)[2]
    obs, *_, info = env.step(f"click[{asin.lower()}]")  # buttons match case-insensitively
    product = env.shop.by_asin[asin]
    assert f"[SEP] {product.title} [SEP] Price: ${product.price:.2f} [SEP]" in obs
    for name, values in product.options.items():
        assert f" [SEP] {name} [SEP] " + " [SEP] ".join(values) in obs
    assert clickables(obs)[:2] == ["Back to Search", "< Prev"] and clickables(obs)[-3:] == [
        "Description",
        "Features",
        "Buy Now",
    ]
    obs, *_ = env.step("click[Description]")
    assert obs.splitlines()[0].endswith(f"[SEP] < Prev [SEP] {product.description}")
    obs, *_ = env.step("click[< Prev]")
    obs, *_ = env.step("click[features]")
    assert " [SEP] ".join(product.features) in obs
    env.step("click[< Prev]")
    obs, *_ = env.step("click[< Prev]")
    assert "Page 1 (Total results: 50)" in obs
    obs, *_ = env.step("click[Back to Search]")
    assert obs.startswith("WebShop [SEP] Instruction:")


def test_results_page_ten_at_a_time(env):
    env.reset(options={"task": 1, "split": "test"})
    hits = env.index.search(env.goal.keywords, 50)
    obs, *_ = env.step(f"search[{env.goal.keywords}]")
    asins = [env.shop.products[i].asin for i in hits]
    assert clickables(obs) == ["Back to Search", "Next >", *asins[:10]]
    for page in range(2, 6):
        obs, *_ = env.step("click[Next >]")
        assert f"Page {page} (Total results: 50)" in obs
        buttons = clickables(obs)
        assert buttons[-10:] == asins[(page - 1) * 10 : page * 10]
        assert ("Next >" in buttons) == (page < 5) and "< Prev" in buttons
    obs, _, _, _, info = env.step("click[Next >]")
    assert info["invalid"] and "last page of results" in obs
    obs, *_ = env.step("click[< Prev]")
    assert "Page 4 (Total results: 50)" in obs


def test_choosing_an_option_replaces_the_earlier_value_of_that_option(env):
    env.reset(options={"task": 2, "split": "test"})
    obs, *_ = env.step(f"search[{env.goal.keywords}]")
    env.step(f"click[{clickables(obs)[2]}]")
    name, values = next(iter(env._product.options.items()))
    obs, *_ = env.step(f"click[{values[0]}]")
    assert f"Selected options: {name}: {values[0]}" in obs
    obs, *_ = env.step(f"click[{values[1].upper()}]")
    assert f"Selected options: {name}: {values[1]}" in obs and env._chosen == {name: values[1]}


# ---- invalid actions ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("page", "action", "reason"),
    [
        ("search", "buy the cheapest thing", "is not an action; write search[<keywords>] or click[<button>]"),
        ("search", "click[Buy Now]", "the search page has no buttons"),
        ("search", "search[   ]", "the search keywords are empty"),
        ("results", "search[red shoes]", "there is no search bar on this page; click[Back to Search] first"),
        ("results", "click[< Prev]", "this is the first page of results"),
        ("results", "click[Buy Now]", "is a button of a product page; open a product first"),
        ("results", "click[Checkout]", "there is no 'Checkout' button on this page"),
        ("results", "click[]", "the button is empty"),
        ("item", "click[B0ZZZZZZZZ]", "'B0ZZZZZZZZ' is not an option of this product nor a button"),
        ("item", "click[plaid]", "'plaid' is not an option of this product nor a button of this page"),
    ],
)
def test_invalid_actions_are_explained_counted_and_change_nothing(env, page, action, reason):
    obs, _ = env.reset(options={"task": 4, "split": "test"})
    turn = 0
    if page != "search":
        obs, *_ = env.step(f"search[{env.goal.keywords}]")
        turn += 1
    if page == "item":
        obs, *_ = env.step(f"click[{clickables(obs)[2]}]")
        turn += 1
    after, reward, terminated, truncated, info = env.step(action)
    assert info["invalid"] is True and info["turn"] == turn + 1
    assert after.startswith("Invalid action: ") and reason in after.splitlines()[0]
    assert after.split("\n", 1)[1] == obs, "the page is shown again, unchanged"
    assert reward == 0.0 and not terminated and not truncated


def test_a_product_can_be_opened_only_from_its_page_of_results(env):
    env.reset(options={"task": 5, "split": "test"})
    obs, *_ = env.step(f"search[{env.goal.keywords}]")
    later = env.shop.products[env.index.search(env.goal.keywords)[15]].asin
    obs, *_, info = env.step(f"click[{later}]")
    assert info["invalid"] and f"product {later} is not on this page of results" in obs
    obs, *_ = env.step(f"click[{clickables(obs)[2]}]")
    obs, *_, info = env.step(f"click[{later}]")
    assert info["invalid"] and f"product {later} can be opened from a results page only" in obs


def test_episode_is_truncated_after_ten_turns_without_success(env):
    env.reset(options={"task": 6, "split": "test"})
    for turn in range(1, 11):
        _, reward, terminated, truncated, info = env.step(
            "click[Back to Search]" if turn % 2 else "search[mug]"
        )
    assert truncated and not terminated and reward == 0.0 and info["success"] is False
    assert envs.env_spec("evol/WebShop-v0")["max_turns"] == 10


# ---- the expert -------------------------------------------------------------------------------
def test_expert_succeeds_on_every_test_task_of_a_sample(env):
    for k in range(0, 500, 10):
        episode = envs.run_expert(env, options={"task": k, "split": "test"})
        assert episode.success and episode.reward == 1.0, (k, episode.actions)
        assert len(episode.actions) <= 6
        assert episode.actions[0] == f"search[{env.goal.keywords}]"


def test_expert_recovers_from_a_wrong_product_and_a_wrong_option():
    env = WebShopEnv(max_turns=20)
    env.reset(options={"task": 8, "split": "test"})
    goal = env.goal
    elsewhere = "yoga mat" if goal.target.product_type.name == "coffee mug" else "coffee mug"
    obs, *_ = env.step(f"search[{elsewhere}]")
    env.step(f"click[{clickables(obs)[2]}]")  # a product of another type
    assert env.expert_action() == "click[< Prev]"
    env.step("click[< Prev]")
    assert env.expert_action() == "click[Back to Search]"  # nothing here fits the need
    while not (env._page == "item" and fulfils(env._product, goal)):
        env.step(env.expert_action())
    name, wanted = next(iter(goal.options.items()))
    other = next(value for value in env._product.options[name] if value != wanted)
    env.step(f"click[{other}]")
    assert env.expert_action() == f"click[{wanted}]"
    while not env.episode_over:
        *_, info = env.step(env.expert_action())
    assert info["success"] is True


def test_card_cites_webshops_reward():
    card = WebShopEnv.card()
    assert "get_reward" in card and "r_type" in card and "|options matched|" in card
    assert WebShopEnv.reward_range == (0.0, 1.0) and WebShopEnv.max_turns == 10
