"""The command line: check and graph, their output formats and exit codes."""
import re
import json
import subprocess
import sys

import networkx as nx
import pytest

from rnndsl.tools.cli import main

from conftest import ROOT, SPECS


def test_check_every_spec(capsys):
    assert main(["check", *map(str, SPECS)]) == 0
    out = capsys.readouterr().out
    assert f"{len(SPECS)} of {len(SPECS)} specs ok" in out


def test_check_summary_names_recurrences_and_directions(capsys):
    assert main(["check", str(ROOT / "specs/deepspeech.yaml")]) == 0
    out = capsys.readouterr().out
    assert "recurrence hf: forward over t, delay 1" in out
    assert "recurrence hb: backward over t, delay 1" in out
    assert "params: 15 tensors, 538,388 values" in out
    assert "time-parallel: h1, h2, h3, h5, y" in out


def test_check_with_dim_override(capsys):
    assert main(["check", str(ROOT / "specs/elman.yaml"), "--set", "H=32"]) == 0
    assert "H=32" in capsys.readouterr().out


def test_check_reports_errors_and_exits_1(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text((ROOT / "specs/elman.yaml").read_text().replace("W_hh @ h[t-1]", "W_hh @ hh[t-1]"))
    assert main(["check", str(bad), str(ROOT / "specs/elman.yaml")]) == 1
    captured = capsys.readouterr()
    assert f"{bad}:" in captured.err and "error: unknown name 'hh'" in captured.err
    assert "Traceback" not in captured.err
    assert "1 of 2 specs ok" in captured.out


def test_missing_file_and_bad_override(capsys):
    assert main(["check", "no/such.yaml"]) == 1
    assert "no such spec file" in capsys.readouterr().err
    assert main(["check", str(ROOT / "specs/elman.yaml"), "--set", "Q=3"]) == 1
    assert "the spec has no dim Q" in capsys.readouterr().err


def test_graph_text(capsys):
    assert main(["graph", str(ROOT / "specs/elman.yaml"), "--unroll", "3"]) == 0
    out = capsys.readouterr().out
    assert "h@1 <- h@0, x@1" in out
    assert "y@2 <- h@2" in out


def test_graph_dot_shows_both_directions(capsys):
    assert main(["graph", str(ROOT / "specs/birnn.yaml"), "--unroll", "4", "--format", "dot"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("digraph")
    assert "color=blue" in out and "color=red" in out


def test_graph_json_is_node_link_data(capsys):
    assert main(["graph", str(ROOT / "specs/seq2seq.yaml"), "--unroll", "s=3,t=2", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    g = nx.node_link_graph(data)            # the installed networkx reads it as it is
    assert "enc@2" in g and "dec@1" in g and g.has_edge("enc@2", "dec_init")
    assert nx.is_directed_acyclic_graph(g)


def test_graph_rejects_bad_unroll(capsys):
    assert main(["graph", str(ROOT / "specs/seq2seq.yaml"), "--unroll", "t=2"]) == 1
    assert "needs 1..1000 steps for each axis" in capsys.readouterr().err


def test_console_entry_point_runs():
    out = subprocess.run([sys.executable, "-m", "rnndsl", "check", str(ROOT / "specs/elman.yaml")],
                         capture_output=True, text=True, check=True).stdout
    assert "elman ok" in out


def test_compile_writes_a_standalone_module(tmp_path, capsys):
    out = tmp_path / "elman_model.py"
    assert main(["compile", str(ROOT / "specs/elman.yaml"), "-o", str(out)]) == 0
    text = out.read_text()
    assert "def forward(" in text and "def backward(" in text and "import rnndsl" not in text
    assert "# h[t] = tanh(W_xh @ x[t] + W_hh @ h[t-1] + b_h)" in text


@pytest.mark.parametrize("stage,expect", [("ir", "h[t]: [H=16] = tanh("), ("unrolled", "h@1 <- h@0, x@1"),
                                          ("program", "for t in reversed steps:"), ("code", "def backward(")])
def test_compile_dumps_each_stage(stage, expect, capsys):
    assert main(["compile", str(ROOT / "specs/elman.yaml"), "--dump", stage]) == 0
    assert expect in capsys.readouterr().out


def test_compile_explains_the_schedule(capsys):
    assert main(["compile", str(ROOT / "specs/lstm.yaml"), "--explain", "--steps", "10", "--batch", "4"]) == 0
    out = capsys.readouterr().out
    assert "i, f, o, g, c, h: forward recurrence over t" in out
    assert "[U_i, U_f, U_o, U_g] @ h[t-1]: one GEMM, once per step" in out
    assert "sigmoid:" in out and "forward: " in out and "tape (what backward() and the caller read)" in out


def test_gradcheck_passes_on_a_spec(capsys):
    assert main(["gradcheck", str(ROOT / "specs/birnn.yaml")]) == 0
    out = capsys.readouterr().out
    assert "parameters within 1e-06" in out and "FAIL" not in out


def test_bench_reports_times_and_the_backend_that_ran(capsys):
    assert main(["bench", str(ROOT / "specs/elman.yaml"), "--steps", "5", "--batch", "2", "--repeat", "2"]) == 0
    out = capsys.readouterr().out
    assert "fwd+bwd ms" in out and "T=5 B=2 float32, numpy backend" in out      # conftest pins numpy
    assert re.search(r"compile \d+\.\d\d s; the first forward\+backward \d+\.\d\d s", out)


def test_version_and_mistyped_commands_and_options(capsys):
    from rnndsl import __version__
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == f"rnndsl {__version__}"
    with pytest.raises(SystemExit) as exit_:
        main(["trian", "specs/elman.yaml"])
    assert exit_.value.code == 2 and "unknown command 'trian'; did you mean train?" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["sample", "runs/x", "--bogus"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.startswith("usage: rnndsl sample") and "rnndsl sample: error: unrecognized" in err
