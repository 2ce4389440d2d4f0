"""Checkpoints from someone else (issue 8, items 11 and 13, the checkpoint tracebacks): the zip
directory and the .npy headers are read before any data, so a stray entry of 3 GiB or a header
claiming 8 TiB costs nothing; parameters must be finite real floats; metadata of the wrong type,
and any damage at all, is a DataError naming the file."""
import io
import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import rnndsl
from hypothesis import given, settings
from hypothesis import strategies as st

from rnndsl.training import checkpoint, rundir, train
from rnndsl.core import safenpz
from rnndsl.tools.cli import main
from rnndsl.core.errors import DataError

from conftest import ROOT

CHAR_RNN = ROOT / "specs/char_rnn.yaml"


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    return train.train(str(CHAR_RNN), out=tmp_path_factory.mktemp("ckpt") / "run", sets={"H": 4, "epochs": 2},
                       quiet=True)


@pytest.fixture
def run(trained, tmp_path) -> Path:
    return Path(shutil.copytree(trained, tmp_path / "run"))


def entries(path) -> dict:
    """Every entry of a checkpoint, as the test reads it (not as rnndsl does)."""
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def header(arrays: dict) -> dict:
    return json.loads(arrays["meta"].tobytes())


def rewrite(path, meta=None, **arrays) -> None:
    """The checkpoint at `path` with its metadata replaced by `meta(old)` and entries added or
    replaced (None deletes one)."""
    old = entries(path)
    if meta is not None:
        h = header(old)
        h["meta"] = meta(h["meta"])
        old["meta"] = np.frombuffer(json.dumps(h).encode(), np.uint8)
    old.update(arrays)
    np.savez(path, **{k: v for k, v in old.items() if v is not None})


def spec_of(run):
    return rnndsl.loads_spec((run / rundir.SPEC).read_text(), "spec.yaml", dims={"V": 4, "H": 4})


# ---- metadata of the wrong type ----------------------------------------------------------------

BAD_META = [("step", "abc"), ("step", -1), ("step", 1.5), ("step", True), ("step", None), ("step", 2 ** 70),
            ("epoch", 1.5), ("epoch", "1"), ("batch", [1]), ("best", "low"), ("settings", []),
            ("spec_source", 5), ("spec_sha256", None), ("spec_hash", {"a": 1})]


@pytest.mark.parametrize("key, value", BAD_META, ids=[f"{k}={v!r}"[:20] for k, v in BAD_META])
def test_metadata_of_the_wrong_type_is_a_located_error(run, capsys, key, value):
    rewrite(run / rundir.CHECKPOINT, meta=lambda m: {**m, key: value})
    for argv in (["sample", run, "--prime", "h"], ["eval", run], ["train", "--resume", run, "--quiet"]):
        assert main([str(a) for a in argv]) == 1
        err = capsys.readouterr().err
        assert f"checkpoint.npz: checkpoint metadata {key} must be" in err and "Traceback" not in err


@pytest.mark.parametrize("key", ["step", "epoch", "batch"])
def test_resume_needs_the_progress_metadata(run, capsys, key):
    rewrite(run / rundir.CHECKPOINT, meta=lambda m: {k: v for k, v in m.items() if k != key})
    assert main(["train", "--resume", str(run), "--quiet"]) == 1
    assert f"checkpoint metadata lacks {key}" in capsys.readouterr().err


def test_a_checkpoint_of_format_1_was_written_by_an_older_rnndsl(run, capsys):
    arrays = entries(run / rundir.CHECKPOINT)
    h = header(arrays)
    h["version"] = 1
    arrays["meta"] = np.frombuffer(json.dumps(h).encode(), np.uint8)
    np.savez(run / rundir.CHECKPOINT, **arrays)
    assert main(["sample", str(run)]) == 1
    assert "was written by an older rnndsl (checkpoint format 1)" in capsys.readouterr().err


