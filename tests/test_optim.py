"""Optimizers, clipping, schedules and settings against hand-written NumPy references."""
import dataclasses
import math

import numpy as np
import pytest
import yaml
from hypothesis import given, strategies as st

import rnndsl
from rnndsl.training import optim

from rnndsl.frontend.settings import TRAIN_KEYS
from rnndsl.core.errors import DataError, SpecError
from rnndsl.training.optim import (Schedule, Settings, clip_global_norm, make_optimizer, restore,
                          settings_from, training_state)

from conftest import ROOT, SPECS

G1 = {"w": np.array([[0.5, -1.0], [2.0, 0.25]]), "b": np.array([0.1, -0.3])}
G2 = {"w": np.array([[-0.2, 0.4], [1.0, -0.5]]), "b": np.array([0.6, 0.0])}
P0 = {"w": np.array([[1.0, 2.0], [-1.0, 0.5]]), "b": np.array([0.0, 1.0])}


def fresh(dtype=np.float64) -> dict:
    return {k: v.astype(dtype) for k, v in P0.items()}


def run(train: dict, steps=(G1, G2), lr=None, dtype=np.float64) -> dict:
    """Parameters after applying `steps` with the optimizer `train` describes."""
    s = settings_from(tuple(train.items()))
    params = fresh(dtype)
    opt = make_optimizer(s, params)
    for g in steps:
        opt.step(params, g, s.lr if lr is None else lr)
    return params


def assert_close(a: dict, b: dict, rtol=1e-12):
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=rtol, atol=1e-15)


# ---- the optimizers' arithmetic, two steps each ---------------------------------------------------

def test_sgd_two_steps():
    want = {k: P0[k] - 0.1 * G1[k] - 0.1 * G2[k] for k in P0}
    assert_close(run({"optimizer": "sgd", "lr": 0.1}), want)


def test_sgd_momentum_zero_is_plain_sgd():
    plain = run({"optimizer": "sgd", "lr": 0.1})
    assert all(np.array_equal(plain[k], run({"optimizer": "sgd", "lr": 0.1, "momentum": 0.0})[k]) for k in P0)


def test_sgd_momentum_two_steps():
    mu, lr = 0.9, 0.1
    v1 = {k: G1[k] for k in P0}
    v2 = {k: mu * v1[k] + G2[k] for k in P0}
    want = {k: P0[k] - lr * v1[k] - lr * v2[k] for k in P0}
    assert_close(run({"optimizer": "sgd", "lr": lr, "momentum": mu}), want)


def test_nesterov_two_steps_and_differs():
    mu, lr = 0.9, 0.1
    v1 = {k: G1[k] for k in P0}
    v2 = {k: mu * v1[k] + G2[k] for k in P0}
    want = {k: P0[k] - lr * (G1[k] + mu * v1[k]) - lr * (G2[k] + mu * v2[k]) for k in P0}
    got = run({"optimizer": "sgd", "lr": lr, "momentum": mu, "nesterov": True})
    assert_close(got, want)
    heavy_ball = run({"optimizer": "sgd", "lr": lr, "momentum": mu})
    assert not np.allclose(got["w"], heavy_ball["w"])


def test_adagrad_two_steps():
    lr, eps = 0.1, 1e-8
    want = {}
    for k in P0:
        s1 = G1[k] ** 2
        s2 = s1 + G2[k] ** 2
        want[k] = P0[k] - lr * G1[k] / (np.sqrt(s1) + eps) - lr * G2[k] / (np.sqrt(s2) + eps)
    assert_close(run({"optimizer": "adagrad", "lr": lr}), want)


def test_rmsprop_two_steps_with_its_default_decay():
    lr, rho, eps = 0.01, 0.9, 1e-8
    assert settings_from((("optimizer", "rmsprop"),)).beta2 == rho
    want = {}
    for k in P0:
        s1 = (1 - rho) * G1[k] ** 2
        s2 = rho * s1 + (1 - rho) * G2[k] ** 2
        want[k] = P0[k] - lr * G1[k] / (np.sqrt(s1) + eps) - lr * G2[k] / (np.sqrt(s2) + eps)
    assert_close(run({"optimizer": "rmsprop", "lr": lr}), want)


