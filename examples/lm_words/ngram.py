"""Interpolated Kneser-Ney n-gram language model (Kneser & Ney 1995; the interpolated form of
Chen & Goodman 1999, "An empirical study of smoothing techniques for language modeling").

    P(w | h) = max(c(h w) - D, 0) / c(h .) + D * N1+(h .) / c(h .) * P(w | h')

where h' drops the oldest word of h; the highest order counts tokens, the lower orders count
continuations (the number of distinct words seen before h w), and the unigram is interpolated
with the uniform distribution over the vocabulary, so every word of the vocabulary has a
probability and the probabilities of each history sum to one. One discount D per order,
D = n1 / (n1 + 2 n2) from the counts of counts. A history never seen backs off entirely.
"""
import math
from collections import Counter, defaultdict

import numpy as np


class KneserNey:
    def __init__(self, tokens: list, order: int = 3):
        self.order = order
        self.vocab = sorted(set(tokens))
        self.counts = [self._count(tokens, n) for n in range(1, order + 1)]   # counts[n-1]: n-grams
        self.discount = [self._discount(c) for c in self.counts]
        self.totals = [self._by_history(c) for c in self.counts]

    def _count(self, tokens: list, n: int) -> Counter:
        """Token counts for the highest order, continuation counts N1+(. g) below it."""
        grams = Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))
        if n == self.order:
            return grams
        longer = {tuple(tokens[i:i + n + 1]) for i in range(len(tokens) - n)}
        return Counter(g[1:] for g in longer)

    @staticmethod
    def _discount(counts: Counter) -> float:
        n1 = sum(1 for c in counts.values() if c == 1)
        n2 = sum(1 for c in counts.values() if c == 2)
        return n1 / (n1 + 2 * n2) if n1 else 0.5

    @staticmethod
    def _by_history(counts: Counter) -> dict:
        """history -> [sum of counts after it, number of distinct words after it]."""
        totals = defaultdict(lambda: [0, 0])
        for gram, c in counts.items():
            totals[gram[:-1]][0] += c
            totals[gram[:-1]][1] += 1
        return dict(totals)

    def prob(self, word: str, history: tuple) -> float:
        """P(word | the last order-1 words of history)."""
        p = 1.0 / len(self.vocab)
        history = tuple(history)[len(history) - self.order + 1:] if self.order > 1 else ()
        for n in range(1, len(history) + 2):          # unigram first, then longer histories
            h = history[len(history) - n + 1:]
            total = self.totals[n - 1].get(h)
            if total is None:                          # an unseen history: keep the lower order
                continue
            d = self.discount[n - 1]
            c = self.counts[n - 1].get(h + (word,), 0)
            p = max(c - d, 0.0) / total[0] + d * total[1] / total[0] * p
        return p

    def distribution(self, history: tuple) -> np.ndarray:
        """P(w | history) for every w of the vocabulary, in its sorted order."""
        return np.array([self.prob(w, history) for w in self.vocab])

    def perplexity(self, tokens: list, context: tuple = ()) -> float:
        """exp of the mean negative log-probability of `tokens`, each given the ones before it
        (`context` precedes the first)."""
        seq = list(context) + list(tokens)
        k = len(context)
        nll = -sum(math.log(self.prob(seq[i], tuple(seq[max(0, i - self.order + 1):i])))
                   for i in range(k, len(seq)))
        return math.exp(nll / len(tokens))
