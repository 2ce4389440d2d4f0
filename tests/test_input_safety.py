"""Files the CLI reads and writes for the user (issue 8, items 4 and 13): every kind of path
(regular file, folder, FIFO, device, symbolic link, read-only file, missing) given as a spec,
as --data, as `compile -o`; read only regular files with a size bound, never block, write only
regular files or new paths, atomically. Each refusal is a one-paragraph error, never a traceback."""
import os
import signal
import stat
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from rnndsl.training import data
from rnndsl.core import files, limits
from rnndsl.tools.cli import main
from rnndsl.core.errors import DataError, SpecError

from conftest import ROOT

SPEC = ROOT / "specs" / "char_rnn.yaml"


@pytest.fixture(autouse=True)
def deadline():
    """A read that blocks (a FIFO without a writer) fails the test after 20 s, not never."""
    def stop(*_):
        raise TimeoutError("blocked: rnndsl waited on a file")
    old = signal.signal(signal.SIGALRM, stop)
    signal.alarm(20)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


def device(folder: Path) -> Path:
    """A character device like /dev/null (a copy made with mknod, so nothing real is at stake
    if a write got through), or /dev/null itself where mknod is not allowed (reading only)."""
    path = folder / "null"
    try:
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 3))
        return path
    except (PermissionError, OSError):
        return Path("/dev/null")


def make(kind: str, folder: Path, text: str = "x") -> Path:
    """A path of the given kind in `folder`."""
    path = folder / f"the_{kind}"
    if kind in ("regular", "read-only", "link to regular"):
        target = folder / "target" if kind == "link to regular" else path
        target.write_text(text)
        if kind == "read-only":
            path.chmod(0o444)
        if kind == "link to regular":
            path.symlink_to(target)
    elif kind == "folder":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "device":
        return device(folder)
    elif kind == "name too long":
        return folder / ("x" * 300)
    elif kind in ("link to fifo", "link to folder", "dangling link"):
        target = folder / "target"
        {"link to fifo": os.mkfifo, "link to folder": os.mkdir, "dangling link": lambda p: None}[kind](target)
        path.symlink_to(target)
    return path


NOT_READABLE = ("folder", "fifo", "device", "link to fifo", "link to folder", "dangling link", "missing",
                "name too long")
PROBLEM = {"missing": "no such", "dangling link": "no such", "name too long": "cannot be looked at"}


def cli(capsys, *argv) -> tuple:
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return rc, out, err


# ---- reading: specs and data ----------------------------------------------------------------

@pytest.mark.parametrize("kind", NOT_READABLE)
@pytest.mark.parametrize("command", ["check", "graph", "compile", "gradcheck", "bench"])
def test_a_spec_is_read_only_from_a_regular_file(tmp_path, capsys, kind, command):
    rc, _, err = cli(capsys, command, make(kind, tmp_path))
    assert rc == 1 and "error:" in err
    assert PROBLEM.get(kind, "not a regular file") in err


@pytest.mark.parametrize("kind", NOT_READABLE)
def test_training_data_is_read_only_from_a_regular_file(tmp_path, capsys, kind):
    rc, _, err = cli(capsys, "train", SPEC, "--data", make(kind, tmp_path), "--out", tmp_path / "run", "--quiet")
    assert rc == 1 and "error:" in err
    folder = kind in ("folder", "link to folder")
    assert PROBLEM.get(kind, "without a manifest.tsv" if folder else "not a regular file") in err
    assert not (tmp_path / "run" / "checkpoint.npz").exists()


@pytest.mark.parametrize("kind", NOT_READABLE)
@pytest.mark.parametrize("suffix", [".npz", ".tsv", ".txt"])
def test_every_data_loader_refuses_what_is_not_a_regular_file(tmp_path, kind, suffix):
    path = make(kind, tmp_path)
    named = path.with_name(path.name + suffix)
    if kind != "name too long" and (path.exists() or path.is_symlink()):
        path.rename(named)
    with pytest.raises(DataError):
        data.load(named)


def test_a_name_with_a_nul_byte_is_an_error_not_a_traceback(tmp_path):
    with pytest.raises(SpecError, match="embedded null byte"):
        data.load(tmp_path / "a\x00b.txt")
    with pytest.raises(SpecError, match="embedded null byte"):
        import rnndsl
        rnndsl.load_spec(tmp_path / "a\x00b.yaml")