@given(st.data())
@settings(max_examples=30)
def test_any_metadata_loads_or_is_a_data_error(trained, tmp_path_factory, data):
    """One metadata value set to any JSON value, or deleted: load and restore raise only DataError."""
    run = Path(shutil.copytree(trained, tmp_path_factory.mktemp("meta") / "run"))
    value = data.draw(st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
                                   lambda kids: st.lists(kids, max_size=3), max_leaves=4))
    key = data.draw(st.sampled_from(["step", "epoch", "batch", "best", "settings", "spec_name", "spec_text",
                                     "spec_source", "spec_sha256", "spec_hash", "other"]))
    delete = data.draw(st.booleans())
    rewrite(run / rundir.CHECKPOINT, meta=lambda m: {k: v for k, v in m.items() if k != key} if delete
            else {**m, key: value})
    try:
        train.resume(run, quiet=True)
    except DataError:
        pass


# ---- parameters and state rnndsl never writes --------------------------------------------------

@pytest.mark.parametrize("value, message", [
    (np.full((4, 4), np.inf), "W_hh holds 16 non-finite values (inf)"),
    (np.array([[np.nan] * 4] * 4), "W_hh holds 16 non-finite values (nan)"),
    (np.ones((4, 4), np.complex128), "W_hh holds complex numbers (complex128)"),
    (np.full((4, 4), "1.0"), "W_hh holds text (<U3)"),
    (np.ones((4, 4), np.int64), "W_hh holds integers (int64)"),
    (np.ones((4, 4), bool), "W_hh holds booleans (bool)"),
])
def test_parameters_that_are_not_finite_reals_are_refused(run, capsys, value, message):
    rewrite(run / rundir.CHECKPOINT, **{"param/W_hh": value})
    for argv in (["sample", run, "--prime", "h"], ["train", "--resume", run, "--quiet"]):
        assert main([str(a) for a in argv]) == 1
        err = capsys.readouterr().err
        assert "holds parameters rnndsl never saves" in err and message in err, err


