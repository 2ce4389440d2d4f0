"""The CuPy backend (backends/cupy/), checked without a GPU.

Every kernel of every shipped spec compiles with nvcc for sm_90 (skipped without nvcc). The
emitted module itself runs on the CPU with a stand-in `cupy` (tests/cuda_standin.py: NumPy
underneath, strict about host and device arrays as CuPy is, each RawKernel's CUDA source built
by g++ and run on threads): its loss and gradients equal the NumPy backend's, to 1e-12 in
float64 and 1e-5 in float32, on every shipped spec and on generated ones, with ragged lengths,
truncation and carried state. That checks the generated arithmetic, indexing and masking, the
launch shapes and barriers, and the module's host code; only speed and device memory are left
for a GPU.
"""
import ast
import importlib.util
import shutil
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import rnndsl
from rnndsl import backends
from rnndsl.backends.cupy import cuda, cuda_files
from rnndsl.pipeline import emit
from rnndsl.semantics.inputs import prepare, random_batch
from rnndsl.tools.cli import main

import cuda_standin
from conftest import ROOT, SPECS
from rnndsl.testing.specgen import specs as random_specs

needs_gcc = pytest.mark.skipif(shutil.which("g++") is None, reason="g++ is not installed")
TOLERANCE = {"float64": 1e-12, "float32": 1e-5}


def standin_model(spec, dtype: str):
    """(checked spec, the CuPy module running on the stand-in, the stand-in)."""
    model, _, source = emit(spec, "cupy", dtype)
    module, cp = cuda_standin.load(source)
    return model, module, cp


def host(value):
    """A NumPy array from a host or device array (the stand-in's or CuPy's: .get())."""
    return np.asarray(value) if isinstance(value, (np.ndarray, np.generic, float)) else value.get()


def assert_close(got: dict, want: dict, tol: float) -> None:
    for name, g in want.items():
        scale = max(float(np.abs(g).max()), 1e-3)
        np.testing.assert_allclose(host(got[name]), g, rtol=0, atol=tol * scale, err_msg=name)


def assert_agrees_with_numpy(spec, dtype: str, seed: int = 0, truncate=None, tol: float | None = None) -> None:
    plain = rnndsl.compile(spec, backend="numpy", dtype=dtype)
    _, module, _ = standin_model(spec, dtype)
    params = plain.init_params(seed)
    batch = prepare(plain.spec, random_batch(plain.spec, 6, 3, seed))     # ragged lengths: masks too
    loss, grads = plain.module.loss_and_grad(params, batch.arrays, batch.lengths, plain.dtype, truncate)
    got_loss, got_grads = module.loss_and_grad(params, batch.arrays, batch.lengths, np.dtype(dtype), truncate)
    tol = tol or TOLERANCE[dtype]
    assert got_loss == pytest.approx(loss, rel=tol, abs=tol)
    assert_close(got_grads, grads, tol)


# ---- the CUDA source -----------------------------------------------------------------------------

@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not installed")
@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.stem)
def test_every_kernel_of_a_shipped_spec_compiles_with_nvcc(path, tmp_path):
    """All of a spec's kernels (both precisions, CTC's too) in one nvcc call, warnings as errors."""
    _, program, _ = emit(path, "cupy", "float32")
    files = cuda_files(program)
    source = tmp_path / f"{path.stem}.cu"
    source.write_text("\n\n".join(files.values()))
    run = subprocess.run(["nvcc", "-arch=sm_90", "-c", "--Werror", "all-warnings", str(source),
                          "-o", str(tmp_path / "kernels.o")], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-4000:]


def test_cuda_dir_writes_the_sources_the_module_compiles(tmp_path, capsys):
    """`rnndsl compile --backend cupy --cuda-dir` emits without CuPy; each .cu file is the very
    text the module hands to RawKernel."""
    module_file, folder = tmp_path / "m.py", tmp_path / "kernels"
    assert main(["compile", str(ROOT / "specs/lstm.yaml"), "--backend", "cupy", "-o", str(module_file),
                 "--cuda-dir", str(folder)]) == 0
    assert "needs numpy and cupy" in capsys.readouterr().out
    kept = _raw_strings(module_file.read_text())
    written = {p.name: p.read_text() for p in folder.glob("*.cu")}
    assert sorted(written) == ["_k1.cu", "_k2.cu", "_k3.cu"]
    assert all(kept[f"{name[:-3]}_cu"].strip("\n") == text.strip("\n") for name, text in written.items())


def test_every_cuda_source_defines_what_nvrtc_lacks():
    """CuPy compiles with NVRTC, which has no math.h: INFINITY and NAN come from the preamble
    (nvcc includes math.h, so compiling with it would not tell)."""
    _, program, _ = emit(ROOT / "specs/deepspeech.yaml", "cupy", "float32")
    files = cuda_files(program)
    assert "_ctc.cu" in files and all(text.startswith(cuda.PREAMBLE) for text in files.values())


