"""Deep Speech 2's recipe trained in PyTorch on exactly what `rnndsl train` feeds it: the peer
for the time and accuracy of `specs/deepspeech2.yaml` and `specs/deepspeech2_masked.yaml`.

Same features, split, batches (order and padding), initial weights, dropout or SpecAugment
masks (drawn by rnndsl's own `training_masks` from the same seed and step), Adam, gradient
clipping and cosine schedule; the network in torch's fused modules (nn.Linear, nn.GRU over
packed sequences, F.ctc_loss). The dev set is scored by rnndsl's own metrics with the trained
weights copied back, so CER and WER are computed by the same code for both. Before training,
torch's loss on the first batch must equal rnndsl's (the two networks are the same function).

    python benchmarks/torch_deepspeech2.py --spec specs/deepspeech2_masked.yaml \
        --data ../shared/data/speech/train --dev ../shared/data/speech/dev

Training time counts the updates only, as `rnndsl train`'s progress line does. torch is never
a dependency of rnndsl: this script is a benchmark.
"""
from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch

from rnndsl.semantics.inputs import training_masks
from rnndsl.training import data, evaluate
from rnndsl.training.job import prepare

from references import _window


class DeepSpeech2(torch.nn.Module):
    """The specs' network: context window, three clipped-ReLU layers, a bidirectional GRU whose
    directions are summed, a clipped-ReLU layer, the output layer. `masks` says where the spec's
    mask inputs multiply: "x" (SpecAugment, on the frames) or "h" (dropout after each layer)."""

    def __init__(self, F: int, C: int, H: int, K: int):
        super().__init__()
        self.C, self.H = C, H
        self.l1, self.l2, self.l3 = torch.nn.Linear(F * (2 * C + 1), H), torch.nn.Linear(H, H), torch.nn.Linear(H, H)
        self.gru = torch.nn.GRU(H, H, bidirectional=True)
        self.l5, self.head = torch.nn.Linear(H, H), torch.nn.Linear(H, K)

    def forward(self, x, frames, masks: dict, where: str):
        drop = (lambda v, k: v * masks[k]) if where == "h" else (lambda v, k: v)
        if where == "x":
            x = x * masks["_mask1"][None] * masks["_mask2"]
        clip = lambda layer, v: torch.clamp(layer(v), 0, 20)
        h1 = drop(clip(self.l1, _window(torch, x, self.C)), "_drop1")
        h3 = drop(clip(self.l3, drop(clip(self.l2, h1), "_drop2")), "_drop3")
        packed = torch.nn.utils.rnn.pack_padded_sequence(h3, frames, enforce_sorted=False)
        both, _ = torch.nn.utils.rnn.pad_packed_sequence(self.gru(packed)[0], total_length=x.shape[0])
        return self.head(drop(clip(self.l5, both[..., :self.H] + both[..., self.H:]), "_drop4"))


def gru_weights(p: dict, d: str, reverse: str) -> dict:
    """One direction of the spec's GRU (W/U/b for r, z, n and the candidate's inner bias c_n)
    in nn.GRU's layout; b_hh is zero except c_n, inside r * (U_n h + c_n) as in torch."""
    W = np.concatenate([p[f"W{g}{d}"] for g in "rzn"])
    U = np.concatenate([p[f"U{g}{d}"] for g in "rzn"])
    zero = np.zeros_like(p[f"cn{d}"])
    return {f"gru.weight_ih_l0{reverse}": W, f"gru.weight_hh_l0{reverse}": U,
            f"gru.bias_ih_l0{reverse}": np.concatenate([p[f"b{g}{d}"] for g in "rzn"]),
            f"gru.bias_hh_l0{reverse}": np.concatenate([zero, zero, p[f"cn{d}"]])}


LINEAR = {f"{m}.{k}": f"{v}{i}" for m, i in (("l1", 1), ("l2", 2), ("l3", 3), ("l5", 5), ("head", 6))
          for k, v in (("weight", "W"), ("bias", "b"))}          # torch's name -> the spec's


def to_torch(p: dict) -> dict:
    out = {mine: p[spec] for mine, spec in LINEAR.items()}
    return {**out, **gru_weights(p, "f", ""), **gru_weights(p, "b", "_reverse")}


