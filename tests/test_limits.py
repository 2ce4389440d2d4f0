"""Resource limits and untrusted values (issue 8, items 12 and 14, and its traceback list):
command-line numbers outside their documented ranges, YAML 1.1 number forms, estimate-first
memory errors instead of a MemoryError, sampling that streams, and text from specs or data
printed with its control characters escaped."""
import itertools
import math
import time

import numpy as np
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

import rnndsl
from rnndsl.tools import cliargs, graphviz
from rnndsl.training import data, generate, optim
from rnndsl.semantics import inputs
from rnndsl.core import limits
from rnndsl.tools.cli import main
from rnndsl.tools.runs import _pieces
from rnndsl.tools.sample_cmd import _print_stream
from rnndsl.core.errors import DataError, SpecError
from rnndsl.frontend.scalars import resolve_plain

from conftest import ROOT

SPEC = ROOT / "specs" / "char_rnn.yaml"
ELMAN = (ROOT / "specs" / "elman.yaml").read_text()


def run(capsys, *argv) -> tuple:
    """(exit status, stdout, stderr) of the CLI; argparse's refusals exit 2."""
    try:
        rc = main([str(a) for a in argv])
    except SystemExit as stop:
        rc = stop.code
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return rc, out, err


# ---- command-line numbers ---------------------------------------------------------------------

BAD_ARGUMENTS = [
    ("gradcheck", "--batch", "0"), ("gradcheck", "--steps", "0"), ("gradcheck", "--seed", "-1"),
    ("gradcheck", "--tol", "nan"), ("gradcheck", "--tol", "inf"), ("gradcheck", "--tol", "-1e-6"),
    ("gradcheck", "--batch", "1" * 5000), ("bench", "--steps", "0"), ("bench", "--steps", "-3"),
    ("bench", "--steps", str(10**30)), ("bench", "--repeat", "0"), ("bench", "--threads", "-2"),
    ("bench", "--batch", "2.5"), ("compile", "--steps", "0"), ("compile", "--batch", "-1"),
    ("bench", "--workers", "1000"), ("train", "--workers", "0"),
]


@pytest.mark.parametrize("command,flag,value", BAD_ARGUMENTS)
def test_numbers_outside_their_range_are_refused_before_any_work(capsys, command, flag, value):
    rc, _, err = run(capsys, command, SPEC, flag, value)
    assert rc == 2 and f"argument {flag}: " in err and ("expected" in err or "workers" in err)


@pytest.mark.parametrize("flag,value", [("--temperature", "1e-310"), ("--temperature", "nan"),
                                        ("--temperature", "inf"), ("--temperature", "-1"),
                                        ("--temperature", "warm"), ("--length", "-1"),
                                        ("--length", str(limits.MAX_SAMPLE_LENGTH + 1)), ("--seed", "-5"),
                                        ("--index", "-1")])
def test_sample_arguments_are_checked_before_the_run_is_read(capsys, flag, value):
    rc, _, err = run(capsys, "sample", "no/such/run", flag, value)
    assert rc == 2 and f"argument {flag}: " in err


def test_temperature_zero_or_from_the_minimum_up():
    assert cliargs.temperature("0") == 0 and cliargs.temperature("0.001") == 0.001
    for value in (1e-4, -0.0 - 1, math.nan, math.inf, 1e-310):
        assert limits.temperature_problem(value)


def test_workers_are_capped_at_the_cores(capsys, monkeypatch):
    monkeypatch.setattr(cliargs, "cores", lambda: 2)
    rc, _, err = run(capsys, "train", SPEC, "--workers", "3")
    assert rc == 2 and "this machine has 2 cores" in err and "use 2 or fewer" in err


def test_the_python_api_checks_what_the_cli_checks():
    model = rnndsl.compile(SPEC)
    from rnndsl.tools.gradcheck import gradcheck
    for call, match in [(lambda: gradcheck(model, 5, 0), "batch must be"), (lambda: gradcheck(model, 0, 2), "steps"),
                        (lambda: gradcheck(model, 5, 2, seed=-1), "seed must be"),
                        (lambda: model.init_params(-1), "seed must be"),
                        (lambda: inputs.random_batch(model.spec, 5, 2.5), "batch must be")]:
        with pytest.raises(SpecError, match=match):
            call()


