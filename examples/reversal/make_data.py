"""Synthetic sequence-reversal data for the seq2seq specs (generated, seeded; nothing real).

Each example is a random string of symbols 2..V-1; the target is the same string reversed,
then <end> (class 1); the decoder's input is <start> (class 0) followed by the target without
its <end>. Written as named arrays for `rnndsl train --data` (docs/cli.md 13.5):

    python examples/reversal/make_data.py --out /tmp/reversal            # train.npz, test.npz, long.npz

train.npz and test.npz draw lengths from --min..--max (test.npz: other examples, same lengths);
long.npz holds longer strings than any in training (--max+1..--long), a test of whether a
model learned to reverse or only learned the lengths it saw.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

START, END, FIRST = 0, 1, 2


def reversal(n: int, lo: int, hi: int, classes: int, rng: np.random.Generator) -> dict:
    """n examples with lengths in lo..hi: the arrays a seq2seq spec's inputs read."""
    lengths = rng.integers(lo, hi + 1, n)
    src = np.zeros((n, hi), np.int64)
    tgt_in = np.zeros((n, hi + 1), np.int64)
    tgt_out = np.zeros((n, hi + 1), np.int64)
    for i, k in enumerate(lengths):
        s = rng.integers(FIRST, classes, k)
        src[i, :k] = s
        tgt_in[i, 0], tgt_in[i, 1:k + 1] = START, s[::-1]
        tgt_out[i, :k], tgt_out[i, k] = s[::-1], END
    return {"src": src, "tgt_in": tgt_in, "tgt_out": tgt_out, "lengths_s": lengths, "lengths_t": lengths + 1}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="folder for train.npz, test.npz and long.npz")
    ap.add_argument("--n", type=int, default=6000, help="training examples (test: a tenth, at least 500)")
    ap.add_argument("--min", type=int, default=4)
    ap.add_argument("--max", type=int, default=16)
    ap.add_argument("--long", type=int, default=24, help="longest string of long.npz")
    ap.add_argument("--classes", type=int, default=14, help="the specs' V and W: <start>, <end> and symbols")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    n_test = max(500, args.n // 10)
    sets = {"train": reversal(args.n, args.min, args.max, args.classes, rng),
            "test": reversal(n_test, args.min, args.max, args.classes, rng),
            "long": reversal(n_test, args.max + 1, args.long, args.classes, rng)}
    for name, arrays in sets.items():
        np.savez_compressed(out / f"{name}.npz", **arrays)
        print(f"wrote {out / name}.npz: {len(arrays['src'])} examples, lengths "
              f"{arrays['lengths_s'].min()}..{arrays['lengths_s'].max()}")


if __name__ == "__main__":
    main()
