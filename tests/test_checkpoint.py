"""Checkpoints: exact round trips, atomic writes, clear refusals, never pickle."""
import json
import os

import numpy as np
import pytest

import rnndsl
from rnndsl.training import checkpoint
from rnndsl.training.checkpoint import load, save, spec_hash, spec_meta, spec_text
from rnndsl.core.errors import DataError
from rnndsl.training.optim import Schedule, make_optimizer, settings_from, training_state

from conftest import ROOT

ELMAN = (ROOT / "specs" / "elman.yaml").read_text()


@pytest.fixture(scope="module")
def model():
    return rnndsl.loads_spec(ELMAN, "specs/elman.yaml")


def variant(old: str, new: str, path="specs/elman.yaml"):
    assert old in ELMAN
    return rnndsl.loads_spec(ELMAN.replace(old, new), path)


def params_of(model, dtype=np.float32) -> dict:
    rng = np.random.default_rng(0)
    return {p.name: rng.normal(size=p.type.dims).astype(dtype) for p in model.params}


def write(tmp_path, model, name="ckpt.npz", **meta):
    params = params_of(model)
    s = settings_from(model.train)
    opt, sched = make_optimizer(s, params), Schedule(s)
    opt.step(params, {k: v * 0.5 for k, v in params.items()}, 0.1)
    path = save(tmp_path / name, params, training_state(opt, sched),
                {**spec_meta(model), "step": 1, "settings": s.as_dict(), **meta})
    return path, params, training_state(opt, sched)


# ---- round trip --------------------------------------------------------------------------------

def test_round_trip_is_exact(tmp_path, model):
    rng_state = np.random.default_rng(7).bit_generator.state            # 128-bit ints
    path, params, state = write(tmp_path, model, rng=rng_state, history=[{"epoch": 0, "val": 1.5}])
    got = load(path, model)
    for saved, loaded in ((params, got.params), (state, got.opt_state)):
        assert saved.keys() == loaded.keys()
        for k in saved:
            assert loaded[k].dtype == saved[k].dtype and np.array_equal(loaded[k], saved[k]), k
    assert got.meta["rng"] == rng_state and got.meta["step"] == 1 and got.meta["history"][0]["val"] == 1.5
    assert got.meta["settings"]["optimizer"] == "adagrad" and got.spec_hash == spec_hash(model)
    assert got.opt_state["step"].dtype == np.int64 and got.opt_state["schedule/best"] == np.inf
    assert os.listdir(tmp_path) == ["ckpt.npz"]


def test_float64_parameters_keep_their_dtype(tmp_path, model):
    params = params_of(model, np.float64)
    got = load(save(tmp_path / "c.npz", params, {}, spec_meta(model)))
    assert all(got.params[k].dtype == np.float64 and np.array_equal(got.params[k], params[k]) for k in params)


def test_overwrite_replaces_the_old_checkpoint(tmp_path, model):
    path, _, _ = write(tmp_path, model, step=1)
    write(tmp_path, model, step=2)
    assert load(path).meta["step"] == 2 and os.listdir(tmp_path) == ["ckpt.npz"]


# ---- atomic writes -----------------------------------------------------------------------------

