"""The speech examples' short versions (examples/deepspeech, examples/tdnn): each trains for a
few steps at tiny sizes and runs the example's own scripts, so the examples cannot rot. They
read ../shared/data/speech and are skipped without it; the feature and shift helpers are also
checked on a generated signal."""
import importlib.util
import re

import numpy as np
import pytest

from rnndsl.tools.cli import main
from rnndsl.training.data.audio import log_mel

from conftest import ROOT

EXAMPLES = ROOT / "examples"


def example(folder: str, name: str):
    """An example script as a module (they are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(f"{folder}_{name}", EXAMPLES / folder / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def small_manifest(speech, tmp_path, part: str, rows: int, within: str | None = None):
    """The first `rows` clips of speech/PART (those whose transcripts use only the characters
    `within`, when given) in a manifest of absolute paths."""
    lines = (speech / part / "manifest.tsv").read_text().splitlines()
    body = [line for line in lines[1:] if within is None or set(line.split("\t")[1]) <= set(within)][:rows]
    out = tmp_path / f"{part}.tsv"
    out.write_text("\n".join([lines[0]] + [str(speech / part) + "/" + line for line in body]) + "\n")
    return out, "".join(line.split("\t")[1] for line in body)


# ---- without the shared data ---------------------------------------------------------------

def test_placed_puts_the_word_at_its_offset_in_a_fixed_window():
    make = example("tdnn", "make_features")
    rng = np.random.default_rng(0)
    signal = np.concatenate([0.001 * rng.standard_normal(1600), np.sin(np.arange(8000) * 0.3)])
    base = log_mel(make.placed(signal, 16000, 0, 90), 16000, 16)
    for offset in (0, 10, 27):
        window = make.placed(signal, 16000, offset, 90)
        np.testing.assert_array_equal(window[offset * 160:offset * 160 + len(signal)], signal)
        moved = log_mel(window, 16000, 16)
        assert moved.shape == (90, 16)
        np.testing.assert_allclose(moved[offset:offset + 50], base[:50])   # the same frames, later
    with pytest.raises(SystemExit, match="larger --window"):
        make.placed(signal, 16000, 40, 90)


def test_greedy_ctc_merges_repeats_and_drops_blanks():
    post = np.eye(4)[[0, 1, 1, 0, 1, 2, 2, 3, 0]]
    assert example("deepspeech", "posteriorgram").greedy(post, ["_", "a", "b", "c"]) == "aabc"


# ---- short versions of the runs ------------------------------------------------------------

@pytest.mark.parametrize("spec", ["deepspeech", "deepspeech2", "deepspeech2_masked", "rnn_acoustic_ctc"])
def test_speech_specs_train_evaluate_and_plot(spec, shared_data, tmp_path, capsys):
    speech = shared_data / "speech"
    train, said = small_manifest(speech, tmp_path, "train", 24)
    dev, _ = small_manifest(speech, tmp_path, "dev", 6, within=said)     # no character the run never saw
    run = tmp_path / spec
    assert main(["train", str(ROOT / "specs" / f"{spec}.yaml"), "--data", str(train), "--out", str(run),
                 "--set", "H=8", "--set", "epochs=1", "--set", "steps=2", "--quiet"]) == 0
    assert main(["eval", str(run), "--data", str(dev), "--decode", "beam", "--beam", "2"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"cer\s+\d", out) and re.search(r"wer_beam\s+\d", out)
    example("deepspeech", "posteriorgram").main([str(run), str(dev), "--clip", "2", "--out", str(tmp_path / "p.png")])
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"


def test_tdnn_features_train_and_shifted_accuracy(shared_data, tmp_path, capsys):
    make = example("tdnn", "make_features")
    make.main(["--speech", str(shared_data / "speech"), "--out", str(tmp_path), "--shifts", "10"])
    z = np.load(tmp_path / "dev.npz")
    assert z["x"].shape[2] == 16 and len(z["label"]) == 68 and set(z["label"]) == set(range(20))
    moved = np.load(tmp_path / "dev_shift10.npz")["x"]
    np.testing.assert_allclose(moved[:, 10:30], z["x"][:, :20], atol=1e-5)   # every clip has 37+ frames
    run = tmp_path / "run"
    assert main(["train", str(ROOT / "specs" / "tdnn.yaml"), "--data", str(tmp_path / "train.npz"),
                 "--out", str(run), "--set", "K=20", "--set", "epochs=1", "--set", "steps=3", "--quiet"]) == 0
    words = tmp_path / "words"
    assert main(["train", str(ROOT / "specs" / "tdnn_words.yaml"), "--data", str(tmp_path / "train.npz"),
                 "--out", str(words), "--set", "H=8", "--set", "epochs=1", "--set", "steps=3", "--quiet"]) == 0
    capsys.readouterr()
    for trained in (run, words):
        example("tdnn", "evaluate").main([str(trained), str(tmp_path / "dev.npz"), str(tmp_path / "dev_shift10.npz")])
        rows = re.findall(r"\| (dev\S*) \| 68 \| (0\.\d{4}|1\.0000) \|", capsys.readouterr().out)
        assert [name for name, _ in rows] == ["dev.npz", "dev_shift10.npz"]
