"""The language examples' short versions (examples/lm_words, char_lstm, embeddings, captioning):
each script and command of their READMEs run with tiny settings, so the examples cannot rot.
The full runs are the READMEs' commands."""
import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rnndsl.tools.cli import main
from rnndsl.training import data

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def load_example(path: Path, name: str):
    """An example's module by path, under its own name (other example folders have a make_data too)."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


lm_data = load_example(EXAMPLES / "lm_words/make_data.py", "lang_lm_words_make_data")
ngram = load_example(EXAMPLES / "lm_words/ngram.py", "lang_lm_words_ngram")

TEXT = """First Citizen:
Before we proceed any further, hear me speak.

All:
Speak, speak.

First Citizen:
You are all resolved rather to die than to famish?
""" * 12


def script(path: Path, *args: str) -> str:
    """Run an example script as its README does; its standard output."""
    out = subprocess.run([sys.executable, str(path), *args], check=True, capture_output=True, text=True, cwd=ROOT)
    return out.stdout


# ---- the Kneser-Ney n-gram -------------------------------------------------------------------

@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_kneser_ney_sums_to_one(order):
    rng = np.random.default_rng(order)
    tokens = [f"w{k}" for k in rng.zipf(1.5, size=400) % 30]
    kn = ngram.KneserNey(tokens, order)
    histories = [(), tuple(tokens[:order - 1]), ("w1", "w2", "w3"), ("never", "seen", "w0")]
    for h in histories:
        p = kn.distribution(h)
        assert (p > 0).all()
        assert abs(p.sum() - 1) < 1e-9, h


def test_kneser_ney_by_hand():
    # "a b a b c", bigrams: ab x2, ba, bc. Bigram discount n1/(n1+2 n2) = 2/4; every word has one
    # distinct predecessor, so the unigram (discount 3/3) is uniform: P(b|a) = 1.5/2 + 0.5*1/2*1/3.
    kn = ngram.KneserNey("a b a b c".split(), order=2)
    assert kn.discount == [1.0, 0.5]
    assert math.isclose(kn.prob("b", ("a",)), 0.75 + 1 / 12)
    assert math.isclose(kn.prob("c", ("c",)), 1 / 3)     # c never starts a bigram: back off


def test_kneser_ney_beats_lower_orders_on_repetitive_text():
    tokens = lm_data.stream(lm_data.tokenize(TEXT))
    train, valid = lm_data.split(tokens, 0.25)
    ppl = [ngram.KneserNey(train, n).perplexity(valid) for n in (1, 2, 3)]
    assert ppl[2] < ppl[1] < ppl[0]


# ---- word-level language models ----------------------------------------------------------------

def test_word_data_split_is_rnndsl_split(tmp_path):
    (tmp_path / "t.txt").write_text(TEXT)
    script(EXAMPLES / "lm_words/make_data.py", "--text", str(tmp_path / "t.txt"), "--out", str(tmp_path),
           "--min-count", "13")
    words = tmp_path / "words.txt"
    train, valid = lm_data.split(lm_data.stream([l.split() for l in words.read_text().splitlines()]))
    assert "<unk>" in train and set(valid) <= set(train)
    ds = data.load_text(words, level="word")
    held_train, held_valid = ds.split()
    assert held_valid.vocab.decode(held_valid.stream).split() == valid
    assert len(held_train.stream) == len(train)


def test_word_models_train_and_compare(tmp_path):
    (tmp_path / "t.txt").write_text(TEXT)
    script(EXAMPLES / "lm_words/make_data.py", "--text", str(tmp_path / "t.txt"), "--out", str(tmp_path))
    env = dict(os.environ, DATA=str(tmp_path / "words.txt"), RUNS=str(tmp_path / "runs"),
               RNNDSL=str(Path(sys.executable).parent / "rnndsl"),
               EXTRA="--set steps=3 --set epochs=1 --set H=8 --set batch=4")
    subprocess.run(["sh", str(EXAMPLES / "lm_words/train_all.sh")], check=True, env=env, cwd=ROOT,
                   capture_output=True)
    runs = [str(tmp_path / "runs" / m) for m in ("ffnn", "rnn", "lstm")]
    table = script(EXAMPLES / "lm_words/compare.py", str(tmp_path / "words.txt"), *runs)
    rows = [l for l in table.splitlines() if l.startswith("| ") and "perplexity" not in l]
    assert len(rows) == 5
    assert all(1 < float(r.split("|")[2]) < 1000 for r in rows)


# ---- character LSTM --------------------------------------------------------------------------

def test_stacked_lstm_trains_and_samples(tmp_path, capsys):
    (tmp_path / "t.txt").write_text(TEXT)
    run = str(tmp_path / "run")
    assert main(["train", str(ROOT / "specs/lstm_stacked.yaml"), "--data", str(tmp_path / "t.txt"),
                 "--out", run, "--quiet", "--set", "H=16", "--set", "E=8", "--set", "bptt=20",
                 "--set", "batch=4", "--set", "epochs=3", "--set", "lr=0.02", "--set", "eval_every=10"]) == 0
    val = [r["val_loss"] for r in map(json.loads, open(tmp_path / "run/metrics.jsonl")) if "val_loss" in r]
    assert val[-1] < val[0]
    capsys.readouterr()
    assert main(["sample", run, "--prime", "First", "--length", "40", "--temperature", "0"]) == 0
    assert capsys.readouterr().out.startswith("First")


# ---- Collobert-Weston embeddings ------------------------------------------------------------

def test_cw_embeddings_train_and_neighbours(tmp_path):
    (tmp_path / "t.txt").write_text(TEXT)
    script(EXAMPLES / "embeddings/make_data.py", "--text", str(tmp_path / "t.txt"), "--out", str(tmp_path),
           "--vocab", "20", "--length", "8")
    z = np.load(tmp_path / "train.npz")
    assert z["w"].shape == z["neg"].shape and (z["neg"] > 0).all()
    run = str(tmp_path / "run")
    assert main(["train", str(ROOT / "specs/cw_embeddings.yaml"), "--data", str(tmp_path / "train.npz"),
                 "--out", run, "--quiet", "--set", "D=8", "--set", "H=8", "--set", "V=20", "--set", "batch=8",
                 "--set", "lr=0.01", "--set", "epochs=10"]) == 0
    losses = [r["loss"] for r in map(json.loads, open(tmp_path / "run/metrics.jsonl")) if "loss" in r]
    assert losses[-1] < 0.7 * losses[0]         # the ranking loss starts near 1
    out = script(EXAMPLES / "embeddings/neighbours.py", run, str(tmp_path / "vocab.json"),
                 "--png", str(tmp_path / "emb.png"))
    assert "group words with a group member" in out and (tmp_path / "emb.png").stat().st_size > 0


# ---- captioning strips of digits -----------------------------------------------------------

def test_captioning_strips(tmp_path, shared_data, capsys):
    script(EXAMPLES / "captioning/make_data.py", "--digits", str(shared_data / "images/digits.npz"),
           "--out", str(tmp_path), "--train", "300", "--test", "40")
    z = np.load(tmp_path / "test.npz")
    assert z["images"].shape == (40, 8, 32)
    assert all(len(c.split()) == k for c, k in zip(z["captions"], z["labels"]))
    run = str(tmp_path / "run")
    assert main(["train", str(ROOT / "specs/captioning_digits.yaml"), "--data", str(tmp_path / "train.npz"),
                 "--out", run, "--quiet", "--set", "H=16", "--set", "F=4", "--set", "epochs=2"]) == 0
    capsys.readouterr()
    assert main(["eval", run, "--data", str(tmp_path / "test.npz")]) == 0
    assert "exact_seqs" in capsys.readouterr().out
    table = script(EXAMPLES / "captioning/evaluate.py", run, str(tmp_path / "test.npz"))
    assert [row.split("|")[1].strip() for row in table.splitlines()[2:]] == ["2", "3", "4", "all"]
    assert main(["sample", run, "--from", str(tmp_path / "test.npz"), "--temperature", "0"]) == 0
    out = capsys.readouterr().out.split()
    assert out[0] == "<start>" and set(out[1:]) <= set(data.DIGITS) | {"<end>"}
