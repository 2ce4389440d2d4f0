"""Accuracy of trained sentiment runs on a generated test set, split by the kind of review.

    python examples/sentiment/evaluate.py /tmp/sentiment/test.npz RUN [RUN ...]

Kinds: one clause (negation alone decides), "C1 but C2" (C2 decides) and "C1 although C2" (C1
decides). A model blind to word order sees the same bag for "A but B" and "B but A", whose
labels are opposite, so it cannot beat 50% on the last two kinds.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from rnndsl.training import train

KINDS = ["one clause", "C1 but C2", "C1 although C2"]


def predict(run: Path, z, batch: int = 500) -> np.ndarray:
    """The predicted label of each review, by the run's compiled forward pass."""
    model, params, _ = train.load_run(run)
    guesses = []
    for i in range(0, len(z["label"]), batch):
        part = slice(i, i + batch)
        inputs = {"x": z["x"][part].T, "label": z["label"][part], "lengths": z["lengths"][part]}
        guesses.append(np.asarray(model.forward(params, inputs)["y"]).argmax(-1))
    return np.concatenate(guesses)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data", type=Path, help="an npz written by make_data.py")
    ap.add_argument("runs", type=Path, nargs="+")
    args = ap.parse_args(argv)
    z = np.load(args.data)
    print(f"{'run':32s} {'all':>7s}" + "".join(f"{k:>16s}" for k in KINDS))
    for run in args.runs:
        right = predict(run, z) == z["label"]
        parts = [right[z["kind"] == k].mean() for k in range(len(KINDS))]
        print(f"{str(run):32s} {right.mean():7.1%}" + "".join(f"{p:16.1%}" for p in parts))


if __name__ == "__main__":
    main()
