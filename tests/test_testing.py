"""rnndsl.testing as a user meets it: the battery on every shipped spec, a planted emitter bug
it must find and shrink, `rnndsl gradcheck --search` and the command it prints, the plugin."""
import shlex

import pytest
from hypothesis import settings

from rnndsl.backends.numpy.passes import Passes
from rnndsl.testing import battery
from rnndsl.testing.case import compiled
from rnndsl.tools.cli import main

from conftest import ROOT, SPECS

settings.register_profile("rnndsl-smoke", derandomize=True, max_examples=1, deadline=None, database=None)
EVERY_SPEC = [battery.forward, battery.padding]
# the whole battery on one spec of each kind: two directions, two axes with attention, CTC,
# dropout masks; the rest of the corpus gets the cheap checks (CI time)
WHOLE = ["birnn", "seq2seq_attention", "rnn_acoustic_ctc", "lstm_dropout"]


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.stem)
def test_the_battery_passes_on_every_shipped_spec(path):
    """One derandomized case per check (`pytest --rnndsl-spec` draws more)."""
    whole = path.stem in WHOLE
    for check in EVERY_SPEC + ([battery.gradients, battery.float32] if whole else []):
        battery.check_case(path, check, "rnndsl-smoke")
    if whole and battery.analyse(compiled(str(path), ()).spec).recurrences:
        battery.check_case(path, battery.truncation, "rnndsl-smoke", truncation=True)


@pytest.fixture
def dropped_input_mask(monkeypatch):
    """A planted bug: the NumPy emitter no longer masks inputs past each sequence's length, so
    a batch with shorter sequences feeds the garbage in its padding to a backward recurrence."""
    original = Passes._input
    monkeypatch.setattr(Passes, "_input", lambda self, b: original(self, b).split(" if _full_")[0])
    compiled.cache_clear()
    yield
    compiled.cache_clear()


BIRNN = str(ROOT / "specs" / "birnn.yaml")


def test_the_battery_finds_a_dropped_mask_and_shrinks_it(dropped_input_mask):
    settings.register_profile("rnndsl-planted", derandomize=True, max_examples=10, deadline=None, database=None,
                              report_multiple_bugs=False)
    with pytest.raises(Exception) as failure:
        battery.check_case(BIRNN, battery.forward, "rnndsl-planted")
    notes = "\n".join(getattr(failure.value, "__notes__", []))
    command = next(line for line in notes.splitlines() if line.startswith("reproduce: ")).removeprefix("reproduce: ")
    words = shlex.split(command)
    assert words[:3] == ["rnndsl", "gradcheck", BIRNN] and "--set" in words and "--lengths" in words
    lengths = [int(n) for n in words[words.index("--lengths") + 1].split(",")]
    steps = int(words[words.index("--steps") + 1])
    assert min(lengths) < steps, "only a ragged batch shows the bug"
    assert len(lengths) <= 2 and steps <= 3, f"shrunk: {command}"
    assert fails(words[1:]), "the printed command fails too"


def test_gradcheck_search_prints_a_command_that_fails(dropped_input_mask, capsys):
    assert main(["gradcheck", BIRNN, "--search", "10"]) == 1
    command = capsys.readouterr().out.strip().splitlines()[-1].strip()
    assert command.startswith(f"rnndsl gradcheck {BIRNN} --steps"), command
    assert fails(shlex.split(command)[1:])


def fails(argv: list) -> bool:
    """`rnndsl ARGV` reports a failed check (1) or crashes (the planted bug reads past an array)."""
    try:
        return main(argv) == 1
    except Exception:
        return True


def test_gradcheck_search_passes_a_correct_spec(capsys):
    assert main(["gradcheck", BIRNN, "--search", "3"]) == 0
    assert "3 cases searched: all pass" in capsys.readouterr().out


def test_gradcheck_search_holds_the_dims_set(dropped_input_mask, capsys):
    assert main(["gradcheck", BIRNN, "--search", "10", "--set", "H=3"]) == 1
    command = shlex.split(capsys.readouterr().out.strip().splitlines()[-1])
    assert "H=3" in [command[i + 1] for i, word in enumerate(command) if word == "--set"]


@pytest.mark.parametrize("lengths, message", [(["3"], "1 lengths for a batch of 2"), (["q=3,1"], "name an axis"),
                                              (["3,x"], "whole numbers")])
def test_gradcheck_lengths_are_checked(lengths, message, capsys):
    argv = ["gradcheck", BIRNN, "--steps", "3"] + [w for n in lengths for w in ("--lengths", n)]
    assert main(argv) != 0
    assert message in capsys.readouterr().err


def test_the_plugin_runs_the_battery_on_a_spec(pytester):
    pytester.makepyfile(test_unrelated="def test_unrelated():\n    assert False\n")
    result = pytester.runpytest("--rnndsl-spec", str(ROOT / "specs" / "elman.yaml"), "--rnndsl-profile", "rnndsl-ci",
                                "-k", "forward or padding")
    result.assert_outcomes(passed=2, deselected=3)


def test_importing_rnndsl_loads_neither_pytest_nor_hypothesis():
    import subprocess, sys
    code = "import sys, rnndsl, rnndsl.testing.plugin; print('hypothesis' in sys.modules, 'numpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split()[0] == "False"