@pytest.mark.parametrize("key, value, message", [
    ("opt/sum_sq/W_hh", np.ones((4, 4), np.complex64), "optimizer state sum_sq/W_hh holds complex numbers"),
    ("opt/step", np.array("3"), "optimizer state step holds text"),
    ("opt/sum_sq/W_hh", np.ones((5, 4)), "optimizer state opt/sum_sq/W_hh has shape [5, 4], its parameter [4, 4]"),
    ("opt/carry/h", np.ones((7, 4)), "the carried state h (float64, shape [7, 4]) does not fit the run"),
    ("opt/carry/nope", np.ones((1, 4)), "the carried state nope"),
    ("opt/sum_sq/W_hh", None, "missing sum_sq/W_hh"),
])
def test_optimizer_state_that_does_not_fit_is_refused(run, capsys, key, value, message):
    rewrite(run / rundir.CHECKPOINT, **{key: value})
    assert main(["train", "--resume", str(run), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err, err


def test_save_refuses_parameters_that_are_not_finite(tmp_path):
    for bad in (np.array([1.0, np.inf]), np.array([np.nan]), np.array([1 + 2j]), np.array(["x"])):
        with pytest.raises(DataError, match="not saving .*c.npz: W holds"):
            checkpoint.save(tmp_path / "c.npz", {"W": bad}, {}, {})
    assert list(tmp_path.iterdir()) == []


# ---- headers before data -----------------------------------------------------------------------

def rezip(path, change) -> None:
    """Rewrite the zip at `path`, letting `change(zf)` add entries or alter the directory
    (ZipInfo sizes) before it is written."""
    old = entries(path)
    with zipfile.ZipFile(path, "w") as zf:
        for key, a in old.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, a)
            zf.writestr(key + ".npy", buf.getvalue())
        change(zf)


@pytest.fixture
def opened(monkeypatch):
    """The names of the entries whose bytes were read (zip entries opened)."""
    names, real = [], zipfile.ZipFile.open

    def spy(self, name, *args, **kwargs):
        names.append(getattr(name, "filename", name))
        return real(self, name, *args, **kwargs)
    monkeypatch.setattr(zipfile.ZipFile, "open", spy)
    return names


def test_a_stray_entry_claiming_3_gib_is_refused_unread(run, opened):
    def stray(zf):
        zf.writestr(zipfile.ZipInfo("junk.npy"), b"\0" * 1000, compress_type=zipfile.ZIP_DEFLATED)
        zf.getinfo("junk.npy").file_size = 3 << 30
    rezip(run / rundir.CHECKPOINT, stray)
    opened.clear()
    with pytest.raises(DataError, match="is not an rnndsl checkpoint: unexpected entries junk"):
        checkpoint.load(run / rundir.CHECKPOINT)
    assert opened == []


def test_an_entry_claiming_8_tib_is_refused_unread(run, opened):
    rezip(run / rundir.CHECKPOINT, lambda zf: setattr(zf.getinfo("param/W_hh.npy"), "file_size", 8 << 40))
    opened.clear()
    with pytest.raises(DataError, match=r"truncated or corrupt \(entry param/W_hh declares 8,796,093,022,208 bytes"):
        train.load_run(run)
    assert "param/W_hh.npy" not in opened


def test_a_header_claiming_a_huge_array_is_refused_before_allocating(run):
    def huge(zf):
        buf = io.BytesIO()
        np.lib.format.write_array_header_1_0(buf, {"descr": "<f8", "fortran_order": False, "shape": (1 << 40,)})
        zf.writestr("opt/huge.npy", buf.getvalue() + b"\0" * 64)
    rezip(run / rundir.CHECKPOINT, huge)          # 8 TiB declared: a MemoryError if it were allocated
    with pytest.raises(DataError, match=r"entry opt/huge declares \(1099511627776,\) of float64"):
        checkpoint.load(run / rundir.CHECKPOINT)


def test_parameter_shapes_are_checked_before_their_data_is_read(run, monkeypatch):
    rewrite(run / rundir.CHECKPOINT, **{"param/W_hh": np.zeros((300, 300))})
    read, seen = safenpz.Archive.read, []

    def spy(self, name, limit=None):
        seen.append(name)
        return read(self, name, limit)
    monkeypatch.setattr(safenpz.Archive, "read", spy)
    with pytest.raises(DataError, match=r"another spec: W_hh: \[300, 300\] in the checkpoint, \[H=4, H=4\]"):
        train.load_run(run)
    assert seen == ["meta"]


@pytest.mark.parametrize("how", ["compressed", "npy", "pickle", "structured", "duplicate"])
def test_archives_rnndsl_never_writes(run, how):
    path = run / rundir.CHECKPOINT
    arrays = entries(path)
    if how == "compressed":
        np.savez_compressed(path, **arrays)
    elif how == "npy":
        np.save(path.with_suffix(".npy"), arrays["param/W_hh"])
        path.with_suffix(".npy").replace(path)
    elif how == "pickle":
        np.savez(path, **arrays, **{"param/x": np.array([object()], dtype=object)})
    elif how == "structured":
        np.savez(path, **arrays, **{"opt/x": np.zeros(2, dtype=[("a", "<f8")])})
    else:
        with pytest.warns(UserWarning, match="Duplicate name"):
            rezip(path, lambda zf: zf.writestr("meta.npy", b"again"))
    message = {"compressed": "entry .* is compressed", "npy": "holds a single array",
               "pickle": "pickled Python objects", "structured": "opt/x holds", "duplicate": "appears twice"}[how]
    with pytest.raises(DataError, match=message):
        checkpoint.load(path)


@given(st.data())
@settings(max_examples=40)
def test_any_damage_to_the_file_is_a_data_error(trained, data):
    """Bytes flipped, cut or inserted anywhere: the checkpoint loads (the damage missed
    everything checked) or the error is a DataError."""
    raw = bytearray((trained / rundir.CHECKPOINT).read_bytes())
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(raw) - 1))
        how = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        if how == "flip":
            raw[at] ^= data.draw(st.integers(1, 255))
        elif how == "cut":
            del raw[at:at + data.draw(st.integers(1, 64))]
        else:
            raw[at:at] = data.draw(st.binary(min_size=1, max_size=16))
    folder = Path(str(trained) + "-damaged")
    folder.mkdir(exist_ok=True)
    (folder / "c.npz").write_bytes(bytes(raw))
    try:
        checkpoint.load(folder / "c.npz", spec_of(trained))
    except DataError:
        pass