def test_adam_two_steps_follow_kingma_and_ba():
    """Algorithm 1 of Kingma & Ba (2015), written out for t = 1, 2."""
    a, b1, b2, eps = 0.001, 0.9, 0.999, 1e-8
    want = {}
    for k in P0:
        p, m, v = P0[k].copy(), 0.0, 0.0
        for t, g in ((1, G1[k]), (2, G2[k])):
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * g * g
            p = p - a * (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)
        want[k] = p
    assert_close(run({"optimizer": "adam", "lr": a}), want)


def test_adam_first_step_moves_each_weight_by_lr():
    """Bias correction makes the first step lr * sign(g) (up to eps)."""
    got = run({"optimizer": "adam", "lr": 0.01}, steps=(G1,))
    assert_close({k: P0[k] - got[k] for k in P0}, {k: 0.01 * np.sign(G1[k]) for k in P0}, rtol=1e-6)


@pytest.mark.parametrize("optimizer", ["sgd", "adagrad", "rmsprop", "adam"])
def test_weight_decay_is_decoupled_and_shrinks(optimizer):
    zero = {k: np.zeros_like(v) for k, v in P0.items()}
    got = run({"optimizer": optimizer, "lr": 0.1, "weight_decay": 0.5}, steps=(zero, zero))
    assert_close(got, {k: P0[k] * (1 - 0.1 * 0.5) ** 2 for k in P0})
    assert np.abs(got["w"]).sum() < np.abs(P0["w"]).sum()


