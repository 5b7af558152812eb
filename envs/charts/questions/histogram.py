"""Questions on histograms: bin counts, extremes, cumulative counts, shares of the samples."""

from __future__ import annotations

from envs.charts.chart import Panel, bin_label, histogram_counts, plural
from envs.charts.questions.question import Question, in_sentence, unique_extreme
from envs.numbers import format_number


def _bins(p: Panel) -> list[tuple[float, float, int]]:
    (samples,) = p.samples.values()
    counts = histogram_counts(samples, p.bins)
    return [(a, b, c) for a, b, c in zip(p.bins[:-1], p.bins[1:], counts)]


def _unit(p: Panel) -> str:
    return f" {p.unit}" if p.unit else ""


def bin_count(rng, p: Panel) -> Question:
    a, b, c = _bins(p)[int(rng.integers(len(p.bins) - 1))]
    return Question(
        f"How many {plural(p.series_noun)} fall in the bin from {format_number(a, 2)} to {format_number(b, 2)}{_unit(p)}?",
        str(c),
        "integer",
        "recognition",
        "bin_count",
        f"count({format_number(a, 2)} <= value < {format_number(b, 2)}) = {c}",
        {"low": a, "high": b},
    )


def extreme_bin(rng, p: Panel) -> Question | None:
    bins = _bins(p)
    highest = bool(rng.random() < 0.5)
    index = unique_extreme([c for _, _, c in bins], highest)
    if index is None:
        return None
    word = "most" if highest else "fewest"
    answer = bin_label(bins[index][0], bins[index][1])
    listing = ", ".join(f"{bin_label(a, b)}: {c}" for a, b, c in bins)
    return Question(
        f"Which bin holds the {word} {plural(p.series_noun)}? Answer with its range, as in 10-20.",
        answer,
        "label",
        "recognition",
        f"{word}_bin",
        f"{'max' if highest else 'min'}({listing}) = {answer}",
        {"highest": highest},
        noun="bin",
    )


def count_bins(rng, p: Panel) -> Question:
    n = len(p.bins) - 1
    return Question(
        "How many bins does the histogram have?",
        str(n),
        "integer",
        "recognition",
        "count_bins",
        f"len({p.bins}) - 1 = {n}",
    )


def below_count(rng, p: Panel) -> Question:
    bins = _bins(p)
    k = int(rng.integers(1, len(bins)))
    edge = bins[k][0]
    c = sum(count for _, _, count in bins[:k])
    return Question(
        f"How many {plural(p.series_noun)} have a {in_sentence(p.metric)} below {format_number(edge, 2)}{_unit(p)}?",
        str(c),
        "integer",
        "reasoning",
        "below_count",
        f"{' + '.join(str(count) for _, _, count in bins[:k])} = {c}",
        {"edge": edge},
    )


def range_share(rng, p: Panel) -> Question:
    bins = _bins(p)
    i = int(rng.integers(0, len(bins) - 1))
    j = int(rng.integers(i + 2, len(bins) + 1))
    inside = sum(c for _, _, c in bins[i:j])
    n = sum(c for _, _, c in bins)
    answer = format_number(inside / n * 100, 2)
    low, high = bins[i][0], bins[j - 1][1]
    return Question(
        f"What percentage of the {plural(p.series_noun)} have a {in_sentence(p.metric)} from {format_number(low, 2)} "
        f"up to {format_number(high, 2)}{_unit(p)}? Round to two decimals.",
        answer,
        "number",
        "reasoning",
        "range_share",
        f"({' + '.join(str(c) for _, _, c in bins[i:j])}) / {n} * 100 = {answer}",
        {"low": low, "high": high},
        "%",
    )


def bin_difference(rng, p: Panel) -> Question | None:
    bins = _bins(p)
    i, j = (int(k) for k in rng.choice(len(bins), 2, replace=False))
    if bins[i][2] < bins[j][2]:
        i, j = j, i
    if bins[i][2] == bins[j][2]:
        return None
    a, b = bins[i], bins[j]
    answer = str(a[2] - b[2])
    return Question(
        f"How many more {plural(p.series_noun)} are in the {bin_label(a[0], a[1])} bin than in the "
        f"{bin_label(b[0], b[1])} bin?",
        answer,
        "integer",
        "reasoning",
        "bin_difference",
        f"{a[2]} - {b[2]} = {answer}",
        {"a": [a[0], a[1]], "b": [b[0], b[1]]},
    )


def total_count(rng, p: Panel) -> Question:
    bins = _bins(p)
    n = sum(c for _, _, c in bins)
    return Question(
        f"Adding up all bins, how many {plural(p.series_noun)} does the histogram count?",
        str(n),
        "integer",
        "reasoning",
        "total_count",
        f"{' + '.join(str(c) for _, _, c in bins)} = {n}",
    )


HISTOGRAM_TEMPLATES = {
    "recognition": [bin_count, extreme_bin, count_bins],
    "reasoning": [below_count, range_share, bin_difference, total_count],
}
