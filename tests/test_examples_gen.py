"""The generated-data examples (examples/autoregression, whale, sentiment, numbers) in short
versions: each generator checked against an independent reading of what it claims to make, and
each example's train-and-evaluate path run with tiny settings, so the READMEs' commands cannot rot."""
import importlib.util
import re

import numpy as np
import pytest

from rnndsl.training import train

from conftest import ROOT

EXAMPLES = ROOT / "examples"


def example(folder: str, name: str):
    """examples/<folder>/<name>.py as a module of its own name (every folder has a make_data)."""
    path = EXAMPLES / folder / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"example_{folder}_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- auto-regression ---------------------------------------------------------------------------

def test_ar_series_follow_their_coefficients(tmp_path):
    make = example("autoregression", "make_data")
    x = make.ar_series(64, 300, make.COEFFS, np.random.default_rng(1))
    X = np.stack([x[:, 3 - k:-k] for k in (1, 2, 3)], -1).reshape(-1, 3)
    fit = np.linalg.lstsq(X, x[:, 3:].reshape(-1), rcond=None)[0]
    assert np.abs(fit - make.COEFFS).max() < 0.03
    with pytest.raises(SystemExit):
        make.check_stationary((0.9, 0.5, 0.1))


def test_ar_short_training_recovers_the_coefficients(tmp_path):
    example("autoregression", "make_data").main(["--out", str(tmp_path), "--n", "128", "--steps", "150"])
    run = train.train(ROOT / "specs" / "autoregression.yaml", tmp_path / "train.npz", tmp_path / "run",
                      {"P": 3, "lr": 0.1, "momentum": 0.9, "epochs": 40, "schedule": "exponential", "decay": 0.9},
                      quiet=True)
    evaluate = example("autoregression", "evaluate")
    assert evaluate.main([str(run), str(tmp_path / "train.npz"), str(tmp_path / "test.npz"), "--tol", "0.05"]) == 0


# --- whale calls -------------------------------------------------------------------------------

def peak_bands(wave, make) -> np.ndarray:
    """The loudest band of each frame of a clean sound's spectrogram (no median subtraction)."""
    frames = np.lib.stride_tricks.sliding_window_view(wave, make.N_FFT)[::make.HOP]
    power = np.abs(np.fft.rfft(frames * np.hanning(make.N_FFT), axis=1)) ** 2
    loud = power.sum(1) > 0.2 * power.sum(1).max()
    return power[loud].argmax(1) / make.BAND_BINS


def test_upcalls_rise_through_50_to_250_hz_and_down_sweeps_fall():
    make = example("whale", "make_data")
    rng = np.random.default_rng(0)
    band_hz = make.RATE / make.N_FFT * make.BAND_BINS
    for _ in range(5):
        bands = peak_bands(make.upcall(rng), make)
        assert bands[-1] > bands[0] + 3 and 40 <= bands[0] * band_hz and bands[-1] * band_hz <= 260
    down = peak_bands(make.sweep(250, 60, 1.0, 1.0, rng), make)
    assert down[-1] < down[0] - 3


def test_whale_roc_and_a_short_training(tmp_path):
    evaluate = example("whale", "evaluate")
    assert evaluate.roc(np.array([0.9, 0.8, 0.2, 0.1]), np.array([1, 1, 0, 0]))[2] == 1.0
    assert evaluate.roc(np.array([0.9, 0.8, 0.2, 0.1]), np.array([0, 0, 1, 1]))[2] == 0.0
    example("whale", "make_data").main(["--out", str(tmp_path), "--n", "64"])
    z = np.load(tmp_path / "train.npz")
    assert z["x"].shape == (64, 59, 32) and z["label"].mean() == 0.5
    run = train.train(ROOT / "specs" / "whale.yaml", tmp_path / "train.npz", tmp_path / "run",
                      {"H": 4, "epochs": 1}, quiet=True)
    evaluate.main([str(run), str(tmp_path / "test.npz"), "--roc", str(tmp_path / "roc.png")])
    assert (tmp_path / "roc.png").stat().st_size > 0


# --- sentiment -----------------------------------------------------------------------------------

