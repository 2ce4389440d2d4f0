"""Run folders as an attacker or a careless user meets them (issue 8, items 2, 3, 5-8): an
edited spec.yaml is refused before it is compiled, run names stay in runs/, links and FIFOs are
refused, a folder that is not a run is never written, --overwrite replaces last, one process
trains a run at a time. tests/test_run_records.py has the rest (metrics, parameters, run.json)."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rnndsl.training import checkpoint, job, rundir, runfiles, runinfo, train
from rnndsl.tools.cli import main
from rnndsl.core.errors import DataError
from rnndsl.runtime.model import CompiledModel, Step

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
from rnndsl.training import runfiles
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
