"""Device versions of the helpers whose NumPy forms run on the host (copied into CuPy modules in
place of rnndsl/core/kernels.py's functions of the same name, like the kernels themselves).

Each is written over `xp` (CuPy in an emitted module) and computes what its NumPy form does:
np.add.at becomes ndarray.scatter_add (atomic adds), sliding_window_view a strided view
(as_strided), NumPy's arange a device arange, and CTC's alpha and beta recursions one CUDA kernel
each: one block per sequence, its threads over the lattice positions, one __syncthreads() per
time step (warp-ctc's layout), in float64 and log space as the NumPy form computes them.
"""
import numpy as np

from ...core.kernels import log_softmax
from .cuda import PREAMBLE

_CTC_CU = PREAMBLE + r'''
// CTC's forward (alpha) and backward (beta) variables in log space, float64, for a batch of
// sequences: lp (T, B, S) the log-probabilities on the extended label sequence (blanks between
// the labels), skip (B, S) whether position s may be reached from s - 2.
__device__ __forceinline__ double _ctc_max(double a, double b)
{
    return a > b || isnan(a) ? a : b;
}

// log(exp(a) + exp(b) + exp(c)), -inf when all three are
__device__ __forceinline__ double _ctc_lse3(double a, double b, double c)
{
    const double m = _ctc_max(_ctc_max(a, b), c);
    const double safe = isfinite(m) ? m : 0.0;
    return safe + log(exp(a - safe) + exp(b - safe) + exp(c - safe));
}

extern "C" __global__ void _ctc_alpha(
    const double* __restrict__ lp, const bool* __restrict__ skip, double* __restrict__ alpha,
    long long T, long long B, long long S)
{
    for (long long b = blockIdx.x; b < B; b += gridDim.x) {
        for (long long s = threadIdx.x; s < S; s += blockDim.x)
            alpha[b * S + s] = s < 2 ? lp[b * S + s] : -INFINITY;
        __syncthreads();
        for (long long t = 1; t < T; t++) {
            const double* prev = alpha + ((t - 1) * B + b) * S;
            for (long long s = threadIdx.x; s < S; s += blockDim.x) {
                const double one = s >= 1 ? prev[s - 1] : -INFINITY;
                const double two = s >= 2 && skip[b * S + s] ? prev[s - 2] : -INFINITY;
                alpha[(t * B + b) * S + s] = _ctc_lse3(prev[s], one, two) + lp[(t * B + b) * S + s];
            }
            __syncthreads();
        }
    }
}

// t_end (B,) each sequence's last frame, s_end (B,) its last label's position (2 * its length)
extern "C" __global__ void _ctc_beta(
    const double* __restrict__ lp, const bool* __restrict__ skip, const long long* __restrict__ t_end,
    const long long* __restrict__ s_end, double* __restrict__ beta, long long T, long long B, long long S)
{
    for (long long b = blockIdx.x; b < B; b += gridDim.x) {
        const long long te = t_end[b], se = s_end[b];
        for (long long t = T - 1; t >= 0; t--) {
            const double* next = beta + ((t + 1) * B + b) * S;
            for (long long s = threadIdx.x; s < S; s += blockDim.x) {
                const long long at = (t * B + b) * S + s;
                double v = -INFINITY;
                if (t == te) {
                    if (s == se || (se >= 1 && s == se - 1))
                        v = lp[at];
                } else if (t < te && t < T - 1) {
                    const double one = s + 1 < S ? next[s + 1] : -INFINITY;
                    const double two = s + 2 < S && skip[b * S + s + 2] ? next[s + 2] : -INFINITY;
                    v = _ctc_lse3(next[s], one, two) + lp[at];
                }
                beta[at] = v;
            }
            __syncthreads();
        }
    }
}
'''


def grid(rows):
    """The blocks of a launch over `rows` rows: one a row, at most 65535 (they stride over the rest)."""
    return (max(1, min(int(rows), 65535)),)


def embed_vjp(xp, dout, idx, classes):
    """The adjoint of W in W @ onehot(idx): dout's rows added into W's columns. An absent class
    (-1) adds zeros to class 0, so no row is left out by a mask (a mask would sync the device)."""
    m = dout.shape[-1]
    flat = idx.reshape(-1)
    present = flat >= 0
    rows = xp.zeros((int(classes), m), dtype=dout.dtype)
    rows.scatter_add(xp.where(present, flat, 0), xp.where(present[:, None], dout.reshape(-1, m), 0.0))
    return xp.ascontiguousarray(rows.T)


