"""Training settings, optimizers, gradient clipping and learning-rate schedules.

    spec `train:` + CLI --set  --settings_from-->  Settings
    Settings x params          --make_optimizer--> Optimizer (sgd | adagrad | rmsprop | adam)
    Settings                   --Schedule-------->  lr(step, epoch), observe(val_loss)

Parameters and gradients are dicts name -> array of one array module (NumPy, or CuPy's on a
GPU: the optimizer's `xp`). Optimizers update the parameter arrays in place and keep their dtype. Every piece of state (optimizer slots, step count, schedule) is a
flat dict name -> ndarray, so a checkpoint stores it without pickle and `load_state` restores
it bit for bit.

Weight decay is decoupled (Loshchilov & Hutter, "AdamW"): every step first shrinks each
parameter by `p *= 1 - lr * weight_decay`, then applies the optimizer's gradient update. For
plain SGD this equals L2 regularisation; for the adaptive optimizers the decay is not rescaled
by the gradient statistics. It applies to every parameter, biases included.
"""
from __future__ import annotations

import math

import numpy as np

from ..core.errors import DataError, SpecError, did_you_mean
from ..runtime import device
from ..frontend.settings import (OPTIMIZER_DEFAULTS, OPTIMIZER_KEYS, OPTIMIZERS, SCHEDULE_KEYS, SCHEDULES, TRAIN_KEYS,
                       Settings, problem)

PLATEAU_THRESHOLD = 1e-4        # a validation loss must beat the best by this fraction to count


# ---- settings ----------------------------------------------------------------------------------

_BOOLS = {**dict.fromkeys(("true", "yes", "on", "1"), True),
          **dict.fromkeys(("false", "no", "off", "0"), False)}


def settings_from(spec_train: tuple = (), overrides: dict | None = None) -> Settings:
    """The run's settings: defaults, then the spec's `train:` pairs, then `overrides` (the
    CLI's --set, values as text or typed). Raises SpecError for an unknown key or a bad value."""
    overrides = overrides or {}
    given = {key: value for key, value in spec_train if not _dropped_by(key, overrides)}
    for key, value in overrides.items():
        if key not in TRAIN_KEYS:
            raise SpecError.at(None, f"--set {key}: not a training setting",
                               did_you_mean(key, TRAIN_KEYS) or f"training settings: {', '.join(TRAIN_KEYS)}")
        given[key] = _parse(key, value)
    for key, value in given.items():
        _check_value(key, value)
    _check_combination(given)
    typed = {key: TRAIN_KEYS[key](value) for key, value in given.items()}
    return Settings(**{**OPTIMIZER_DEFAULTS[typed.get("optimizer", Settings.optimizer)], **typed})


def _dropped_by(key: str, overrides: dict) -> bool:
    """A spec key that belongs to the optimizer or schedule an override replaces (the spec's
    momentum when --set optimizer=adam): it goes with what it belonged to."""
    for owner, table in (("optimizer", OPTIMIZER_KEYS), ("schedule", SCHEDULE_KEYS)):
        if owner in overrides and key not in overrides and any(key in keys for keys in table.values()):
            return key not in table.get(str(overrides[owner]), set())
    return False


def _parse(key: str, value):
    """An override's value in the key's type (from text such as '0.01' or 'true')."""
    want = TRAIN_KEYS[key]
    if want is bool and isinstance(value, int) and not isinstance(value, bool) and value in (0, 1):
        return bool(value)                        # --set bucket=1 arrives as the int 1
    if not isinstance(value, str) or want is str:
        return value
    text = value.strip().lower()
    if want is bool:
        if text in _BOOLS:
            return _BOOLS[text]
        raise _bad(key, value, problem(key, value))
    try:
        number = float(text)
    except ValueError:
        raise _bad(key, value, problem(key, value)) from None
    return int(number) if want is int and number.is_integer() else number


def _check_value(key: str, value) -> None:
    """Raise unless `value` has the key's type and range (settings.problem)."""
    what = problem(key, value)
    if what.startswith("at most"):
        raise SpecError.at(None, f"train: {key} must be {what}, got {value!r}",
                           "the limits are in rnndsl/core/limits.py (docs/security.md lists them)")
    if what.startswith("one of"):
        names = OPTIMIZERS if key == "optimizer" else SCHEDULES
        raise SpecError.at(None, f"train: {key} must be {what}, got {value!r}", did_you_mean(str(value), names))
    if what:
        raise _bad(key, value, what)


def _bad(key: str, value, what: str) -> SpecError:
    return SpecError.at(None, f"train: {key} must be {what}, got {value!r}",
                        "set it in the spec's train: section or with --set KEY=VALUE")


