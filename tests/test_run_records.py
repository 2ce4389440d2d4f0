"""Run records as an attacker or a careless user meets them (issue 8, items 9 and 11 and the
run tracebacks): corrupt metrics keep their valid records, non-finite parameters are never
saved, run.json is checked field by field, any spec name draws a plot, a run path may hold a
line break, an unwritable --out is a message. And the dtype a run records (issue 10 item 5):
float32 unless asked, kept by resume, sample and eval; a run from before it reads as float64."""
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rnndsl.training import checkpoint, rundir, train
from rnndsl.core.errors import DataError, SpecError

from test_run_safety import CHAR_RNN, cli, readers, run, trained   # noqa: F401 (run, trained: fixtures)
from test_train import assert_same_params, interrupt_at, params_of


# ---- item 9: a corrupt metrics line loses nothing else -----------------------------------------

def test_corrupt_metrics_lines_keep_the_valid_records(tmp_path, capsys):
    run = train.train(str(CHAR_RNN), out=tmp_path / "run", sets={"H": 4, "epochs": 10, "steps": 6}, quiet=True)
    lines = (run / rundir.METRICS).read_bytes().split(b"\n")
    lines[1] = b"\xff\xfe random bytes \x00"
    lines[3] = b'{"step": "x", "loss": 1}'
    lines[4:4] = [b"[1, 2]", b"[" * 50_000, b"x" * 70_000]
    (run / rundir.METRICS).write_bytes(b"\n".join(lines))
    code, out, err = cli(capsys, "train", "--resume", run, "--quiet")
    assert code == 0, err
    for dropped in ("line 2 (not UTF-8 text)", "line 4 (not a metrics record)", "line 5 (not a metrics record)",
                    "line 6 (not JSON)", "line 7 (longer than 65,536 bytes)", "kept the 4 valid records"):
        assert dropped in err
    assert [r["step"] for r in rundir.read_metrics(run)] == [1, 3, 5, 6]


def test_the_warning_names_each_dropped_line(tmp_path, capsys):
    (tmp_path / rundir.METRICS).write_bytes(b'{"step": 1, "loss": 2.0}\n\xff\n{"step": 2}\nnot json\n{"step": 3}\n')
    rundir.truncate_metrics(tmp_path, 2)
    err = capsys.readouterr().err
    assert "line 2 (not UTF-8 text), line 4 (not JSON); kept the 3 valid records" in err
    assert [r["step"] for r in rundir.read_metrics(tmp_path)] == [1, 2]


@given(st.lists(st.one_of(st.binary(max_size=40), st.builds(lambda v: json.dumps(v).encode(), st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.sampled_from(["step", "loss", "epoch", "x"]),
                                                               kids, max_size=4)))), max_size=8))
def test_any_metrics_file_reads_as_valid_records(tmp_path_factory, lines):
    folder = tmp_path_factory.mktemp("metrics")
    (folder / rundir.METRICS).write_bytes(b"\n".join(lines))
    records, bad = rundir.scan_metrics(folder)
    assert all(isinstance(r["step"], int) and r["step"] >= 0 for r in records)
    assert all(isinstance(r.get("loss", 0.0), (int, float)) for r in records)
    rundir.truncate_metrics(folder, 3)
    assert rundir.scan_metrics(folder)[1] == []


# ---- item 11: parameters are checked before every save -----------------------------------------

@pytest.mark.parametrize("steps", [1, 4])
def test_diverging_parameters_are_never_saved(tmp_path, capsys, steps):
    out = tmp_path / "run"
    code, _, err = cli(capsys, "train", CHAR_RNN, "--out", out, "--quiet", "--set", "optimizer=sgd", "--set", "lr=10",
                       "--set", "weight_decay=1e308", "--set", f"steps={steps}", "--set", "H=4")
    assert code == 1 and ("parameters stopped being finite" in err or "became nan" in err), err
    assert not (out / rundir.CHECKPOINT).exists()


def test_a_run_ending_with_inf_parameters_stops_keeping_the_last_good_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setattr(train, "CHECKPOINT_SECONDS", 0.0)
    step = train.Trainer.step

    def inf_at_3(self, batch):
        record = step(self, batch)
        if self.progress.step == 3:
            self.params["W_hh"][0, 0] = np.inf
        return record
    monkeypatch.setattr(train.Trainer, "step", inf_at_3)
    with pytest.raises(train.TrainingStopped, match=r"W_hh holds 1 non-finite value \(inf\).*checkpoint.*\(step 2\)"):
        train.train(str(CHAR_RNN), out=tmp_path / "run", sets={"H": 4, "epochs": 10, "steps": 3}, quiet=True)
    ckpt = checkpoint.load(tmp_path / "run" / rundir.CHECKPOINT)
    assert ckpt.meta["step"] == 2 and all(np.isfinite(p).all() for p in ckpt.params.values())