def failing_savez(real):
    """np.savez that writes half an archive, then dies as a full disk or a kill would."""
    def savez(f, **arrays):
        real(f, **arrays)
        f.truncate(f.tell() // 2)
        raise OSError("No space left on device")
    return savez


def test_a_failed_write_leaves_the_old_checkpoint_intact(tmp_path, model, monkeypatch):
    path, params, _ = write(tmp_path, model)
    before = path.read_bytes()
    monkeypatch.setattr(checkpoint.np, "savez", failing_savez(np.savez))
    with pytest.raises(DataError, match=r"cannot write .*ckpt.npz \(No space left on device\)"):
        save(path, {k: v + 1 for k, v in params.items()}, {}, spec_meta(model))
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["ckpt.npz"]
    assert np.array_equal(load(path, model).params["W_hh"], params["W_hh"])


def test_a_failed_rename_leaves_no_temporary_file(tmp_path, model, monkeypatch):
    path, _, _ = write(tmp_path, model)
    before = path.read_bytes()

    def refuse(src, dst):
        raise PermissionError("rename refused")
    monkeypatch.setattr(checkpoint.os, "replace", refuse)
    with pytest.raises(DataError, match="rename refused"):
        save(path, params_of(model), {}, spec_meta(model))
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["ckpt.npz"]


def test_the_leftover_of_a_killed_writer_is_ignored(tmp_path, model):
    path, _, _ = write(tmp_path, model, step=3)
    (tmp_path / ".ckpt.npz.12345.deadbeef.tmp").write_bytes(path.read_bytes()[:100])
    assert load(path, model).meta["step"] == 3


def test_a_first_write_that_fails_leaves_nothing(tmp_path, model, monkeypatch):
    monkeypatch.setattr(checkpoint.np, "savez", failing_savez(np.savez))
    with pytest.raises(DataError, match="No space left"):
        save(tmp_path / "run" / "ckpt.npz", params_of(model), {}, spec_meta(model))
    assert os.listdir(tmp_path / "run") == []


# ---- refusing files ----------------------------------------------------------------------------

def test_missing_file_and_folder(tmp_path):
    with pytest.raises(DataError, match="no checkpoint at .*nope.npz"):
        load(tmp_path / "nope.npz")
    with pytest.raises(DataError, match=r"\(it is a folder\)"):
        load(tmp_path)


@pytest.mark.parametrize("cut", [0, 10, 0.5, -10])
def test_truncated_file(tmp_path, model, cut):
    path, _, _ = write(tmp_path, model)
    data = path.read_bytes()
    path.write_bytes(data[:int(cut * len(data)) if isinstance(cut, float) else cut])
    with pytest.raises(DataError, match="is truncated or corrupt") as err:
        load(path)
    assert "atomically" in err.value.first.hint


def test_flipped_byte_is_caught_by_the_crc(tmp_path, model):
    path, _, _ = write(tmp_path, model)
    data = bytearray(path.read_bytes())
    data[len(data) // 3] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match="truncated or corrupt"):
        load(path)


def test_files_that_are_not_checkpoints(tmp_path):
    (tmp_path / "text.npz").write_bytes(b"hello, world\n" * 10)
    np.save(tmp_path / "single.npy", np.zeros(3))
    np.savez(tmp_path / "plain.npz", a=np.zeros(3))
    np.savez(tmp_path / "foreign.npz", meta=np.frombuffer(b'{"format": "other"}', np.uint8))
    np.savez(tmp_path / "stray.npz", meta=_header(), extra=np.zeros(1))
    np.savez(tmp_path / "future.npz", meta=_header(version=99))
    expect = {"text.npz": "not an .npz archive", "single.npy": "holds a single array",
              "plain.npz": "has no rnndsl metadata", "foreign.npz": "metadata is not an rnndsl",
              "stray.npz": "unexpected entries extra", "future.npz": "format version 99"}
    for name, message in expect.items():
        with pytest.raises(DataError, match=message):
            load(tmp_path / name)


def _header(version=checkpoint.VERSION) -> np.ndarray:
    text = json.dumps({"format": "rnndsl-checkpoint", "version": version, "meta": {}})
    return np.frombuffer(text.encode(), np.uint8)


# ---- never pickle ------------------------------------------------------------------------------

def test_an_object_array_is_refused_without_unpickling(tmp_path, monkeypatch):
    """The .npy header says "object"; the data after it is never read, np.load never called."""
    path = tmp_path / "evil.npz"
    np.savez(path, meta=_header(), **{"param/W": np.array([{"x": 1}], dtype=object)})
    import pickle

    def never(*args, **kwargs):
        raise AssertionError("unpickled or np.load-ed")
    for module, name in ((checkpoint.np, "load"), (pickle, "loads"), (pickle, "load"), (pickle, "Unpickler")):
        monkeypatch.setattr(module, name, never)
    with pytest.raises(DataError, match="contains pickled Python objects, which rnndsl never loads"):
        load(path)


def test_a_pickle_file_is_refused(tmp_path):
    import pickle
    path = tmp_path / "p.npz"
    path.write_bytes(pickle.dumps({"W": 1}))
    with pytest.raises(DataError, match="not an .npz archive .and rnndsl never unpickles files"):
        load(path)


def test_save_refuses_object_arrays_and_leaves_no_file(tmp_path):
    with pytest.raises(ValueError, match="param/W is an object array"):
        save(tmp_path / "c.npz", {"W": np.array([None])}, {}, {})
    with pytest.raises(TypeError):
        save(tmp_path / "c.npz", {}, {}, {"f": object()})            # metadata must be JSON
    assert os.listdir(tmp_path) == []


# ---- which spec --------------------------------------------------------------------------------

def test_hash_ignores_path_comments_layout_inits_and_training(model):
    same = rnndsl.loads_spec(ELMAN.replace("# the current character", "")
                             .replace("init: normal(0.1)", "init: normal(0.5)")
                             .replace("lr: 0.1", "lr: 0.2")
                             .replace("  h[t] = tanh(", "  h[t] = tanh( "), "elsewhere/renamed.yaml")
    assert spec_hash(same) == spec_hash(model) and len(spec_hash(model)) == 64
    assert "elman.yaml" not in spec_text(model)


def test_hash_changes_with_shapes_and_equations(model):
    assert spec_hash(variant("H: 16", "H: 8")) != spec_hash(model)
    assert spec_hash(variant("tanh(W_xh", "sigmoid(W_xh")) != spec_hash(model)


def test_another_spec_is_refused_naming_each_parameter(tmp_path, model):
    path, _, _ = write(tmp_path, model)
    other = variant("H: 16", "H: 8")
    with pytest.raises(DataError) as err:
        load(path, other)
    assert err.value.message == (
        f"checkpoint {path} was written for another spec: "
        "W_xh: [16, 4] in the checkpoint, [H=8, V=4] in the spec; "
        "W_hh: [16, 16] in the checkpoint, [H=8, H=8] in the spec; "
        "b_h: [16] in the checkpoint, [H=8] in the spec; "
        "W_hy: [4, 16] in the checkpoint, [V=4, H=8] in the spec")
    assert "resume with the spec the run was trained with" in err.value.first.hint


def test_missing_and_extra_parameters_are_named(tmp_path, model):
    path, _, _ = write(tmp_path, model)
    other = rnndsl.loads_spec(ELMAN.replace("b_y", "b_o"), "specs/elman.yaml")
    with pytest.raises(DataError) as err:
        load(path, other)
    assert err.value.message.endswith(": b_o: in the spec as [V=4], missing from the checkpoint; "
                                      "b_y: in the checkpoint [4], not in the spec")


def test_same_parameters_other_equations_shows_the_lines(tmp_path, model):
    path, _, _ = write(tmp_path, model)
    with pytest.raises(DataError) as err:
        load(path, variant("tanh(W_xh", "sigmoid(W_xh"))
    message = err.value.message
    assert "the parameters match, but these lines of the IR differ: checkpoint: h[t]: [H=16] = tanh(" in message
    assert "; this spec: h[t]: [H=16] = sigmoid(" in message


def test_without_a_model_any_spec_is_accepted(tmp_path, model):
    path, _, _ = write(tmp_path, model)
    assert load(path).spec_hash == spec_hash(model)