@pytest.mark.parametrize("optimizer", ["sgd", "adagrad", "rmsprop", "adam"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_updates_in_place_keep_dtype(optimizer, dtype):
    params = fresh(dtype)
    arrays = dict(params)
    opt = make_optimizer(settings_from((("optimizer", optimizer),)), params)
    opt.step(params, G1, 0.1)                                   # float64 grads into float32 params
    assert all(params[k] is arrays[k] and params[k].dtype == dtype for k in params)
    assert all(a.dtype == dtype for key, a in opt.state_dict().items() if key != "step")
    assert not np.array_equal(params["w"], P0["w"].astype(dtype))


@pytest.mark.parametrize("train", [{"optimizer": "sgd", "momentum": 0.9, "nesterov": True},
                                   {"optimizer": "adagrad"}, {"optimizer": "rmsprop"}, {"optimizer": "adam"}])
def test_state_round_trip_continues_exactly(train):
    s = settings_from(tuple(train.items()))
    a = fresh(np.float32)
    opt_a = make_optimizer(s, a)
    opt_a.step(a, G1, 0.01)
    b = {k: v.copy() for k, v in a.items()}
    opt_b = make_optimizer(s, b)
    opt_b.load_state(opt_a.state_dict())
    assert opt_b.t == 1
    opt_a.step(a, G2, 0.01)
    opt_b.step(b, G2, 0.01)
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_state_of_another_optimizer_is_refused():
    params = fresh()
    adam = make_optimizer(settings_from((("optimizer", "adam"),)), params)
    sgd = make_optimizer(settings_from((("optimizer", "sgd"), ("momentum", 0.9))), params)
    with pytest.raises(DataError, match=r"missing velocity/b, velocity/w; unexpected m/b"):
        sgd.load_state(adam.state_dict())
    state = adam.state_dict()
    state["m/w"] = np.zeros(3)
    with pytest.raises(DataError, match=r"m/w has shape \(3,\), expected \(2, 2\)"):
        adam.load_state(state)


# ---- clipping ----------------------------------------------------------------------------------

def test_clip_uses_the_norm_of_all_gradients_together():
    grads = {"a": np.array([3.0]), "b": np.array([[4.0]])}
    clipped, norm = clip_global_norm(grads, 1.0)
    assert norm == 5.0
    np.testing.assert_allclose([clipped["a"][0], clipped["b"][0, 0]], [0.6, 0.8])
    same, norm = clip_global_norm(grads, 10.0)
    assert same is grads and norm == 5.0
    _, norm = clip_global_norm(grads, 0.0)          # 0: measure only
    assert norm == 5.0


def test_clip_keeps_dtype_and_does_not_overflow_float32():
    grads = {"a": np.full(4, 1e30, np.float32)}
    clipped, norm = clip_global_norm(grads, 1.0)
    assert math.isclose(norm, 2e30, rel_tol=1e-6) and clipped["a"].dtype == np.float32
    np.testing.assert_allclose(clipped["a"], 0.5, rtol=1e-6)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_clip_reports_a_non_finite_norm(bad):
    grads = {"a": np.array([1.0, bad])}
    out, norm = clip_global_norm(grads, 1.0)
    assert not math.isfinite(norm) and out is grads


# ---- schedules ---------------------------------------------------------------------------------

def schedule(**train) -> Schedule:
    return Schedule(settings_from(tuple({"optimizer": "sgd", "lr": 1.0, **train}.items())))


def test_constant_and_step_and_exponential_by_epoch():
    assert [schedule().lr(s, e) for s, e in ((0, 0), (100, 9))] == [1.0, 1.0]
    step = schedule(schedule="step", decay=0.5, decay_every=2)
    assert [step.lr(0, e) for e in range(5)] == [1.0, 1.0, 0.5, 0.5, 0.25]
    expo = schedule(schedule="exponential", decay=0.25, decay_every=2)
    np.testing.assert_allclose([expo.lr(0, e) for e in range(3)], [1.0, 0.5, 0.25])


def test_decay_counts_steps_when_the_run_is_bounded_by_steps():
    s = schedule(schedule="step", decay=0.1, decay_every=10, steps=100)
    np.testing.assert_allclose([s.lr(9), s.lr(10), s.lr(25, epoch=0)], [1.0, 0.1, 0.01])


def test_linear_warmup():
    s = schedule(warmup=4)
    assert [s.lr(i) for i in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]


def test_cosine_after_warmup_reaches_zero_at_the_last_update():
    s = Schedule(settings_from((("optimizer", "sgd"), ("lr", 2.0), ("schedule", "cosine"), ("warmup", 2))), total=7)
    # updates 0-1 warm up; 2..6 follow (1 + cos(pi k / 4)) / 2 for k = 0..4, ending at 0
    want = [1.0, 2.0] + [1.0 + np.cos(np.pi * k / 4) for k in range(5)]
    np.testing.assert_allclose([s.lr(i) for i in range(7)], want, atol=1e-12)
    assert s.lr(50) == 0.0                # past the end it stays at 0, never turns back up


def test_cosine_reads_no_decay_keys():
    with pytest.raises(SpecError, match="decay has no effect with schedule cosine"):
        settings_from((("schedule", "cosine"), ("decay", 0.5)))


def test_plateau_reduces_after_patience_evaluations_without_improvement():
    s = schedule(schedule="plateau", decay=0.5, patience=1)
    seen = [s.observe(v) for v in (3.0, 2.0, 2.5, 2.1, 2.2, 1.0, float("nan"), 1.0)]
    assert seen == [False, False, False, True, False, False, False, True]
    assert s.lr(0) == 0.25
    assert not schedule().observe(1.0)


def test_schedule_state_round_trips_with_the_optimizer():
    s = settings_from((("optimizer", "adam"), ("schedule", "plateau"), ("patience", 2)))
    params = fresh()
    opt, sched = make_optimizer(s, params), Schedule(s)
    opt.step(params, G1, 0.1)
    for v in (2.0, 3.0, 3.0):
        sched.observe(v)
    state = training_state(opt, sched)
    opt2, sched2 = make_optimizer(s, fresh()), Schedule(s)
    restore(opt2, sched2, state)
    assert (sched2.best, sched2.bad, sched2.scale) == (2.0, 2, 1.0)
    assert sched2.observe(3.0) and sched2.lr(0) == sched.lr(0) / 2
    assert all(np.array_equal(v, training_state(opt2, Schedule(s))[k]) for k, v in state.items()
               if not k.startswith("schedule/"))


# ---- settings ----------------------------------------------------------------------------------

def test_settings_cover_every_train_key():
    assert {f.name for f in dataclasses.fields(Settings)} == set(TRAIN_KEYS)


def test_settings_from_spec_then_overrides():
    spec = (("optimizer", "sgd"), ("lr", 0.1), ("momentum", 0.9), ("epochs", 3))
    s = settings_from(spec, {"lr": "0.01", "nesterov": "true", "batch": "8", "epochs": 5})
    assert (s.optimizer, s.lr, s.momentum, s.nesterov, s.batch, s.epochs) == ("sgd", 0.01, 0.9, True, 8, 5)
    assert isinstance(s.lr, float) and isinstance(s.batch, int)
    assert settings_from((("optimizer", "sgd"),)).lr == 0.1          # per-optimizer default
    assert settings_from((), {"lr": 1}).lr == 1.0 and settings_from().optimizer == "adam"


@pytest.mark.parametrize("overrides, message, hint", [
    ({"epoch": "3"}, "--set epoch: not a training setting", "did you mean epochs?"),
    ({"lr": "fast"}, "train: lr must be a number above 0, got 'fast'", "--set"),
    ({"lr": "-1"}, "train: lr must be a number above 0, got -1.0", ""),
    ({"batch": "2.5"}, "train: batch must be a whole number above 0, got 2.5", ""),
    ({"nesterov": "maybe"}, "train: nesterov must be true or false", ""),
    ({"optimizer": "adamw"}, "train: optimizer must be one of sgd, adagrad, rmsprop, adam, got 'adamw'",
     "did you mean adam?"),
    ({"schedule": "plateu"}, "train: schedule must be one of", "did you mean plateau?"),
    ({"momentum": "1"}, "train: momentum must be a number from 0 up to (not including) 1", ""),
    ({"decay": "0"}, "train: decay must be a number above 0 and at most 1", ""),
    ({"momentum": "0.9"}, "train: momentum has no effect with optimizer adam", "read by optimizer sgd"),
    ({"patience": "3"}, "train: patience has no effect with schedule constant", "schedule plateau"),
])
def test_bad_settings_are_spec_errors(overrides, message, hint):
    with pytest.raises(SpecError) as err:
        settings_from((), overrides)
    assert err.value.message.startswith(message) and hint in err.value.first.hint


def test_nesterov_needs_momentum():
    with pytest.raises(SpecError, match="nesterov needs momentum"):
        settings_from((("optimizer", "sgd"), ("nesterov", True)))


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.stem)
def test_every_example_specs_train_section_is_accepted(path):
    train = yaml.safe_load(path.read_text()).get("train") or {}
    settings_from(tuple(train.items()))


_values = st.one_of(st.integers(-3, 10**7), st.floats(allow_nan=True, allow_infinity=True), st.booleans(),
                    st.sampled_from(["adam", "sgd", "plateau", "step", "fast", ""]))


@given(st.sampled_from(sorted(TRAIN_KEYS)), _values)
def test_the_spec_and_set_hold_a_setting_to_one_rule(key, value):
    """settings.py is the one schema: a spec's train: value is refused by the checker exactly
    when the same value given with --set is refused by the optimizer's settings."""
    text = ELMAN_TRAIN.replace("TRAIN", yaml.safe_dump({key: value}, default_flow_style=True).strip())
    try:
        rnndsl.loads_spec(text)
        spec_ok = True
    except SpecError as exc:
        assert exc.message.startswith(f"train: {key} must be"), exc.message
        spec_ok = False
    try:
        optim._check_value(key, value)
        set_ok = True
    except SpecError:
        set_ok = False
    assert spec_ok == set_ok


ELMAN_TRAIN = (ROOT / "specs" / "elman.yaml").read_text().split("train:")[0] + "train: TRAIN\n"