# ---- tracebacks: run.json of every wrong shape -------------------------------------------------

RUN_JSON = [
    (lambda i: [i], "not marked as an rnndsl run"),
    (lambda i: {**i, "dims": "H=4"}, "dims: expected a mapping"),
    (lambda i: {**i, "surprise": 1}, "unknown key 'surprise'"),
    (lambda i: {**i, "settings": {**i["settings"], "lr": "0.1"}}, "lr must be a number, got '0.1'"),
    (lambda i: {**i, "settings": {**i["settings"], "batch": 2.0}}, "batch must be a whole number, got 2.0"),
    (lambda i: {**i, "settings": {**i["settings"], "batch": 0}}, "batch must be a whole number above 0, got 0"),
    (lambda i: {**i, "settings": {**i["settings"], "optimizer": "rmsprop!"}}, "optimizer must be one of"),
    (lambda i: {**i, "settings": {k: v for k, v in i["settings"].items() if k != "lr"}}, "settings: no lr"),
    (lambda i: {**i, "settings": []}, "settings: expected a mapping"),
    (lambda i: {k: v for k, v in i.items() if k != "rnndsl_run"}, "not marked as an rnndsl run"),
    (lambda i: {**i, "rnndsl_run": 2}, "run format 2; this rnndsl reads format 1"),
    (lambda i: {**i, "vocab": 5}, "vocab: expected the vocabulary as JSON text"),
    (lambda i: {**i, "vocab": json.dumps({"symbols": [1, 2, 3, 4]})}, "every symbol must be text"),
    (lambda i: {**i, "loader": {"level": "byte"}}, "level must be one of char, word"),
    (lambda i: {**i, "backend": "fortran"}, "backend: expected one of numba, numpy"),
    (lambda i: {**i, "dtype": "float16"}, "dtype: expected one of float32, float64, got 'float16'"),
    (lambda i: {**i, "dtype": ["float32"]}, "dtype: expected one of float32, float64"),
    (lambda i: {**i, "dims": {**i["dims"], "H": -1}}, "H must be a whole number from 1"),
    (lambda i: {**i, "data": 5}, "data: expected text"),
]


@pytest.mark.parametrize("mutate, message", RUN_JSON, ids=[m[:30] for _, m in RUN_JSON])
def test_a_damaged_run_json_is_a_located_error(run, capsys, mutate, message):
    info = json.loads((run / rundir.INFO).read_text())
    (run / rundir.INFO).write_text(json.dumps(mutate(info)))
    for argv in readers(run):
        code, out, err = cli(capsys, *argv)
        assert code == 1 and "run.json" in err and message in err, err


@pytest.mark.parametrize("text", ["", "{", "[" * 100_000, '{"rnndsl_run": 1}\x00', "\udcff"])
def test_run_json_that_is_not_json(run, capsys, text):
    (run / rundir.INFO).write_bytes(text.encode("utf-8", "surrogateescape"))
    code, out, err = cli(capsys, "eval", run)
    assert code == 1 and "run.json" in err


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6),
                    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=6), kids, max_size=3),
                    max_leaves=6)


@given(st.data())
@settings(max_examples=30)
def test_any_run_json_loads_or_is_a_data_error(trained, tmp_path_factory, data):
    """One field of run.json (or of its settings, dims, loader) deleted or set to any JSON value."""
    run = Path(shutil.copytree(trained, tmp_path_factory.mktemp("json") / "run"))
    info = json.loads((run / rundir.INFO).read_text())
    section = data.draw(st.sampled_from([None, "settings", "dims", "loader"]))
    where = info if section is None else info[section]
    key = data.draw(st.sampled_from(sorted(where) or ["x"]) | st.text(max_size=6))
    if key in where and data.draw(st.booleans()):
        del where[key]
    else:
        where[key] = data.draw(JSON)
    (run / rundir.INFO).write_text(json.dumps(info))
    try:
        train.load_run(run)
    except (DataError, SpecError):
        pass


# ---- tracebacks: loss.png titles, unusual paths, an unwritable --out ---------------------------

TITLES = ["$\\foo", "a$b", "$x^{$", "\\", "$$", "_^{", "$\\frac{", "\x1b[31mred", "a\nb", "%s{}", "\x00", "\udcff"]


@pytest.mark.parametrize("title", TITLES)
def test_any_spec_name_draws_a_plot(tmp_path, title):
    (tmp_path / rundir.METRICS).write_text('{"step": 1, "loss": 1.5}\n{"step": 2, "loss": 1.2, "val_loss": 1.3}\n')
    rundir.plot(tmp_path, title)
    assert (tmp_path / rundir.PLOT).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_mathtext_name_trains_and_plots(tmp_path, capsys):
    spec = tmp_path / "spec.yaml"
    spec.write_text(CHAR_RNN.read_text().replace("name: char_rnn", 'name: "$x^{$ a$b"'))
    code, out, err = cli(capsys, "train", spec, "--out", tmp_path / "run", "--quiet", "--set", "epochs=1")
    assert code == 0, err
    assert (tmp_path / "run" / rundir.PLOT).read_bytes()[:4] == b"\x89PNG"


