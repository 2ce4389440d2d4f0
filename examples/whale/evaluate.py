"""Accuracy, ROC curve and AUC of a trained whale-call detector on a test set.

    python examples/whale/evaluate.py RUN /tmp/whale/test.npz --roc roc.png [--examples clips.png]

The detector's score for a clip is the softmax probability of class 1 (an up-call); accuracy
thresholds it at 0.5, the ROC curve sweeps the threshold. --examples draws a few test
spectrograms with their labels and scores.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib
matplotlib.use("Agg")                      # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from rnndsl.training import train  # noqa: E402


def call_scores(run: Path, x: np.ndarray, batch: int = 500) -> np.ndarray:
    """P(up-call) for each clip of x (N, T, F), by the run's compiled forward pass."""
    model, params, _ = train.load_run(run)
    scores = []
    for i in range(0, len(x), batch):
        part = x[i:i + batch]
        out = model.forward(params, {"x": part.transpose(1, 0, 2), "label": np.zeros(len(part), np.int64)})
        y = np.asarray(out["y"], np.float64)
        p = np.exp(y - y.max(-1, keepdims=True))
        scores.append(p[:, 1] / p.sum(-1))
    return np.concatenate(scores)


def roc(scores: np.ndarray, labels: np.ndarray) -> tuple:
    """(false positive rates, true positive rates, AUC), the threshold lowered clip by clip."""
    order = np.argsort(-scores, kind="stable")
    hits = labels[order].astype(np.float64)
    tpr = np.concatenate([[0.0], np.cumsum(hits) / hits.sum()])
    fpr = np.concatenate([[0.0], np.cumsum(1 - hits) / (1 - hits).sum()])
    return fpr, tpr, float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))   # trapezoids (numpy < 2 has no trapezoid)


def plot_roc(fpr, tpr, auc: float, accuracy: float, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot(fpr, tpr, label=f"RNN, max over time (AUC {auc:.4f})")
    ax.plot([0, 1], [0, 1], ":", color="grey", label="chance")
    ax.set(xlabel="false positive rate", ylabel="true positive rate",
           title=f"Up-call detection, synthetic test set\naccuracy {accuracy:.1%} at 0.5")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def plot_examples(x: np.ndarray, labels, scores, path: Path, count: int = 8) -> None:
    fig, axes = plt.subplots(2, count // 2, figsize=(3 * count // 2, 5), sharex=True, sharey=True)
    for ax, spec, lab, s in zip(axes.flat, x, labels, scores):
        ax.imshow(spec.T, origin="lower", aspect="auto", extent=(0, 2, 0, 500))
        ax.set_title(f"{'up-call' if lab else 'no call'}: p={s:.2f}", fontsize=9)
    fig.supxlabel("seconds")
    fig.supylabel("Hz")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("data", type=Path, help="an npz written by make_data.py")
    ap.add_argument("--roc", type=Path, help="write the ROC curve to this PNG")
    ap.add_argument("--examples", type=Path, help="write example spectrograms to this PNG")
    args = ap.parse_args(argv)
    z = np.load(args.data)
    labels = z["label"]
    scores = call_scores(args.run, z["x"])
    accuracy = float(((scores > 0.5) == labels).mean())
    fpr, tpr, auc = roc(scores, labels)
    print(f"{args.run} on {args.data}: {len(labels)} clips, accuracy {accuracy:.4f}, AUC {auc:.4f}")
    if args.roc:
        plot_roc(fpr, tpr, auc, accuracy, args.roc)
    if args.examples:
        plot_examples(z["x"], labels, scores, args.examples)


if __name__ == "__main__":
    main()
