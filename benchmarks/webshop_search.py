"""WebShop search and step latency over a 10,000-product catalogue.

Builds the catalogue and its BM25 index (timed), then measures:
- search: the median (and p99) latency of one ranked query, top 50, over the key terms
  and the full need texts of train and test tasks (target <= 10 ms);
- step: the median (and p99) time of `WebShopEnv.step` over expert episodes and episodes
  of random valid actions (target <= 2 ms), and of the search steps alone (`--episodes 0`: none).
With `--compare-bm25s` (needs `pip install bm25s`), the same documents and terms are indexed
by bm25s (method "lucene", the same k1 and b) and timed the same way, through its `retrieve`
and through its scores with our top-k; `same_top50` is the share of queries whose ranked
results are identical to ours. Prints the figures and writes them as JSON.

    python benchmarks/webshop_search.py [--products 10000] [--queries 1000] [--episodes 200]
    python benchmarks/webshop_search.py --products 20000 --episodes 0 --compare-bm25s
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from envs.webshop.catalog import generate_catalog
from envs.webshop.env import WebShopEnv
from envs.webshop.goal import make_goal
from envs.webshop.search import K1, B, SearchIndex, product_document, tokenize


def percentiles_ms(seconds: list[float]) -> dict:
    values = np.array(seconds) * 1000
    return {"p50_ms": float(np.median(values)), "p99_ms": float(np.percentile(values, 99)), "n": len(values)}


class BM25sIndex:
    """The same documents and terms indexed by bm25s (Lucene's BM25, our k1 and b), for comparison."""

    def __init__(self, documents: list[str]):
        import bm25s

        self.retriever = bm25s.BM25(k1=K1, b=B, method="lucene")
        self.retriever.index([tokenize(document) for document in documents], show_progress=False)
        self.size = len(documents)

    def search(self, query: str, limit: int = 50) -> list[int]:
        """bm25s's scores, ranked as `SearchIndex.search` ranks (positive scores, ties by index)."""
        ids = self.retriever.get_tokens_ids(list(dict.fromkeys(tokenize(query))))
        if not ids:
            return []
        scores = self.retriever.get_scores_from_ids(ids)
        hits = np.flatnonzero(scores > 0)
        if len(hits) > limit:
            cutoff = -np.partition(-scores[hits], limit - 1)[limit - 1]
            hits = hits[scores[hits] >= cutoff]
        return hits[np.lexsort((hits, -scores[hits]))][:limit].tolist()

    def retrieve(self, query: str, limit: int = 50) -> list[int]:
        """bm25s through its own `retrieve` (top-k in its order of ties)."""
        terms = list(dict.fromkeys(tokenize(query))) or [""]
        documents, _ = self.retriever.retrieve([terms], k=min(limit, self.size), show_progress=False)
        return documents[0].tolist()


def compare_bm25s(documents: list[str], index: SearchIndex, queries: list[str], repeats: int) -> dict:
    started = time.perf_counter()
    SearchIndex(documents)
    own_s = time.perf_counter() - started
    started = time.perf_counter()
    other = BM25sIndex(documents)
    bm25s_s = time.perf_counter() - started
    return {
        "index_s": {"own": own_s, "bm25s": bm25s_s},
        "search_own": measure_search(index.search, queries, repeats),
        "search_bm25s_scores": measure_search(other.search, queries, repeats),
        "search_bm25s_retrieve": measure_search(other.retrieve, queries, repeats),
        "same_top50": float(np.mean([index.search(q) == other.search(q) for q in queries])),
    }


def measure_search(search: Callable[[str], list[int]], queries: list[str], repeats: int) -> dict:
    for query in queries[:50]:  # warm up
        search(query)
    latencies = []
    for _ in range(repeats):
        for query in queries:
            started = time.perf_counter()
            search(query)
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
    parser.add_argument("--compare-bm25s", action="store_true", help="time bm25s on the same documents")
    parser.add_argument("--out", default="benchmarks/results/webshop_search.json")
    args = parser.parse_args()
    if args.compare_bm25s:
        try:
            import bm25s  # noqa: F401
        except ImportError:
            parser.error("--compare-bm25s needs bm25s: pip install bm25s")

    started = time.perf_counter()
    shop = generate_catalog(args.products, seed=0)
    catalog_s = time.perf_counter() - started
    started = time.perf_counter()
    index = SearchIndex([product_document(product) for product in shop.products])
    index_s = time.perf_counter() - started

    goals = [make_goal(shop, "test" if k % 2 else "train", k // 2) for k in range(args.queries)]
    keywords = measure_search(index.search, [goal.keywords for goal in goals], args.repeats)
    needs = measure_search(index.search, [goal.text for goal in goals], args.repeats)
    print(f"catalogue: {args.products:,} products in {catalog_s:.2f} s; BM25 index in {index_s:.2f} s")
    print(f"  ({len(index.vocabulary):,} terms, {len(index.docs):,} postings)")
    print(f"{'':26} {'p50 ms':>8} {'p99 ms':>8} {'n':>7}")
    rows = [("search, key terms", keywords), ("search, full need text", needs)]
    result = {"products": args.products, "catalog_s": catalog_s, "index_s": index_s}
    result.update(search_keywords=keywords, search_need_text=needs)
    if args.episodes:
        steps, search_steps = measure_steps(WebShopEnv(num_products=args.products), args.episodes, seed=0)
        rows += [("env step, all", steps), ("env step, search[...]", search_steps)]
        result.update(step=steps, search_step=search_steps)
    if args.compare_bm25s:
        documents = [product_document(product) for product in shop.products]
        queries = [goal.text for goal in goals]
        comparison = compare_bm25s(documents, index, queries, args.repeats)
        result["bm25s"] = comparison
        rows += [
            ("need text: own BM25", comparison["search_own"]),
            ("need text: bm25s scores", comparison["search_bm25s_scores"]),
            ("need text: bm25s retrieve", comparison["search_bm25s_retrieve"]),
        ]
    for name, row in rows:
        print(f"{name:26} {row['p50_ms']:>8.3f} {row['p99_ms']:>8.3f} {row['n']:>7}")
    if args.compare_bm25s:
        built = comparison["index_s"]
        print(f"index build: own {built['own']:.2f} s, bm25s {built['bm25s']:.2f} s (same tokens)")
        print(f"identical top-50 rankings: {comparison['same_top50']:.1%} of {len(queries)} queries")
    print("targets: search <= 10 ms, step <= 2 ms (medians)")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
