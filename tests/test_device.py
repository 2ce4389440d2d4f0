"""Training, sampling and evaluation on a device (rnndsl/runtime/device.py), checked without a
GPU on a stand-in device (tests/standin_device.py: NumPy underneath, so every number must equal
the NumPy backend's exactly), the refusal of a backend this machine cannot run (no cupy, no
GPU: exit 2, nothing written), and, where a GPU and the cupy backend exist (pytest -m gpu),
a few training steps on the GPU against the NumPy backend."""
import importlib.machinery
import importlib.util
import json
import sys
import tempfile
import types
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import standin_device
from rnndsl import backends
from rnndsl.core.errors import DataError
from rnndsl.runtime import device
from rnndsl.tools.cli import main
from rnndsl.training import checkpoint, rundir, train
from standin_device import DeviceArray

from conftest import ROOT

CHAR_RNN = str(ROOT / "specs/char_rnn.yaml")
WORDS = "the cat sat on a mat and the dog ran to the hat".split()


def cli(capsys, *argv) -> tuple:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in err + out
    return code, out, err


@pytest.fixture(scope="module")
def text(tmp_path_factory):
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("text") / "train.txt"
    path.write_text(" ".join(WORDS[i] for i in rng.integers(0, len(WORDS), 60)) + "\n")
    return path


@pytest.fixture
def standin(monkeypatch):
    standin_device.xp.counts.clear()
    return standin_device.register(monkeypatch)


def sets(optimizer="adagrad", **more) -> dict:
    return {"H": 6, "batch": 2, "bptt": 8, "steps": 6, "optimizer": optimizer, "clip": 0.5, **more}


def same_checkpoints(a: Path, b: Path) -> None:
    """Bit for bit the same arrays, under the same names and dtypes, and the same position."""
    x, y = (checkpoint.load(r / rundir.CHECKPOINT) for r in (a, b))
    for mine, theirs in ((x.params, y.params), (x.opt_state, y.opt_state)):
        assert sorted(mine) == sorted(theirs)
        for k in mine:
            assert type(mine[k]) is np.ndarray and mine[k].dtype == theirs[k].dtype, k
            assert np.array_equal(mine[k], theirs[k]), k
    assert {k: x.meta[k] for k in ("step", "epoch", "batch")} == {k: y.meta[k] for k in ("step", "epoch", "batch")}


# ---- the helpers ---------------------------------------------------------------------------------

def test_the_stand_in_refuses_what_a_gpu_refuses():
    """The checker checks: NumPy cannot read a device array, a device op cannot take a host one."""
    d = standin_device.xp.asarray(np.arange(3.0))
    for mistake in (lambda: np.asarray(d), lambda: np.sum(d), lambda: np.sqrt(d), lambda: d + np.ones(3),
                    lambda: np.ones(3) * d, lambda: np.concatenate([d, d])):
        with pytest.raises(TypeError):
            mistake()
    assert isinstance(d * 2.0 + np.float32(1), DeviceArray) and float(standin_device.xp.sum(d)) == 3.0


def test_to_host_to_device_and_put():
    xp = standin_device.xp
    host = {"a": np.arange(4.0, dtype=np.float32), "b": np.ones((2, 2))}
    on = device.to_device(xp, host)
    assert all(type(v) is DeviceArray for v in on.values()) and device.to_device(xp, on["a"]) is on["a"]
    back = device.to_host(on)
    assert all(type(v) is np.ndarray for v in back.values())
    assert all(np.array_equal(back[k], host[k]) and back[k].dtype == host[k].dtype for k in host)
    assert device.to_host(host["a"]) is host["a"] and device.to_device(np, host["a"]) is host["a"]
    device.put(xp, on["a"], np.full(4, 2.5))                     # float64 into float32, in place
    assert on["a"].dtype == np.float32 and np.array_equal(on["a"].get(), np.full(4, 2.5, np.float32))
    with pytest.raises(TypeError):
        device.put(xp, on["a"], np.array([1 + 1j] * 4))           # complex into real: refused
    assert device.array_module(types.SimpleNamespace()) is np
    assert device.array_module(types.SimpleNamespace(_xp=xp)) is xp


# ---- training, sampling, evaluation on the stand-in device ---------------------------------------

@pytest.mark.parametrize("optimizer, more", [("adagrad", {}), ("adam", {"weight_decay": 0.01}),
                                             ("sgd", {"momentum": 0.9, "nesterov": True}), ("rmsprop", {})])
