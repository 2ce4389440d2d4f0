"""A run's weights in standard files: safetensors and .npz, written and read without pickle.

    save_params(path, params, meta)   safetensors (by suffix or format=) or .npz
    load_params(path)                 name -> array, from either

safetensors (https://huggingface.co/docs/safetensors) is an 8-byte little-endian header length,
a JSON header naming each tensor's dtype, shape and byte range (and "__metadata__", text only),
then the raw little-endian bytes: simple enough to write here without a dependency, and read by
the safetensors library, PyTorch and JAX as they are. The metadata holds the spec's text and dims,
so a file says which model its weights belong to.
"""
from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np

from ..core.errors import DataError
from ..training.runfiles import write_atomically

DTYPES = {"float32": "F32", "float64": "F64", "float16": "F16", "int64": "I64", "int32": "I32"}
MAX_HEADER = 100_000_000        # bytes: the safetensors library's own limit


def save_params(path, params: dict, meta: dict | None = None, format: str | None = None) -> Path:
    path = Path(path)
    kind = format or ("npz" if path.suffix == ".npz" else "safetensors")
    if kind not in ("safetensors", "npz"):
        raise DataError(f"export format {kind!r}", "formats: safetensors, npz")
    blob = _npz(params) if kind == "npz" else safetensors_bytes(params, meta or {})
    return write_atomically(path, blob)


def safetensors_bytes(params: dict, meta: dict) -> bytes:
    header, chunks, offset = {}, [], 0
    for name in sorted(params):
        a = np.ascontiguousarray(params[name])
        data = a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": DTYPES[a.dtype.name], "shape": list(a.shape), "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    header["__metadata__"] = {k: v if isinstance(v, str) else json.dumps(v, sort_keys=True) for k, v in meta.items()}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)              # the tensors start 8-byte aligned
    return struct.pack("<Q", len(text)) + text + b"".join(chunks)


def load_params(path) -> dict:
    """name -> NumPy array, from a safetensors or .npz file (no pickle either way)."""
    path = Path(path)
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    raw = path.read_bytes()
    if len(raw) < 8 or struct.unpack("<Q", raw[:8])[0] > min(MAX_HEADER, len(raw) - 8):
        raise DataError(f"{path} is not a safetensors file (its header length is wrong)",
                        "export it again with rnndsl export, or give an .npz")
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    body = memoryview(raw)[8 + n:]
    names = {v: k for k, v in DTYPES.items()}
    return {name: np.frombuffer(body[e["data_offsets"][0]:e["data_offsets"][1]],
                                np.dtype(names[e["dtype"]]).newbyteorder("<")).reshape(e["shape"]).copy()
            for name, e in header.items() if name != "__metadata__"}


def _npz(params: dict) -> bytes:
    import io
    buf = io.BytesIO()
    np.savez(buf, **{k: np.asarray(v) for k, v in params.items()})
    return buf.getvalue()
