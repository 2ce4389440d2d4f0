"""Nearest neighbours and a similarity figure for embeddings trained by specs/cw_embeddings.yaml.

Prints each query word's nearest words by cosine similarity, then, for groups of related words
(pronouns, titles, numbers, ...), the share of group words whose 10 nearest neighbours hold
another member of their group, for the trained table and for a random table of the same shape
(chance). Writes a PCA picture of the group words when --png is given.

    python examples/embeddings/neighbours.py /tmp/embeddings/run /tmp/embeddings/vocab.json --png emb.png
"""
import argparse
import json
from pathlib import Path

import numpy as np

QUERIES = ("king", "thou", "love", "good", "father", "three", "go", "night", "blood", "rome")
GROUPS = {
    "pronouns": ("i", "you", "he", "she", "we", "they", "thou", "ye"),
    "possessives": ("my", "your", "his", "her", "our", "their", "thy"),
    "titles": ("king", "queen", "duke", "lord", "lady", "prince", "sir", "madam"),
    "numbers": ("one", "two", "three", "four", "five", "ten", "twenty", "hundred", "thousand"),
    "family": ("father", "mother", "son", "daughter", "brother", "sister", "wife", "husband"),
    "body": ("hand", "head", "eye", "eyes", "heart", "face", "tongue", "hands"),
    "time": ("day", "night", "morning", "hour", "year", "days", "hours", "tomorrow"),
    "motion verbs": ("go", "come", "run", "fly", "walk", "stay", "away"),
}


def load(run: str, vocab: str) -> tuple:
    """(unit-length embeddings (V, D), words in id order)."""
    E = np.load(Path(run) / "checkpoint.npz")["param/E"].T.astype(np.float64)
    return E / np.linalg.norm(E, axis=1, keepdims=True).clip(1e-12), json.loads(Path(vocab).read_text())


def nearest(E: np.ndarray, i: int, k: int) -> np.ndarray:
    """Ids of the k words most similar to word i, itself excluded."""
    sims = E @ E[i]
    sims[i] = -np.inf
    return np.argsort(-sims)[:k]


def group_hits(E: np.ndarray, index: dict, k: int = 10) -> tuple:
    """(hits, words): group words with another member of their group among their k nearest."""
    hits = total = 0
    for members in GROUPS.values():
        ids = {index[w] for w in members if w in index}
        for i in ids:
            hits += bool(ids & set(nearest(E, i, k).tolist()))
            total += 1
    return hits, total


def plot(E: np.ndarray, index: dict, path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    words = [(g, w) for g, ws in GROUPS.items() for w in ws if w in index]
    X = E[[index[w] for _, w in words]]
    X = X - X.mean(0)
    xy = X @ np.linalg.svd(X, full_matrices=False)[2][:2].T
    fig, ax = plt.subplots(figsize=(8, 6))
    for c, g in enumerate(GROUPS):
        pts = [(p, w) for p, (gg, w) in zip(xy, words) if gg == g]
        ax.scatter([p[0] for p, _ in pts], [p[1] for p, _ in pts], color=f"C{c}", label=g)
        for p, w in pts:
            ax.annotate(w, p, fontsize=7)
    ax.legend(fontsize=7)
    ax.set_title("Collobert-Weston embeddings of Tiny Shakespeare words (PCA)")
    fig.savefig(path, dpi=120, bbox_inches="tight")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("vocab")
    ap.add_argument("--png")
    args = ap.parse_args(argv)
    E, words = load(args.run, args.vocab)
    index = {w: i for i, w in enumerate(words)}
    for q in QUERIES:
        if q in index:
            print(f"{q:>8}: " + " ".join(words[j] for j in nearest(E, index[q], 8)))
    hits, total = group_hits(E, index)
    R = np.random.default_rng(0).standard_normal(E.shape)
    chance, _ = group_hits(R / np.linalg.norm(R, axis=1, keepdims=True), index)
    print(f"group words with a group member among their 10 nearest: {hits}/{total} = {hits / total:.1%} "
          f"(random table: {chance}/{total} = {chance / total:.1%})")
    if args.png:
        plot(E, index, args.png)


if __name__ == "__main__":
    main()
