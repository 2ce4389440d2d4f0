"""examples/reversal, short version: make the data, train a few steps, evaluate, plot (seconds)."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from rnndsl.training import train

ROOT = Path(__file__).resolve().parent.parent
FOLDER = ROOT / "examples" / "reversal"


@pytest.fixture()
def on_path(monkeypatch):
    """The example's folder first on the path, and its scripts imported afresh (other examples
    have scripts of the same names)."""
    monkeypatch.syspath_prepend(str(FOLDER))
    for name in ("evaluate", "make_data", "plot_attention"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    yield
    for name in ("evaluate", "make_data", "plot_attention"):
        sys.modules.pop(name, None)


def test_generated_data_is_a_reversal(tmp_path, on_path):
    import make_data
    make_data.main(["--out", str(tmp_path), "--n", "20", "--min", "2", "--max", "5", "--long", "7"])
    z = np.load(tmp_path / "long.npz")
    for i in range(len(z["src"])):
        k = int(z["lengths_s"][i])
        assert 6 <= k <= 7 and z["lengths_t"][i] == k + 1
        assert list(z["tgt_out"][i, :k]) == list(z["src"][i, :k][::-1]) and z["tgt_out"][i, k] == 1
        assert z["tgt_in"][i, 0] == 0 and list(z["tgt_in"][i, 1:k + 1]) == list(z["tgt_out"][i, :k])


def test_train_evaluate_and_plot_a_tiny_attention_run(tmp_path, on_path, capsys):
    import evaluate
    import make_data
    import plot_attention
    make_data.main(["--out", str(tmp_path), "--n", "40", "--min", "2", "--max", "4", "--long", "5"])
    run = tmp_path / "run"
    train.train(ROOT / "specs" / "seq2seq_attention.yaml", tmp_path / "train.npz", run,
                {"E": 4, "H": 6, "A": 5, "epochs": 1, "steps": 3, "batch": 8}, quiet=True)
    score = evaluate.evaluate(run, tmp_path / "test.npz")
    assert 0.0 <= score <= 1.0
    plot_attention.main([str(run), str(tmp_path / "test.npz"), "--out", str(tmp_path / "a.png")])
    assert (tmp_path / "a.png").stat().st_size > 1000
