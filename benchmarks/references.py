"""The PyTorch networks benchmarks/run.py compares rnndsl with, loaded with rnndsl's initial
weights and the same data, so that both compute the same loss (run.py checks it).

`reference(shape, run)` gives a dict with the closures `loss`, `forward` and `train`
(forward + backward), or None when torch is not installed. torch is imported only here, when
called. `COMPARED[kind]` says in words what each case compares; run.py prints it.
"""
from __future__ import annotations

import numpy as np

from rnndsl.tools import bench

COMPARED = {
    "lstm": "torch.nn.LSTM + nn.Linear + cross_entropy",
    "rnn": "torch.nn.RNN(tanh) + nn.Linear + cross_entropy",
    "gru": "torch.nn.GRU + nn.Linear + cross_entropy",
    "deepspeech": "the shipped specs/deepspeech.yaml, whole (context window, 3 clipped-ReLU layers, "
                  "bidirectional clipped-ReLU recurrence, a clipped-ReLU layer, output layer, CTC), "
                  "against nn.Linear + clamp(0, 20) layers, torch.nn.RNN(relu, bidirectional) and "
                  "F.ctc_loss: PyTorch's fused RNN has no clip at 20, so the two agree while no "
                  "recurrent value reaches 20 (the loss check shows it)",
}


def reference(shape, run: dict, device: str = "cpu"):
    """The PyTorch network of `shape.kind` with `run`'s parameters and data (bench.prepare's
    dict) on `device` ("cuda": cuDNN, for benchmarks/gpu_bench.py), or None without torch."""
    if bench._torch() is None:
        return None
    if shape.kind == "deepspeech":
        ref = deepspeech(shape, run, device)
    else:
        ref = bench.torch_reference(shape.kind, shape.T, shape.B, shape.I, shape.H, shape.bidirectional,
                                    shape.K, str(run["model"].dtype), device=device)
        _copy(ref["x"], run["arrays"]["x"])
        _copy(ref["target"], run["arrays"]["target"])
    for name, value in weights(shape, run["params"]).items():
        module, key = name.split(".", 1)
        _copy(getattr(ref[module], key), value)
    return ref


def _copy(tensor, value) -> None:
    import torch
    with torch.no_grad():
        tensor.copy_(torch.from_numpy(np.ascontiguousarray(value)).to(tensor.dtype))


# ---- rnndsl parameters in PyTorch's layout ------------------------------------------------------

def weights(shape, p: dict) -> dict:
    """rnndsl's parameters as "module.parameter" -> array for the reference's modules."""
    if shape.kind == "rnn":
        return {**_cell("rnn", "", p["W_xh"], p["W_hh"], p["b_h"]), **_linear("head", p["W_hy"], p["b_y"])}
    if shape.kind == "deepspeech":
        return _deepspeech_weights(p)
    gates = {"lstm": "ifgo", "gru": "rzn"}[shape.kind]        # PyTorch's gate order
    directions = [("f", ""), ("b", "_reverse")] if shape.bidirectional else [("", "")]
    out = {}
    for d, suffix in directions:
        W, U = (np.concatenate([p[f"{m}{d}_{g}"] for g in gates]) for m in "WU")
        b_ih = np.concatenate([p[f"b{d}_{g}"] if g != "n" else p["b_in"] for g in gates])
        out.update(_cell("rnn", suffix, W, U, b_ih))
    if shape.kind == "gru":                                  # b_hn sits inside r * (U_n h + b_hn)
        zero = np.zeros_like(p["b_hn"])
        out["rnn.bias_hh_l0"] = np.concatenate([zero, zero, p["b_hn"]])
    head = np.concatenate([p["V_f"], p["V_b"]], axis=1) if shape.bidirectional else p["W_y"]
    return {**out, **_linear("head", head, p["b_y"])}


def _cell(module: str, suffix: str, W, U, b) -> dict:
    """One direction of a torch RNN layer; PyTorch's second bias b_hh is zero."""
    return {f"{module}.weight_ih_l0{suffix}": W, f"{module}.weight_hh_l0{suffix}": U,
            f"{module}.bias_ih_l0{suffix}": b, f"{module}.bias_hh_l0{suffix}": np.zeros_like(b)}


def _linear(module: str, W, b) -> dict:
    return {f"{module}.weight": W, f"{module}.bias": b}


def _deepspeech_weights(p: dict) -> dict:
    out = {}
    for i in (1, 2, 3, 5):
        out.update(_linear(f"l{i}", p[f"W{i}"], p[f"b{i}"]))
    out.update(_cell("rnn", "", p["W4f"], p["U4f"], p["b4"]))          # one bias b4, both directions
    out.update(_cell("rnn", "_reverse", p["W4b"], p["U4b"], p["b4"]))
    return {**out, **_linear("head", p["W6"], p["b6"])}


# ---- DeepSpeech in PyTorch ----------------------------------------------------------------------

def deepspeech(shape, run: dict, device: str = "cpu") -> dict:
    """specs/deepspeech.yaml as torch modules (weights still to be copied in) over `run`'s data:
    x (T, B, F), labels (U, B) on axis u, full-length sequences (as bench.prepare makes them:
    torch's RNN would run its backward direction from the padding otherwise)."""
    import torch
    dtype = str(run["model"].dtype)
    F, H, K = shape.I, shape.H, shape.K
    C = (run["params"]["W1"].shape[1] // F - 1) // 2             # W1 reads 2C+1 frames
    mods = {f"l{i}": torch.nn.Linear(n, H) for i, n in ((1, F * (2 * C + 1)), (2, H), (3, H), (5, H))}
    mods["rnn"] = torch.nn.RNN(H, H, nonlinearity="relu", bidirectional=True)
    mods["head"] = torch.nn.Linear(H, K)
    mods = {k: m.to(device=device, dtype=getattr(torch, dtype)) for k, m in mods.items()}
    arrays, lengths = run["arrays"], run["lengths"]
    x = torch.from_numpy(np.ascontiguousarray(arrays["x"], dtype=dtype)).to(device)
    labels = torch.from_numpy(np.ascontiguousarray(arrays["labels"][:int(lengths["u"].max())].T)).to(device)
    frames, n_labels = torch.from_numpy(lengths["t"]), torch.from_numpy(lengths["u"])

    def loss():
        clip = lambda layer, v: torch.clamp(mods[layer](v), 0, 20)
        h3 = clip("l3", clip("l2", clip("l1", _window(torch, x, C))))
        both, _ = mods["rnn"](h3)
        y = mods["head"](clip("l5", both[..., :H] + both[..., H:]))
        return torch.nn.functional.ctc_loss(y.log_softmax(-1), labels, frames, n_labels, blank=0,
                                            reduction="none").mean()
    return {**mods, "loss": loss, "forward": loss, "train": _trainer(mods.values(), loss)}


def _window(torch, x, C: int):
    """x[t-C:t+C] at every t: the 2C+1 frames around t, zeros outside, one frame after another."""
    T, B, F = x.shape
    padded = torch.nn.functional.pad(x, (0, 0, 0, 0, C, C))
    return padded.unfold(0, 2 * C + 1, 1).permute(0, 1, 3, 2).reshape(T, B, (2 * C + 1) * F)


def _trainer(modules, loss):
    params = [p for m in modules for p in m.parameters()]

    def train():
        for p in params:
            p.grad = None
        value = loss()
        value.backward()
        return value
    return train