def test_training_on_the_device_equals_numpy_bit_for_bit(standin, text, tmp_path, optimizer, more):
    for name, backend in (("cpu", "numpy"), ("gpu", standin)):
        train.train(CHAR_RNN, text, tmp_path / name, sets(optimizer, **more), backend=backend, quiet=True)
    same_checkpoints(tmp_path / "cpu", tmp_path / "gpu")
    assert rundir.read_metrics(tmp_path / "cpu") == rundir.read_metrics(tmp_path / "gpu")


OPTIMIZERS = [{"optimizer": "adagrad"}, {"optimizer": "adam"}, {"optimizer": "rmsprop"}, {"optimizer": "sgd"},
              {"optimizer": "sgd", "momentum": 0.5}, {"optimizer": "sgd", "momentum": 0.9, "nesterov": True}]


@settings(max_examples=8, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(opt=st.sampled_from(OPTIMIZERS), clip=st.sampled_from([0.0, 0.05, 5.0]), decay=st.sampled_from([0.0, 0.1]),
       steps=st.integers(1, 6), batch=st.integers(1, 3), bptt=st.integers(3, 9), truncate=st.integers(0, 4),
       dtype=st.sampled_from(["float32", "float64"]))
def test_any_settings_train_on_the_device_as_on_the_cpu(standin, text, opt, clip, decay, steps, batch, bptt,
                                                       truncate, dtype):
    """The class, not one probe: optimizers, clipping (on or off), weight decay, streams of any
    width and window, truncated BPTT, both dtypes: the same checkpoint bit for bit."""
    chosen = {**opt, "H": 5, "clip": clip, "weight_decay": decay, "steps": steps, "batch": batch, "bptt": bptt,
              "truncate": truncate}
    with tempfile.TemporaryDirectory() as folder:
        for name, backend in (("cpu", "numpy"), ("gpu", standin)):
            train.train(CHAR_RNN, text, Path(folder) / name, chosen, backend=backend, quiet=True, dtype=dtype)
        same_checkpoints(Path(folder) / "cpu", Path(folder) / "gpu")


def test_minibatches_with_validation_and_eval_on_the_device(standin, tmp_path, capsys):
    """Padded minibatches, a held-out part evaluated during training (evaluate_loss on the
    device), a plateau schedule, and `rnndsl eval`'s accuracy: as on the CPU."""
    rng = np.random.default_rng(0)
    lengths = rng.integers(3, 10, 30)
    x = np.where(np.arange(9)[None, :] < lengths[:, None], rng.integers(1, 6, (30, 9)), 0)
    np.savez(tmp_path / "reviews.npz", x=x, label=((x == 1).sum(1) > (x == 2).sum(1)).astype(np.int64),
             lengths=lengths)
    chosen = {"V": 6, "E": 4, "H": 5, "K": 2, "batch": 4, "epochs": 2, "schedule": "plateau", "patience": 0}
    for name, backend in (("cpu", "numpy"), ("gpu", standin)):
        train.train(ROOT / "specs/sentiment.yaml", tmp_path / "reviews.npz", tmp_path / name, chosen,
                    backend=backend, quiet=True)
    same_checkpoints(tmp_path / "cpu", tmp_path / "gpu")
    metrics = [rundir.read_metrics(tmp_path / name) for name in ("cpu", "gpu")]
    assert metrics[0] == metrics[1] and any("val_loss" in r for r in metrics[0])
    evals = [cli(capsys, "eval", tmp_path / "cpu", "--backend", b) for b in ("numpy", standin)]
    assert evals[0][0] == 0 and "accuracy" in evals[0][1] and evals[0] == evals[1]


def test_each_step_moves_the_batch_once_and_reads_back_scalars_only(standin, text, tmp_path, monkeypatch):
    """Parameters and optimizer state stay on the device: per step, the batch goes over once
    (two inputs) and one number comes back to the trainer (the gradient norm, which the NaN
    check reads with the loss, a float the module computes anyway)."""
    per_step, step = [], train.Trainer.step

    def counted(self, batch):
        before = dict(standin_device.xp.counts)
        record = step(self, batch)
        per_step.append({k: v - before.get(k, 0) for k, v in standin_device.xp.counts.items()})
        return record
    monkeypatch.setattr(train.Trainer, "step", counted)
    train.train(CHAR_RNN, text, tmp_path / "run", sets(steps=4), backend=standin, quiet=True)
    assert len(per_step) == 4
    for counts in per_step:
        assert counts.get("to_device", 0) == 2 and counts.get("get", 0) == 0 and counts.get("scalar", 0) == 1


@pytest.mark.parametrize("first, then", [("standin", "numpy"), ("numpy", "standin")])
def test_a_run_resumes_on_the_other_side(standin, text, tmp_path, monkeypatch, first, then):
    """Trained on the device and resumed on the CPU, or the other way round: the parameters an
    uninterrupted run ends with (the checkpoint's format does not depend on the backend)."""
    train.train(CHAR_RNN, text, tmp_path / "A", sets(steps=8), backend="numpy", quiet=True)
    step, calls = train.Trainer.step, [0]

    def interrupted(self, batch):
        calls[0] += 1
        if calls[0] == 4:
            raise KeyboardInterrupt
        return step(self, batch)
    with monkeypatch.context() as m:
        m.setattr(train.Trainer, "step", interrupted)
        with pytest.raises(KeyboardInterrupt):
            train.train(CHAR_RNN, text, tmp_path / "B", sets(steps=8), backend=first, quiet=True)
    train.resume(tmp_path / "B", quiet=True, backend=then)
    same_checkpoints(tmp_path / "A", tmp_path / "B")


@pytest.fixture
def cpu_run(text, tmp_path):
    return train.train(CHAR_RNN, text, tmp_path / "run", sets(steps=5), backend="numpy", quiet=True)


def test_sample_and_eval_on_the_device_print_what_numpy_prints(standin, cpu_run, capsys):
    for command in (["sample", cpu_run, "--prime", "the", "--length", "30", "--seed", "3"], ["eval", cpu_run]):
        on_cpu = cli(capsys, *command, "--backend", "numpy")
        on_device = cli(capsys, *command, "--backend", standin)
        assert on_cpu[0] == 0 and on_cpu == on_device


def test_workers_are_refused_on_a_device_before_a_run_is_made(standin, cpu_run, text, tmp_path):
    model, _, _ = train.load_run(cpu_run, backend=standin)
    assert model.xp is standin_device.xp
    with pytest.raises(DataError, match="(?s)2 ranks on the standin backend all-reduce through NCCL.*leave --workers at 1"):
        model.check_workers(2)
    with pytest.raises(DataError, match="trains as an MPI job"):
        train.train(CHAR_RNN, text, tmp_path / "new", sets(), backend=standin, quiet=True, workers=2)
    assert not (tmp_path / "new").exists()


# ---- a backend this machine cannot run: exit 2, nothing written ----------------------------------

@pytest.fixture
def cupy_registered(monkeypatch):
    """The cupy backend's registry entry (its own, once backends/cupy exists)."""
    if "cupy" not in backends.REGISTRY:
        monkeypatch.setitem(backends.REGISTRY, "cupy", backends.Backend(
            "cupy", "cupy", "CUDA kernels through CuPy", needs="cupy", extra="gpu", kernels=True))
    return "cupy"


@pytest.fixture
def no_cupy(monkeypatch, cupy_registered):
    monkeypatch.setitem(sys.modules, "cupy", None)          # import cupy fails, find_spec finds nothing


@pytest.fixture
def cupy_without_gpu(monkeypatch, cupy_registered):
    """CuPy installed, no device: getDeviceCount raises as CuPy's does on such a machine."""
    class CUDARuntimeError(RuntimeError):
        pass

    def no_device():
        raise CUDARuntimeError("cudaErrorNoDevice: no CUDA-capable device is detected")
    fake = types.ModuleType("cupy")
    fake.__spec__ = importlib.machinery.ModuleSpec("cupy", None)
    fake.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=no_device))
    monkeypatch.setitem(sys.modules, "cupy", fake)


