"""Speech features in NumPy: log spectrograms and MFCCs of a signal, frame by frame
(25 ms Hann windows every 10 ms by default), as the speech loader turns WAV files into frames."""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from ...core.errors import DataError

LOG_FLOOR = 1e-10       # log(max(power, floor)): silence stays finite


def _power(signal, rate: int, frame_ms: float, hop_ms: float, n_fft: int) -> np.ndarray:
    """Power spectra (T, n_fft // 2 + 1) of Hann-windowed frames; a short signal is one frame."""
    length, hop = round(rate * frame_ms / 1000), max(1, round(rate * hop_ms / 1000))
    while length > n_fft:                   # a high sample rate: a longer transform, same frame
        n_fft *= 2
    x = np.asarray(signal, np.float64)
    x = np.pad(x, (0, max(0, length - len(x))))
    frames = np.lib.stride_tricks.sliding_window_view(x, length)[::hop]
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(length) / length)
    return np.abs(np.fft.rfft(frames * window, n_fft)) ** 2 / n_fft


def log_spectrogram(signal, rate: int, frame_ms: float = 25, hop_ms: float = 10, n_fft: int = 512,
                    n_bins: int | None = None) -> np.ndarray:
    """Log power per frame (T, n_fft // 2 + 1), or averaged into `n_bins` equal bands."""
    power = _power(signal, rate, frame_ms, hop_ms, n_fft)
    if n_bins is not None:
        if not 1 <= n_bins <= power.shape[1]:
            raise DataError(f"a log spectrogram has 1 to {power.shape[1]} bins, not {n_bins}")
        edges = np.floor(np.linspace(0, power.shape[1], n_bins + 1)).astype(int)
        power = np.add.reduceat(power, edges[:-1], axis=1) / np.diff(edges)
    return np.log(np.maximum(power, LOG_FLOOR))


@lru_cache(maxsize=16)
def mel_filterbank(n_mels: int, n_fft: int, rate: int) -> np.ndarray:
    """Triangular filters (n_mels, n_fft // 2 + 1) evenly spaced on the mel scale to rate / 2
    (cached, read-only)."""
    mel = lambda f: 2595 * np.log10(1 + f / 700)
    edges = 700 * (10 ** (np.linspace(0, mel(rate / 2), n_mels + 2) / 2595) - 1)
    freqs = np.fft.rfftfreq(n_fft, 1 / rate)
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    bank = np.maximum(0, np.minimum((freqs - lo) / (mid - lo), (hi - freqs) / (hi - mid)))
    bank.flags.writeable = False
    return bank


def dct2(x: np.ndarray, n: int) -> np.ndarray:
    """The first `n` coefficients of the orthonormal DCT-II along the last axis."""
    size = x.shape[-1]
    k, m = np.arange(n)[:, None], np.arange(size)[None, :]
    basis = np.cos(np.pi * k * (2 * m + 1) / (2 * size)) * np.sqrt(2 / size)
    basis[0] /= np.sqrt(2)
    return x @ basis.T


def log_mel(signal, rate: int, n_mels: int = 26, frame_ms: float = 25, hop_ms: float = 10,
            n_fft: int = 512) -> np.ndarray:
    """Log mel filterbank energies (T, n_mels): the mel-scale spectral coefficients of a
    time-delay network's input (Waibel et al. 1989), and what MFCCs transform."""
    power = _power(signal, rate, frame_ms, hop_ms, n_fft)
    n_fft = 2 * (power.shape[1] - 1)                  # _power lengthens it for high sample rates
    energy = np.einsum("tf,mf->tm", power, mel_filterbank(n_mels, n_fft, rate))   # small: no BLAS threads
    return np.log(np.maximum(energy, LOG_FLOOR))


def mfcc(signal, rate: int, n_mfcc: int = 13, n_mels: int = 26, frame_ms: float = 25,
         hop_ms: float = 10, n_fft: int = 512) -> np.ndarray:
    """Mel-frequency cepstral coefficients (T, n_mfcc): DCT-II of log mel energies."""
    if not 1 <= n_mfcc <= n_mels:
        raise DataError(f"{n_mfcc} MFCCs need 1 to n_mels={n_mels} coefficients")
    return dct2(log_mel(signal, rate, n_mels, frame_ms, hop_ms, n_fft), n_mfcc)


FEATURES = {"mfcc": 13, "logspec": 257}     # features per frame by default


def features_of(signal, rate: int, features: str, n: int) -> np.ndarray:
    """Frames (T, n) of one kind of features."""
    if features == "mfcc":
        return mfcc(signal, rate, n_mfcc=n, n_mels=max(26, n))
    if features == "logspec":
        return log_spectrogram(signal, rate, n_bins=n)
    raise DataError(f"unknown features {features!r}; choose {' or '.join(FEATURES)}")