def _raw_strings(source: str) -> dict:
    """The module-level string constants of a module's source."""
    tree = ast.parse(source)
    return {n.targets[0].id: n.value.value for n in tree.body if isinstance(n, ast.Assign)
            and isinstance(n.value, ast.Constant) and isinstance(n.value.value, str)}


def test_the_module_imports_only_numpy_and_cupy():
    _, _, source = emit(ROOT / "specs/deepspeech.yaml", "cupy", "float32")
    imported = {a.name.split(".")[0] for n in ast.walk(ast.parse(source)) if isinstance(n, (ast.Import, ast.ImportFrom))
                for a in n.names}
    assert imported == {"numpy", "cupy"}


def test_emitting_needs_no_cupy_and_import_rnndsl_never_imports_it():
    script = ("import sys, rnndsl; from rnndsl.pipeline import emit; "
              f"emit({str(ROOT / 'specs/deepspeech.yaml')!r}, 'cupy'); "
              "assert 'cupy' not in sys.modules, 'cupy imported'")
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr


def test_cupy_is_never_the_default_backend(monkeypatch):
    """Installed CuPy is not a usable GPU: the default stays a CPU backend, even where
    available() says yes for every backend."""
    monkeypatch.delenv("RNNDSL_BACKEND")
    monkeypatch.setattr(backends, "available", lambda name: True)
    assert backends.default() == "numba"


@pytest.mark.skipif(importlib.util.find_spec("cupy") is not None, reason="CuPy is installed")
def test_compiling_to_run_without_cupy_says_what_to_install():
    with pytest.raises(ValueError, match=r"the cupy backend needs cupy.*rnndsl\[gpu\]"):
        rnndsl.compile(ROOT / "specs/elman.yaml", backend="cupy")


@given(st.text(max_size=40))
def test_a_spec_line_cannot_escape_its_cuda_comment(text):
    line = cuda.comment(text)
    assert "\n" not in line and "\r" not in line and not line.endswith("\\")
    assert "'''" not in line and "?" not in line and "*/" not in line


def test_an_lstm_step_is_one_gemm_and_one_kernel_launch():
    """Forward and backward: each step's body is a GEMM (cuBLAS) and one launch, nothing else."""
    _, _, source = emit(ROOT / "specs/lstm.yaml", "cupy", "float32")
    loops = [n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.For) and ast.unparse(n.target) == "_t"]
    assert len(loops) == 2
    for loop in loops:
        calls = [ast.unparse(c.func) for c in ast.walk(loop) if isinstance(c, ast.Call)]
        launches = [c for c in calls if "_single" in c]
        rest = set(calls) - set(launches) - {"_range", "_grid", "_xp.ascontiguousarray"}
        assert len(launches) == 1 and calls.count("_xp.matmul") == 1 and rest == {"_xp.matmul"}, ast.unparse(loop)


# ---- the module on the stand-in: the NumPy backend's numbers ------------------------------------

@needs_gcc
@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.stem)
def test_shipped_specs_agree_with_numpy(path):
    assert_agrees_with_numpy(path, "float64")
    assert_agrees_with_numpy(path, "float32")


@needs_gcc
@settings(max_examples=10)
@given(random_specs(), st.integers(1, 7))
def test_generated_specs_agree_with_numpy(text, truncate):
    """float32 to 1e-4 here: a drawn spec may chain several transcendentals through a
    recurrence, and glibc's float32 expf or log1pf differ from NumPy's in the last bits (one
    of 400 drawn cases by hand was 1.03e-5 off)."""
    assert_agrees_with_numpy(text, "float64", seed=1)
    assert_agrees_with_numpy(text, "float32", seed=2, truncate=truncate, tol=1e-4)


@needs_gcc
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", ["lstm", "birnn", "rnn_lm"])
def test_truncated_windows_with_carried_state_agree_with_numpy(name, dtype):
    """Training's path: a stream cut into windows, each starting from the last one's final
    state (a device array handed back), gradients cut at truncation windows, ragged lengths."""
    path = ROOT / "specs" / f"{name}.yaml"
    plain = rnndsl.compile(path, backend="numpy", dtype=dtype)
    _, module, _ = standin_model(path, dtype)
    params = plain.init_params(0)
    carry_a = carry_b = None
    for window in range(3):
        batch = prepare(plain.spec, random_batch(plain.spec, 7, 3, window))
        a = plain.module.forward(params, batch.arrays, batch.lengths, plain.dtype, carry_a)
        b = module.forward(params, batch.arrays, batch.lengths, np.dtype(dtype), carry_b)
        assert b["_total_loss"] == pytest.approx(a["_total_loss"], rel=TOLERANCE[dtype])
        assert_close(module.backward(params, b, 3), plain.module.backward(params, a, 3), TOLERANCE[dtype])
        carry_a, carry_b = a["_final"], b["_final"]


