"""Decoding from the command line: sample and eval on runs trained on named arrays (class numbers
in and out), beam search next to greedy decoding, exact-sequence accuracy checked against
decoding each example alone with the sampler, and clear errors for options that do not fit."""
import numpy as np
import pytest

from rnndsl.tools.cli import main
from rnndsl.training import data, evaluate, generate, train

from conftest import ROOT

SEQ2SEQ = ROOT / "specs" / "seq2seq.yaml"
CTC = ROOT / "specs" / "rnn_acoustic_ctc.yaml"
SENTIMENT = ROOT / "specs" / "sentiment.yaml"


def cli(capsys, *argv) -> tuple:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "Traceback" not in out
    return code, out, err


def write_reversal(path, n: int = 48, seed: int = 0):
    """Sources of 2-4 symbols; the target is the source reversed: start 0, stop 1, symbols 2..5."""
    rng = np.random.default_rng(seed)
    src_len = rng.integers(2, 5, n)
    src = rng.integers(0, 4, (n, 4))
    tgt_in, tgt_out = np.zeros((n, 5), np.int64), np.zeros((n, 5), np.int64)
    for i in range(n):
        r = src[i, :src_len[i]][::-1] + 2
        tgt_in[i, 1:src_len[i] + 1], tgt_out[i, :src_len[i]], tgt_out[i, src_len[i]] = r, r, 1
    np.savez(path, src=src, tgt_in=tgt_in, tgt_out=tgt_out, lengths_s=src_len, lengths_t=src_len + 1)
    return path


