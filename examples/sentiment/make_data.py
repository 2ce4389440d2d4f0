"""A synthetic sentiment corpus in which negation and contrast decide the label (generated,
seeded; no real reviews).

A clause says something about a part of a film: "the plot was good", "the acting was not very
clever", "the music was never dull". Its polarity is its adjective's, flipped by "not" or "never".
A review is one clause, or two clauses of opposite polarity joined by a contrast:

* "C1 but C2" takes the polarity of C2 ("the plot was good but the ending was boring": negative);
* "C1 although C2" takes the polarity of C1 ("the plot was good although the ending was boring":
  positive).

Both orders of every pair of clauses are equally likely, so "A but B" and "B but A" hold the same
bag of words with opposite labels: no model that ignores word order can score above chance on
the two-clause reviews, and a linear one cannot undo negation either.

Written as named arrays for specs/sentiment.yaml (docs/cli.md 13.5): x (N, T) word ids, label
(N,) 1 = positive, lengths (N,), and kind (N,) (0 one clause, 1 "but", 2 "although"; no spec
input reads it; evaluate.py splits the accuracy by it); vocab.txt lists the words by id.

    python examples/sentiment/make_data.py --out /tmp/sentiment      # train.npz, test.npz, vocab.txt
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

SUBJECTS = "movie film plot acting story music ending cast script dialogue".split()
VERBS = "was is felt seemed".split()
INTENSIFIERS = "very really quite truly".split()
POSITIVE = "good great excellent wonderful brilliant fun moving clever".split()
NEGATIVE = "bad boring dull awful terrible weak silly tedious".split()
NEGATORS = ["not", "never"]
CONNECTIVES = ["but", "although"]            # kind 1 and 2: the later or the earlier clause decides
VOCAB = ["<pad>", "the"] + SUBJECTS + VERBS + INTENSIFIERS + POSITIVE + NEGATIVE + NEGATORS + CONNECTIVES
IDS = {w: i for i, w in enumerate(VOCAB)}


def clause(polarity: int, rng: np.random.Generator) -> list:
    """Words of one clause whose meaning has the given polarity (+1 or -1)."""
    negated = rng.random() < 0.5
    adjectives = POSITIVE if polarity * (-1 if negated else 1) > 0 else NEGATIVE
    verb = rng.choice(VERBS)
    words = ["the", rng.choice(SUBJECTS), verb]
    if negated:                                  # "never" only where English has it: "was never"
        words.append(rng.choice(NEGATORS) if verb in ("was", "is") else "not")
    if rng.random() < 0.4:
        words.append(rng.choice(INTENSIFIERS))
    return words + [rng.choice(adjectives)]


def review(rng: np.random.Generator) -> tuple:
    """(words, label 0/1, kind): one clause, or two opposite clauses joined by a contrast."""
    polarity = int(rng.choice([-1, 1]))
    kind = int(rng.integers(3))
    if kind == 0:
        return clause(polarity, rng), int(polarity > 0), kind
    decisive, other = clause(polarity, rng), clause(-polarity, rng)
    first, second = (other, decisive) if kind == 1 else (decisive, other)
    return first + [CONNECTIVES[kind - 1]] + second, int(polarity > 0), kind


def corpus(n: int, rng: np.random.Generator) -> dict:
    reviews = [review(rng) for _ in range(n)]
    lengths = np.array([len(words) for words, _, _ in reviews])
    x = np.zeros((n, lengths.max()), np.int64)
    for i, (words, _, _) in enumerate(reviews):
        x[i, :len(words)] = [IDS[w] for w in words]
    return {"x": x, "label": np.array([r[1] for r in reviews]), "lengths": lengths,
            "kind": np.array([r[2] for r in reviews])}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="folder for train.npz, test.npz and vocab.txt")
    ap.add_argument("--n", type=int, default=8000, help="training reviews (test: a quarter)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    for name, n in [("train", args.n), ("test", max(1, args.n // 4))]:
        arrays = corpus(n, rng)
        np.savez_compressed(out / f"{name}.npz", **arrays)
        print(f"wrote {out / name}.npz: {n} reviews of {arrays['lengths'].min()}-{arrays['lengths'].max()} words")
    (out / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    print(f"wrote {out / 'vocab.txt'}: {len(VOCAB)} words (train with --set V={len(VOCAB)})")


if __name__ == "__main__":
    main()
