"""A CTC posteriorgram: the per-frame character probabilities of a trained speech run on one
clip, as a PNG (frames across, the blank and the characters down), with the greedy decoding.

    python examples/deepspeech/posteriorgram.py RUN ../shared/data/speech/dev --clip 3 --out post.png

The clip is read as `rnndsl eval` reads data: the run's features, feature statistics and
vocabulary (run.json). CTC's peaky behaviour shows as short spikes of one character between
long stretches of blank.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt            # noqa: E402
import numpy as np                         # noqa: E402

import rnndsl                              # noqa: E402
from rnndsl.training import checkpoint, data   # noqa: E402


def load_run(run: Path):
    """The compiled model (float64, NumPy), its parameters and run.json."""
    info = json.loads((run / "run.json").read_text())
    spec = rnndsl.load_spec(run / "spec.yaml", dims=info["dims"])
    model = rnndsl.compile(spec, backend="numpy", dtype="float64")
    return model, checkpoint.load(run / "checkpoint.npz", spec).params, info


def posteriors(model, params: dict, frames: np.ndarray) -> np.ndarray:
    """(T, K) softmax of the scores of one clip of (T, F) frames."""
    inputs = {"x": frames[:, None, :], "labels": np.zeros((1, 1), np.int64),
              "lengths": {"t": np.array([len(frames)]), "u": np.array([1])}}
    y = model.forward(params, inputs)["y"][:, 0, :]
    e = np.exp(y - y.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def greedy(post: np.ndarray, symbols: list) -> str:
    """Argmax per frame, repeats merged, blanks (index 0) dropped."""
    best = post.argmax(axis=-1)
    keep = [k for i, k in enumerate(best) if k != 0 and (i == 0 or k != best[i - 1])]
    return "".join(symbols[k] for k in keep)


def plot(post: np.ndarray, symbols: list, title: str, out: Path) -> None:
    fig, ax = plt.subplots(figsize=(max(6, len(post) / 12), 4.5))
    ax.imshow(post.T, aspect="auto", origin="lower", cmap="viridis", interpolation="nearest")
    names = ["blank" if k == 0 else "space" if s == " " else s for k, s in enumerate(symbols)]
    ax.set_yticks(range(len(symbols)), names)
    ax.set_xlabel("frame (10 ms)")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("data", type=Path, help="a speech manifest or its folder")
    ap.add_argument("--clip", type=int, default=0, help="the manifest row (from 0)")
    ap.add_argument("--out", type=Path, default=Path("posteriorgram.png"))
    args = ap.parse_args(argv)
    model, params, info = load_run(args.run)
    vocab, stats = data.Vocab.from_json(info["vocab"]), data.FeatureStats.from_json(info["stats"])
    clips = data.load_speech_manifest(args.data, stats=stats, vocab=vocab, limit=args.clip + 1)
    clip = clips.examples[args.clip]
    symbols = list(vocab.symbols)
    post = posteriors(model, params, clip["frames"].astype(np.float64))
    truth, heard = "".join(symbols[k] for k in clip["labels"]), greedy(post, symbols)
    plot(post, symbols, f"{model.spec.name}: said {truth!r}, greedy {heard!r}", args.out)
    print(f"wrote {args.out}: said {truth!r}, greedy decoding {heard!r}")


if __name__ == "__main__":
    main()