@pytest.mark.parametrize("key,value,message", [("epochs", "10000000", "epochs must be at most 1,000,000"),
                                               ("epochs", "1e18", "epochs must be at most"),
                                               ("seed", "-1", "seed must be a whole number, 0 or more"),
                                               ("batch", str(10**6), "batch must be at most"),
                                               ("bptt", "1:30", "ambiguous number 1:30")])
def test_training_settings_have_caps(key, value, message):
    from rnndsl.tools.cli import parse_settings
    with pytest.raises(SpecError, match=message):
        optim.settings_from((), parse_settings([f"{key}={value}"]))


# ---- YAML 1.1 surprises -----------------------------------------------------------------------

@pytest.mark.parametrize("text,message", [("1:30", "YAML 1.1 reads it as 90, YAML 1.2 as '1:30'"),
                                          ("017", "YAML 1.1 reads it as 15, YAML 1.2 as 17"),
                                          ("0o17", "YAML 1.1 reads it as '0o17', YAML 1.2 as 15"),
                                          ("0b101", "YAML 1.1 reads it as 5"), ("1_000", "reads it as 1000"),
                                          ("9" * 4301, "a number of 4,301 digits")])
def test_yaml_1_1_numbers_are_located_errors(text, message):
    with pytest.raises(SpecError, match=message) as info:
        rnndsl.load_spec(ELMAN.replace("H: 16", f"H: {text}"))
    assert info.value.line == 3


@pytest.mark.parametrize("text,value", [("1e-3", 0.001), ("yes", "yes"), ("on", "on"), ("2024-01-01", "2024-01-01"),
                                        ("0x1F", 31), ("00", 0), ("true", True), ("~", None), (".5", 0.5)])
def test_plain_scalars_read_as_yaml_1_2(text, value):
    assert resolve_plain(text) == value


def test_scalar_tags_other_than_str_are_refused(tmp_path):
    with pytest.raises(SpecError, match="unsupported YAML tag tag:yaml.org,2002:int"):
        rnndsl.load_spec(ELMAN.replace("H: 16", 'H: !!int "16"'))
    assert rnndsl.load_spec(ELMAN.replace("name: elman", "name: !!str 5")).name == "5"


@given(st.text(alphabet="0123456789+-._:eExobXB", max_size=12))
def test_no_plain_scalar_is_silently_another_number(text):
    """Whatever resolve_plain makes a number, YAML 1.1 reads as the same number or as text."""
    try:
        value = resolve_plain(text)
    except ValueError as e:
        assert e.args[0] and e.args[1]
        return
    try:
        old = yaml.safe_load(text)
    except (yaml.YAMLError, ValueError):
        return
    if isinstance(value, (int, float)) and isinstance(old, (int, float)) and not isinstance(old, bool):
        assert value == old or (math.isnan(value) and math.isnan(old))


@given(st.text(max_size=20))
def test_any_text_in_a_number_field_is_a_spec_error_or_a_spec(text):
    spec = ELMAN + "train: {lr: " + yaml.safe_dump(text, default_style=None).split("\n")[0] + "}\n"
    try:
        rnndsl.load_spec(spec)
    except SpecError:
        pass


def test_uniform_with_reversed_bounds_is_a_located_error():
    with pytest.raises(SpecError, match=r"uniform draws from \[5, -5\]") as info:
        rnndsl.load_spec(ELMAN.replace("init: zeros}", 'init: "uniform(5, -5)"}', 1))
    assert info.value.first.hint == "write uniform(-5, 5)"


# ---- memory: estimate first -------------------------------------------------------------------

@pytest.fixture
def small_machine(monkeypatch):
    """A machine with 1 GiB of memory, whatever this one has."""
    monkeypatch.setattr(limits, "machine_memory", lambda: limits.GiB)


def test_a_spec_whose_parameters_cannot_fit_is_refused_by_check(tmp_path, capsys, small_machine):
    spec = tmp_path / "huge.yaml"
    params = "".join(f"  W{i}: {{shape: [H, H]}}\n" for i in range(20))
    spec.write_text(ELMAN.replace("H: 16", "H: 31623").replace("params:\n", "params:\n" + params))
    rc, _, err = run(capsys, "check", spec)
    assert rc == 1 and "parameter values" in err and "needs about" in err and "this machine has 1.0 GiB" in err


