"""Diversity of an attacker's prompts against its past ones: Self-BLEU and a similarity.

GPO (Zheng et al. 2024) penalises an attacker prompt by its Self-BLEU against the
attacker's earlier prompts (n = 2..5) and by its embedding similarity to them. Here:

- `self_bleu(prompt, history)`: the mean over n = 2..5 of sentence BLEU-n (uniform
  weights over orders 1..n, n-gram counts clipped by their maximum count in any one
  earlier prompt, brevity penalty against the closest length, and zero counts smoothed
  to 0.1 / number of n-grams: NLTK's smoothing method 1, as Texygen's Self-BLEU uses).
- `similarity(prompt, history)`: **an embedding-free stand-in** for the embedding
  cosine: the mean TF-IDF cosine (word unigrams and bigrams, smoothed IDF fitted on the
  history plus the prompt) between the prompt and each earlier prompt; `char` n-gram
  cosine (3-5 characters) is the other choice. No model is needed and the value is
  deterministic; like an embedding cosine it is 1 for a repeat and near 0 for prompts
  with no words in common, but it misses paraphrases an embedding would catch.

`PromptMemory` keeps the earlier prompts: a window of the most recent ones, each tagged
with the episode it came from so that a replayed episode can forget its earlier run.
"""

from __future__ import annotations

import math
import re
from collections import Counter, deque
from collections.abc import Hashable, Iterable

BLEU_ORDERS = (2, 3, 4, 5)
SMOOTHING_EPSILON = 0.1
SIMILARITIES = ("tfidf", "char")
_TOKEN = re.compile(r"\w+|[^\w\s]")


def tokenize(text: str) -> list[str]:
    """Lower-case words and punctuation marks."""
    return _TOKEN.findall(text.lower())


def ngrams(tokens: list[str], n: int) -> Counter:
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def sentence_bleu(candidate: list[str], references: list[list[str]], max_order: int) -> float:
    """BLEU of `candidate` against `references` with uniform weights over orders 1..max_order."""
    if not candidate or not references:
        return 0.0
    log_precision = 0.0
    for n in range(1, max_order + 1):
        counts = ngrams(candidate, n)
        total = max(1, len(candidate) - n + 1)
        limits: Counter = Counter()
        for reference in references:
            for gram, count in ngrams(reference, n).items():
                if count > limits[gram]:
                    limits[gram] = count
        matches = sum(min(count, limits[gram]) for gram, count in counts.items())
        precision = matches / total if matches else SMOOTHING_EPSILON / total
        log_precision += math.log(precision) / max_order
    length = len(candidate)
    closest = min((abs(len(r) - length), len(r)) for r in references)[1]
    brevity = 1.0 if length > closest else math.exp(1.0 - closest / length)
    return brevity * math.exp(log_precision)


def self_bleu(prompt: str, history: Iterable[str], orders: tuple[int, ...] = BLEU_ORDERS) -> float:
    """The mean BLEU-n (n in `orders`) of `prompt` against the earlier prompts; 0 with none."""
    references = [tokenize(text) for text in history]
    references = [r for r in references if r]
    candidate = tokenize(prompt)
    if not references or not candidate:
        return 0.0
    return sum(sentence_bleu(candidate, references, n) for n in orders) / len(orders)


def _word_features(text: str) -> Counter:
    tokens = [t for t in tokenize(text) if t[0].isalnum()]
    return Counter(tokens) + Counter(" ".join(pair) for pair in zip(tokens, tokens[1:]))


def _char_features(text: str) -> Counter:
    text = " " + " ".join(tokenize(text)) + " "
    return Counter(text[i : i + n] for n in (3, 4, 5) for i in range(len(text) - n + 1))


def _cosine(a: dict[str, float], b: dict[str, float]) -> float:
    if not a or not b:
        return 0.0
    dot = sum(value * b.get(key, 0.0) for key, value in a.items())
    norm = math.sqrt(sum(v * v for v in a.values())) * math.sqrt(sum(v * v for v in b.values()))
    return dot / norm if norm else 0.0


def similarities(prompt: str, history: Iterable[str], kind: str = "tfidf") -> list[float]:
    """The cosine similarity of `prompt` to each earlier prompt (TF-IDF words, or char n-grams)."""
    if kind not in SIMILARITIES:
        raise ValueError(f"similarity must be one of {SIMILARITIES}, got {kind!r}")
    history = list(history)
    if not history:
        return []
    features = _word_features if kind == "tfidf" else _char_features
    docs = [features(text) for text in [prompt, *history]]
    if kind == "char":
        vectors = [dict(doc) for doc in docs]
    else:
        frequency: Counter = Counter()
        for doc in docs:
            frequency.update(doc.keys())
        idf = {term: math.log((1 + len(docs)) / (1 + df)) + 1.0 for term, df in frequency.items()}
        vectors = [{term: count * idf[term] for term, count in doc.items()} for doc in docs]
    return [_cosine(vectors[0], other) for other in vectors[1:]]


def similarity(prompt: str, history: Iterable[str], kind: str = "tfidf") -> float:
    """The mean cosine similarity of `prompt` to the earlier prompts; 0 with none."""
    values = similarities(prompt, history, kind)
    return sum(values) / len(values) if values else 0.0


class PromptMemory:
    """An attacker's earlier prompts: the last `window` of them (None: all), each with its episode.

    `forget(episode)` drops one episode's prompts (a replayed episode forgets its earlier
    run); several envs may share one memory (pass it to each)."""

    def __init__(self, window: int | None = 64):
        if window is not None and window < 1:
            raise ValueError(f"window must be a positive integer or None, got {window!r}")
        self.window = window
        self._entries: deque[tuple[Hashable, str]] = deque(maxlen=window)

    def add(self, episode: Hashable, prompt: str) -> None:
        self._entries.append((episode, prompt))

    def forget(self, episode: Hashable) -> None:
        kept = [(key, prompt) for key, prompt in self._entries if key != episode]
        if len(kept) != len(self._entries):
            self._entries = deque(kept, maxlen=self.window)

    def clear(self) -> None:
        self._entries.clear()

    def prompts(self) -> list[str]:
        return [prompt for _, prompt in self._entries]

    def __len__(self) -> int:
        return len(self._entries)
