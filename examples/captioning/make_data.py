"""Strips of 2-4 handwritten digits side by side, captioned with the digits' names (synthetic
compositions of the real 8x8 UCI digits; seeded).

The 1,797 digit images are first split (seeded) into a training pool and a held-out pool of
20%, so that no test strip contains a digit image seen in training. Each strip is 8 x 32: the
digits left-aligned, 8 columns each, zeros after the last one. Writes train.npz and test.npz in
the images format of docs/cli.md 13.4 (`images`, `labels` = the number of digits, `captions`).

    python examples/captioning/make_data.py --digits ../shared/data/images/digits.npz --out /tmp/captioning
"""
import argparse
from pathlib import Path

import numpy as np

NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
MAX_DIGITS = 4


def pools(labels: np.ndarray, rng, held_out: float = 0.2) -> tuple:
    """(train indices, test indices) of the digit images."""
    order = rng.permutation(len(labels))
    k = round(len(labels) * held_out)
    return np.sort(order[k:]), np.sort(order[:k])


def strips(images: np.ndarray, labels: np.ndarray, pool: np.ndarray, n: int, rng) -> dict:
    """`n` strips of 2-4 digits drawn from `pool` with their captions."""
    side = images.shape[1]
    out = np.zeros((n, side, side * MAX_DIGITS), np.float32)
    counts = rng.integers(2, MAX_DIGITS + 1, size=n)
    captions = []
    for i, k in enumerate(counts):
        picks = rng.choice(pool, size=k)
        for j, p in enumerate(picks):
            out[i, :, j * side:(j + 1) * side] = images[p]
        captions.append(" ".join(NAMES[labels[p]] for p in picks))
    return {"images": out, "labels": counts.astype(np.int64), "captions": np.array(captions)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--digits", default="../shared/data/images/digits.npz")
    ap.add_argument("--out", default="/tmp/captioning")
    ap.add_argument("--train", type=int, default=8000)
    ap.add_argument("--test", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    z = np.load(args.digits)
    images, labels = z["images"], z["labels"]
    rng = np.random.default_rng(args.seed)
    train_pool, test_pool = pools(labels, rng)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, pool, n in (("train", train_pool, args.train), ("test", test_pool, args.test)):
        np.savez_compressed(out / f"{name}.npz", **strips(images, labels, pool, n, rng))
        print(f"{out / name}.npz: {n} strips from {len(pool)} digit images")


if __name__ == "__main__":
    main()
