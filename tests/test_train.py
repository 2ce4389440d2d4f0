"""Training, sampling and evaluation end to end: `rnndsl train | sample | eval` through the CLI
(the user's path: exit codes, messages, never a traceback) and `rnndsl.training.train` where a test needs
control (interrupting at a given step, a non-finite loss, a failing checkpoint write)."""
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rnndsl.training import checkpoint, data, optim, rundir, train
from rnndsl.tools.cli import main
from rnndsl.core.errors import DataError
from rnndsl.runtime.model import CompiledModel, Step

from conftest import ROOT

CHAR_RNN = str(ROOT / "specs/char_rnn.yaml")
SENTIMENT = str(ROOT / "specs/sentiment.yaml")
AUTOREGRESSION = str(ROOT / "specs/autoregression.yaml")
WORDS = "the cat sat on a mat and the dog ran to the hat".split()
LM_SETS = ["--set", "H=8", "--set", "batch=2", "--set", "bptt=10"]


# ---- helpers ------------------------------------------------------------------------------------

def cli(capsys, *argv) -> tuple:
    """(exit code, stdout, stderr) of `rnndsl ARGV`; a traceback is always a failure."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "Traceback" not in out
    return code, out, err


def write_text(path, words: int = 80, seed: int = 0):
    """A few hundred characters of repetitive text: something a tiny LM can learn."""
    rng = np.random.default_rng(seed)
    path.write_text(" ".join(WORDS[i] for i in rng.integers(0, len(WORDS), words)) + "\n")
    return path


def write_reviews(path, n: int = 30, seed: int = 0):
    """Arrays for specs/sentiment.yaml: padded word ids, true lengths, a label per review."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(3, 10, n)
    x = np.zeros((n, 9), np.int64)
    for i, k in enumerate(lengths):
        x[i, :k] = rng.integers(1, 6, k)
    label = ((x == 1).sum(1) > (x == 2).sum(1)).astype(np.int64)
    np.savez(path, x=x, label=label, lengths=lengths)
    return path


def write_series(path, n: int = 6, steps: int = 12, scale: float = 1.0):
    """Arrays for specs/autoregression.yaml: n sine series (n, steps, 1)."""
    t = np.arange(steps)[None, :, None] + np.arange(n)[:, None, None]
    np.savez(path, x=scale * np.sin(0.5 * t))
    return path


