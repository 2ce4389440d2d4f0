"""Exact translations of a trained seq2seq run on number data, by greedy decoding, split by the
target's length, with a few decoded examples shown as text.

    python examples/numbers/evaluate.py RUN /tmp/numbers/test.npz [--show 5]

The decoder is fed its own previous prediction from <start>; a translation is right only if every
symbol and the <end> are right (as `rnndsl eval --stop 1` counts exact_seqs).
"""
from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import numpy as np

from rnndsl.training import train


def _generator():
    """This folder's make_data.py under a name of its own (every example has a make_data)."""
    path = Path(__file__).resolve().with_name("make_data.py")
    spec = importlib.util.spec_from_file_location(f"{path.parent.name}_make_data", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_MAKE = _generator()
DIGITS, END, START, WORDS = _MAKE.DIGITS, _MAKE.END, _MAKE.START, _MAKE.WORDS


def greedy(model, params: dict, src: np.ndarray, src_len: np.ndarray, steps: int) -> np.ndarray:
    """(N, steps) predictions, one forward pass per step for the whole batch (the decoder is
    causal, so earlier predictions never change)."""
    n = len(src_len)
    fed = np.full((steps + 1, n), START, np.int64)
    for t in range(steps):
        inputs = {"src": src.T, "tgt_in": fed[:t + 1], "tgt_out": np.zeros((t + 1, n), np.int64),
                  "lengths": {"s": src_len, "t": np.full(n, t + 1)}}
        fed[t + 1] = np.asarray(model.forward(params, inputs)["y"])[t].argmax(-1)
    return fed[1:].T


def text(ids, vocab: list, shift: int) -> str:
    """Class ids as words or digits; a target (shift 2: after <start>, <end>) up to <end>."""
    out = []
    for i in ids:
        if shift and i == END:
            break
        out.append(vocab[i - shift] if 0 <= i - shift < len(vocab) else f"<{i}>")
    return " ".join(out)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("data", type=Path, help="an npz written by make_data.py")
    ap.add_argument("--show", type=int, default=5, help="decoded examples to print")
    ap.add_argument("--errors", type=int, default=0, help="wrong translations to print")
    args = ap.parse_args(argv)
    model, params, _ = train.load_run(args.run)
    z = np.load(args.data)
    pred = greedy(model, params, z["src"], z["lengths_s"], z["tgt_out"].shape[1])
    right = np.array([np.array_equal(p[:k], r[:k]) for p, r, k in zip(pred, z["tgt_out"], z["lengths_t"])])
    print(f"{args.run} on {args.data}: exact {right.mean():.4f} of {len(right)}")
    for k in np.unique(z["lengths_t"]):
        part = z["lengths_t"] == k
        print(f"  target of {k - 1} symbols: {right[part].mean():.4f} of {part.sum()}")
    src_vocab, tgt_vocab = (WORDS, DIGITS) if z["src"].max() >= len(DIGITS) else (DIGITS, WORDS)
    wrong = np.flatnonzero(~right)[:args.errors]
    for i in list(range(min(args.show, len(right)))) + list(wrong):
        src = text(z["src"][i, :z["lengths_s"][i]], src_vocab, 0)
        print(f"  {src} -> {text(pred[i], tgt_vocab, 2)}{'' if right[i] else '   (wrong)'}")


if __name__ == "__main__":
    main()