def write_ctc(path, n: int = 12, seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(1, 4, (n, 3))
    np.savez(path, x=rng.normal(size=(n, 8, 3)).astype(np.float32), labels=labels,
             lengths_t=np.full(n, 8), lengths_u=rng.integers(1, 4, n))
    return path


@pytest.fixture(scope="module")
def reversal(tmp_path_factory):
    folder = tmp_path_factory.mktemp("reversal")
    npz = write_reversal(folder / "rev.npz")
    run = train.train(SEQ2SEQ, npz, folder / "run", {"V": 4, "W": 6, "H": 12, "lr": 0.02, "batch": 8, "epochs": 12},
                      quiet=True, dtype="float64")
    return run, npz


@pytest.fixture(scope="module")
def ctc_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ctc")
    npz = write_ctc(folder / "ctc.npz")
    run = train.train(CTC, npz, folder / "run", {"F": 3, "H": 4, "K": 4, "batch": 4, "epochs": 1}, quiet=True)
    return run, npz


def test_sample_without_a_vocabulary_takes_and_prints_class_numbers(reversal, capsys):
    run, _ = reversal
    code, out, err = cli(capsys, "sample", run, "--prime", "0", "--input", "src=3,1,0", "--stop", "1",
                         "--temperature", "0")
    assert code == 0
    ids = [int(w) for w in out.split()]
    model, params, _ = train.load_run(run)
    assert ids == [0] + generate.generate(model, params, [0], 20, 0, context={"src": np.array([3, 1, 0])}, stop=1)


def test_beam_one_prints_the_greedy_sample_and_nbest_ranks(reversal, capsys):
    run, _ = reversal
    common = ["--prime", "0", "--input", "src=2,0", "--stop", "1"]
    greedy = cli(capsys, "sample", run, *common, "--temperature", "0")[1]
    assert cli(capsys, "sample", run, *common, "--beam", "1")[1] == greedy
    code, out, _ = cli(capsys, "sample", run, *common, "--beam", "3", "--nbest", "--length-norm", "0.5")
    scores = [float(line.split("\t")[0]) for line in out.splitlines()]
    assert code == 0 and 1 <= len(scores) <= 3 and scores == sorted(scores, reverse=True)
    assert all(line.split("\t")[1].startswith("0 ") for line in out.splitlines())


def test_eval_reports_exact_sequences_as_decoding_each_example_alone(reversal, capsys):
    run, npz = reversal
    code, out, err = cli(capsys, "eval", run, "--data", npz, "--stop", "1", "--decode", "beam", "--beam", "3")
    assert code == 0
    shown = dict(line.split() for line in out.splitlines()[1:])
    model, params, _ = train.load_run(run)
    arrays = data.load_arrays(npz).examples
    hits = 0
    for e in arrays:
        src = e["src"][:e["lengths_s"]]
        ids = generate.generate(model, params, [0], model.spec.generate.max_len, 0, context={"src": src}, stop=1)
        hits += ids == [int(i) for i in e["tgt_out"][:e["lengths_t"]]]
    assert float(shown["exact_seqs"]) == pytest.approx(hits / len(arrays), abs=1e-4)
    assert 0 <= float(shown["exact_seqs_beam"]) <= 1
    assert hits > 0                                      # the tiny run learned something to compare


def test_eval_without_a_stop_says_why_there_is_no_exact_accuracy(reversal, capsys):
    run, npz = reversal
    code, out, err = cli(capsys, "eval", run, "--data", npz)
    assert code == 0 and "exact_seqs" not in out and "--stop" in err


def test_eval_decodes_ctc_with_a_prefix_beam(ctc_run, capsys):
    run, npz = ctc_run
    code, out, err = cli(capsys, "eval", run, "--data", npz, "--decode", "beam", "--beam", "4")
    shown = dict(line.split() for line in out.splitlines()[1:])
    assert code == 0 and {"cer", "cer_beam"} <= set(shown) and "wer" not in shown   # no words without a vocabulary
    assert float(shown["cer"]) >= 0 and float(shown["cer_beam"]) >= 0


def test_exact_sequences_compare_up_to_the_stop():
    assert evaluate._upto(np.array([4, 3, 1, 0, 0]), 1) == (4, 3, 1)
    assert evaluate._upto(np.array([4, 3]), 1) == (4, 3)


@pytest.fixture(scope="module")
def sentiment_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sentiment")
    rng = np.random.default_rng(0)
    npz = folder / "reviews.npz"
    np.savez(npz, x=rng.integers(0, 6, (12, 5)), label=rng.integers(0, 2, 12), lengths=rng.integers(2, 6, 12))
    return train.train(SENTIMENT, npz, folder / "run", {"V": 6, "E": 4, "H": 5, "K": 2, "batch": 4, "epochs": 1},
                       quiet=True)


@pytest.mark.parametrize("argv, message", [
    (["sample", "{rev}", "--beam", "2", "--temperature", "0.5"], "--beam searches for the likeliest sequences"),
    (["sample", "{rev}", "--nbest"], "--nbest rank the hypotheses of a beam search"),
    (["sample", "{rev}"], "generate: start '<start>' names no class"),
    (["sample", "{rev}", "--prime", "0", "--stop", "<end>"], "--stop '<end>' is not a symbol of the run"),
    (["sample", "{rev}", "--prime", "0 x"], "'x' is not a class number from 0 to 5"),
    (["sample", "{rev}", "--prime", "0", "--input", "tgt=1"], "--input tgt=1: expected NAME=NUMBERS for one of src"),
    (["sample", "{sent}", "--beam", "3"], "sentiment has no generate: section, so there is nothing to sample or search"),
    (["eval", "{sent}", "--decode", "beam"], "--decode beam: sentiment has nothing a beam search decodes"),
    (["eval", "{rev}", "--beam", "3"], "--beam set the beam of --decode beam, which is not given"),
])
def test_misused_decoding_options_are_clear_errors(reversal, sentiment_run, capsys, argv, message):
    argv = [a.format(rev=reversal[0], sent=sentiment_run) for a in argv]
    code, out, err = cli(capsys, *argv)
    assert code == 1 and message in err and "hint:" in err


@pytest.mark.parametrize("argv", [["--beam", "0"], ["--length-norm", "-1"], ["--length-norm", "nan"]])
def test_beam_option_ranges_are_usage_errors(reversal, capsys, argv):
    with pytest.raises(SystemExit) as exit_:
        main(["sample", str(reversal[0]), *argv])
    assert exit_.value.code == 2 and f"argument {argv[0]}" in capsys.readouterr().err