def test_a_run_path_with_a_newline_and_an_escape(tmp_path, capsys):
    run = tmp_path / "new\nline\x1b[31m"
    assert cli(capsys, "train", CHAR_RNN, "--out", run, "--quiet", "--set", "epochs=1", "--set", "H=4")[0] == 0
    for argv in readers(run):
        code, out, err = cli(capsys, *argv)
        assert code == 0, err
    code, out, err = cli(capsys, "eval", tmp_path / "no\nsuch\x1b[2J")
    assert code == 1 and "no\\nsuch\\x1b[2J is not an rnndsl run directory" in err and "\x1b" not in err


def test_an_unwritable_out(tmp_path, capsys, monkeypatch):
    out = tmp_path / "ro"
    out.mkdir()
    real = os.open

    def refuse(path, flags, *args, **kwargs):
        if str(path).startswith(str(out)) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            raise PermissionError(13, "Permission denied", str(path))
        return real(path, flags, *args, **kwargs)
    monkeypatch.setattr(os, "open", refuse)
    code, out_text, err = cli(capsys, "train", CHAR_RNN, "--out", out, "--quiet")
    assert code == 1 and "Permission denied" in err and "check the folder's permissions" in err
    monkeypatch.undo()
    for target in ("/dev/null", "/proc/self/status/x", "/sys/rnndsl-test"):
        code, _, err = cli(capsys, "train", CHAR_RNN, "--out", target, "--quiet")
        assert code == 1 and err.startswith("error: ")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only folder")
def test_a_read_only_out(tmp_path, capsys):
    (tmp_path / "ro").mkdir(mode=0o555)
    code, _, err = cli(capsys, "train", CHAR_RNN, "--out", tmp_path / "ro", "--quiet")
    assert code == 1 and "Permission denied" in err


# ---- issue 10 item 5: float32 by default, recorded, kept ---------------------------------------

def info_of(run: Path) -> dict:
    return json.loads((run / rundir.INFO).read_text())


def test_a_new_run_trains_in_float32_and_records_it(run, capsys):
    assert info_of(run)["dtype"] == "float32"
    assert {p.dtype for p in params_of(run).values()} == {np.dtype(np.float32)}
    model, params, info = train.load_run(run)
    assert model.dtype == np.float32 and {p.dtype for p in params.values()} == {np.dtype(np.float32)}
    for argv in readers(run):
        code, out, err = cli(capsys, *argv)
        assert code == 0, err


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_resume_keeps_the_recorded_dtype(tmp_path, monkeypatch, capsys, dtype):
    argv = [CHAR_RNN, "--quiet", "--set", "H=4", "--set", "steps=6", "--dtype", dtype]
    assert cli(capsys, "train", *argv, "--out", tmp_path / "A")[0] == 0
    with monkeypatch.context() as m:
        interrupt_at(m, 3)
        assert cli(capsys, "train", *argv, "--out", tmp_path / "B")[0] == 130
    code, out, err = cli(capsys, "train", "--resume", tmp_path / "B", "--quiet")
    assert code == 0, err
    assert info_of(tmp_path / "B")["dtype"] == dtype
    assert {p.dtype for p in params_of(tmp_path / "B").values()} == {np.dtype(dtype)}
    assert_same_params(params_of(tmp_path / "A"), params_of(tmp_path / "B"))
    assert train.load_run(tmp_path / "B")[0].dtype == dtype


def test_resume_refuses_another_dtype(run, capsys):
    code, out, err = cli(capsys, "train", "--resume", run, "--dtype", "float64")
    assert code == 1 and "does not take --dtype" in err


def test_a_run_without_a_recorded_dtype_is_float64(run, capsys):
    """run.json of an rnndsl from before the field: it trained in float64; a checkpoint's
    parameters are cast to the run's dtype when loaded."""
    info = info_of(run)
    del info["dtype"]
    (run / rundir.INFO).write_text(json.dumps(info))
    model, params, info = train.load_run(run)
    assert model.dtype == np.float64 and info["dtype"] == "float64"
    assert {p.dtype for p in params.values()} == {np.dtype(np.float64)}
    for argv in readers(run):
        code, out, err = cli(capsys, *argv)
        assert code == 0, err
    assert {p.dtype for p in params_of(run).values()} == {np.dtype(np.float64)}     # resumed in float64
    assert "dtype" not in info_of(run)