@needs_gcc
def test_an_lstm_step_launches_one_kernel_each_way():
    spec, module, cp = standin_model(ROOT / "specs/lstm.yaml", "float32")
    params = rnndsl.init_params(spec, 0)
    batch = prepare(spec, random_batch(spec, 5, 2, 0))
    module.loss_and_grad(params, batch.arrays, batch.lengths, np.float32)
    assert cp.launches.count("_k1_f32") == 5 and cp.launches.count("_k3_f32") == 5


# ---- the stand-in is as strict as a GPU ---------------------------------------------------------

def test_the_standin_refuses_host_arrays_where_cupy_does():
    cp = cuda_standin.make()
    a = cp.asarray(np.arange(6.0))
    with pytest.raises(TypeError, match="Implicit conversion"):
        np.asarray(a)
    with pytest.raises(TypeError):
        a + np.ones(6)
    with pytest.raises(TypeError):
        cp.where(a > 2, a, np.zeros(6))
    with pytest.raises(TypeError):
        np.add.at(a, cp.asarray(np.array([0, 1])), 1.0)
    assert isinstance(np.exp(a), cuda_standin.ndarray) and isinstance(a.sum(), cuda_standin.ndarray)


@needs_gcc
def test_the_numpy_forms_of_the_device_helpers_fail_on_the_standin():
    """What device.py replaces really would fail on a GPU: the stand-in finds it."""
    from rnndsl.core import kernels
    cp = cuda_standin.make()
    dout, idx = cp.asarray(np.ones((4, 3))), cp.asarray(np.array([0, 1, -1, 1]))
    with pytest.raises(TypeError):
        kernels.embed_vjp(cp, dout, idx, 2)
    y, labels = cp.asarray(np.zeros((5, 1, 3))), cp.asarray(np.array([[1], [2]]))
    with pytest.raises(TypeError):
        kernels.ctc(cp, y, labels)


OUT_OF_BOUNDS = r'''
extern "C" __global__ void past_the_end(double* __restrict__ out, long long n)
{
    for (long long i = blockIdx.x * blockDim.x + threadIdx.x; i <= n; i += blockDim.x * gridDim.x)
        out[i] = 1.0;
}
'''


@needs_gcc
def test_the_standin_finds_a_write_past_an_array_and_wrong_arguments():
    cp = cuda_standin.make()
    kernel = cp.RawKernel(OUT_OF_BOUNDS, "past_the_end")
    out = cp.zeros(8)
    with pytest.raises(cuda_standin.StandinError, match="wrote outside"):
        kernel((2,), (32,), (out, 8))
    with pytest.raises(cuda_standin.StandinError, match="float32 array"):
        kernel((1,), (32,), (cp.zeros(8, dtype=np.float32), 7))
    with pytest.raises(cuda_standin.StandinError, match="float for a `long long`"):
        kernel((1,), (32,), (out, 7.0))
    with pytest.raises(cuda_standin.StandinError, match="contiguous"):
        kernel((1,), (32,), (cp.zeros((4, 4))[:, 0], 3))


# ---- on a GPU (benchmarks/gpu.sh runs these: pytest -m gpu) --------------------------------------

def _gpu():
    cupy = pytest.importorskip("cupy")
    try:
        if cupy.cuda.runtime.getDeviceCount() > 0:
            return cupy
    except Exception as exc:                       # no driver, or a CuPy built for another CUDA
        pytest.skip(f"CuPy cannot use a GPU here: {type(exc).__name__}")
    pytest.skip("no CUDA GPU")


GPU_TOLERANCE = {"float64": 1e-10, "float32": 1e-4}     # cuBLAS sums in its own order; nvcc contracts to FMA


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.stem)
def test_on_a_gpu_the_module_agrees_with_numpy(path, dtype):
    """The same module as above, on the GPU with CuPy: NVRTC compiles what nvcc compiled here."""
    _gpu()
    plain = rnndsl.compile(path, backend="numpy", dtype=dtype)
    gpu = rnndsl.compile(path, backend="cupy", dtype=dtype)
    params = plain.init_params(0)
    batch = prepare(plain.spec, random_batch(plain.spec, 6, 3, 0))
    loss, grads = plain.module.loss_and_grad(params, batch.arrays, batch.lengths, plain.dtype, 3)
    got_loss, got_grads = gpu.module.loss_and_grad(params, batch.arrays, batch.lengths, np.dtype(dtype), 3)
    assert got_loss == pytest.approx(loss, rel=GPU_TOLERANCE[dtype])
    assert_close(got_grads, grads, GPU_TOLERANCE[dtype])

