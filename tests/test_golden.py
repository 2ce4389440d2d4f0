"""Golden files pin the emitted code of a few specs: a change to it is a change to read.
Regenerate on purpose with RNNDSL_UPDATE_GOLDEN=1."""
import os

import pytest

import rnndsl

from conftest import ROOT

GOLDEN = ROOT / "tests" / "golden"


@pytest.mark.parametrize("name", ["elman", "lstm", "birnn"])
def test_emitted_code_is_pinned(name):
    source = rnndsl.compile(ROOT / "specs" / f"{name}.yaml").source
    path = GOLDEN / f"{name}.py"
    if os.environ.get("RNNDSL_UPDATE_GOLDEN") or not path.exists():
        path.write_text(source)
    assert source == path.read_text(), f"emitted code of {name} changed; see the diff and regenerate"


def test_the_golden_module_runs_alone(tmp_path):
    """The emitted module needs only numpy."""
    import subprocess
    import sys
    script = tmp_path / "run.py"
    script.write_text(
        "import numpy as np, importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('elman', {str(GOLDEN / 'elman.py')!r})\n"
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
        "assert 'rnndsl' not in sys.modules\n"
        "rng = np.random.default_rng(0)\n"
        "P = {'W_xh': rng.normal(size=(16, 4)), 'W_hh': rng.normal(size=(16, 16)) * 0.1,\n"
        "     'b_h': np.zeros(16), 'W_hy': rng.normal(size=(4, 16)), 'b_y': np.zeros(4)}\n"
        "x = rng.integers(0, 4, (6, 2))\n"
        "loss, grads = m.loss_and_grad(P, {'x': x, 'target': x})\n"
        "print(round(loss, 6), sorted(grads))\n")
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, check=True).stdout
    assert "W_hh" in out