def test_a_batch_that_cannot_fit_is_refused_before_it_is_allocated(capsys, small_machine):
    rc, _, err = run(capsys, "bench", SPEC, "--steps", "100000", "--batch", "4096")
    assert rc == 1 and "a batch of 4,096 sequences of 100,000 steps" in err and "needs about" in err


def test_a_vocabulary_sized_from_data_is_estimated_before_training(tmp_path, capsys, small_machine):
    text = tmp_path / "wide.txt"
    text.write_text("".join(chr(0x4E00 + i) for i in range(20_000)) * 2)
    rc, _, err = run(capsys, "train", SPEC, "--data", text, "--out", tmp_path / "run", "--quiet",
                     "--set", "batch=64", "--set", "bptt=100")
    assert rc == 1 and "one batch of 64 sequences of 100 steps of char_rnn (V=20000" in err
    assert "MemoryError" not in err


def test_batch_bytes_grows_with_the_vocabulary():
    small, wide = (inputs.batch_bytes(rnndsl.load_spec(SPEC, dims={"V": v}), 25, 16) for v in (100, 200_000))
    assert 2 * limits.GiB < wide < 3 * limits.GiB and small < wide / 1000


def test_a_vocabulary_has_a_cap(monkeypatch):
    monkeypatch.setattr(limits, "MAX_VOCAB", 10)
    with pytest.raises(DataError, match="holds 26 distinct char symbols; a vocabulary holds at most 10"):
        data.Vocab.build("abcdefghijklmnopqrstuvwxyz")


# ---- sampling streams -------------------------------------------------------------------------

def test_sampling_yields_each_symbol_as_it_is_drawn():
    model = rnndsl.compile(SPEC)
    start = time.perf_counter()
    first = list(itertools.islice(generate.stream(model, model.init_params(0), [0], limits.MAX_SAMPLE_LENGTH), 3))
    assert len(first) == 3 and time.perf_counter() - start < 5
    for length, temperature in ((limits.MAX_SAMPLE_LENGTH + 1, 1.0), (5, 1e-310), (5, math.nan)):
        with pytest.raises(SpecError):
            generate.stream(model, model.init_params(0), [0], length, temperature)


def test_sampled_text_keeps_newlines_and_escapes_control_characters(capsys):
    vocab = data.Vocab(("a", "\x1b", "\n", "\u202e"))
    _print_stream(_pieces(vocab, [0], iter([1, 2, 3, 0])))
    assert capsys.readouterr().out == "a\\x1b\n\\u202ea\n"


# ---- text from specs, printed -----------------------------------------------------------------

def test_check_escapes_control_characters_from_the_spec(tmp_path, capsys):
    spec = tmp_path / "x.yaml"
    spec.write_text(ELMAN.replace("name: elman", 'name: "\\e[2J\\e]52;c;aGk=\\a"'))
    rc, out, _ = run(capsys, "check", spec)
    assert rc == 0 and "\x1b" not in out and "\x07" not in out and "\\x1b[2J" in out


@given(st.text())
def test_a_dot_string_never_ends_early(name):
    quoted = graphviz.dot_string(name)
    inner = quoted[1:-1]
    assert quoted[0] == quoted[-1] == '"' and '"' not in inner and inner.isprintable()
    assert all(inner[i + 1].isalnum() for i, c in enumerate(inner) if c == "\\")     # never \" nor a last \\


def test_graph_escapes_the_name_in_every_format(tmp_path, capsys):
    spec = tmp_path / "x.yaml"
    spec.write_text(ELMAN.replace("name: elman", 'name: "a\\"b\\\\ \\e[31m"'))
    for form in ("text", "dot", "json"):
        rc, out, _ = run(capsys, "graph", spec, "--format", form)
        assert rc == 0 and "\x1b" not in out


def test_the_limits_are_read_at_each_use(monkeypatch):
    """docs/security.md: a limit of limits.py changed from Python takes effect at the next call."""
    monkeypatch.setattr(limits, "MAX_SPEC_BYTES", 100)
    with pytest.raises(rnndsl.SpecError, match="limit"):
        rnndsl.load_spec(ROOT / "specs" / "elman.yaml")
    monkeypatch.undo()
    rnndsl.load_spec(ROOT / "specs" / "elman.yaml")
