"""The training settings' schema, written once: every `train:` key with its type, default and
range. The checker (check.py) holds a spec's `train:` section to it with located errors; the
optimizers (optim.py) hold `--set` overrides and a run's run.json to the same rules.

    key, value  --problem-->  '' or what the value must be ("a whole number above 0", ...)
"""
from dataclasses import asdict, dataclass, fields
import math
import typing

from ..core import limits


@dataclass(frozen=True)
class Settings:
    """Every `train:` key with its value for this run. None means "not limited / not set":
    steps None trains for `epochs`; bptt None takes the data's default; eval_every None
    evaluates once per epoch. truncate 0 backpropagates through whole windows. clip 0 is off."""
    optimizer: str = "adam"
    lr: float = 0.001
    clip: float = 0.0
    bptt: int | None = None
    batch: int = 16
    epochs: int = 10
    steps: int | None = None
    momentum: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0
    schedule: str = "constant"
    decay: float = 0.5
    decay_every: int = 1
    patience: int = 0
    seed: int = 0
    eval_every: int | None = None
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    warmup: int = 0
    truncate: int = 0
    bucket: bool = False

    def as_dict(self) -> dict:
        """JSON-ready: for a checkpoint's metadata and the metrics log."""
        return asdict(self)


def _value_type(hint) -> type:
    """int for `int | None`: the type a given value must have."""
    return next((t for t in typing.get_args(hint) if t is not type(None)), hint)


# key -> the type of its value, derived from Settings (the one place the keys are written)
TRAIN_KEYS = {f.name: _value_type(f.type) for f in fields(Settings)}
OPTIMIZERS = ("sgd", "adagrad", "rmsprop", "adam")
SCHEDULES = ("constant", "step", "exponential", "plateau", "cosine")
NAMES = {"optimizer": OPTIMIZERS, "schedule": SCHEDULES}
POSITIVE = {"lr", "batch", "epochs", "steps", "bptt", "eps", "decay_every", "eval_every"}
BELOW_ONE = {"momentum", "beta1", "beta2"}
# Upper bounds of the whole-number settings (limits.py), so no run asks for 10^18 epochs.
CAPS = {"epochs": limits.MAX_EPOCHS, "batch": limits.MAX_BATCH, "seed": limits.MAX_SEED,
        **dict.fromkeys(("bptt", "truncate"), limits.MAX_STEPS),
        **dict.fromkeys(("steps", "eval_every", "decay_every", "warmup", "patience"), limits.MAX_TRAIN_STEPS)}
# Defaults that depend on the optimizer, used where neither the spec nor --set gives the key.
OPTIMIZER_DEFAULTS = {"sgd": {"lr": 0.1}, "adagrad": {"lr": 0.01}, "rmsprop": {"lr": 0.001, "beta2": 0.9},
                      "adam": {"lr": 0.001}}
# Keys that only some optimizers / schedules read; giving one elsewhere is a mistake.
OPTIMIZER_KEYS = {"sgd": {"momentum", "nesterov"}, "adagrad": {"eps"}, "rmsprop": {"beta2", "eps"},
                  "adam": {"beta1", "beta2", "eps"}}
SCHEDULE_KEYS = {"constant": set(), "step": {"decay", "decay_every"},
                 "exponential": {"decay", "decay_every"}, "plateau": {"decay", "patience"},
                 "cosine": set()}


def problem(key: str, value) -> str:
    """'' if `value` suits the setting `key`, else what it must be."""
    want = TRAIN_KEYS[key]
    if want is str:
        return "" if value in NAMES[key] else f"one of {', '.join(NAMES[key])}"
    if want is bool:
        return "" if isinstance(value, bool) else "true or false"
    number = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not number or (want is int and value != int(value)):
        return ("a whole number" if want is int else "a number") + _range(key)
    low_ok = value > 0 if key in POSITIVE else value >= 0
    if not low_ok or (key in BELOW_ONE and value >= 1) or (key == "decay" and not 0 < value <= 1):
        return ("a whole number" if want is int else "a number") + _range(key)
    if value > CAPS.get(key, math.inf):
        return f"at most {CAPS[key]:,}"
    return ""


def _range(key: str) -> str:
    if key in BELOW_ONE:
        return " from 0 up to (not including) 1"
    if key == "decay":
        return " above 0 and at most 1"
    return " above 0" if key in POSITIVE else ", 0 or more"
