"""How a kernel's members become column loops: tiles, blocks and registers.

A kernel's members have different widths: an LSTM step adds the four gates' pre-activations
(4H columns), takes the sigmoid of three (3H) and then works on H. Run member by member, each
width is its own loop over the row, and every value passed between loops goes through memory.
So each member is cut into tiles of the greatest common width (H here), and consecutive tiles
of that width share one loop when no array is written at one column offset and touched at an
overlapping other one (then column j of every tile sees exactly what running the members one
after another would). A value written by a tile and touched nowhere outside its loop, and not
read after the kernel, lives in a register: the LSTM's summed pre-activations and, backward,
the gates' adjoints never reach memory.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

from ...compiler.program import Instr, Kernel, Ref

MIN_TILE = 32          # narrower tiles would not fill the vector units: keep the members whole


@dataclass(frozen=True, eq=False)
class Tile:
    instr: Instr
    col: int           # the first column of the member's result this tile computes
    width: int         # its columns (0: one value per row)


def width(instr: Instr) -> int:
    target = instr.target.buf if instr.target is not None else instr.out
    return target.dims[0] if target.rank else 0


def key(ref: Ref) -> tuple:
    return (ref.buf.name, ref.offset, ref.fill.name if ref.fill is not None else None)


def tiles(kernel: Kernel) -> list:
    """The members in program order, each cut into tiles of the widths' greatest common divisor
    where that is at least MIN_TILE (else whole)."""
    widths = [width(i) for i in kernel.body if width(i)]
    tile = math.gcd(*widths) if widths else 0
    if tile < MIN_TILE or all(w == tile for w in widths):
        return [Tile(i, 0, width(i)) for i in kernel.body]
    return [t for i in kernel.body
            for t in ([Tile(i, c, tile) for c in range(0, width(i), tile)] if width(i) else [Tile(i, 0, 0)])]


def column(o, tile: Tile) -> int:
    """The first column a tile touches of an operand (per-row values have none)."""
    return o.start + (tile.col if o.kind in ("rows", "cols") else 0)


def accesses(tile: Tile, operands: dict) -> list:
    """(array code, first column, columns, whether written) of each row array a tile touches."""
    instr = tile.instr
    target = instr.target if instr.target is not None else Ref(instr.out)
    touched = [(operands[key(target)], True)] + [(operands[key(r)], False) for r in instr.refs]
    return [(o.code, column(o, tile), tile.width, written) for o, written in touched if o.kind == "rows"]


def blocks(all_tiles: list, operands: dict) -> list:
    """Consecutive tiles of one width in one column loop, where that keeps program order."""
    out: list = []
    for tile in all_tiles:
        if out and tile.width and out[-1][0].width == tile.width and ordered(out[-1] + [tile], operands):
            out[-1].append(tile)
        else:
            out.append([tile])
    return out


def ordered(some: list, operands: dict) -> bool:
    """Whether column j of each tile may run before column j + 1 of any: no array is written at
    one column offset and touched at another that overlaps it (the same offset is the same j)."""
    seen: dict = {}
    for tile in some:
        for code, start, columns, written in accesses(tile, operands):
            seen.setdefault(code, []).append((start, columns, written))
    return not any(s1 != s2 and s1 < s2 + n2 and s2 < s1 + n1 and (w1 or w2)
                   for spans in seen.values() for (s1, n1, w1), (s2, n2, w2) in itertools.combinations(spans, 2))


def registers(kernel: Kernel, all_blocks: list, operands: dict) -> dict:
    """(array code, first column) -> a local variable, for each value a tile writes (not adds)
    that no tile outside its block touches and that nothing after the kernel reads."""
    written = [i.target.buf if i.target is not None else i.out for i in kernel.body]
    kept = {b.base for b in written if b.name in kernel.outputs or b.base in kernel.outputs}
    spans = [(id(block), code, start, columns) for block in all_blocks for tile in block
             for code, start, columns, _ in accesses(tile, operands)]
    names = itertools.count()
    out = {}
    for block in all_blocks:
        for tile in block:
            instr = tile.instr
            target = instr.target if instr.target is not None else Ref(instr.out)
            if instr.accumulate or target.offset or target.buf.base in kept:
                continue
            o = operands[key(target)]
            start = column(o, tile)
            if o.kind == "rows" and not any(b != id(block) and code == o.code and s < start + tile.width
                                            and start < s + n for b, code, s, n in spans):
                out[(o.code, start)] = f"_r{next(names)}"
    return out


def in_memory(kernel: Kernel, operands: dict) -> dict:
    """The operands a kernel touches in memory: an array all of whose touches are registers is
    not passed at all."""
    all_blocks = blocks(tiles(kernel), operands)
    regs = registers(kernel, all_blocks, operands)
    used = set()
    for block in all_blocks:
        for tile in block:
            instr = tile.instr
            target = instr.target if instr.target is not None else Ref(instr.out)
            for k in [key(target)] + [key(r) for r in instr.refs]:
                o = operands[k]
                if (o.code, column(o, tile)) not in regs or o.kind != "rows":
                    used.add(o.code)
    for k, o in operands.items():
        if o.kind == "flag" or k[0] == "mask":
            used.add(o.code)
    return {k: o for k, o in operands.items() if o.code in used}
