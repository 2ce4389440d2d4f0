"""Exact-sequence accuracy of a trained seq2seq run on reversal data, by greedy decoding.

    python examples/reversal/evaluate.py RUN /tmp/reversal/test.npz /tmp/reversal/long.npz

The decoder is fed its own previous prediction (starting from <start>) and must produce the
reversed source followed by <end>; a sequence counts as right only if every symbol and the
<end> are right. Decoding is batched: one forward pass of the compiled model per target step,
for all examples at once (the decoder is causal, so the prefix's predictions never change).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

import rnndsl
from rnndsl.training import checkpoint

START, END = 0, 1


def load_run(run: Path):
    """The compiled model (float64, NumPy) and trained parameters of a run folder."""
    info = json.loads((run / "run.json").read_text())
    spec = rnndsl.load_spec(run / "spec.yaml", dims=info["dims"])
    model = rnndsl.compile(spec, backend="numpy", dtype="float64")
    return model, checkpoint.load(run / "checkpoint.npz", spec).params


def greedy(model, params: dict, src: np.ndarray, src_len: np.ndarray, max_len: int) -> np.ndarray:
    """(N, max_len) predicted classes; after <end> a row keeps predicting, callers cut it."""
    n = len(src_len)
    tgt = np.full((max_len + 1, n), START, np.int64)
    for t in range(max_len):
        inputs = {"src": src.T, "tgt_in": tgt[:t + 1], "tgt_out": np.zeros((t + 1, n), np.int64),
                  "lengths": {"s": src_len, "t": np.full(n, t + 1)}}
        scores = model.forward(params, inputs)["y"][t]
        tgt[t + 1] = scores.argmax(axis=-1)
    return tgt[1:].T


def exact(pred: np.ndarray, tgt_out: np.ndarray, tgt_len: np.ndarray) -> np.ndarray:
    """Per example: the prediction equals the target up to and including <end>."""
    return np.array([np.array_equal(p[:k], r[:k]) for p, r, k in zip(pred, tgt_out, tgt_len)])


def evaluate(run: Path, path: Path, batch: int = 500) -> float:
    model, params = load_run(run)
    z = np.load(path)
    right = []
    for i in range(0, len(z["src"]), batch):
        part = slice(i, i + batch)
        pred = greedy(model, params, z["src"][part], z["lengths_s"][part], z["tgt_out"].shape[1])
        right.append(exact(pred, z["tgt_out"][part], z["lengths_t"][part]))
    return float(np.concatenate(right).mean())


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("data", type=Path, nargs="+", help="npz files written by make_data.py")
    args = ap.parse_args(argv)
    for path in args.data:
        print(f"{args.run} on {path}: exact sequences {evaluate(args.run, path):.4f}")


if __name__ == "__main__":
    main()
