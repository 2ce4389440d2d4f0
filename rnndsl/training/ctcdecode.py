"""Decoding CTC outputs: per-frame log-probabilities (T, K) -> label sequences.

    greedy        the best class per frame, repeats merged, blanks dropped (best path decoding)
    prefix_beam   prefix beam search (Graves 2012, section 7.3; Hannun et al. 2014 without a
                  language model): the `width` likeliest label prefixes, each prefix's
                  probability summed over every alignment that yields it, kept as two parts
                  (its alignments ending in a blank, and in its last label)
    path_beam     the `width` likeliest alignments, not merged by their labels; width 1 is greedy

Each beam returns [(labels, log-probability)], best first. Everything is float64 on the host.
"""
from __future__ import annotations

import numpy as np

NEG = -np.inf


def greedy(logp: np.ndarray, blank: int = 0) -> tuple:
    return collapse(np.argmax(logp, axis=-1), blank)


def collapse(path, blank: int = 0) -> tuple:
    """An alignment's labels: repeats merged, then blanks dropped."""
    path = [int(k) for k in path]
    return tuple(k for i, k in enumerate(path) if k != blank and (i == 0 or k != path[i - 1]))


def prefix_beam(logp: np.ndarray, width: int, blank: int = 0) -> list:
    beams = {(): (0.0, NEG)}                  # prefix -> (log p ending in blank, log p ending in a label)
    for frame in np.asarray(logp, np.float64):
        nxt: dict = {}
        for prefix, (b, nb) in beams.items():
            _extend(nxt, prefix, b, nb, frame, blank)
        beams = dict(_best(nxt, width))
    return [(prefix, float(np.logaddexp(*parts))) for prefix, parts in _best(beams, width)]


def _extend(nxt: dict, prefix: tuple, b: float, nb: float, frame: np.ndarray, blank: int) -> None:
    """Add one prefix's ways through this frame: a blank or its last label again keeps it; any
    other label extends it (its last label extends it only after a blank)."""
    total = np.logaddexp(b, nb)
    last = prefix[-1] if prefix else None
    _add(nxt, prefix, total + frame[blank], NEG)
    for k, p in enumerate(frame):
        if k == blank:
            continue
        if k == last:
            _add(nxt, prefix, NEG, nb + p)
            _add(nxt, prefix + (k,), NEG, b + p)
        else:
            _add(nxt, prefix + (k,), NEG, total + p)


def _add(beams: dict, prefix: tuple, b: float, nb: float) -> None:
    old_b, old_nb = beams.get(prefix, (NEG, NEG))
    beams[prefix] = (np.logaddexp(old_b, b), np.logaddexp(old_nb, nb))


def _best(beams: dict, width: int) -> list:
    """The `width` likeliest prefixes, ties kept in the order they were made (stable); a prefix
    no alignment reaches (a doubled label with no blank between, yet) is dropped."""
    items = list(beams.items())
    totals = np.array([np.logaddexp(*parts) for _, parts in items])
    return [items[i] for i in np.argsort(-totals, kind="stable")[:width] if totals[i] > NEG]


def path_beam(logp: np.ndarray, width: int, blank: int = 0) -> list:
    logp = np.asarray(logp, np.float64)
    paths, scores = [()], np.zeros(1)
    for frame in logp:
        total = (scores[:, None] + frame[None, :]).ravel()
        keep = np.argsort(-total, kind="stable")[:width]         # ties: the earlier path, the lower class
        paths = [paths[i // len(frame)] + (int(i % len(frame)),) for i in keep]
        scores = total[keep]
    return [(collapse(p, blank), float(s)) for p, s in zip(paths, scores)]
