"""`rnndsl export --format torch`: a run's weights as the state_dict of the torch module its
spec's export: section names, which then computes what the spec computes (to 1e-6).

specs/lstm.yaml maps onto nn.LSTM(V, H) + nn.Linear(H, V), specs/gru.yaml onto nn.GRU(V, H) +
nn.Linear(H, V); torch runs on the one-hot inputs the specs read. Skipped without torch.
"""
from __future__ import annotations

import numpy as np
import pytest

import rnndsl
from rnndsl.frontend.export import stacked
from rnndsl.tools.weights import load_params, save_params
from conftest import ROOT

V, H, T, B = 7, 5, 6, 3


def torch_module(torch, kind: str):
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            setattr(self, kind, getattr(torch.nn, kind.upper())(V, H))
            self.out = torch.nn.Linear(H, V)

        def forward(self, x):
            return self.out(getattr(self, kind)(x)[0])
    return Net().double()


@pytest.mark.parametrize("name, kind", [("lstm", "lstm"), ("gru", "gru")])
def test_the_exported_state_dict_loads_into_torch_and_computes_the_same(name, kind, tmp_path):
    torch = pytest.importorskip("torch")
    spec = rnndsl.load_spec(ROOT / "specs" / f"{name}.yaml", dims={"V": V, "H": H})
    rng = np.random.default_rng(0)
    params = {k: rng.normal(0, 0.4, np.shape(v)) for k, v in rnndsl.init_params(spec, 0).items()}
    x = rng.integers(0, V, (T, B))
    ours = rnndsl.compile(spec, dtype="float64").forward(params, {"x": x, "target": x})["y"]
    path = save_params(tmp_path / "w.safetensors", stacked(spec, "torch", params))
    net = torch_module(torch, kind)
    net.load_state_dict({k: torch.tensor(v) for k, v in load_params(path).items()}, strict=True)
    theirs = net(torch.nn.functional.one_hot(torch.tensor(x), V).double()).detach().numpy()
    np.testing.assert_allclose(theirs, ours, rtol=1e-6, atol=1e-9)


def test_a_spec_without_an_export_section_says_so():
    spec = rnndsl.load_spec(ROOT / "specs" / "elman.yaml")
    with pytest.raises(rnndsl.DataError, match="no export: torch section"):
        stacked(spec, "torch", rnndsl.init_params(spec, 0))


@pytest.mark.parametrize("entry, message", [("o.w: W_q", "'W_q' is not a parameter"),
                                            ("w: [W_y, b_y]", "do not stack"),
                                            ("w: {zero: [b_y]}", "unknown field 'zero'")])
def test_export_section_mistakes_are_located_errors(entry, message):
    text = (ROOT / "specs" / "gru.yaml").read_text().replace("    out.bias: b_y", f"    {entry}")
    with pytest.raises(rnndsl.SpecError, match=message):
        rnndsl.loads_spec(text)


def test_a_parameter_that_failed_to_declare_is_not_reported_again_by_export():
    text = (ROOT / "specs" / "gru.yaml").read_text().replace("dims: {V: 65, H: 128}", "dims: {V: 65, H: 0}")
    with pytest.raises(rnndsl.SpecError) as info:
        rnndsl.loads_spec(text)
    assert info.value.format().count("error:") == 1 and "export" not in info.value.format()