def test_a_manifest_entry_that_is_a_device_or_fifo_is_refused(tmp_path):
    fifo = make("fifo", tmp_path)
    for target in (fifo, device(tmp_path)):
        (tmp_path / "manifest.tsv").write_text(f"file\ttranscript\n{target}\thi\n")
        with pytest.raises(DataError, match="manifest.tsv:2: .*not a regular file"):
            data.load(tmp_path)


def test_a_spec_larger_than_the_limit_is_refused_naming_both_sizes(tmp_path, capsys):
    big = tmp_path / "big.yaml"
    big.write_bytes(SPEC.read_bytes() + b"#" * limits.MAX_SPEC_BYTES)
    rc, _, err = cli(capsys, "check", big)
    assert rc == 1 and f"the limit for a spec is {limits.size(limits.MAX_SPEC_BYTES)}" in err
    assert f"{big.stat().st_size:,} bytes" in err


def test_data_files_have_size_limits(tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("hello world " * 100)
    with pytest.raises(DataError, match=r"t.txt: is 1.2 KiB \(1,200 bytes\); the limit for a text file is 100 bytes"):
        data._read_text(text, 100)


def test_read_regular_stops_at_the_limit_even_when_the_size_is_not_known():
    """/proc files say they are empty; the bound holds while reading."""
    status = Path("/proc/self/status")
    if not status.exists():
        pytest.skip("no /proc")
    with pytest.raises(DataError, match="larger than that"):
        files.read_regular(status, 10, "a test file", lambda p, h: DataError(f"status: {p}", h))


# ---- writing: compile -o ----------------------------------------------------------------------

REFUSED = {"folder": "is a folder", "fifo": "is a named pipe", "device": "is a character device",
           "read-only": "is read-only", "link to regular": "is a symbolic link", "link to fifo": "is a symbolic link",
           "link to folder": "is a symbolic link", "dangling link": "is a symbolic link",
           "name too long": "cannot be looked at"}


@pytest.mark.parametrize("kind", sorted(REFUSED))
def test_compile_o_refuses_anything_but_a_regular_writable_file(tmp_path, capsys, kind):
    path = make(kind, tmp_path, "the user's own file\n")
    if kind == "device" and path == Path("/dev/null"):
        pytest.skip("mknod is not allowed here; /dev/null itself is never a write target in a test")
    before = os.lstat(path) if kind != "name too long" else None
    rc, _, err = cli(capsys, "compile", SPEC, "-o", path)
    assert rc == 1 and f"-o {path}: {REFUSED[kind]}" in err
    after = os.lstat(path) if before else None
    assert before is None or (after.st_ino, after.st_mode, after.st_size) == (before.st_ino, before.st_mode,
                                                                               before.st_size)
    if kind in ("read-only", "link to regular"):
        assert path.read_text() == "the user's own file\n"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_compile_o_writes_a_new_file_or_replaces_a_regular_one_keeping_its_mode(tmp_path, capsys):
    new = tmp_path / "model.py"
    assert cli(capsys, "compile", SPEC, "-o", new)[0] == 0
    assert "def forward(" in new.read_text()
    new.write_text("old")
    new.chmod(0o640)
    assert cli(capsys, "compile", SPEC, "-o", new)[0] == 0
    assert "def forward(" in new.read_text() and stat.S_IMODE(new.stat().st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.py"]


def test_compile_o_into_a_missing_folder_says_so(tmp_path, capsys):
    rc, _, err = cli(capsys, "compile", SPEC, "-o", tmp_path / "no" / "m.py")
    assert rc == 1 and "the folder" in err and "does not exist" in err


def test_a_failed_write_leaves_no_temporary_file_and_the_old_content(tmp_path, monkeypatch):
    target = tmp_path / "m.py"
    target.write_text("old")

    def full(*_):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(SpecError, match="cannot be written .No space left on device."):
        files.write_file(target, "new", lambda p, h: SpecError.at(None, f"-o m.py: {p}", h))
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["m.py"]


# ---- named arrays and manifests (issue 8, item 12) --------------------------------------------

def test_a_manifest_naming_a_column_twice_is_an_error(tmp_path):
    (tmp_path / "manifest.tsv").write_text("file\ttranscript\ttranscript\na.wav\thi\tho\n")
    with pytest.raises(DataError, match="names the column 'transcript' 2 times"):
        data.load(tmp_path)


def test_an_npz_is_checked_from_its_headers_before_its_data_is_read(tmp_path):
    import io
    import zipfile
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": (10**12, 3)})
    with zipfile.ZipFile(tmp_path / "claim.npz", "w") as zf:
        zf.writestr("x.npy", header.getvalue() + b"\0" * 12)
    with pytest.raises(DataError, match="its arrays take 10.9 TiB once read; the limit is"):
        data.load(tmp_path / "claim.npz")
    np.save(tmp_path / "one.npy", np.zeros(3))
    os.rename(tmp_path / "one.npy", tmp_path / "one.npz")
    with pytest.raises(DataError, match="holds one .npy array, not an .npz archive"):
        data.load(tmp_path / "one.npz")


SEQ = """
name: seqcls
dims: {F: 3, H: 4, K: 2}
inputs:
  x: {float: [F], axis: t}
  label: {index: K}
params:
  W: {shape: [H, F]}
  U: {shape: [H, H]}
  V: {shape: [K, H]}
equations: |
  h[t] = tanh(W @ x[t] + U @ h[t-1])
  y = V @ h[end]
loss: cross_entropy(y, label)
"""


@pytest.fixture(scope="module")
def seq_model():
    import rnndsl
    return rnndsl.compile(SEQ)


DTYPES = ("float32", "float64", "int64", "uint8", "int8", "bool", "complex64", "<U2", "S1", "datetime64[s]")


@st.composite
def named_arrays(draw) -> dict:
    """Arrays under the names a named-array .npz may use: each either the shape and dtype its
    input takes or a random dtype and shape (first dimension mostly the shared N), values
    small whole numbers, so that lengths and class indices are sometimes right, sometimes not."""
    n, steps = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    good = {"x": ((n, steps, 3), "float32"), "label": ((n,), "int64"), "lengths": ((n,), "int64")}
    out = {}
    for name in draw(st.sets(st.sampled_from(["x", "label", "lengths", "lengths_t", "lengths_s", "extra"]))
                     | st.just({"x", "label"})):
        shape, dtype = good.get(name, ((n,), "int64"))
        if name not in good or draw(st.integers(0, 3)) == 0:
            rest = draw(st.lists(st.integers(0, 4), max_size=3))
            shape = tuple(([n] if draw(st.booleans()) or not rest else []) + rest)
            dtype = draw(st.sampled_from(DTYPES))
        values = np.arange(int(np.prod(shape)), dtype=np.int64).reshape(shape) % (steps + 2) - draw(st.integers(0, 1))
        out[name] = values.astype(dtype)
    return out


@settings(max_examples=40)
@given(arrays=named_arrays())
def test_a_named_array_npz_of_any_shapes_and_dtypes_loads_and_trains_or_says_why(arrays, seq_model):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "d.npz"
        np.savez(path, **arrays)
        try:
            bound = data.bind(seq_model.spec, data.load(path))
        except SpecError as e:
            assert e.message.startswith(str(path)) or "seqcls" in e.message
            event("refused")
            return
    event("loaded")
    for batch in data.batches(bound, 2):
        try:
            seq_model.loss_and_grad(seq_model.init_params(0), batch)
        except DataError as e:           # a class index outside [0, K) is found at the batch
            assert "class index" in e.message
    x, lengths = arrays["x"], arrays.get("lengths", arrays.get("lengths_t"))
    assert x.dtype.kind in "fiu" and x.ndim == 3 and x.shape[2] == 3
    assert lengths is None or (lengths.dtype.kind in "iu" and (lengths >= 1).all() and (lengths <= x.shape[1]).all())


def _wav_bytes() -> bytes:
    import io
    import wave
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(np.zeros(100, "<i2").tobytes())
    return buf.getvalue()


def _npz_bytes(save) -> bytes:
    import io
    buf = io.BytesIO()
    save(buf, x=np.zeros((3, 4, 3), np.float32), label=np.array([0, 1, 1]))
    return buf.getvalue()


GOOD_FILES = {"wav": _wav_bytes(), "npz": _npz_bytes(np.savez), "compressed.npz": _npz_bytes(np.savez_compressed)}


@given(kind=st.sampled_from(sorted(GOOD_FILES)), edits=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)),
                                                                 min_size=1, max_size=6),
       cut=st.none() | st.floats(0, 1))
def test_a_damaged_wav_or_npz_is_a_data_error(kind, edits, cut):
    """Random byte edits and truncations of a good file: loaded, or refused with a DataError."""
    damaged = bytearray(GOOD_FILES[kind])
    for where, byte in edits:
        damaged[min(int(where * len(damaged)), len(damaged) - 1)] = byte
    damaged = damaged[:int(cut * len(damaged))] if cut is not None else damaged
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"f.{kind}"
        path.write_bytes(bytes(damaged))
        try:
            data.load_wav(path) if kind == "wav" else data.load(path)
        except DataError:
            pass
