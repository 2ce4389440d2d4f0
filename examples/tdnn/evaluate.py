"""Word accuracy of a trained TDNN run on the dev clips, unshifted and shifted in time.

    python examples/tdnn/evaluate.py RUN /tmp/tdnn/dev.npz /tmp/tdnn/dev_shift*.npz

Each file is one of make_features.py's: the same 68 dev clips, with 0, 10, 25, ... frames more
leading silence. The network's output is summed over time, so a word moved later in the clip
should be recognised as before: the accuracies should agree (up to what the extra frames of
silence add to the sums).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

import rnndsl
from rnndsl.training import checkpoint


def load_run(run: Path):
    """The compiled model (float64, NumPy) and the trained parameters of a run folder."""
    info = json.loads((run / "run.json").read_text())
    spec = rnndsl.load_spec(run / "spec.yaml", dims=info["dims"])
    model = rnndsl.compile(spec, backend="numpy", dtype="float64")
    return model, checkpoint.load(run / "checkpoint.npz", spec).params


def accuracy(model, params: dict, path: Path) -> float:
    """The share of clips whose highest-scoring word is the spoken one."""
    z = np.load(path)
    inputs = {"x": z["x"].transpose(1, 0, 2), "label": z["label"], "lengths": z["lengths"]}
    scores = model.forward(params, inputs)["y"]
    return float((scores.argmax(axis=-1) == z["label"]).mean())


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("data", type=Path, nargs="+", help="npz files written by make_features.py")
    args = ap.parse_args(argv)
    model, params = load_run(args.run)
    print("| data | clips | accuracy |\n|---|---|---|")
    for path in args.data:
        print(f"| {path.name} | {len(np.load(path)['label'])} | {accuracy(model, params, path):.4f} |")


if __name__ == "__main__":
    main()
