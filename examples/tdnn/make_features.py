"""The one-word clips of the shared speech set as 16 log mel coefficients per 10 ms frame, for
specs/tdnn.yaml (`rnndsl train --data .../train.npz`; docs/cli.md 13.5 named arrays):

    python examples/tdnn/make_features.py --speech ../shared/data/speech --out /tmp/tdnn

Writes train.npz (the one-word clips of speech/train), dev.npz (those of speech/dev) and, to
measure shift invariance, dev_shift{K}.npz: the dev clips with K frames (K x 10 ms) more of
their own leading silence before the word. Each holds x (N, T, 16) padded, label (N,) the
word's index in WORDS, and lengths (N,). Features come from rnndsl's own front end
(rnndsl.training.data.audio.log_mel), normalised by the training clips' mean and deviation.
The audio is the shared set's (synthetic, from espeak-ng); nothing here is generated but the
shifted copies.
"""
from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

from rnndsl.training.data import load_wav
from rnndsl.training.data.audio import log_mel

WORDS = ("zero one two three four five six seven eight nine "
         "yes no up down left right on off stop go").split()
N_MELS = 16
HOP = 160                       # samples per 10 ms frame at 16 kHz
LEAD = 0.05                     # seconds of leading silence every clip has at least


def one_word_clips(folder: Path) -> list:
    """(wav path, word index) for each one-word row of folder/manifest.tsv."""
    with open(folder / "manifest.tsv", encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    return [(folder / r["file"], WORDS.index(r["transcript"])) for r in rows if " " not in r["transcript"]]


def shifted(signal: np.ndarray, rate: int, frames: int) -> np.ndarray:
    """The clip with `frames` x 10 ms more silence before the word: its own first 50 ms (the
    padding the set's generator put there, with the clip's noise) repeated."""
    if frames == 0:
        return signal
    lead = signal[:int(LEAD * rate)]
    extra = np.resize(lead, frames * rate // 100)
    return np.concatenate([extra, signal])


def features(clips: list, shift: int = 0) -> list:
    out = []
    for path, _ in clips:
        signal, rate = load_wav(path)
        out.append(log_mel(shifted(signal, rate, shift), rate, N_MELS).astype(np.float32))
    return out


def pack(frames: list, labels: list, mean: np.ndarray, std: np.ndarray) -> dict:
    """Named arrays: normalised frames padded to the longest clip, labels, true lengths."""
    lengths = np.array([len(f) for f in frames])
    x = np.zeros((len(frames), lengths.max(), N_MELS), np.float32)
    for i, f in enumerate(frames):
        x[i, :len(f)] = (f - mean) / std
    return {"x": x, "label": np.array(labels, np.int64), "lengths": lengths}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--speech", type=Path, default=Path("../shared/data/speech"), help="the shared speech folder")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--shifts", default="10,25,50,100", help="frames of extra leading silence, comma-separated")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    train, dev = one_word_clips(args.speech / "train"), one_word_clips(args.speech / "dev")
    train_frames = features(train)
    every = np.concatenate(train_frames)
    mean, std = every.mean(0), np.maximum(every.std(0), 1e-5)
    sets = {"train": (train, train_frames), "dev": (dev, features(dev))}
    sets.update({f"dev_shift{k}": (dev, features(dev, int(k))) for k in args.shifts.split(",") if k})
    for name, (clips, frames) in sets.items():
        arrays = pack(frames, [label for _, label in clips], mean, std)
        np.savez_compressed(args.out / f"{name}.npz", **arrays)
        print(f"wrote {args.out / name}.npz: {len(clips)} clips, {arrays['lengths'].min()}-"
              f"{arrays['lengths'].max()} frames")


if __name__ == "__main__":
    main()
