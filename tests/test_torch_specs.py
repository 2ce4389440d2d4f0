"""specs/lstm_fused.yaml against torch.nn.LSTM and specs/ln_lstm.yaml against a hand-written
torch layer-normalised LSTM (Ba, Kiros & Hinton 2016, with torch.nn.functional.layer_norm): the
same weights in, the loss and every parameter's gradient out agree to 1e-10 in float64, on
each backend the machine has. Skipped without torch."""
import numpy as np
import pytest

import rnndsl

from conftest import ROOT

DIMS = {"V": 7, "E": 5, "H": 6}
T, B = 6, 3


def _backends() -> list:
    import importlib.util
    return ["numpy"] + (["numba"] if importlib.util.find_spec("numba") else [])


def _setup(name: str, backend: str, seed: int):
    model = rnndsl.compile(rnndsl.load_spec(ROOT / "specs" / f"{name}.yaml", dims=DIMS),
                           backend=backend, dtype="float64")
    params = model.init_params(seed=seed)
    rng = np.random.default_rng(seed)
    params = {k: v + rng.normal(scale=0.3, size=v.shape) for k, v in params.items()}   # gains off 1
    x, target = (rng.integers(0, DIMS["V"], size=(T, B)) for _ in range(2))
    loss, grads = model.loss_and_grad(params, {"x": x, "target": target})
    return params, x, target, loss, grads


def _loss(torch, logits, target):
    """mean_t cross_entropy per sequence, then the mean over the batch (equal lengths)."""
    return torch.nn.functional.cross_entropy(logits.reshape(-1, DIMS["V"]), target.reshape(-1))


def _compare(torch, leaves: dict, loss_t, loss, grads) -> None:
    torch_grads = torch.autograd.grad(loss_t, list(leaves.values()))
    assert loss_t.detach().item() == pytest.approx(loss, rel=1e-10, abs=1e-12)
    for name, g in zip(leaves, torch_grads):
        np.testing.assert_allclose(grads[name], g.numpy(), rtol=1e-10, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("backend", _backends())
@pytest.mark.parametrize("seed", [0, 1])
def test_lstm_fused_is_torch_lstm(backend, seed):
    torch = pytest.importorskip("torch")
    params, x, target, loss, grads = _setup("lstm_fused", backend, seed)
    p = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    lstm = torch.nn.LSTM(DIMS["E"], DIMS["H"]).double()      # run with the spec's weights:
    embedded = p["Emb"].T[torch.tensor(x)]                                    # (T, B, E)
    out, _ = torch.func.functional_call(
        lstm, {"weight_ih_l0": p["W"], "weight_hh_l0": p["U"], "bias_ih_l0": p["b"],
               "bias_hh_l0": torch.zeros_like(p["b"])}, (embedded,))    # b is b_ih + b_hh
    logits = out @ p["W_y"].T + p["b_y"]
    _compare(torch, p, _loss(torch, logits, torch.tensor(target)), loss, grads)


def _ln_lstm(torch, p, x):
    """Ba et al.'s equations 20-22 written out, one step at a time."""
    ln = torch.nn.functional.layer_norm
    H = DIMS["H"]
    h = c = torch.zeros(B, H, dtype=torch.float64)
    wx = p["Emb"].T[torch.tensor(x)] @ p["W"].T                              # (T, B, 4H)
    outs = []
    for t in range(T):
        z = ln(wx[t], (4 * H,), p["g_x"]) + ln(h @ p["U"].T, (4 * H,), p["g_h"]) + p["b"]
        f, i, o, g = z.split(H, dim=-1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(ln(c, (H,), p["g_c"], p["b_c"]))
        outs.append(h @ p["W_y"].T + p["b_y"])
    return torch.stack(outs)


@pytest.mark.parametrize("backend", _backends())
@pytest.mark.parametrize("seed", [0, 1])
def test_ln_lstm_is_the_torch_layer_normalised_lstm(backend, seed):
    torch = pytest.importorskip("torch")
    params, x, target, loss, grads = _setup("ln_lstm", backend, seed)
    p = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    logits = _ln_lstm(torch, p, x)
    _compare(torch, p, _loss(torch, logits, torch.tensor(target)), loss, grads)