def from_torch(net: DeepSpeech2, like: dict) -> dict:
    """The trained weights back in the spec's parameters."""
    state = {k: v.detach().numpy() for k, v in net.state_dict().items()}
    out = {spec: state[mine] for mine, spec in LINEAR.items()}
    H = net.H
    for d, reverse in (("f", ""), ("b", "_reverse")):
        for j, g in enumerate("rzn"):
            rows = slice(j * H, (j + 1) * H)
            out[f"W{g}{d}"] = state[f"gru.weight_ih_l0{reverse}"][rows]
            out[f"U{g}{d}"] = state[f"gru.weight_hh_l0{reverse}"][rows]
            out[f"b{g}{d}"] = state[f"gru.bias_ih_l0{reverse}"][rows] + (
                state[f"gru.bias_hh_l0{reverse}"][rows] if g != "n" else 0)
        out[f"cn{d}"] = state[f"gru.bias_hh_l0{reverse}"][2 * H:]
    return {k: out[k].astype(like[k].dtype) for k in like}


def tensors(batch: dict) -> tuple:
    x = torch.from_numpy(np.ascontiguousarray(batch["x"], np.float32))
    n = batch["lengths"]
    labels = torch.from_numpy(np.ascontiguousarray(batch["labels"][:int(n["u"].max())].T))
    return x, labels, torch.from_numpy(n["t"]), torch.from_numpy(n["u"])


def loss_of(net, batch: dict, masks: dict, where: str):
    x, labels, frames, n_labels = tensors(batch)
    y = net(x, frames, {k: torch.from_numpy(v) for k, v in masks.items()}, where)
    return torch.nn.functional.ctc_loss(y.log_softmax(-1), labels, frames, n_labels, blank=0,
                                        reduction="none", zero_infinity=False).mean()


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--spec", default="specs/deepspeech2_masked.yaml")
    ap.add_argument("--data", required=True, help="speech/train")
    ap.add_argument("--dev", required=True, help="speech/dev")
    ap.add_argument("--epochs", type=int, help="default: the spec's")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--beam", type=int, default=8)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    job = prepare(args.spec, args.data, {"epochs": args.epochs} if args.epochs else {})
    spec, s = job.model.spec, job.settings
    where = "x" if any(m.noise.kind != "dropout" for m in spec.masks) else "h"
    dim = dict((n, d.value) for n, d in spec.dims)
    net = DeepSpeech2(dim["F"], dim["C"], dim["H"], dim["K"])
    params = job.model.init_params(s.seed)
    net.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v, np.float32)) for k, v in to_torch(params).items()})
    first = next(data.batches(job.train, s.batch, seed=s.seed * 100_003, bucket=s.bucket))
    ones = {m.name: np.ones_like(v) for m, v in zip(spec.masks, training_masks(spec, first, np.random.default_rng(0),
                                                                                 "float32").values())}
    mine, theirs = job.model.forward(params, {**first, **ones})["loss"], loss_of(net, first, ones, where).item()
    assert abs(mine - theirs) <= 1e-3 * abs(mine), f"torch {theirs} against rnndsl {mine}: not the same network"
    print(f"{spec.name}: the first batch's loss, rnndsl {mine:.4f}, torch {theirs:.4f}")

    opt = torch.optim.Adam(net.parameters(), lr=s.lr, betas=(s.beta1, s.beta2), eps=s.eps)
    per_epoch = len(list(data.batches(job.train, s.batch, seed=0, bucket=s.bucket)))
    total, step, start = per_epoch * s.epochs, 0, time.perf_counter()
    for epoch in range(s.epochs):
        for batch in data.batches(job.train, s.batch, seed=s.seed * 100_003 + epoch, bucket=s.bucket):
            masks = training_masks(spec, batch, np.random.default_rng([s.seed, step]), "float32")
            for group in opt.param_groups:       # rnndsl's cosine: lr down to 0 at the last update
                group["lr"] = s.lr * 0.5 * (1 + math.cos(math.pi * min(step, total - 1) / max(1, total - 1)))
            opt.zero_grad()
            loss = loss_of(net, batch, masks, where)
            loss.backward()
            if s.clip:
                torch.nn.utils.clip_grad_norm_(net.parameters(), s.clip)
            opt.step()
            step += 1
        print(f"epoch {epoch + 1}/{s.epochs}: loss {loss.item():.4f} ({time.perf_counter() - start:.0f} s)", flush=True)
    minutes = (time.perf_counter() - start) / 60
    dev = prepare(args.spec, args.dev, info=job.info, hold_out=False)
    result = evaluate.metrics(dev.model, from_torch(net, params), dev.train, s, data.Vocab.from_json(job.info["vocab"]),
                              evaluate.Decoding(beam=args.beam))
    print(f"torch {torch.__version__}, {args.threads} threads: {s.epochs} epochs in {minutes:.1f} min; dev "
          + ", ".join(f"{k} {v:.4f}" for k, v in result.items() if isinstance(v, float)))


if __name__ == "__main__":
    main()
