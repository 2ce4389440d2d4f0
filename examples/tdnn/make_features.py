"""The one-word clips of the shared speech set as 16 log mel coefficients per 10 ms frame, for
specs/tdnn.yaml (`rnndsl train --data .../train.npz`; docs/cli.md 13.5 named arrays):

    python examples/tdnn/make_features.py --speech ../shared/data/speech --out /tmp/tdnn

Every clip is placed in a window of the same --window frames, as the TDNN paper's fixed
input window: the word starts `offset` frames in, and the rest of the window is the clip's own
leading silence repeated (the padding the set's generator put there, with the clip's noise).
train.npz and dev.npz hold the one-word clips of speech/train and speech/dev at offset 0;
dev_shift{K}.npz the same dev clips with the word K frames (K x 10 ms) later in the window, to
measure shift invariance. Each holds x (N, window, 16), label (N,) the word's index in WORDS,
and lengths (N,). Features come from rnndsl's own front end
(rnndsl.training.data.audio.log_mel), normalised by the training clips' mean and deviation.
The audio is the shared set's (synthetic, from espeak-ng); only the placement is made here.
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
FRAME_MS = 25                   # rnndsl's analysis frame (10 ms hop)
LEAD = 0.05                     # seconds of leading silence every clip has at least


def one_word_clips(folder: Path) -> list:
    """(wav path, word index) for each one-word row of folder/manifest.tsv."""
    with open(folder / "manifest.tsv", encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    return [(folder / r["file"], WORDS.index(r["transcript"])) for r in rows if " " not in r["transcript"]]


def placed(signal: np.ndarray, rate: int, offset: int, window: int) -> np.ndarray:
    """The clip in a signal of exactly `window` frames, the word starting `offset` frames in,
    the rest filled with its own first 50 ms (silence and noise) repeated."""
    hop, frame = rate // 100, round(rate * FRAME_MS / 1000)
    total, before = frame + (window - 1) * hop, offset * hop
    after = total - before - len(signal)
    if after < 0:
        raise SystemExit(f"a clip of {len(signal) / rate:.2f} s at offset {offset} does not fit "
                         f"{window} frames: use a larger --window")
    lead = signal[:int(LEAD * rate)]
    return np.concatenate([np.resize(lead, before), signal, np.resize(lead, after)])


def features(clips: list, offset: int, window: int) -> list:
    out = []
    for path, _ in clips:
        signal, rate = load_wav(path)
        out.append(log_mel(placed(signal, rate, offset, window), rate, N_MELS).astype(np.float32))
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
    ap.add_argument("--window", type=int, default=120, help="frames per example (1.2 s)")
    ap.add_argument("--shifts", default="10,20,30", help="dev offsets of the word in frames, comma-separated")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    train, dev = one_word_clips(args.speech / "train"), one_word_clips(args.speech / "dev")
    train_frames = features(train, 0, args.window)
    every = np.concatenate(train_frames)
    mean, std = every.mean(0), np.maximum(every.std(0), 1e-5)
    sets = {"train": (train, train_frames), "dev": (dev, features(dev, 0, args.window))}
    sets.update({f"dev_shift{k}": (dev, features(dev, int(k), args.window)) for k in args.shifts.split(",") if k})
    for name, (clips, frames) in sets.items():
        arrays = pack(frames, [label for _, label in clips], mean, std)
        np.savez_compressed(args.out / f"{name}.npz", **arrays)
        print(f"wrote {args.out / name}.npz: {len(clips)} clips, {arrays['lengths'].min()}-"
              f"{arrays['lengths'].max()} frames")


if __name__ == "__main__":
    main()
