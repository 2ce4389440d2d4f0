"""Synthetic right-whale up-call detection clips and their spectrograms (generated, seeded; no
real recordings).

Each clip is 2 s at 2 kHz, as in the Kaggle/Cornell challenge. Half the clips hold an up-call: a
frequency-modulated up-sweep from about 50-100 Hz to 150-250 Hz lasting 0.6-1.2 s, J-shaped
(slow at first, then faster), with a smooth onset and decay, a weak second harmonic, at a random
time and level. Every clip has coloured background noise (a random 1/f^alpha spectrum, alpha
0.5-2, so low frequencies dominate as in the ocean) and, in either class, distractors: constant
tones (ship noise), down-sweeps (other species' calls) and short broadband clicks.

The front end is a NumPy short-time Fourier transform: 128 ms Hann windows every 32 ms (59
frames), power in 32 bands of 15.6 Hz covering 0-500 Hz, log, then each band's median over the
clip subtracted (which whitens the coloured noise, as whale detectors do). Written as named arrays
for specs/whale.yaml (docs/cli.md 13.5): x (N, 59, 32) float32, label (N,) 1 = up-call.

    python examples/whale/make_data.py --out /tmp/whale            # train.npz, test.npz
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

RATE, SECONDS = 2000, 2.0
N_FFT, HOP, BANDS, BAND_BINS = 256, 64, 32, 2        # 7.8 Hz bins, two per band: 0-500 Hz


def coloured_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS noise whose power falls as 1/f^alpha, alpha drawn per clip."""
    spectrum = np.fft.rfft(rng.normal(size=n))
    freqs = np.fft.rfftfreq(n, 1 / RATE)
    spectrum *= np.maximum(freqs, 10.0) ** (-rng.uniform(0.5, 2.0) / 2)
    noise = np.fft.irfft(spectrum, n)
    return noise / noise.std()


def envelope(k: int) -> np.ndarray:
    """A Tukey window: smooth 20% ramps at each end."""
    ramp = max(1, int(0.2 * k))
    env = np.ones(k)
    env[:ramp] = env[-ramp:][::-1] = 0.5 - 0.5 * np.cos(np.pi * np.arange(ramp) / ramp)
    return env


def sweep(f0: float, f1: float, seconds: float, curve: float, rng: np.random.Generator) -> np.ndarray:
    """A tone gliding from f0 to f1 Hz; curve > 1 bends it (slow start, fast end)."""
    k = int(seconds * RATE)
    u = np.linspace(0, 1, k)
    freq = f0 + (f1 - f0) * u ** curve
    phase = 2 * np.pi * np.cumsum(freq) / RATE + rng.uniform(0, 2 * np.pi)
    wave = np.sin(phase) + rng.uniform(0, 0.3) * np.sin(2 * phase)
    return wave * envelope(k) / np.sqrt(np.mean(wave ** 2))


def place(clip: np.ndarray, sound: np.ndarray, level: float, rng: np.random.Generator) -> None:
    """Add sound at a random time (wholly inside the clip) at RMS level."""
    start = rng.integers(0, len(clip) - len(sound) + 1)
    clip[start:start + len(sound)] += level * sound


def upcall(rng: np.random.Generator) -> np.ndarray:
    return sweep(rng.uniform(50, 100), rng.uniform(150, 250), rng.uniform(0.6, 1.2), rng.uniform(1.0, 2.0), rng)


def distractor(rng: np.random.Generator) -> np.ndarray:
    """A constant tone, a down-sweep or a click train: sounds that are not up-calls."""
    kind = rng.integers(3)
    if kind == 0:
        f = rng.uniform(40, 300)
        return sweep(f, f, rng.uniform(0.3, 2.0), 1.0, rng)
    if kind == 1:
        return sweep(rng.uniform(150, 300), rng.uniform(40, 120), rng.uniform(0.4, 1.2), rng.uniform(0.5, 2.0), rng)
    clicks = np.zeros(int(rng.uniform(0.2, 1.0) * RATE))
    clicks[rng.integers(0, len(clicks), rng.integers(3, 12))] = 1.0
    return clicks * np.sqrt(len(clicks) / max(1.0, clicks.sum()))


def clip(call: bool, rng: np.random.Generator) -> np.ndarray:
    """One 2-second clip: noise, 0-2 distractors and, if call, one up-call at 0.3-1.5 noise RMS."""
    n = int(SECONDS * RATE)
    wave = coloured_noise(n, rng)
    for _ in range(rng.integers(0, 3)):
        place(wave, distractor(rng), rng.uniform(0.3, 2.0), rng)
    if call:
        place(wave, upcall(rng), rng.uniform(0.3, 1.5), rng)
    return wave


def spectrogram(wave: np.ndarray) -> np.ndarray:
    """(frames, BANDS) log band powers with each band's median over the clip subtracted."""
    frames = np.lib.stride_tricks.sliding_window_view(wave, N_FFT)[::HOP]
    power = np.abs(np.fft.rfft(frames * np.hanning(N_FFT), axis=1)) ** 2
    bands = power[:, :BANDS * BAND_BINS].reshape(len(frames), BANDS, BAND_BINS).mean(-1)
    logp = np.log(bands + 1e-10)
    return logp - np.median(logp, axis=0)


def dataset(n: int, rng: np.random.Generator) -> dict:
    labels = rng.permutation(np.arange(n) % 2)
    x = np.stack([spectrogram(clip(bool(c), rng)) for c in labels])
    return {"x": x.astype(np.float32), "label": labels}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="folder for train.npz and test.npz")
    ap.add_argument("--n", type=int, default=4000, help="training clips (test: a quarter)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    for name, n in [("train", args.n), ("test", max(1, args.n // 4))]:
        arrays = dataset(n, rng)
        np.savez_compressed(out / f"{name}.npz", **arrays)
        print(f"wrote {out / name}.npz: {n} clips, {arrays['label'].mean():.0%} with an up-call, "
              f"x {arrays['x'].shape}")


if __name__ == "__main__":
    main()
