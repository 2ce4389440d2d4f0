"""Data-parallel training over MPI ranks (rnndsl/runtime/mpi.py), through a real 2-rank job.

Each job is launched with the mpiexec that the mpich wheel installs next to this Python. A job's
result must equal a one-process run on the same global batches to 1e-6 (relative) after 20
steps: a stream language model whose carried states are gathered from the ranks, and padded,
ragged minibatches of a classifier with a validation split. A run resumes under another number
of ranks, and one rank failing stops the whole job with that rank's error instead of a hang.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from rnndsl.training import checkpoint, rundir, train
from test_train import SENTIMENT, interrupt_at, write_reviews

pytest.importorskip("mpi4py")
MPIEXEC = shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or shutil.which("mpiexec")
pytestmark = pytest.mark.skipif(MPIEXEC is None, reason="no mpiexec (pip install mpich)")
ROOT = Path(__file__).resolve().parent.parent
LM = {"H": 8, "batch": 6, "bptt": 10, "epochs": 1, "steps": 20}
CLS = {"V": 6, "E": 4, "H": 5, "K": 2, "batch": 5, "epochs": 4, "steps": 20}


def mpirun(ranks: int, code: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run Python `code` on `ranks` MPI ranks from the repository root."""
    script = f"import sys; sys.path.insert(0, {str(ROOT / 'tests')!r})\n" + textwrap.dedent(code)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "OMPI_", "PMIX_"))}
    return subprocess.run([MPIEXEC, "-n", str(ranks), sys.executable, "-c", script], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def params_of(run) -> dict:
    return checkpoint.load(Path(run) / rundir.CHECKPOINT).params


def assert_close_params(a: dict, b: dict) -> None:
    for name in a:
        scale = max(float(np.max(np.abs(a[name]))), 1e-12)
        assert float(np.max(np.abs(a[name] - b[name]))) / scale < 1e-6, name


@pytest.fixture(scope="module")
def text(tmp_path_factory):
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("mpi") / "text.txt"
    path.write_text("".join(rng.choice(list("abcdefgh \n"), 2500)))
    return path


def test_two_ranks_train_a_stream_lm_as_one_process_does(tmp_path, text):
    train.train(ROOT / "specs/lstm.yaml", text, tmp_path / "one", LM, quiet=True, dtype="float64")
    job = mpirun(2, f"""
        from rnndsl.training import train
        train.train({str(ROOT / 'specs/lstm.yaml')!r}, {str(text)!r}, {str(tmp_path / 'two')!r}, {LM!r},
                    quiet=True, dtype="float64")""")
    assert job.returncode == 0, job.stderr
    assert_close_params(params_of(tmp_path / "one"), params_of(tmp_path / "two"))
    one, two = (rundir.read_metrics(tmp_path / r) for r in ("one", "two"))
    assert [r["step"] for r in one] == [r["step"] for r in two]
    np.testing.assert_allclose([r.get("loss", 0) for r in one], [r.get("loss", 0) for r in two], rtol=1e-9)


def test_two_ranks_train_padded_minibatches_with_validation(tmp_path):
    data = write_reviews(tmp_path / "reviews.npz")
    train.train(SENTIMENT, data, tmp_path / "one", CLS, quiet=True, dtype="float64")
    job = mpirun(2, f"""
        from rnndsl.training import train
        train.train({str(SENTIMENT)!r}, {str(data)!r}, {str(tmp_path / 'two')!r}, {CLS!r}, quiet=True,
                    dtype="float64")""")
    assert job.returncode == 0, job.stderr
    assert_close_params(params_of(tmp_path / "one"), params_of(tmp_path / "two"))
    vals = [[r["val_loss"] for r in rundir.read_metrics(tmp_path / r) if "val_loss" in r] for r in ("one", "two")]
    assert vals[0] and np.allclose(vals[0], vals[1], rtol=1e-9)
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == sorted(p.name for p in (tmp_path / "one").iterdir())


def test_a_run_resumes_under_another_number_of_ranks(tmp_path, text, monkeypatch):
    train.train(ROOT / "specs/lstm.yaml", text, tmp_path / "whole", LM, quiet=True, dtype="float64")
    with monkeypatch.context() as m:
        interrupt_at(m, 7)
        with pytest.raises(KeyboardInterrupt):
            train.train(ROOT / "specs/lstm.yaml", text, tmp_path / "cut", LM, quiet=True, dtype="float64")
    job = mpirun(2, f"""
        from rnndsl.training import train
        train.resume({str(tmp_path / 'cut')!r}, quiet=True)""")
    assert job.returncode == 0, job.stderr
    assert_close_params(params_of(tmp_path / "whole"), params_of(tmp_path / "cut"))


def test_one_failing_rank_stops_the_job_with_its_error(tmp_path, text):
    job = mpirun(2, f"""
        from mpi4py import MPI
        from rnndsl.training import train
        step = train.Trainer.step
        def failing(self, batch):
            if MPI.COMM_WORLD.Get_rank() == 1 and self.progress.step == 3:
                raise RuntimeError("disk on fire")
            return step(self, batch)
        train.Trainer.step = failing
        train.train({str(ROOT / 'specs/lstm.yaml')!r}, {str(text)!r}, {str(tmp_path / 'run')!r}, {LM!r}, quiet=True)
        """, timeout=60)
    assert job.returncode != 0
    assert "rank 1 of 2 failed" in job.stderr and "disk on fire" in job.stderr


def test_a_setup_error_on_every_rank_is_printed_once(tmp_path, text):
    job = mpirun(2, f"""
        import sys
        from rnndsl.tools.cli import main
        sys.exit(main(["train", {str(ROOT / 'specs/lstm.yaml')!r}, "--data", {str(text)!r}, "--out",
                       {str(tmp_path / 'run')!r}, "--set", "H=0", "--quiet"]))""")
    assert job.returncode == 1
    assert job.stderr.count("error:") == 1, job.stderr


def test_only_rank_zero_writes_and_a_taken_folder_stops_every_rank(tmp_path, text):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    job = mpirun(2, f"""
        import sys
        from rnndsl.tools.cli import main
        sys.exit(main(["train", {str(ROOT / 'specs/lstm.yaml')!r}, "--data", {str(text)!r}, "--out",
                       {str(tmp_path / 'taken')!r}, "--set", "H=4", "--quiet"]))""", timeout=60)
    assert job.returncode == 1, job.stderr
    assert job.stderr.count("error:") == 1
    assert [p.name for p in (tmp_path / "taken").iterdir()] == ["notes.txt"]
    assert json.dumps(sorted(os.listdir(tmp_path))) == json.dumps(["taken"])


def test_shares_are_even_contiguous_and_never_empty():
    from rnndsl.runtime.mpi import _shares
    assert _shares(7, 2) == [(0, 3), (3, 7)]
    assert _shares(2, 4) == [(0, 1), (1, 2)]
    assert _shares(7, 1) == [(0, 7)]


def test_train_workers_is_an_mpi_job_with_the_same_run(tmp_path, capsys):
    from rnndsl.tools.cli import main
    data = write_reviews(tmp_path / "reviews.npz")
    sets = [a for k, v in CLS.items() for a in ("--set", f"{k}={v}")] + ["--dtype", "float64", "--quiet"]
    for name, workers in (("one", "1"), ("two", "2")):
        assert main(["train", str(SENTIMENT), "--data", str(data), "--out", str(tmp_path / name),
                     "--workers", workers, *sets]) == 0
    assert_close_params(params_of(tmp_path / "one"), params_of(tmp_path / "two"))


def test_python_api_workers_says_how_to_start_an_mpi_job(tmp_path, text):
    from rnndsl.core.errors import DataError
    with pytest.raises(DataError, match="mpiexec -n 2 python script.py"):
        train.train(ROOT / "specs/lstm.yaml", text, tmp_path / "run", LM, quiet=True, workers=2)
    assert not (tmp_path / "run").exists()


def test_ranks_on_a_device_sum_their_gradients_where_they_are(tmp_path, text):
    """The device path's host logic (rnndsl.runtime.mpi.NcclSum's place): on the stand-in device
    of tests/standin_device.py, with a stand-in all-reduce that works on device arrays, a 2-rank
    job trains as one NumPy process does; the fused buffer never becomes a host array."""
    train.train(ROOT / "specs/lstm.yaml", text, tmp_path / "one", LM, quiet=True, dtype="float64", backend="numpy")
    job = mpirun(2, f"""
        import numpy as np, pytest
        import standin_device
        from rnndsl.runtime import mpi
        from rnndsl.training import train

        class StandinSum:          # what NCCL does, on the stand-in device's arrays
            def __init__(self, comm, xp):
                self.host, self.xp = mpi.HostSum(comm), xp
            def zeros(self, n):
                return self.xp.zeros(n, np.float64)
            def sum(self, buf):
                assert isinstance(buf, standin_device.DeviceArray)
                return self.xp.asarray(self.host.sum(buf.get()))

        mpi.device_sum, mpi.nccl_ready = StandinSum, lambda xp: True
        with pytest.MonkeyPatch.context() as m:
            name = standin_device.register(m)
            train.train({str(ROOT / 'specs/lstm.yaml')!r}, {str(text)!r}, {str(tmp_path / 'two')!r}, {LM!r},
                        quiet=True, dtype="float64", backend=name)""")
    assert job.returncode == 0, job.stderr
    assert_close_params(params_of(tmp_path / "one"), params_of(tmp_path / "two"))
