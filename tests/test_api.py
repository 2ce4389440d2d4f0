"""The Python API for runs (rnndsl.train, load_run, Run, load_params) and `rnndsl export`.

README's Python example is run as it is written; exported safetensors files are read back by
the safetensors library itself where it is installed (an independent reader), and by
load_params; callbacks see every step's record.
"""
from __future__ import annotations

import re
import sys

import numpy as np
import pytest

import rnndsl
from rnndsl.tools.cli import main
from conftest import ROOT


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    records = []
    folder = tmp_path_factory.mktemp("api") / "lm"
    made = rnndsl.train(ROOT / "specs" / "char_rnn.yaml", out=folder, epochs=3, H=8, callbacks=[records.append])
    made.records = records
    return made


def test_a_run_trains_loads_samples_and_evaluates(run):
    from rnndsl.training import rundir
    assert [r["step"] for r in run.records if "loss" in r] == [r["step"] for r in rundir.read_metrics(run.path) if "loss" in r]
    again = rnndsl.load_run(run.path)
    assert sorted(again.params) == sorted(run.params) and again.settings["epochs"] == 3
    assert again.info["loader"] == {"level": "char"}          # a text run records no speech features
    text = again.sample("h", length=4, temperature=0)
    assert text.startswith("h") and len(text) == 5 and set(text) <= set("helo")
    assert again.evaluate()["tokens"] > 0 and again.vocab.symbols == ("h", "e", "l", "o")


@pytest.mark.parametrize("suffix", ["safetensors", "npz"])
def test_exported_weights_load_back_exactly(run, tmp_path, suffix):
    path = run.export(tmp_path / f"w.{suffix}")
    got = rnndsl.load_params(path)
    assert sorted(got) == sorted(run.params)
    for k, v in run.params.items():
        assert got[k].dtype == v.dtype and np.array_equal(got[k], v)


def test_safetensors_files_are_read_by_the_safetensors_library(run, tmp_path):
    safetensors = pytest.importorskip("safetensors")
    from safetensors.numpy import load_file
    path = run.export(tmp_path / "w.safetensors")
    got = load_file(str(path))
    assert all(np.array_equal(got[k], v) for k, v in run.params.items())
    with safetensors.safe_open(str(path), "np") as f:
        assert "char_rnn" in f.metadata()["spec"] or "h[t]" in f.metadata()["spec"]


def test_cli_export_writes_next_to_the_caller(run, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["export", str(run.path)]) == 0
    assert (tmp_path / "lm.safetensors").exists() and "5 tensors" in capsys.readouterr().out
    assert main(["export", str(run.path)]) == 1               # not told to replace it: refused
    assert "already exists" in capsys.readouterr().err
    assert main(["export", str(run.path), "-o", str(tmp_path / "w.npz")]) == 0
    assert sorted(rnndsl.load_params(tmp_path / "w.npz")) == sorted(run.params)


def test_the_cli_prints_what_the_run_methods_return(run, capsys):
    """sample and eval are the Run's methods behind flags: the same text, the same numbers."""
    greedy = run.sample("h", length=4, temperature=0)
    assert run.search("h", beam=1, length=4)[0][1] == greedy == "".join(run.stream("h", 4, 0))
    assert main(["sample", str(run.path), "--prime", "h", "--length", "4", "--beam", "2", "--nbest"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed == [f"{score:.4f}\t{text}" for score, text in run.search("h", beam=2, length=4)]
    assert main(["eval", str(run.path)]) == 0
    printed = capsys.readouterr().out
    assert all(f"{key:<16} {value:.4f}" in printed for key, value in run.evaluate().items() if isinstance(value, float))


def test_metrics_are_a_list_of_dicts_without_pandas(run, monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)         # import pandas raises ImportError
    records = run.metrics
    assert isinstance(records, list) and [r["step"] for r in records if "loss" in r] == [
        r["step"] for r in run.records if "loss" in r]
    assert all(isinstance(r, dict) for r in records)


def test_metrics_are_a_pandas_frame_with_pandas(run):
    pandas = pytest.importorskip("pandas")
    from rnndsl.training import rundir
    frame = run.metrics
    assert isinstance(frame, pandas.DataFrame) and len(frame) == len(rundir.read_metrics(run.path))
    steps = frame.loc[frame["loss"].notna(), "step"].tolist()
    assert steps == [r["step"] for r in run.records if "loss" in r]
    assert {"epoch", "loss", "lr", "grad_norm"} <= set(frame.columns)


def test_a_corrupt_safetensors_file_is_a_data_error(tmp_path):
    (tmp_path / "bad.safetensors").write_bytes(b"\xff" * 16)
    with pytest.raises(rnndsl.DataError, match="not a safetensors file"):
        rnndsl.load_params(tmp_path / "bad.safetensors")


def test_the_readme_python_example_runs(tmp_path, monkeypatch, capsys):
    """README's "From Python" block, run as written, from a folder of its own: it trains the
    embedded "hello", samples hello, and exports the weights."""
    text = (ROOT / "README.md").read_text()
    block = re.search(r"### From Python\n.*?```python\n(.*?)```", text, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "specs").symlink_to(ROOT / "specs")
    exec(compile(block, "README.md", "exec"), {})
    assert "\nhello\n" in capsys.readouterr().out
    assert sorted(rnndsl.load_params(tmp_path / "lm.safetensors")) == ["W_hh", "W_hy", "W_xh", "b_h", "b_y"]


def test_cli_export_torch_names_the_state_dict(tmp_path, monkeypatch, capsys):
    text = tmp_path / "t.txt"
    text.write_text("hello world, hello rnndsl\n" * 4)
    run = rnndsl.train(ROOT / "specs" / "gru.yaml", data=text, out=tmp_path / "gru", H=4, epochs=1, bptt=5, batch=2)
    monkeypatch.chdir(tmp_path)
    assert main(["export", str(run.path), "--format", "torch"]) == 0
    got = rnndsl.load_params(tmp_path / "gru.torch.safetensors")
    assert sorted(got) == ["gru.bias_hh_l0", "gru.bias_ih_l0", "gru.weight_hh_l0", "gru.weight_ih_l0",
                           "out.bias", "out.weight"]
    assert got["gru.weight_ih_l0"].shape == (3 * 4, run.model.spec.dim["V"].value)
