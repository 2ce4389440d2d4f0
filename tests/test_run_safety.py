"""Run folders as an attacker or a careless user meets them (issue 8, items 2, 3, 5-9, 11 and
the run tracebacks): an edited spec.yaml is refused before it is compiled, run names stay in
runs/, links and FIFOs are refused, a folder that is not a run is never written, --overwrite
replaces last, one process trains a run at a time, corrupt metrics keep their valid records,
non-finite parameters are never saved, run.json is checked field by field."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rnndsl import checkpoint, job, rundir, runfiles, runinfo, train
from rnndsl.cli import main
from rnndsl.errors import DataError, SpecError
from rnndsl.model import CompiledModel, Step

from conftest import ROOT

CHAR_RNN = ROOT / "specs/char_rnn.yaml"
SETS = {"H": 4, "epochs": 2}


def cli(capsys, *argv) -> tuple:
    """(exit code, stdout, stderr) of `rnndsl ARGV`; a traceback is always a failure."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "Traceback" not in out
    return code, out, err


def readers(run) -> list:
    """The commands that read a run: each must refuse a damaged one with exit 1."""
    return [["sample", run, "--prime", "h", "--length", "3"], ["eval", run], ["train", "--resume", run, "--quiet"]]


def snapshot(folder: Path) -> dict:
    """name -> bytes (or the link's target) of everything in `folder`."""
    return {p.name: os.readlink(p) if p.is_symlink() else p.read_bytes() if p.is_file() else "dir"
            for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """char_rnn on the embedded 'hello', 2 epochs, H=4: trained once, copied per test."""
    return train.train(str(CHAR_RNN), out=tmp_path_factory.mktemp("trained") / "run", sets=SETS, quiet=True)


@pytest.fixture
def run(trained, tmp_path) -> Path:
    return Path(shutil.copytree(trained, tmp_path / "run"))


@pytest.fixture
def no_compile(monkeypatch):
    """Fail the test if anything compiles (and so would run) a spec."""
    def refuse(*args, **kwargs):
        raise AssertionError("a spec was compiled")
    monkeypatch.setattr(train, "compile_spec", refuse)
    monkeypatch.setattr(job, "compile_spec", refuse)


# ---- item 2: any edit of a run's spec.yaml is refused, naming the key ----------------------------

EDITS = [
    ("name: char_rnn", 'name: "x\\"\\"\\"; import os; os.system(\\"touch PWNED\\")"', "`name` changed"),
    ("name: char_rnn", "name: 'C:\\Users\\me\\model'", "`name` changed"),
    ("doc: >", "doc: >-", "`doc` changed"),
    ("h[t] = tanh(", "h[t] = sigmoid(", "`equations` changed"),
    ("lr: 0.1", "lr: 0.2", "`train` changed"),
    ("max_len: 20", "max_len: 21", "`generate` changed"),
    ("outputs: [y]\n", "outputs: [y]\nextra: 1\n", "`extra` changed"),
    ("# the next character", "# edited", "`inputs` changed"),
    ("outputs: [y]\n", "outputs: [y]\n# a note\n", "a comment or the layout changed"),
    ("loss: mean_t", "loss: [unclosed", "no longer a YAML mapping"),
    ("# trained with dims V=4, H=4", "# trained with dims V=4, H=5", "a comment or the layout changed"),
]


@pytest.mark.parametrize("old, new, message", EDITS, ids=[e[2][:20] + str(i) for i, e in enumerate(EDITS)])
def test_an_edited_spec_is_refused_before_it_is_compiled(run, capsys, monkeypatch, no_compile, old, new, message):
    spec = run / rundir.SPEC
    assert old in spec.read_text()
    spec.write_text(spec.read_text().replace(old, new))
    monkeypatch.chdir(run)
    for argv in readers(run):
        code, out, err = cli(capsys, *argv)
        assert code == 1 and "spec.yaml was edited after training" in err and message in err, err
    assert not (run / "PWNED").exists()


@given(st.data())
@settings(max_examples=25)
def test_every_edit_of_the_spec_is_refused(trained, tmp_path_factory, data):
    """Any insertion, deletion or replacement anywhere in spec.yaml: a DataError, no compile."""
    run = Path(shutil.copytree(trained, tmp_path_factory.mktemp("edit") / "run"))
    text = (run / rundir.SPEC).read_text()
    at = data.draw(st.integers(0, len(text)))
    cut = data.draw(st.integers(0, 3))
    insert = data.draw(st.text(min_size=0 if cut else 1, max_size=4))
    edited = text[:at] + insert + text[at + cut:]
    if edited == text:
        return
    (run / rundir.SPEC).write_text(edited)
    compiled = []
    with pytest.MonkeyPatch.context() as m:
        m.setattr(train, "compile_spec", lambda *a, **k: compiled.append(a))
        with pytest.raises(DataError):
            train.load_run(run)
    assert not compiled


def test_the_checkpoint_records_the_whole_spec_text(run):
    meta = checkpoint.load(run / rundir.CHECKPOINT).meta
    assert meta["spec_source"] == (run / rundir.SPEC).read_text()
    assert meta["spec_source"].startswith("# trained with dims V=4, H=4\nname: char_rnn\n")


# ---- item 3: the default run folder stays in runs/ ---------------------------------------------

@given(st.text(max_size=300))
def test_safe_names_stay_in_their_folder(name):
    safe = runfiles.safe_name(name)
    assert 1 <= len(safe) <= 64 and safe[0] not in ".-"
    assert all(c.isascii() and (c.isalnum() or c in "._-") for c in safe)
    assert Path("/runs", safe).resolve().parent == Path("/runs")


@pytest.mark.parametrize("name", ["../../x", "/abs/path", ".hidden", "a/b/../../..", "..", "-rf", "", "x" * 300,
                                  "\x1b[31mred\n", "C:\\Users\\me"])
def test_a_hostile_name_picks_a_folder_inside_runs(tmp_path, monkeypatch, capsys, name):
    spec = tmp_path / "spec.yaml"
    spec.write_text(CHAR_RNN.read_text().replace("name: char_rnn", f"name: {json.dumps(name)}"))
    monkeypatch.chdir(tmp_path)
    code, out, err = cli(capsys, "train", spec, "--quiet", "--set", "epochs=1", "--set", "H=4")
    assert code == 0, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs", "spec.yaml"]
    (folder,) = (tmp_path / "runs").iterdir()
    assert (folder / rundir.CHECKPOINT).is_file() and len(folder.name) <= 64 + 16


# ---- item 5: no link is followed, no FIFO opened -----------------------------------------------

@pytest.mark.parametrize("name", rundir.FILES)
def test_a_link_in_a_run_is_never_followed(run, tmp_path, capsys, name):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (run / name).unlink()
    (run / name).symlink_to(victim)
    for argv in readers(run) + [["train", CHAR_RNN, "--out", run, "--overwrite", "--quiet"]]:
        code, out, err = cli(capsys, *argv)
        assert code == 0 or "is a symbolic link" in err or "is not an rnndsl run folder" in err, err
    assert victim.read_text() == "precious\n" and (run / name).is_symlink()
    code, out, err = cli(capsys, "train", "--resume", run, "--quiet")
    assert code == 1 and f"{name} is a symbolic link; rnndsl does not follow links" in err


@pytest.mark.parametrize("name", [rundir.INFO, rundir.SPEC, rundir.CHECKPOINT, rundir.METRICS])
def test_a_fifo_or_folder_in_a_run_is_refused_without_blocking(run, capsys, name):
    for kind, make in (("named pipe", os.mkfifo), ("folder", os.mkdir)):
        target = run / name
        target.rmdir() if target.is_dir() else target.unlink()
        make(target)
        code, out, err = cli(capsys, "train", "--resume", run, "--quiet")
        assert code == 1 and kind in err, err


@pytest.mark.parametrize("kind", ["link", "dangling", "fifo", "folder", "read-only"])
def test_files_are_written_only_over_regular_files(tmp_path, kind):
    target, other = tmp_path / "f", tmp_path / "other"
    other.write_text("theirs")
    {"link": lambda: target.symlink_to(other), "dangling": lambda: target.symlink_to(tmp_path / "none"),
     "fifo": lambda: os.mkfifo(target), "folder": lambda: target.mkdir(),
     "read-only": lambda: (target.write_text("ro"), target.chmod(0o444))}[kind]()
    with pytest.raises(DataError):
        runfiles.write_atomically(target, "x")
    if kind != "read-only":                   # a read-only file may be read (and root may append)
        for use in (lambda: runfiles.append_text(target, "x"), lambda: runfiles.read_bytes(target, 100)):
            with pytest.raises(DataError):
                use()
    assert other.read_text() == "theirs" and sorted(p.name for p in tmp_path.iterdir()) == ["f", "other"]


# ---- item 6: a folder that is not a run is never written; only own files are deleted -----------

def test_a_folder_that_is_not_a_run_is_left_alone(tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    for name, text in (("spec.yaml", "my spec"), ("run.json", '{"mine": 1}'), ("metrics.jsonl", "x"),
                       ("checkpoint.npz", "not ours"), ("loss.png", "not ours")):
        (mine / name).write_text(text)
    before = snapshot(mine)
    for extra in ([], ["--overwrite"]):
        code, out, err = cli(capsys, "train", CHAR_RNN, "--out", mine, "--quiet", *extra)
        assert code == 1 and "is not empty" in err and "is not an rnndsl run folder" in err
    assert snapshot(mine) == before                     # not even a lock file


def test_a_run_is_marked_and_an_empty_folder_is_used(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert cli(capsys, "train", CHAR_RNN, "--out", tmp_path / "empty", "--quiet", "--set", "epochs=1")[0] == 0
    info = json.loads((tmp_path / "empty" / rundir.INFO).read_text())
    assert info[runinfo.MARKER] == runinfo.FORMAT
    assert sorted(p.name for p in (tmp_path / "empty").iterdir()) == sorted([*rundir.FILES, runfiles.LOCK])


def test_resume_deletes_only_its_own_temporary_files(run, capsys):
    theirs = [".notes.tmp", ".checkpoint.npz.123.deadbeef.tmp", ".rnndsl-x.tmp", ".rnndsl-a.1.0123abcd.tmp.bak"]
    ours = [".rnndsl-checkpoint.npz.99.0123abcd.tmp", ".rnndsl-metrics.jsonl.7.deadbeef.tmp"]
    for name in theirs + ours:
        (run / name).write_text("x")
    staging = run / ".rnndsl-new.5.0123abcd"                # a killed --overwrite's staging folder
    staging.mkdir()
    (staging / rundir.CHECKPOINT).write_text("half")
    assert cli(capsys, "train", "--resume", run, "--quiet")[0] == 0
    names = {p.name for p in run.iterdir()}
    assert set(theirs) <= names and not set(ours) & names and staging.name not in names


# ---- item 7: --overwrite validates first and replaces last -------------------------------------

def nan_from_step(monkeypatch, k: int) -> None:
    step, calls = CompiledModel.step, [0]

    def nan_at(self, *args, **kw):
        result = step(self, *args, **kw)
        calls[0] += 1
        return Step(float("nan"), result.losses, result.grads, result.final) if calls[0] >= k else result
    monkeypatch.setattr(CompiledModel, "step", nan_at)


def test_an_overwrite_that_fails_leaves_the_old_run(run, tmp_path, capsys, monkeypatch):
    before = snapshot(run)
    bad = tmp_path / "bad.txt"
    bad.write_text("xyz")                                   # 3 symbols, 2 classes
    code, out, err = cli(capsys, "train", CHAR_RNN, "--data", bad, "--out", run, "--overwrite", "--quiet", "--set", "V=2")
    assert code == 1 and "classes" in err, err
    nan_from_step(monkeypatch, 1)
    with pytest.raises(train.TrainingStopped, match="the loss became nan at step 1"):
        train.train(str(CHAR_RNN), out=run, sets=SETS, overwrite=True, quiet=True)
    assert snapshot(run) == before


def test_an_overwrite_replaces_every_file_of_the_old_run(run, capsys):
    before = snapshot(run)
    code, out, err = cli(capsys, "train", CHAR_RNN, "--out", run, "--overwrite", "--quiet", "--set", "H=5",
                         "--set", "epochs=1")
    assert code == 0, err
    after = snapshot(run)
    assert sorted(after) == sorted(before)
    assert all(after[name] != before[name] for name in rundir.FILES)
    assert checkpoint.load(run / rundir.CHECKPOINT).params["W_hh"].shape == (5, 5)


# ---- item 8: one process trains a run at a time ------------------------------------------------

HOLD_LOCK = """
import sys
from rnndsl import runfiles
with runfiles.lock(sys.argv[1]):
    print("locked", flush=True)
    sys.stdin.read()
"""


def test_a_second_process_cannot_train_a_locked_run(run, capsys):
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(run)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert holder.stdout.readline() == "locked\n"
        for argv in (["train", "--resume", run, "--quiet"], ["train", CHAR_RNN, "--out", run, "--overwrite"]):
            code, out, err = cli(capsys, *argv)
            assert code == 1 and f"{run} is in use by another rnndsl process (pid {holder.pid})" in err
        assert cli(capsys, "sample", run, "--prime", "h")[0] == 0          # readers take no lock
    finally:
        holder.communicate("")
    assert cli(capsys, "train", "--resume", run, "--quiet")[0] == 0


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
    (lambda i: {**i, "settings": {**i["settings"], "batch": 0}}, "batch must be above 0, got 0"),
    (lambda i: {**i, "settings": {**i["settings"], "optimizer": "rmsprop!"}}, "optimizer must be one of"),
    (lambda i: {**i, "settings": {k: v for k, v in i["settings"].items() if k != "lr"}}, "settings: no lr"),
    (lambda i: {**i, "settings": []}, "settings: expected a mapping"),
    (lambda i: {k: v for k, v in i.items() if k != "rnndsl_run"}, "not marked as an rnndsl run"),
    (lambda i: {**i, "rnndsl_run": 2}, "run format 2; this rnndsl reads format 1"),
    (lambda i: {**i, "vocab": 5}, "vocab: expected the vocabulary as JSON text"),
    (lambda i: {**i, "vocab": json.dumps({"symbols": [1, 2, 3, 4]})}, "every symbol must be text"),
    (lambda i: {**i, "loader": {"level": "byte"}}, "level must be one of char, word"),
    (lambda i: {**i, "backend": "cupy"}, "backend: expected one of numpy"),
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
