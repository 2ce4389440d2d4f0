"""The alignment a[t, s] of a trained attention run on one reversal example, as a PNG.

    python examples/reversal/plot_attention.py RUN /tmp/reversal/test.npz --index 0 --out attention.png

The decoder reads its reference input (teacher forcing), so the picture shows where each output
step looked: for reversal, the anti-diagonal.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt        # noqa: E402
import numpy as np                     # noqa: E402

from evaluate import load_run          # noqa: E402  (examples/reversal/evaluate.py)


def alignment(run: Path, data: Path, index: int) -> tuple:
    """(a as (T, S) for one example, its source, its target)."""
    model, params = load_run(run)
    z = np.load(data)
    s, t = int(z["lengths_s"][index]), int(z["lengths_t"][index])
    inputs = {"src": z["src"][index:index + 1, :s].T, "tgt_in": z["tgt_in"][index:index + 1, :t].T,
              "tgt_out": z["tgt_out"][index:index + 1, :t].T}
    a = model.forward(params, inputs)["a"][:, :, 0]
    return a, z["src"][index, :s], z["tgt_out"][index, :t]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("data", type=Path)
    ap.add_argument("--index", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("attention.png"))
    args = ap.parse_args(argv)
    a, src, tgt = alignment(args.run, args.data, args.index)
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.imshow(a, cmap="Greys", vmin=0, vmax=1)
    ax.set_xticks(range(len(src)), [str(v) for v in src])
    ax.set_yticks(range(len(tgt)), [str(v) if v != 1 else "<end>" for v in tgt])
    ax.set_xlabel("source step s (symbol)")
    ax.set_ylabel("output step t (symbol)")
    ax.set_title(f"a[t, s], {args.run.name}")
    fig.tight_layout()
    fig.savefig(args.out, dpi=100)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