def _check_combination(given: dict) -> None:
    """Refuse keys the chosen optimizer or schedule would silently ignore."""
    for owner, table in (("optimizer", OPTIMIZER_KEYS), ("schedule", SCHEDULE_KEYS)):
        chosen = given.get(owner, getattr(Settings, owner))
        for key in given:
            users = [name for name, keys in table.items() if key in keys]
            if users and chosen not in users:
                raise SpecError.at(None, f"train: {key} has no effect with {owner} {chosen}",
                                   f"{key} is read by {owner} {' or '.join(users)}; "
                                   f"remove it or change {owner}")
    if given.get("nesterov") and not given.get("momentum"):
        raise SpecError.at(None, "train: nesterov needs momentum above 0", "add e.g. momentum: 0.9")


# ---- gradient clipping ---------------------------------------------------------------------------

def global_norm(grads: dict, xp=np) -> float:
    """The L2 norm of all gradients together, summed in float64 (no float32 overflow) in the
    gradients' array module `xp`: one number reaches the host, not the gradients."""
    total = sum(xp.sum(xp.square(g, dtype=xp.float64)) for g in grads.values())
    return math.sqrt(float(total))


def clip_global_norm(grads: dict, max_norm: float, xp=np) -> tuple:
    """(grads scaled so their global norm is at most `max_norm`, the norm before clipping).
    max_norm 0 only measures. A NaN or infinite norm returns the gradients untouched: the
    caller must check `math.isfinite(norm)` and skip the step."""
    norm = global_norm(grads, xp)
    if max_norm <= 0 or not math.isfinite(norm) or norm <= max_norm:
        return grads, norm
    scale = max_norm / norm
    return {name: g * g.dtype.type(scale) for name, g in grads.items()}, norm


# ---- optimizers ----------------------------------------------------------------------------------

class Optimizer:
    """Updates parameters in place. `slots` name the per-parameter state arrays; the state is
    {"step": int64 scalar, "<slot>/<param>": array of the parameter's shape and dtype}, kept in
    the parameters' array module `xp`; state_dict() gives host copies."""
    slots: tuple = ()

    def __init__(self, settings: Settings, params: dict, xp=np):
        self.settings, self.xp = settings, xp
        self.t = 0
        self.state = {slot: {n: xp.zeros_like(p) for n, p in params.items()} for slot in self.slots}

    def step(self, params: dict, grads: dict, lr: float) -> None:
        """One update of every parameter with learning rate `lr`."""
        self.t += 1
        shrink = 1.0 - lr * self.settings.weight_decay
        for name, p in params.items():
            g = self.xp.asarray(grads[name], dtype=p.dtype)
            if shrink != 1.0:
                p *= shrink
            self.update(p, g, lr, {slot: self.state[slot][name] for slot in self.slots})

    def update(self, p: np.ndarray, g: np.ndarray, lr: float, s: dict) -> None:
        raise NotImplementedError

    def state_dict(self) -> dict:
        """Host copies of the state, flat: what a checkpoint stores under opt/."""
        out = {"step": np.asarray(self.t, dtype=np.int64)}
        for slot, arrays in self.state.items():
            out.update({f"{slot}/{name}": np.array(device.to_host(a)) for name, a in arrays.items()})
        return out

    def load_state(self, state: dict) -> None:
        """Restore a `state_dict()` exactly; DataError if it belongs to another optimizer or model."""
        want = self.state_dict()
        _same_keys(f"{type(self).__name__} state", want, state)
        for key, a in want.items():
            if np.shape(state[key]) != a.shape:
                raise DataError(f"optimizer state {key} has shape {np.shape(state[key])}, expected {a.shape}")
        self.t = int(state["step"])
        for slot, arrays in self.state.items():
            for name, a in arrays.items():
                device.put(self.xp, a, state[f"{slot}/{name}"])


class SGD(Optimizer):
    """p -= lr * g; with momentum mu: v = mu v + g, p -= lr * v (Nesterov: p -= lr * (g + mu v))."""

    def __init__(self, settings: Settings, params: dict, xp=np):
        self.slots = ("velocity",) if settings.momentum else ()
        super().__init__(settings, params, xp)

    def update(self, p, g, lr, s):
        mu = self.settings.momentum
        if not mu:
            p -= lr * g
            return
        v = s["velocity"]
        v *= mu
        v += g
        p -= lr * (g + mu * v) if self.settings.nesterov else lr * v


class Adagrad(Optimizer):
    """G += g^2; p -= lr * g / (sqrt(G) + eps)  (Duchi et al. 2011)."""
    slots = ("sum_sq",)

    def update(self, p, g, lr, s):
        s["sum_sq"] += g * g
        p -= lr * g / (self.xp.sqrt(s["sum_sq"]) + self.settings.eps)


class RMSProp(Optimizer):
    """s = beta2 s + (1 - beta2) g^2; p -= lr * g / (sqrt(s) + eps)  (Tieleman & Hinton 2012)."""
    slots = ("mean_sq",)

    def update(self, p, g, lr, s):
        rho = self.settings.beta2
        s["mean_sq"] *= rho
        s["mean_sq"] += (1 - rho) * g * g
        p -= lr * g / (self.xp.sqrt(s["mean_sq"]) + self.settings.eps)


