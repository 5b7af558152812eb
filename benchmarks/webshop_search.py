"""WebShop search and step latency over a 10,000-product catalogue.

Builds the catalogue and its BM25 index (timed), then measures:
- search: the median (and p99) latency of one ranked query, top 50, over the key terms
  and the full need texts of train and test tasks (target <= 10 ms);
- step: the median (and p99) time of `WebShopEnv.step` over expert episodes and episodes
  of random valid actions (target <= 2 ms), and of the search steps alone.
Prints the figures and writes them as JSON.

    python benchmarks/webshop_search.py [--products 10000] [--queries 1000] [--episodes 200]
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import numpy as np

from envs.webshop.catalog import generate_catalog
from envs.webshop.env import WebShopEnv
from envs.webshop.goal import make_goal
from envs.webshop.search import SearchIndex, product_document


def percentiles_ms(seconds: list[float]) -> dict:
    values = np.array(seconds) * 1000
    return {"p50_ms": float(np.median(values)), "p99_ms": float(np.percentile(values, 99)), "n": len(values)}


def measure_search(index: SearchIndex, queries: list[str], repeats: int) -> dict:
    for query in queries[:50]:  # warm up
        index.search(query)
    latencies = []
    for _ in range(repeats):
        for query in queries:
            started = time.perf_counter()
            index.search(query)
            latencies.append(time.perf_counter() - started)
    return percentiles_ms(latencies)


def measure_steps(env: WebShopEnv, episodes: int, seed: int) -> tuple[dict, dict]:
    """Step times over expert episodes and random-action episodes (half each)."""
    rng = random.Random(seed)
    steps, searches = [], []
    for k in range(episodes):
        _, info = env.reset(options={"task": k % 500, "split": "test" if k % 2 else "train"})
        expert = k % 2 == 0
        done = False
        while not done:
            action = env.expert_action() if expert else rng.choice(info["valid_actions"])
            started = time.perf_counter()
            _, _, terminated, truncated, info = env.step(action)
            elapsed = time.perf_counter() - started
            steps.append(elapsed)
            if action.startswith("search["):
                searches.append(elapsed)
            done = terminated or truncated
    return percentiles_ms(steps), percentiles_ms(searches)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--products", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=1000, help="tasks whose queries are timed")
    parser.add_argument("--repeats", type=int, default=3, help="times each query is run")
    parser.add_argument("--episodes", type=int, default=200, help="episodes whose steps are timed")
    parser.add_argument("--out", default="benchmarks/results/webshop_search.json")
    args = parser.parse_args()

    started = time.perf_counter()
    shop = generate_catalog(args.products, seed=0)
    catalog_s = time.perf_counter() - started
    started = time.perf_counter()
    index = SearchIndex([product_document(product) for product in shop.products])
    index_s = time.perf_counter() - started

    goals = [make_goal(shop, "test" if k % 2 else "train", k // 2) for k in range(args.queries)]
    keywords = measure_search(index, [goal.keywords for goal in goals], args.repeats)
    needs = measure_search(index, [goal.text for goal in goals], args.repeats)
    env = WebShopEnv(num_products=args.products)
    steps, search_steps = measure_steps(env, args.episodes, seed=0)

    print(f"catalogue: {args.products:,} products in {catalog_s:.2f} s; BM25 index in {index_s:.2f} s")
    print(f"  ({len(index.vocabulary):,} terms, {len(index.docs):,} postings)")
    print(f"{'':26} {'p50 ms':>8} {'p99 ms':>8} {'n':>7}")
    rows = [
        ("search, key terms", keywords),
        ("search, full need text", needs),
        ("env step, all", steps),
        ("env step, search[...]", search_steps),
    ]
    for name, row in rows:
        print(f"{name:26} {row['p50_ms']:>8.3f} {row['p99_ms']:>8.3f} {row['n']:>7}")
    print("targets: search <= 10 ms, step <= 2 ms (medians)")
    result = {
        "products": args.products,
        "catalog_s": catalog_s,
        "index_s": index_s,
        "search_keywords": keywords,
        "search_need_text": needs,
        "step": steps,
        "search_step": search_steps,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
