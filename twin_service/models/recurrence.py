"""Vectorised solution of x[k+1] = a[k] * x[k] + b[k] for long sequences."""

from __future__ import annotations

import numpy as np

# Blocks are cut so the decay product within a block stays above exp(-_MAX_LOG_SPAN);
# that keeps 1/prod(a) finite in float64.
_MAX_LOG_SPAN = 600.0
# Decay factors below exp(-_MIN_LOG_A) are treated as exp(-_MIN_LOG_A): the old value then
# contributes less than 1e-260 of itself, far below float64 resolution of the new one.
_MIN_LOG_A = 600.0


def linear_recurrence(a: np.ndarray, b: np.ndarray, x0: float) -> np.ndarray:
    """Return x[0..n] for x[k+1] = a[k] x[k] + b[k], x[0] = x0, with 0 < a <= 1.

    Uses the closed form x[k] = P[k] (x0 + sum_{j<k} b[j] / P[j+1]), P[k] = prod_{j<k} a[j],
    evaluated block by block so the products never under- or overflow.
    """
    n = a.shape[0]
    out = np.empty(n + 1)
    out[0] = x0
    if n == 0:
        return out
    log_a = np.log(np.maximum(a, np.exp(-_MIN_LOG_A)))
    cum = np.concatenate(([0.0], np.cumsum(-log_a)))  # cum[k] = -log P[k]
    start = 0
    x_start = x0
    while start < n:
        # Largest end with cum[end] - cum[start] <= span; at least one step per block.
        end = int(np.searchsorted(cum, cum[start] + _MAX_LOG_SPAN, side="right")) - 1
        end = min(max(end, start + 1), n)
        rel = cum[start : end + 1] - cum[start]  # -log of P relative to block start
        inv_p_next = np.exp(rel[1:])  # 1 / P[j+1]
        acc = np.cumsum(b[start:end] * inv_p_next)
        out[start + 1 : end + 1] = np.exp(-rel[1:]) * (x_start + acc)
        x_start = out[end]
        start = end
    return out
