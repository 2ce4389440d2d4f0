#!/usr/bin/env bash
# The one script for the GPU machine (issue 11), run from anywhere in the repository:
#
#   bash benchmarks/gpu.sh
#
# 1. says what the machine is (GPU, driver, nvcc, python, cupy, torch);
# 2. installs only what is missing, offline: lark from a wheel (.whl/ in the checkout, or
#    shared/wheels beside it: /work/shared/wheels/README.md), then the project itself
#    (pip install --no-deps --no-build-isolation -e .). From a session with the device tool:
#    mkdir -p .whl && cp ../shared/wheels/lark-*.whl .whl/ && echo /.whl/ >> .git/info/exclude,
#    then run `bash benchmarks/gpu.sh` with carry [".whl"] and a timeout of 600 s;
# 3. runs the GPU tests: pytest -m gpu over tests/ (the cupy backend's, and tests/test_device.py's
#    few training steps on the GPU against the NumPy backend), and tests/test_cupy_backend.py whole
#    where it marks none;
# 4. runs benchmarks/gpu_bench.py: one table, the cupy backend against PyTorch's cuDNN on the
#    same GPU, and its gradients against the NumPy backend's.
#
# Each step has its own timeout (GPU_TEST_TIMEOUT, GPU_BENCH_TIMEOUT seconds), so one failure
# does not take the device time of the others; the whole fits in 10 minutes. With $OUT set,
# everything printed is also in $OUT/gpu.log and the table in $OUT/gpu_bench.md and .json.
# The exit status is the first failing step's (0 when all passed).
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
TESTS_S=${GPU_TEST_TIMEOUT:-200}
BENCH_S=${GPU_BENCH_TIMEOUT:-300}
if [ -n "${OUT:-}" ]; then
  mkdir -p "$OUT"
  exec > >(tee -a "$OUT/gpu.log") 2>&1
fi
status=0
step() { echo; echo "== $*"; }
failed() { echo "!! $1 failed (exit $2)"; [ "$status" -ne 0 ] || status=$2; }

step "machine"
timeout 30 nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || echo "nvidia-smi: none"
timeout 30 nvcc --version 2>/dev/null | tail -n 1 || echo "nvcc: none"
timeout 60 "$PY" - <<'EOF'
import platform
print("python", platform.python_version())
for name in ("numpy", "cupy", "torch", "numba", "yaml", "networkx", "hypothesis", "pytest", "lark"):
    try:
        module = __import__(name)
        print(f"{name} {getattr(module, '__version__', '?')}")
    except Exception as exc:
        print(f"{name}: {type(exc).__name__}: {exc}".splitlines()[0])
EOF

step "install what is missing (offline)"
if ! "$PY" -c "import lark" 2>/dev/null; then
  wheel=$(ls .whl/lark-*.whl shared/wheels/lark-*.whl ../shared/wheels/lark-*.whl 2>/dev/null | head -n 1)
  if [ -z "$wheel" ]; then
    echo "lark is not installed and no lark wheel is in .whl/ or shared/wheels/"; exit 3
  fi
  timeout 120 "$PY" -m pip install -q --no-index --no-deps --target .site "$wheel" || { failed "lark" $?; exit 3; }
  export PYTHONPATH="$PWD/.site${PYTHONPATH:+:$PYTHONPATH}"
  echo "lark from $wheel"
fi
if ! "$PY" -c "import rnndsl.backends" 2>/dev/null; then
  timeout 180 "$PY" -m pip install -q --no-deps --no-build-isolation -e . || { failed "pip install -e ." $?; exit 3; }
fi
"$PY" -c "import rnndsl.backends.cupy" || failed "import rnndsl.backends.cupy" $?
export HYPOTHESIS_PROFILE=ci RNNDSL_CACHE="${RNNDSL_CACHE:-/tmp/rnndsl-cache}"

step "GPU tests (timeout ${TESTS_S} s)"
timeout "$TESTS_S" "$PY" -m pytest -q -rs -p no:cacheprovider -m gpu tests/ || failed "pytest -m gpu" $?
if [ -f tests/test_cupy_backend.py ] && ! grep -q "mark.gpu" tests/test_cupy_backend.py; then
  timeout "$TESTS_S" "$PY" -m pytest -q -rs -p no:cacheprovider tests/test_cupy_backend.py \
    || failed "tests/test_cupy_backend.py" $?
fi

step "benchmark (timeout ${BENCH_S} s)"
timeout "$BENCH_S" "$PY" benchmarks/gpu_bench.py --require-gpu --budget 6 --deadline 90 ${OUT:+--out "$OUT"} \
  || failed "benchmarks/gpu_bench.py" $?

step "done: exit $status"
exit "$status"