class Adam(Optimizer):
    """Kingma & Ba 2015, Algorithm 1: m, v moving averages of g and g^2, bias-corrected by
    1 - beta^t; p -= lr * m_hat / (sqrt(v_hat) + eps)."""
    slots = ("m", "v")

    def update(self, p, g, lr, s):
        b1, b2, t = self.settings.beta1, self.settings.beta2, self.t
        s["m"] *= b1
        s["m"] += (1 - b1) * g
        s["v"] *= b2
        s["v"] += (1 - b2) * g * g
        m_hat = s["m"] / (1 - b1 ** t)
        v_hat = s["v"] / (1 - b2 ** t)
        p -= lr * m_hat / (self.xp.sqrt(v_hat) + self.settings.eps)


OPTIMIZER_CLASSES = {"sgd": SGD, "adagrad": Adagrad, "rmsprop": RMSProp, "adam": Adam}


def make_optimizer(settings: Settings, params: dict, xp=np) -> Optimizer:
    """The optimizer `settings.optimizer` names, with zeroed state shaped like `params`, in
    their array module `xp`."""
    return OPTIMIZER_CLASSES[settings.optimizer](settings, params, xp)


def _same_keys(what: str, want: dict, got: dict) -> None:
    missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
    if missing or extra:
        parts = ([f"missing {', '.join(missing)}"] if missing else []) + \
                ([f"unexpected {', '.join(extra)}"] if extra else [])
        raise DataError(f"{what} does not match: " + "; ".join(parts),
                        "resume with the optimizer settings the run was trained with, or start a new run")


# ---- learning-rate schedules ---------------------------------------------------------------------

class Schedule:
    """lr = settings.lr x warmup x decay x plateau scale.

    * warmup: linear from lr/warmup at step 0 to lr at step warmup-1 (steps count updates).
    * step: x decay ** floor(n / decay_every); exponential: x decay ** (n / decay_every), where n
      counts steps when the run is bounded by `steps`, else epochs.
    * plateau: `observe(val_loss)` after each evaluation; after more than `patience`
      evaluations in a row without improvement, the rate is multiplied by `decay`.
    * cosine (Loshchilov & Hutter 2017, SGDR without restarts): after the warmup, x
      (1 + cos(pi n / N)) / 2, n counting updates since the warmup and N the updates left after
      it of the run's `total` (from lr down to 0 at the last update).
    """

    def __init__(self, settings: Settings, total: int = 1):
        self.settings, self.total = settings, max(1, total)
        self.by_steps = settings.steps is not None
        self.best, self.bad, self.scale = math.inf, 0, 1.0

    def lr(self, step: int, epoch: int = 0) -> float:
        """The learning rate for update number `step` (from 0) in epoch `epoch` (from 0)."""
        s = self.settings
        rate = s.lr * self.scale
        if s.warmup and step < s.warmup:
            rate *= (step + 1) / s.warmup
        n = step if self.by_steps else epoch
        if s.schedule == "step":
            rate *= s.decay ** (n // s.decay_every)
        elif s.schedule == "exponential":
            rate *= s.decay ** (n / s.decay_every)
        elif s.schedule == "cosine":
            rate *= self._cosine(step)
        return rate

    def _cosine(self, step: int) -> float:
        """The cosine factor: 1 until the warmup ends, 0 at the run's last update."""
        span = max(1, self.total - self.settings.warmup - 1)
        done = min(max(0, step - self.settings.warmup), span)
        return 0.5 * (1.0 + math.cos(math.pi * done / span))

    def observe(self, val_loss: float) -> bool:
        """Record a validation loss; True when this lowered the rate (plateau schedule only)."""
        if self.settings.schedule != "plateau":
            return False
        if self._improves(val_loss):
            self.best, self.bad = float(val_loss), 0
            return False
        self.bad += 1                      # NaN counts as no improvement
        if self.bad <= self.settings.patience:
            return False
        self.scale *= self.settings.decay
        self.bad = 0
        return True

    def _improves(self, val_loss: float) -> bool:
        if math.isinf(self.best):
            return val_loss < self.best
        return val_loss < self.best - PLATEAU_THRESHOLD * abs(self.best)

    def state_dict(self) -> dict:
        return {"best": np.asarray(self.best, np.float64), "bad": np.asarray(self.bad, np.int64),
                "scale": np.asarray(self.scale, np.float64)}

    def load_state(self, state: dict) -> None:
        _same_keys("schedule state", self.state_dict(), state)
        self.best, self.bad, self.scale = float(state["best"]), int(state["bad"]), float(state["scale"])


def training_state(optimizer: Optimizer, schedule: Schedule) -> dict:
    """Optimizer and schedule state in one flat dict (schedule keys under schedule/)."""
    return {**optimizer.state_dict(), **{f"schedule/{k}": v for k, v in schedule.state_dict().items()}}


def restore(optimizer: Optimizer, schedule: Schedule, state: dict) -> None:
    """Undo `training_state`: load each part; DataError when the state does not fit."""
    prefix = "schedule/"
    schedule.load_state({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)})
    optimizer.load_state({k: v for k, v in state.items() if not k.startswith(prefix)})