def files_under(folder: Path) -> dict:
    return {p: p.stat().st_mtime_ns for p in folder.rglob("*")}


@pytest.mark.parametrize("machine, said", [
    ("no_cupy", ["not installed", "pip install 'rnndsl[gpu]'", "cupy-cuda12x", "nvidia-smi"]),
    ("cupy_without_gpu", ["installed but cannot use one", "cudaErrorNoDevice: no CUDA-capable device",
                          "cupy-cuda13x", "--backend numpy"])])
def test_a_backend_this_machine_cannot_run_exits_2_writing_nothing(request, machine, said, cpu_run, text,
                                                                     tmp_path, capsys):
    request.getfixturevalue(machine)
    before = files_under(tmp_path)
    for command in (["train", CHAR_RNN, "--data", text, "--out", tmp_path / "new"],
                    ["train", "--resume", cpu_run], ["sample", cpu_run, "--prime", "t"], ["eval", cpu_run]):
        code, out, err = cli(capsys, *command, "--backend", "cupy")
        assert code == 2 and out == "" and err.startswith("error: the cupy backend"), err
        assert all(s in err for s in said), err
    assert files_under(tmp_path) == before


def test_a_gpu_run_reopens_on_a_machine_without_one(no_cupy):
    """sample, eval and --resume of a run trained with cupy take the default backend here."""
    assert device.runnable("cupy") == backends.default()
    with pytest.raises(device.BackendUnavailable):
        device.runnable("cupy", "cupy")