def read_label(words: list, make) -> int:
    """An independent reading of a review: a clause's adjective, flipped by not/never; "but"
    keeps the second clause, "although" the first."""
    def polarity(clause):
        sign = 1 if clause[-1] in make.POSITIVE else -1
        return -sign if {"not", "never"} & set(clause) else sign
    text = " ".join(words)
    first, joiner, second = re.split(r" (but|although) ", text) if " but " in text or " although " in text \
        else (text, None, None)
    keep = first if joiner in (None, "although") else second
    return int(polarity(keep.split()) > 0)


def test_sentiment_labels_follow_negation_and_contrast_and_bags_are_ambiguous():
    make = example("sentiment", "make_data")
    z = make.corpus(600, np.random.default_rng(3))
    for x, n, label in zip(z["x"], z["lengths"], z["label"]):
        assert read_label([make.VOCAB[i] for i in x[:n]], make) == label
    # no single word gives the label: each adjective group and connective is about as often in
    # positive reviews as in negative ones
    for words in (make.POSITIVE, make.NEGATIVE, ["but"], ["although"], ["not", "never"]):
        ids = [make.IDS[w] for w in words]
        has = np.array([np.isin(x[:n], ids).any() for x, n in zip(z["x"], z["lengths"])])
        assert abs(z["label"][has].mean() - 0.5) < 0.08, words


def test_sentiment_short_training_and_the_bag_of_words_baseline(tmp_path, capsys):
    example("sentiment", "make_data").main(["--out", str(tmp_path), "--n", "200"])
    runs = [train.train(ROOT / "specs" / spec, tmp_path / "train.npz", tmp_path / spec, {"V": 40, "H": 8, "epochs": 1},
                        quiet=True) for spec in ("sentiment.yaml", "sentiment_bow.yaml")]
    capsys.readouterr()
    example("sentiment", "evaluate").main([str(tmp_path / "test.npz")] + [str(r) for r in runs])
    rows = capsys.readouterr().out.splitlines()[1:]
    assert len(rows) == 2 and all(re.search(r"\d+\.\d%", row) for row in rows)


# --- number translation --------------------------------------------------------------------------

def words_to_number(words: list, make) -> int:
    """An independent reading of number words: a running group, multiplied by hundred and thousand."""
    total = group = 0
    for w in words:
        if w == "hundred":
            group *= 100
        elif w == "thousand":
            total, group = (total + group) * 1000, 0
        else:
            group += make.ONES.index(w) if w in make.ONES else 10 * (make.TENS.index(w) + 2)
    return total + group


@pytest.mark.parametrize("n, text", [(0, "zero"), (15, "fifteen"), (40, "forty"), (105, "one hundred five"),
                                     (342017, "three hundred forty two thousand seventeen"),
                                     (900000, "nine hundred thousand")])
def test_number_words(n, text):
    assert " ".join(example("numbers", "make_data").in_words(n)) == text


def test_number_pairs_read_back_and_test_numbers_are_new(tmp_path):
    make = example("numbers", "make_data")
    make.main(["--out", str(tmp_path), "--n", "300"])
    train_z, test_z = np.load(tmp_path / "train.npz"), np.load(tmp_path / "test.npz")
    assert not set(train_z["number"]) & set(test_z["number"])
    for src, ls, out, lt, n in zip(train_z["src"], train_z["lengths_s"], train_z["tgt_out"], train_z["lengths_t"],
                                   train_z["number"]):
        assert words_to_number([make.WORDS[i] for i in src[:ls]], make) == n
        assert "".join(str(d - 2) for d in out[:lt - 1]) == str(n) and out[lt - 1] == make.END


def test_numbers_short_training_decodes(tmp_path, capsys):
    example("numbers", "make_data").main(["--out", str(tmp_path), "--n", "120"])
    run = train.train(ROOT / "specs" / "seq2seq_luong.yaml", tmp_path / "train.npz", tmp_path / "run",
                      {"V": 30, "W": 12, "E": 8, "H": 8, "epochs": 1}, quiet=True)
    capsys.readouterr()
    example("numbers", "evaluate").main([str(run), str(tmp_path / "test.npz"), "--show", "2"])
    out = capsys.readouterr().out.splitlines()
    assert re.search(r"exact \d\.\d{4} of 500", out[0])
    first = int(np.load(tmp_path / "test.npz")["number"][0])
    assert out[-2].strip().startswith(" ".join(example("numbers", "make_data").in_words(first)) + " -> ")