def _windows(xp, x, kh, kw, stride, pad):
    """Sliding kh x kw windows over the last two axes, (..., C, H', W', kh, kw), as a strided
    view of x (NumPy's sliding_window_view works on host arrays only)."""
    if pad:
        x = xp.pad(x, [(0, 0)] * (x.ndim - 2) + [(pad, pad), (pad, pad)])
    x = xp.ascontiguousarray(x)
    H, W = x.shape[-2:]
    sh, sw = x.strides[-2:]
    shape = x.shape[:-2] + ((H - kh) // stride + 1, (W - kw) // stride + 1, kh, kw)
    return xp.lib.stride_tricks.as_strided(x, shape, x.strides[:-2] + (sh * stride, sw * stride, sh, sw))


# ---- CTC --------------------------------------------------------------------------------------

def _ctc_lengths(xp, T, B, labels, lengths):
    y_len, label_len = lengths if lengths is not None else (None, None)
    y_len = xp.full(B, T) if y_len is None else xp.asarray(y_len)
    label_len = xp.full(B, labels.shape[0]) if label_len is None else xp.asarray(label_len)
    return y_len.astype(np.int64), label_len.astype(np.int64)


def _ctc_lattice(xp, y, labels, blank):
    """Log-probabilities (T, B, K), the extended label sequence (B, S), its log-probabilities
    (T, B, S) and the allowed skips (B, S)."""
    T, B, K = y.shape
    logp = log_softmax(xp, y)
    ext = xp.full((B, 2 * labels.shape[0] + 1), int(blank), dtype=np.int64)
    ext[:, 1::2] = labels.T
    lp = xp.take_along_axis(logp, xp.broadcast_to(ext[None], (T,) + ext.shape), axis=-1)
    skip = xp.zeros(ext.shape, dtype=bool)
    skip[:, 2:] = (ext[:, 2:] != blank) & (ext[:, 2:] != ext[:, :-2])
    return logp, ext, lp, skip


def _ctc_threads(S):
    return (min(512, 32 * (S // 32 + 1)),)


def _ctc_alpha(xp, lp, skip):
    """alpha (T, B, S), float64: one launch for the whole sequence."""
    T, B, S = lp.shape
    alpha = xp.empty((T, B, S), dtype=np.float64)
    kernel = xp.RawKernel(_CTC_CU, "_ctc_alpha")
    kernel(grid(B), _ctc_threads(S), (xp.ascontiguousarray(lp, dtype=np.float64), xp.ascontiguousarray(skip),
                                      alpha, T, B, S))
    return alpha


def _ctc_beta(xp, lp, skip, y_len, label_len):
    T, B, S = lp.shape
    beta = xp.empty((T, B, S), dtype=np.float64)
    kernel = xp.RawKernel(_CTC_CU, "_ctc_beta")
    kernel(grid(B), _ctc_threads(S), (xp.ascontiguousarray(lp, dtype=np.float64), xp.ascontiguousarray(skip),
                                      xp.ascontiguousarray(y_len - 1), xp.ascontiguousarray(2 * label_len),
                                      beta, T, B, S))
    return beta


def _ctc_log_z(xp, alpha, y_len, label_len):
    """log p(labels | y) per sequence: the paths ending in the last label or the blank after it."""
    t_end, s_end = y_len - 1, 2 * label_len
    b = xp.arange(alpha.shape[1])
    final = alpha[t_end, b]
    last = final[b, s_end]
    before = xp.where(s_end >= 1, final[b, xp.maximum(s_end - 1, 0)], -xp.inf)
    return xp.logaddexp(last, before)


def ctc(xp, y, labels, blank=0, lengths=None):
    """-log p(labels | y) per sequence (B,), float64."""
    if y.ndim == 2:
        return ctc(xp, y[:, None], labels.reshape(-1, 1), blank)[0]
    T, B, _ = y.shape
    y_len, label_len = _ctc_lengths(xp, T, B, labels, lengths)
    _, _, lp, skip = _ctc_lattice(xp, y, labels, blank)
    return -_ctc_log_z(xp, _ctc_alpha(xp, lp, skip), y_len, label_len)


def ctc_vjp(xp, y, labels, dout, blank=0, lengths=None):
    """d ctc / d y (T, B, K) times dout (B,): softmax minus the label occupancy."""
    T, B, K = y.shape
    y_len, label_len = _ctc_lengths(xp, T, B, labels, lengths)
    logp, ext, lp, skip = _ctc_lattice(xp, y, labels, blank)
    alpha = _ctc_alpha(xp, lp, skip)
    beta = _ctc_beta(xp, lp, skip, y_len, label_len)
    log_z = _ctc_log_z(xp, alpha, y_len, label_len)          # from this alpha: no second pass
    occupancy_s = xp.exp(alpha + beta - lp - log_z[None, :, None])
    occupancy_s = xp.where(xp.isfinite(occupancy_s), occupancy_s, 0.0)
    onehot = (ext[:, :, None] == xp.arange(K)).astype(y.dtype)
    occupancy = xp.einsum("tbs,bsk->tbk", occupancy_s, onehot)
    valid = (xp.arange(T)[:, None] < y_len[None, :])[..., None]
    grad = xp.where(valid, xp.exp(logp) - occupancy, 0.0)
    return (grad * dout[None, :, None]).astype(y.dtype)
