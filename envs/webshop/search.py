"""Ranked search over the catalogue: BM25 on an inverted index, built once per catalogue.

A product's document is its title (twice: titles weigh most, as on a shop), type, brand,
attributes, option values, features and description. Text is lower-cased, split on
anything but letters and digits, stripped of stop words, and plurals are folded
("shoes" -> "shoe", "berries" -> "berry"). Scoring is Okapi BM25 with Anserini's
defaults (k1 = 0.9, b = 0.4, the parameters of WebShop's Pyserini index). Every posting
holds its term's precomputed BM25 weight, so a query is one vector add per query term;
ties rank by catalogue order. `product_search(catalog)` keeps the indexes of the most
recently used catalogues, up to `MAX_CACHED_PRODUCTS` products in all.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Sequence

import numpy as np

from envs.caches import BoundedCache
from envs.webshop.catalog import MAX_CACHED_PRODUCTS, Catalog, Product

K1 = 0.9
B = 0.4
TOKEN = re.compile(r"[a-z0-9]+")
MAX_WORD_LENGTH = 40
STOPWORDS = frozenset(
    "a an and are as at be but by for from has have i i'm im in into is it its looking me my need "
    "of on or our so that the their this to want was we with you your".split()
)


@functools.lru_cache(maxsize=1 << 16)
def fold(word: str) -> str:
    """A light plural folding: enough that 'snack packs' finds 'snack pack'."""
    if len(word) <= 3 or not word.isalpha():
        return word
    if word.endswith("ies"):
        return word[:-3] + "y"
    if word.endswith(("sses", "xes", "ches", "shes")):
        return word[:-2]
    if word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def tokenize(text: str) -> list[str]:
    """The search terms of a text; words over `MAX_WORD_LENGTH` (in no product) are left out,
    so a client's query cannot fill `fold`'s cache with long words."""
    words = TOKEN.findall(text.lower())
    return [fold(word) for word in words if word not in STOPWORDS and len(word) <= MAX_WORD_LENGTH]


def product_document(product: Product) -> str:
    return " ".join(
        (
            product.title,
            product.title,
            product.product_type.name,
            product.brand,
            " ".join(product.attributes),
            " ".join(value for values in product.options.values() for value in values),
            " ".join(product.features),
            product.description,
        )
    )


class SearchIndex:
    """BM25 over a fixed list of documents; `search(query)` returns document indices.

    The postings are stored as CSR arrays: term t's documents are
    `docs[starts[t]:starts[t + 1]]` with BM25 weights `weights[...]` beside them.
    """

    def __init__(self, documents: Sequence[str], k1: float = K1, b: float = B):
        self.size = len(documents)
        self.vocabulary: dict[str, int] = {}
        word_terms: dict[str, int] = {}  # raw word -> term id (-1: a stop word)
        term_ids, doc_ids, tfs = [], [], []
        lengths = np.zeros(self.size)
        for doc, document in enumerate(documents):
            count: Counter[int] = Counter()
            for word, n in Counter(TOKEN.findall(document.lower())).items():
                term = word_terms.get(word)
                if term is None:
                    term = (
                        -1
                        if word in STOPWORDS
                        else self.vocabulary.setdefault(fold(word), len(self.vocabulary))
                    )
                    word_terms[word] = term
                if term >= 0:
                    count[term] += n
            lengths[doc] = sum(count.values())
            term_ids += count.keys()
            doc_ids += [doc] * len(count)
            tfs += count.values()
        terms = np.array(term_ids, dtype=np.int64)
        order = np.argsort(terms, kind="stable")  # stable: each term's docs stay ascending
        terms, self.docs = terms[order], np.array(doc_ids, dtype=np.int64)[order]
        tf = np.array(tfs, dtype=np.float64)[order]
        df = np.bincount(terms, minlength=len(self.vocabulary))
        self.starts = np.concatenate(([0], np.cumsum(df)))
        idf = np.log(1.0 + (self.size - df + 0.5) / (df + 0.5))
        norm = k1 * (1.0 - b + b * lengths / max(lengths.mean(), 1.0))
        self.weights = idf[terms] * tf * (k1 + 1.0) / (tf + norm[self.docs])

    def scores(self, query: str) -> np.ndarray:
        """The BM25 score of every document for `query` (each distinct term counted once)."""
        scores = np.zeros(self.size)
        for term in dict.fromkeys(tokenize(query)):
            t = self.vocabulary.get(term)
            if t is not None:
                span = slice(self.starts[t], self.starts[t + 1])
                scores[self.docs[span]] += self.weights[span]
        return scores

    def search(self, query: str, limit: int = 50) -> list[int]:
        """The indices of the `limit` best documents with a positive score, best first."""
        scores = self.scores(query)
        hits = np.flatnonzero(scores > 0)
        if len(hits) > limit:
            # Keep every document tied with the limit-th best so that ties break by index.
            cutoff = -np.partition(-scores[hits], limit - 1)[limit - 1]
            hits = hits[scores[hits] >= cutoff]
        ranked = hits[np.lexsort((hits, -scores[hits]))]
        return ranked[:limit].tolist()


INDEXES: BoundedCache[SearchIndex] = BoundedCache(MAX_CACHED_PRODUCTS, weight=lambda index: index.size)


def product_search(shop: Catalog) -> SearchIndex:
    """The search index of a catalogue made by `catalog(num_products, seed)`, once per process."""
    return INDEXES.get(
        (len(shop), shop.seed),
        lambda: SearchIndex([product_document(product) for product in shop.products]),
    )


def search_products(shop: Catalog, query: str, limit: int = 50) -> list[Product]:
    return [shop.products[i] for i in product_search(shop).search(query, limit)]
