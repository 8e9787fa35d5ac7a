"""A word n-gram LM in ARPA format, built from text with interpolated absolute discounting: for the beam-search
tests and the tuning benchmark, where KenLM's lmplz (not on PyPI) is not at hand.

Each listed n-gram's probability is the interpolated one, and each context's backoff weight is the mass its
discount set aside, so an ARPA reader (KenLM) gives every word exactly the interpolated probability."""

import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path

DISCOUNT = 0.75
BOS, EOS, UNK = "<s>", "</s>", "<unk>"


def arpa_text(sentences: Iterable[str], order: int = 3, discount: float = DISCOUNT) -> str:
    """The ARPA text of an `order`-gram LM of `sentences` (words split on white space, as given)."""
    counts: list[Counter] = [Counter() for _ in range(order + 1)]
    for sentence in sentences:
        words = [BOS, *sentence.split(), EOS]
        for n in range(1, order + 1):
            for i in range(max(0, 1 if n == 1 else 0), len(words) - n + 1):
                counts[n][tuple(words[i : i + n])] += 1
    counts[1].pop((BOS,), None)
    vocab = [UNK, BOS, *sorted(w for (w,) in counts[1])]
    total = sum(counts[1].values())
    prob: dict[tuple[str, ...], float] = {}
    backoff: dict[tuple[str, ...], float] = {}
    floor = discount * len(counts[1]) / total / (len(vocab) - 1)  # the discounted mass, spread over all but <s>
    for word in vocab:
        prob[(word,)] = max(counts[1][(word,)] - discount, 0) / total + floor if word != BOS else 0.0
    for n in range(2, order + 1):
        context_total: dict[tuple[str, ...], int] = defaultdict(int)
        followers: dict[tuple[str, ...], int] = defaultdict(int)
        for gram, count in counts[n].items():
            context_total[gram[:-1]] += count
            followers[gram[:-1]] += 1
        for context, seen in context_total.items():
            backoff[context] = discount * followers[context] / seen
        for gram, count in counts[n].items():
            context = gram[:-1]
            prob[gram] = (count - discount) / context_total[context] + backoff[context] * lower(prob, backoff, gram[1:])
    lines = ["", "\\data\\"]
    grams = [[g for g in prob if len(g) == n] for n in range(1, order + 1)]
    lines += [f"ngram {n}={len(g)}" for n, g in enumerate(grams, start=1)]
    for n, listed in enumerate(grams, start=1):
        lines += ["", f"\\{n}-grams:"]
        for gram in sorted(listed):
            logp = math.log10(prob[gram]) if prob[gram] > 0 else -99.0
            bow = f"\t{math.log10(backoff[gram]):.6f}" if n < order and gram in backoff else ""
            lines.append(f"{logp:.6f}\t{' '.join(gram)}{bow}")
    return "\n".join([*lines, "", "\\end\\", ""])


def lower(prob: dict, backoff: dict, gram: tuple[str, ...]) -> float:
    """P(last word | the rest) as an ARPA reader computes it: listed, or backed off to a shorter context."""
    if gram in prob:
        return prob[gram]
    if len(gram) == 1:
        return prob[(UNK,)]
    return backoff.get(gram[:-1], 1.0) * lower(prob, backoff, gram[1:])


def write_arpa(sentences: Iterable[str], path: Path, order: int = 3) -> Path:
    path.write_text(arpa_text(sentences, order))
    return path