def windows_of(text, streams: int = 2, bptt: int = 10) -> int:
    """Training steps per epoch of a stream LM: windows of `bptt` over each parallel stream."""
    return -(-((len(text.read_text()) - 1) // streams) // bptt)


def params_of(run) -> dict:
    return checkpoint.load(Path(run) / rundir.CHECKPOINT).params


def losses(run) -> list:
    return [r["loss"] for r in rundir.read_metrics(Path(run)) if "loss" in r]


def interrupt_at(monkeypatch, k: int) -> None:
    """Ctrl-C arriving as training step k+1 starts (after k whole steps)."""
    step, calls = train.Trainer.step, [0]

    def interrupted(self, batch):
        calls[0] += 1
        if calls[0] == k + 1:
            raise KeyboardInterrupt
        return step(self, batch)
    monkeypatch.setattr(train.Trainer, "step", interrupted)


def assert_same_params(a: dict, b: dict) -> None:
    assert sorted(a) == sorted(b)
    for name in a:
        assert np.array_equal(a[name], b[name]), f"{name} differs"


# ---- shared runs (each trained once per module) -------------------------------------------------

@pytest.fixture(scope="module")
def lm_text(tmp_path_factory):
    return write_text(tmp_path_factory.mktemp("text") / "train.txt")


@pytest.fixture(scope="module")
def lm_run(tmp_path_factory, lm_text):
    """A tiny char-level LM trained through the CLI: 3 epochs over ~300 characters."""
    run = tmp_path_factory.mktemp("runs") / "lm"
    code = main(["train", CHAR_RNN, "--data", str(lm_text), "--out", str(run), "--quiet", *LM_SETS,
                 "--set", "epochs=3"])
    assert code == 0
    return run


@pytest.fixture(scope="module")
def sentiment_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sentiment")
    reviews = write_reviews(folder / "reviews.npz")
    run = folder / "run"
    train.train(SENTIMENT, reviews, run, {"V": 6, "E": 4, "H": 5, "K": 2, "batch": 4, "epochs": 2}, quiet=True)
    return run


# ---- (1) the main job ---------------------------------------------------------------------------

def test_main_job_trains_hello_and_samples_it(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, out, err = cli(capsys, "train", CHAR_RNN)
    assert code == 0, err
    runs = list((tmp_path / "runs").iterdir())
    assert len(runs) == 1 and runs[0].name.startswith("char_rnn-")
    assert f"trained {os.path.join('runs', runs[0].name)}" in out
    code, out, err = cli(capsys, "sample", runs[0], "--prime", "h", "--length", "4", "--temperature", "0")
    assert (code, out) == (0, "hello\n"), err
    code, out, err = cli(capsys, "eval", runs[0])            # the data it trained on
    assert code == 0, err
    assert re.search(r"accuracy\s+1\.0000", out)
    assert float(re.search(r"perplexity\s+([\d.]+)", out).group(1)) < 1.5


# ---- (2) a tiny LM trains; the run directory holds what it should -------------------------------

def test_tiny_lm_trains_and_the_loss_falls(lm_run, lm_text):
    records = rundir.read_metrics(lm_run)
    assert all(json.loads(line) for line in (lm_run / rundir.METRICS).read_text().splitlines())
    steps = [r["step"] for r in records if "loss" in r]
    windows = windows_of(lm_text)
    assert steps == list(range(1, len(steps) + 1)) and len(steps) == 3 * windows
    curve = losses(lm_run)
    assert all(math.isfinite(x) for x in curve)
    assert np.mean(curve[-5:]) < 0.7 * np.mean(curve[:5])
    assert (lm_run / rundir.PLOT).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    info = json.loads((lm_run / rundir.INFO).read_text())
    vocab = data.Vocab.from_json(info["vocab"])
    assert set(vocab.symbols) == set(lm_text.read_text())
    assert info["dims"] == {"V": len(vocab), "H": 8}
    assert (info["settings"]["batch"], info["settings"]["bptt"], info["settings"]["epochs"]) == (2, 10, 3)
    assert "dims V=" in (lm_run / rundir.SPEC).read_text()
    ckpt = checkpoint.load(lm_run / rundir.CHECKPOINT)
    assert ckpt.meta["step"] == len(steps) and "sum_sq/W_hh" in ckpt.opt_state


def test_the_same_seed_gives_the_same_run_and_another_seed_another(tmp_path, lm_text):
    sets = {"H": 4, "batch": 2, "bptt": 10, "steps": 5}
    runs = [train.train(CHAR_RNN, lm_text, tmp_path / name, {**sets, "seed": seed}, quiet=True)
            for name, seed in (("a", 0), ("b", 0), ("c", 1))]
    assert_same_params(params_of(runs[0]), params_of(runs[1]))
    assert not np.array_equal(params_of(runs[0])["W_hh"], params_of(runs[2])["W_hh"])


# ---- (3) resume after an interruption = an uninterrupted run ------------------------------------

def test_interrupted_stream_lm_resumes_to_the_same_parameters(tmp_path, lm_text, monkeypatch, capsys):
    """A language model's stream with its state carried across windows, through the CLI."""
    argv = [CHAR_RNN, "--data", lm_text, "--quiet", *LM_SETS, "--set", "epochs=2"]
    assert cli(capsys, "train", *argv, "--out", tmp_path / "A")[0] == 0
    with monkeypatch.context() as m:
        interrupt_at(m, 22)                                # mid-way through the second epoch
        code, out, err = cli(capsys, "train", *argv, "--out", tmp_path / "B")
    assert code == 130 and f"continue with --resume {tmp_path / 'B'}" in err
    assert (tmp_path / "B" / rundir.PLOT).exists()
    ckpt = checkpoint.load(tmp_path / "B" / rundir.CHECKPOINT)
    assert (ckpt.meta["step"], ckpt.meta["epoch"], ckpt.meta["batch"]) == (22, 1, 22 - windows_of(lm_text))
    assert any(k.startswith("carry/") for k in ckpt.opt_state)        # the stream's state
    code, out, err = cli(capsys, "train", "--resume", tmp_path / "B", "--quiet")
    assert code == 0, err
    assert_same_params(params_of(tmp_path / "A"), params_of(tmp_path / "B"))
    assert losses(tmp_path / "A") == losses(tmp_path / "B")


def test_interrupted_minibatch_run_resumes_to_the_same_parameters(tmp_path, monkeypatch):
    """Padded, bucketed minibatches with a validation split and a plateau schedule (Adam)."""
    reviews = write_reviews(tmp_path / "reviews.npz")
    sets = {"V": 6, "E": 4, "H": 5, "K": 2, "batch": 4, "epochs": 3, "schedule": "plateau", "patience": 0,
            "bucket": "true"}
    train.train(SENTIMENT, reviews, tmp_path / "A", sets, quiet=True)
    with monkeypatch.context() as m:
        interrupt_at(m, 9)                                 # 7 batches per epoch: in the second
        with pytest.raises(KeyboardInterrupt):
            train.train(SENTIMENT, reviews, tmp_path / "B", sets, quiet=True)
    assert checkpoint.load(tmp_path / "B" / rundir.CHECKPOINT).meta["step"] == 9
    train.resume(tmp_path / "B", quiet=True)
    assert_same_params(params_of(tmp_path / "A"), params_of(tmp_path / "B"))
    a, b = (rundir.read_metrics(tmp_path / r) for r in "AB")
    assert a == b and any("val_loss" in r for r in a)


def test_a_second_ctrl_c_stops_at_once_without_a_checkpoint(tmp_path, lm_text, monkeypatch):
    update, calls = optim.Adagrad.update, [0]

    def update_then_ctrl_c_twice(self, p, g, lr, s):
        calls[0] += 1
        if calls[0] in (5 * 2 + 1, 5 * 2 + 3):            # step 3: its first and third parameters
            os.kill(os.getpid(), signal.SIGINT)
        return update(self, p, g, lr, s)
    monkeypatch.setattr(optim.Adagrad, "update", update_then_ctrl_c_twice)
    with pytest.raises(KeyboardInterrupt):
        train.train(CHAR_RNN, lm_text, tmp_path / "run", {"H": 4, "batch": 2, "bptt": 10, "steps": 6}, quiet=True)
    assert calls[0] == 5 * 2 + 3 and not (tmp_path / "run" / rundir.CHECKPOINT).exists()


def test_level_word_reaches_the_loader_and_is_kept_for_resume(tmp_path, lm_text, capsys):
    code, out, err = cli(capsys, "train", CHAR_RNN, "--data", lm_text, "--out", tmp_path / "run", "--quiet",
                         "--level", "word", *LM_SETS, "--set", "steps=2")
    assert code == 0, err
    info = rundir.read_info(tmp_path / "run")
    assert info["loader"]["level"] == "word"
    words = set(lm_text.read_text().split())
    assert words <= set(data.Vocab.from_json(info["vocab"]).symbols)


def test_minibatches_are_padded_with_lengths_and_bucketed_when_asked(tmp_path):
    reviews = write_reviews(tmp_path / "reviews.npz", n=60)
    padding = {}
    for bucket in ("false", "true"):
        job = train.prepare(SENTIMENT, reviews, {"V": 6, "E": 4, "H": 5, "K": 2, "batch": 6, "bucket": bucket})
        batches = train.Trainer(job, tmp_path, quiet=True).epoch_batches(0)
        assert sum(len(b["lengths"]["t"]) for b in batches) == len(job.train.examples)
        padding[bucket] = sum(b["x"].size - b["lengths"]["t"].sum() for b in batches)
    assert padding["true"] < padding["false"] / 2


def test_ctrl_c_in_the_middle_of_an_update_still_resumes_exactly(tmp_path, lm_text, monkeypatch):
    """A real SIGINT arriving while the optimizer has updated some parameters but not others:
    the checkpoint it leaves must hold whole steps only."""
    sets = {"H": 4, "batch": 2, "bptt": 10, "steps": 12}
    train.train(CHAR_RNN, lm_text, tmp_path / "A", sets, quiet=True)
    update, calls = optim.Adagrad.update, [0]

    def update_then_ctrl_c(self, p, g, lr, s):
        calls[0] += 1
        if calls[0] == 5 * 7 + 2:                          # step 8, its second parameter
            os.kill(os.getpid(), signal.SIGINT)
        return update(self, p, g, lr, s)
    with monkeypatch.context() as m:
        m.setattr(optim.Adagrad, "update", update_then_ctrl_c)
        with pytest.raises(KeyboardInterrupt):
            train.train(CHAR_RNN, lm_text, tmp_path / "B", sets, quiet=True)
    assert checkpoint.load(tmp_path / "B" / rundir.CHECKPOINT).meta["step"] == 8
    train.resume(tmp_path / "B", quiet=True)
    assert_same_params(params_of(tmp_path / "A"), params_of(tmp_path / "B"))


def test_resume_works_from_another_folder(tmp_path, monkeypatch, capsys):
    """The run records where its data is, not a path relative to where training started."""
    monkeypatch.chdir(tmp_path)
    write_text(tmp_path / "t.txt", words=20)
    with monkeypatch.context() as m:
        interrupt_at(m, 2)
        assert cli(capsys, "train", CHAR_RNN, "--data", "t.txt", "--out", "run", "--quiet", "--set",
                   "steps=4")[0] == 130
    monkeypatch.chdir(tmp_path / "run")
    code, out, err = cli(capsys, "train", "--resume", ".", "--quiet")
    assert code == 0, err
    assert checkpoint.load(tmp_path / "run" / rundir.CHECKPOINT).meta["step"] == 4


def test_a_cosine_run_falls_from_lr_to_zero_over_its_own_length(tmp_path, capsys):
    series = write_series(tmp_path / "series.npz", n=40)          # 36 to train on: 5 batches of 8 an epoch
    code, _, err = cli(capsys, "train", AUTOREGRESSION, "--data", series, "--out", tmp_path / "run", "--quiet",
                       "--set", "schedule=cosine", "--set", "lr=0.01", "--set", "warmup=2", "--set", "epochs=3",
                       "--set", "batch=8")
    assert code == 0, err
    rates = [r["lr"] for r in rundir.read_metrics(tmp_path / "run") if "loss" in r]
    assert rates[:3] == [0.005, 0.01, 0.01] and rates[-1] == 0.0, rates
    assert all(a >= b for a, b in zip(rates[1:], rates[2:]))       # never rises after the warmup


# ---- (4) a NaN or inf loss stops the run --------------------------------------------------------

def test_an_exploding_loss_stops_naming_the_step(tmp_path, capsys):
    series = write_series(tmp_path / "series.npz")
    code, out, err = cli(capsys, "train", AUTOREGRESSION, "--data", series, "--out", tmp_path / "run", "--quiet",
                         "--set", "lr=1e30", "--set", "epochs=50")
    assert code == 1
    step = int(re.search(r"became (?:nan|inf|-inf) at step (\d+)", err).group(1))
    assert step > 1 and "a lower learning rate (--set lr=...)" in err
    logged = [r["step"] for r in rundir.read_metrics(tmp_path / "run") if "loss" in r]
    assert logged == list(range(1, step))                  # every good step, not the bad one
    assert (tmp_path / "run" / rundir.PLOT).exists()
    if (tmp_path / "run" / rundir.CHECKPOINT).exists():
        assert all(np.isfinite(p).all() for p in params_of(tmp_path / "run").values())


def test_data_beyond_float32_is_refused_before_training(tmp_path, capsys):
    series = write_series(tmp_path / "series.npz", scale=1e200)
    code, out, err = cli(capsys, "train", AUTOREGRESSION, "--data", series, "--out", tmp_path / "run", "--quiet")
    assert code == 1 and "x holds 9.97e+199, beyond float32's range" in err and "--dtype float64" in err, err
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())


def test_data_with_a_huge_value_stops_at_the_first_step(tmp_path, capsys):
    series = write_series(tmp_path / "series.npz", scale=1e200)
    code, out, err = cli(capsys, "train", AUTOREGRESSION, "--data", series, "--out", tmp_path / "run", "--quiet",
                         "--dtype", "float64")
    assert code == 1 and "the loss became inf at step 1 (epoch 0)" in err
    assert not (tmp_path / "run" / rundir.CHECKPOINT).exists()            # no good step to keep
    for argv in (["eval", tmp_path / "run"], ["train", "--resume", tmp_path / "run"]):
        code, out, err = cli(capsys, *argv)
        assert code == 1 and "no checkpoint at" in err


def test_a_nan_keeps_the_last_good_checkpoint(tmp_path, lm_text, monkeypatch):
    """Checkpoints after every step; the model's 4th step returns NaN."""
    monkeypatch.setattr(train, "CHECKPOINT_SECONDS", 0.0)
    step, calls = CompiledModel.step, [0]

    def nan_at_4(self, *args, **kw):
        result = step(self, *args, **kw)
        calls[0] += 1
        return Step(math.nan, result.losses, result.grads, result.final) if calls[0] == 4 else result
    monkeypatch.setattr(CompiledModel, "step", nan_at_4)
    sets = {"H": 4, "batch": 2, "bptt": 10, "steps": 10}
    with pytest.raises(train.TrainingStopped, match=r"the loss became nan at step 4 .*last good checkpoint"):
        train.train(CHAR_RNN, lm_text, tmp_path / "run", sets, quiet=True)
    ckpt = checkpoint.load(tmp_path / "run" / rundir.CHECKPOINT)
    assert ckpt.meta["step"] == 3
    assert all(np.isfinite(p).all() for p in ckpt.params.values())
    monkeypatch.undo()
    good = train.train(CHAR_RNN, lm_text, tmp_path / "three", {**sets, "steps": 3}, quiet=True)
    assert_same_params(ckpt.params, params_of(good))


# ---- (5) a checkpoint from another spec is refused ----------------------------------------------

@pytest.fixture
def two_runs(tmp_path, lm_text):
    """Two tiny runs of char_rnn on the same text: H=4 and H=5."""
    sets = {"batch": 2, "bptt": 10, "steps": 2}
    return [train.train(CHAR_RNN, lm_text, tmp_path / f"H{h}", {**sets, "H": h}, quiet=True) for h in (4, 5)]


def test_a_checkpoint_of_other_dims_is_refused_naming_the_parameters(two_runs, capsys):
    small, big = two_runs
    shutil.copy(big / rundir.CHECKPOINT, small / rundir.CHECKPOINT)
    with pytest.raises(DataError, match="another spec") as info:
        train.load_run(small)
    for name in ("W_xh", "W_hh", "b_h", "W_hy"):
        assert name in info.value.message
    assert "b_y" not in info.value.message                 # its shape [V] did not change
    for argv in (["sample", small, "--prime", "t"], ["train", "--resume", small, "--quiet"], ["eval", small]):
        code, out, err = cli(capsys, *argv)
        assert code == 1 and "another spec" in err and "W_hh: [5, 5] in the checkpoint" in err


def test_a_run_whose_dims_were_edited_is_refused(two_runs, capsys):
    small = two_runs[0]
    info = json.loads((small / rundir.INFO).read_text())
    info["dims"]["H"] = 5
    (small / rundir.INFO).write_text(json.dumps(info))
    code, out, err = cli(capsys, "train", "--resume", small, "--quiet")
    assert code == 1 and "W_hh: [4, 4] in the checkpoint, [H=5, H=5] in the spec" in err


def test_a_run_whose_equations_were_edited_is_refused(two_runs, capsys):
    small = two_runs[0]
    spec = small / rundir.SPEC
    spec.write_text(spec.read_text().replace("h[t] = tanh(", "h[t] = sigmoid("))
    code, out, err = cli(capsys, "sample", small, "--prime", "t")
    assert code == 1 and "spec.yaml was edited after training: `equations` changed" in err and "sigmoid" in err


# ---- (6) bad input: a message, exit 1, no traceback ---------------------------------------------

@pytest.fixture
def files(tmp_path):
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "not_a_run").mkdir()
    write_text(tmp_path / "t.txt", words=10)
    return tmp_path


BAD_TRAIN = [
    (["--data", "{tmp}/missing.txt"], "missing.txt: no such file"),
    (["--data", "{tmp}/empty.txt"], "empty.txt: the file is empty"),
    (["--set", "lrr=0.1"], "--set lrr: not a dim of char_rnn or a training setting"),
    (["--set", "lr=abc"], "train: lr must be a number above 0, got 'abc'"),
    (["--set", "batch=0"], "train: batch must be a whole number above 0, got 0"),
    (["--set", "H=2.5"], "dim override H=2.5: a size must be a whole number"),
    (["--set", "lr"], "--set lr: expected NAME=VALUE"),
    (["--set", "momentum=0.9"], "momentum has no effect with optimizer adagrad"),
    (["--set", "V=3"], "has 3 classes, but 4 are needed"),
]


@pytest.mark.parametrize("args, message", BAD_TRAIN, ids=[m[:24] for _, m in BAD_TRAIN])
def test_bad_train_input(files, capsys, args, message):
    args = [a.format(tmp=files) for a in args]
    code, out, err = cli(capsys, "train", CHAR_RNN, "--out", files / "run", "--quiet", *args)
    assert code == 1 and message in err
    assert not (files / "run" / rundir.CHECKPOINT).exists()


@pytest.mark.parametrize("label, message, hint", [
    (12, "label of example 7 holds class 12; sentiment declares 2 classes, 0 to 1",
     "use --set K=13 (the largest index in the file is 12)"),
    (-3, "label of example 7 holds class -3; sentiment declares 2 classes, 0 to 1", "class indices count from 0"),
])
def test_a_class_index_outside_the_spec_is_found_before_training(tmp_path, capsys, label, message, hint):
    reviews = write_reviews(tmp_path / "reviews.npz")
    arrays = dict(np.load(reviews))
    arrays["label"][7] = label
    np.savez(reviews, **arrays)
    code, out, err = cli(capsys, "train", SENTIMENT, "--data", reviews, "--out", tmp_path / "run", "--quiet",
                         "--set", "V=6", "--set", "K=2")
    assert code == 1 and f"{reviews}: {message}" in err and hint in err
    assert not (tmp_path / "run" / rundir.CHECKPOINT).exists()


def test_out_that_is_a_file(files, capsys):
    for out in (files / "t.txt", files / "t.txt" / "run"):
        code, _, err = cli(capsys, "train", CHAR_RNN, "--out", out, "--quiet")
        assert code == 1 and ("is a file" in err or "cannot create the run directory" in err)


def test_a_spec_that_needs_data_gets_none(files, capsys):
    code, out, err = cli(capsys, "train", str(ROOT / "specs/rnn_lm.yaml"), "--out", files / "run")
    assert code == 1 and "rnn_lm needs training data" in err and "--data" in err


def test_text_data_for_a_spec_that_is_not_a_language_model(files, capsys):
    code, out, err = cli(capsys, "train", SENTIMENT, "--data", files / "t.txt", "--out", files / "run")
    assert code == 1 and "cannot be fed from" in err


def test_train_without_a_spec(capsys):
    code, out, err = cli(capsys, "train")
    assert code == 1 and "train needs a SPEC (or --resume RUN)" in err


def test_resume_of_a_folder_that_is_not_a_run(files, capsys):
    for folder in (files / "not_a_run", files / "nowhere"):
        code, out, err = cli(capsys, "train", "--resume", folder)
        assert code == 1 and "is not an rnndsl run directory" in err


def test_resume_refuses_settings_it_would_ignore(lm_run, capsys):
    for extra in (["--set", "lr=0.01"], ["--data", "x.txt"], [CHAR_RNN]):
        code, out, err = cli(capsys, "train", "--resume", lm_run, *extra)
        assert code == 1 and "--resume continues a run as it was" in err


def test_a_second_run_into_the_same_folder_is_refused(lm_run, lm_text, capsys):
    code, out, err = cli(capsys, "train", CHAR_RNN, "--data", lm_text, "--out", lm_run)
    assert code == 1 and "already holds a run" in err and "--resume" in err


def test_sample_and_eval_of_a_folder_that_is_not_a_run(files, capsys):
    for argv in (["sample", files / "not_a_run"], ["eval", files / "not_a_run"]):
        code, out, err = cli(capsys, *argv)
        assert code == 1 and "is not an rnndsl run directory" in err


def test_sample_of_a_run_without_generation(sentiment_run, capsys):
    code, out, err = cli(capsys, "sample", sentiment_run, "--prime", "x")
    assert code == 1 and "sentiment has no generate: section" in err


@pytest.mark.parametrize("args, message", [
    (["--prime", "hz"], "symbol 'z' (position 1) is not in the vocabulary"),
    (["--prime", ""], "the prime is empty"),
])
def test_bad_sample_input(lm_run, capsys, args, message):
    code, out, err = cli(capsys, "sample", lm_run, *args)
    assert code == 1 and message in err


@pytest.mark.parametrize("args", [["--temperature", "-1"], ["--temperature", "nan"], ["--length", "-3"]])
def test_bad_sample_arguments_are_usage_errors(lm_run, capsys, args):
    """argparse checks the ranges (limits.py): exit 2 with a usage message naming the option."""
    with pytest.raises(SystemExit) as exit_:
        main(["sample", str(lm_run), *args])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and f"argument {args[0]}" in err and "Traceback" not in err


def test_eval_on_text_with_unknown_symbols(lm_run, files, capsys):
    (files / "other.txt").write_text("the cat sat on the zebra\n")
    code, out, err = cli(capsys, "eval", lm_run, "--data", files / "other.txt")
    assert code == 1 and "symbol 'z' is not in the vocabulary" in err


# ---- (7) sampling ---------------------------------------------------------------------------------

def test_sampling_is_deterministic_with_a_seed(lm_run, capsys):
    def sample(*args):
        code, out, err = cli(capsys, "sample", lm_run, "--prime", "the ", "--length", "40", *args)
        assert code == 0, err
        assert out.startswith("the ") and len(out) == len("the ") + 40 + 1
        return out
    assert sample("--seed", "3") == sample("--seed", "3")
    assert sample("--seed", "3") != sample("--seed", "4")


def test_temperature_zero_is_greedy(lm_run, capsys):
    model, params, info = train.load_run(lm_run)
    vocab = data.Vocab.from_json(info["vocab"])
    seq = list(vocab.encode("the "))
    for _ in range(12):                                    # argmax of the last step, fed back
        y = model.forward(params, {"x": np.array(seq)[:, None], "target": np.zeros((len(seq), 1), int)})["y"]
        seq.append(int(y[-1, 0].argmax()))
    outs = {cli(capsys, "sample", lm_run, "--prime", "the ", "--length", "12", "--temperature", "0",
                "--seed", str(seed))[1] for seed in (0, 1)}
    assert outs == {vocab.decode(seq) + "\n"}


# ---- (8) eval -------------------------------------------------------------------------------------

def test_eval_of_a_language_model(lm_run, lm_text, capsys):
    code, out, err = cli(capsys, "eval", lm_run, "--data", lm_text)
    assert code == 0, err
    values = dict(re.findall(r"^\s+(\w+)\s+([\d.]+)$", out, re.M))
    loss = float(values["loss"])
    assert float(values["perplexity"]) == pytest.approx(math.exp(loss), rel=1e-3)
    assert float(values["bits_per_symbol"]) == pytest.approx(loss / math.log(2), rel=1e-3)
    assert 0 < float(values["accuracy"]) <= 1


def test_eval_on_other_data_reads_all_of_it(lm_run, lm_text, tmp_path, capsys):
    """A test file long enough that training would hold a tenth of it out is read whole."""
    long = tmp_path / "long.txt"
    long.write_text(lm_text.read_text() * 4)
    n = len(long.read_text())
    code, out, err = cli(capsys, "eval", lm_run, "--data", long)
    assert code == 0, err
    assert n >= train.MIN_TO_HOLD_OUT["text"] and f"tokens           {(n - 1) // 2 * 2}" in out


def test_eval_carries_the_state_across_windows_as_training_does(lm_run, lm_text):
    """The LM's loss on its stream equals the training loop's own measure (state carried)."""
    from rnndsl.training import evaluate
    model, params, info = train.load_run(lm_run)
    settings = optim.Settings(**info["settings"])
    job = train.prepare(str(lm_run / rundir.SPEC), lm_text, info["dims"], info=info, settings=settings)
    result = evaluate.metrics(model, params, job.train, settings, data.Vocab.from_json(info["vocab"]))
    assert result["loss"] == pytest.approx(train.evaluate_loss(model, params, job.train, settings), rel=1e-9)


def test_eval_of_a_classifier_reports_accuracy(sentiment_run, capsys):
    code, out, err = cli(capsys, "eval", sentiment_run)
    assert code == 0, err
    assert re.search(r"accuracy\s+[\d.]+", out) and "perplexity" not in out


# ---- (9) checkpoints are whole or absent --------------------------------------------------------

def trainer_of(run):
    """A Trainer restored from `run`'s checkpoint, as resume builds it."""
    info = rundir.read_info(run)
    job = train.prepare(str(run / rundir.SPEC), info["data"], info["dims"], info=info,
                        settings=optim.Settings(**info["settings"]))
    trainer = train.Trainer(job, run, quiet=True)
    trainer.restore(checkpoint.load(run / rundir.CHECKPOINT, job.model.spec))
    return trainer


def half_write(file, **arrays):
    file.write(b"PK\x03\x04 half an archive")
    raise OSError(28, "No space left on device")


@pytest.mark.parametrize("where", ["savez", "replace"])
def test_a_failed_checkpoint_write_keeps_the_previous_one(lm_run, tmp_path, monkeypatch, where):
    run = shutil.copytree(lm_run, tmp_path / "run")
    before = (run / rundir.CHECKPOINT).read_bytes()
    trainer = trainer_of(run)
    for p in trainer.params.values():
        p += 1.0
    if where == "savez":
        monkeypatch.setattr(np, "savez", half_write)
    else:
        monkeypatch.setattr(os, "replace", lambda *a: half_write(open(os.devnull, "wb")))
    with pytest.raises(DataError, match="No space left on device"):
        trainer.save()
    monkeypatch.undo()
    assert (run / rundir.CHECKPOINT).read_bytes() == before
    assert checkpoint.load(run / rundir.CHECKPOINT).meta["step"] == len(losses(lm_run))
    assert sorted(p.name for p in run.iterdir()) == sorted(p.name for p in lm_run.iterdir())


KILLED_WRITER = """
import os, signal, sys
import numpy as np
from rnndsl.training import train
saves, savez = [0], np.savez
def savez_then_die(file, **arrays):
    saves[0] += 1
    if saves[0] == 4:                        # the 4th checkpoint: killed half-way through
        file.write(b"PK\\x03\\x04 half an archive")
        file.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    savez(file, **arrays)
np.savez = savez_then_die
train.CHECKPOINT_SECONDS = 0.0
train.train(sys.argv[1], sys.argv[2], sys.argv[3], {"H": 4, "batch": 2, "bptt": 10, "steps": 8}, quiet=True)
"""


def test_a_killed_process_never_leaves_a_half_written_checkpoint(lm_text, tmp_path, capsys):
    run = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-c", KILLED_WRITER, CHAR_RNN, str(lm_text), str(run)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert checkpoint.load(run / rundir.CHECKPOINT).meta["step"] == 3
    code, out, err = cli(capsys, "train", "--resume", run, "--quiet")
    assert code == 0, err
    assert checkpoint.load(run / rundir.CHECKPOINT).meta["step"] == 8
    assert not [p.name for p in run.iterdir() if p.name.endswith(".tmp")]     # the leftover is gone


def write_two_digits(path, n: int = 40, seed: int = 0):
    """8x8 images of two 'digits' a captioning model can tell apart: 0 lights the left half,
    1 the right half, with noise."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    images = 0.2 * rng.random((n, 8, 8))
    for i, k in enumerate(labels):
        images[i, :, 4 * k:4 * k + 4] += 0.8
    np.savez(path, images=images.astype(np.float32), labels=labels)
    return path


def test_sample_from_an_example_captions_its_image(tmp_path, capsys):
    digits = write_two_digits(tmp_path / "digits.npz")
    code, out, err = cli(capsys, "train", ROOT / "specs/captioning.yaml", "--data", digits, "--out", tmp_path / "cap",
                         "--quiet", "--set", "H=16", "--set", "lr=0.02", "--set", "batch=8", "--set", "epochs=25")
    assert code == 0, err
    for index, word in ((0, "zero"), (1, "one"), (2, "zero"), (3, "one")):
        code, out, err = cli(capsys, "sample", tmp_path / "cap", "--from", digits, "--index", index,
                             "--temperature", "0")
        assert code == 0, err
        assert out.strip() == f"<start> {word} <end>"
        assert f"example {index} of {digits}; its own: {word} <end>" in err
    code, out, err = cli(capsys, "sample", tmp_path / "cap", "--from", digits, "--index", 40)
    assert code == 1 and "has 40 examples; --index 40 is not one of them" in err


def test_a_spec_without_time_axes_trains_on_named_arrays(tmp_path):
    """A static classifier has no sequence: the estimate-first memory check counts examples,
    not steps (it took max() of no steps and crashed)."""
    spec = tmp_path / "cls.yaml"
    spec.write_text("""name: cls
dims: {P: 6, H: 4, K: 3}
inputs:
  img: {float: [P]}
  label: {index: K}
params:
  W: {shape: [H, P]}
  V: {shape: [K, H]}
equations: |
  y = V @ tanh(W @ img)
loss: cross_entropy(y, label)
train: {optimizer: adam, lr: 0.05, batch: 8, epochs: 3}
""")
    rng = np.random.default_rng(0)
    img = rng.normal(size=(24, 6))
    np.savez(tmp_path / "d.npz", img=img, label=(img[:, 0] > 0).astype(np.int64) + (img[:, 1] > 1))
    run = tmp_path / "run"
    assert main(["train", str(spec), "--data", str(tmp_path / "d.npz"), "--out", str(run), "--quiet"]) == 0
    losses = [r["loss"] for r in rundir.read_metrics(run) if "loss" in r]
    assert losses and losses[-1] < losses[0]


def test_without_a_terminal_progress_is_a_line_now_and_then(monkeypatch):
    import io
    stream = io.StringIO()
    assert isinstance(train._progress_bar(10, 0, False, "lm", stream), train.LineProgress)
    clock = iter([0.0, 0.0, 1.0, 40.0, 41.0, 41.0])
    monkeypatch.setattr(train.time, "monotonic", lambda: next(clock))
    bar = train.LineProgress(10, 0, "lm", stream)
    bar.set_postfix(loss="1.2345", refresh=False)
    bar.update(1)          # 1 s: no line yet
    bar.update(1)          # 40 s: a line
    bar.close()            # the last line
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("lm: step 2/10, loss 1.2345") and lines[-1].startswith("lm: step 2/10")
    assert "\r" not in stream.getvalue() and len(lines) == 2


def test_resume_with_more_epochs_trains_on_as_one_longer_run(tmp_path, capsys):
    """--resume RUN --set epochs=N extends a run: the same parameters as a run that was that
    long from the start; run.json records the new length; other settings are still refused."""
    reviews = write_reviews(tmp_path / "reviews.npz")
    sets = {"V": 6, "E": 4, "H": 5, "K": 2, "batch": 4}
    train.train(SENTIMENT, reviews, tmp_path / "A", {**sets, "epochs": 4}, quiet=True)
    train.train(SENTIMENT, reviews, tmp_path / "B", {**sets, "epochs": 2}, quiet=True)
    assert main(["train", "--resume", str(tmp_path / "B"), "--set", "epochs=4", "--quiet"]) == 0
    assert_same_params(params_of(tmp_path / "A"), params_of(tmp_path / "B"))
    assert rundir.read_info(tmp_path / "B")["settings"]["epochs"] == 4
    assert main(["train", "--resume", str(tmp_path / "B"), "--set", "lr=0.5", "--quiet"]) == 1
    assert "--set lr would change it" in capsys.readouterr().err