def test_a_missing_cpu_backend_module_is_named(monkeypatch):
    monkeypatch.setitem(sys.modules, "numba", None)
    with pytest.raises(device.BackendUnavailable, match=r"(?s)needs numba, which is not installed.*rnndsl\[fast\]"):
        device.require("numba")


# ---- benchmarks/gpu_bench.py without a GPU ---------------------------------------------------------

def _gpu_bench():
    spec = importlib.util.spec_from_file_location("gpu_bench", ROOT / "benchmarks" / "gpu_bench.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_bench"] = module                        # its dataclass looks itself up there
    spec.loader.exec_module(module)
    return module


def test_gpu_bench_dry_run_prints_its_table(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)          # the same with or without torch
    assert _gpu_bench().main(["--dry-run", "--cases", "lstm,deepspeech", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith(("| lstm ", "| deepspeech "))]
    assert len(rows) == 2 and all("0.0e+00" in r and "failed" not in r for r in rows), out
    assert (tmp_path / "gpu_bench.md").read_text().strip() == out.strip()
    assert [r["case"] for r in json.loads((tmp_path / "gpu_bench.json").read_text())] == ["lstm", "deepspeech"]


def test_gpu_bench_keeps_the_device_fed(standin, monkeypatch, capsys):
    """Its GPU path on the stand-in device: parameters and inputs moved over before timing."""
    monkeypatch.setitem(sys.modules, "torch", None)
    bench = _gpu_bench()
    monkeypatch.setattr(bench, "target", lambda dry: bench.Target(standin, standin_device.xp, bench._nothing, "cpu",
                                                                  bench._nothing))
    monkeypatch.setattr(bench, "CASES", [bench.tiny(c) for c in bench.CASES])
    assert bench.main(["--cases", "bilstm,deepspeech", "--budget", "0.05"]) == 0
    assert capsys.readouterr().out.count("0.0e+00") == 2


def test_gpu_bench_without_a_gpu_says_why(no_cupy, capsys):
    bench = _gpu_bench()
    assert bench.main([]) == 0 and bench.main(["--require-gpu"]) == 1
    out = capsys.readouterr().out
    assert "gpu_bench: skipped" in out and "pip install 'rnndsl[gpu]'" in out


# ---- on a GPU (pytest -m gpu; benchmarks/gpu.sh runs it) -----------------------------------------

def _gpu() -> bool:
    try:
        device.require("cupy")
    except device.BackendUnavailable:
        return False
    return "cupy" in backends.REGISTRY and backends.REGISTRY["cupy"].needs == "cupy"


@pytest.mark.gpu
@pytest.mark.skipif(not _gpu(), reason="needs the cupy backend and a CUDA GPU")
def test_training_on_the_gpu_follows_numpy(text, tmp_path, capsys):
    """float64, SGD with momentum (linear in the gradients, so rounding stays rounding): a few
    steps on the GPU end where the NumPy backend's end, and the GPU's run samples and evaluates
    on the CPU as on the GPU."""
    for name, backend in (("cpu", "numpy"), ("gpu", "cupy")):
        train.train(CHAR_RNN, text, tmp_path / name, sets("sgd", momentum=0.9, steps=6), backend=backend,
                    quiet=True, dtype="float64")
    a, b = (checkpoint.load(tmp_path / r / rundir.CHECKPOINT) for r in ("cpu", "gpu"))
    for k in a.params:
        np.testing.assert_allclose(b.params[k], a.params[k], rtol=1e-9, atol=1e-12, err_msg=k)
    losses = [[r["loss"] for r in rundir.read_metrics(tmp_path / r) if "loss" in r] for r in ("cpu", "gpu")]
    np.testing.assert_allclose(losses[1], losses[0], rtol=1e-9)
    for command in (["eval", tmp_path / "gpu"], ["sample", tmp_path / "gpu", "--prime", "the", "--temperature", "0"]):
        on_cpu, on_gpu = (cli(capsys, *command, "--backend", b) for b in ("numpy", "cupy"))
        assert on_cpu[0] == 0 and on_cpu == on_gpu
