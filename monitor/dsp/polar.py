"""Successive-cancellation list decoding of polar codes (38.212 5.3.1's code, G_N = F^n).

The decoder (:func:`decode_list`) walks the code's tree as successive cancellation does,
keeping up to ``list_size`` paths: at each information bit every path splits in two and the
``list_size`` with the smallest path metric (the min-sum approximation: the sum of the
magnitudes of the soft values each path's decisions went against) live on. A CRC among the
information bits then picks the first path that checks (CRC-aided SCL). Subtrees that hold
only frozen bits are taken in one step: their codeword is zero, and their cost to each path is
the sum of the magnitudes of their negative soft values.
"""

from __future__ import annotations

import numpy as np

__all__ = ["LIST_SIZE", "decode_list"]

LIST_SIZE = 8


def decode_list(llr: np.ndarray, info: np.ndarray, list_size: int = LIST_SIZE) -> np.ndarray:
    """The information bits of the surviving paths, best first.

    Args:
        llr: soft values of the N code bits d (positive: 0), N a power of two.
        info: bool (N,), the information bits of u.
        list_size: paths kept.

    Returns:
        uint8 (paths, info.sum()): each path's information bits in the order of u.
    """
    alpha = np.asarray(llr, dtype=np.float64)[None]
    _, bits, metric, _ = _decode(alpha, np.asarray(info, dtype=bool), np.zeros(1), list_size)
    return bits[np.argsort(metric, kind="stable")]


def _decode(alpha: np.ndarray, info: np.ndarray, metric: np.ndarray, list_size: int
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One subtree for every path: its codeword (paths, n), its information bits, the paths'
    metrics, and each surviving path's origin among the paths given."""
    paths, n = alpha.shape
    if not info.any():
        cost = np.maximum(-alpha, 0).sum(axis=1)
        return (np.zeros((paths, n), np.uint8), np.zeros((paths, 0), np.uint8), metric + cost,
                np.arange(paths))
    if n == 1:
        a = alpha[:, 0]
        metrics = np.concatenate([metric + np.maximum(-a, 0), metric + np.maximum(a, 0)])
        keep = np.argsort(metrics, kind="stable")[:list_size]
        bit = (keep >= paths).astype(np.uint8)[:, None]
        return bit, bit, metrics[keep], keep % paths
    half = n // 2
    a, b = alpha[:, :half], alpha[:, half:]
    left = np.sign(a) * np.sign(b) * np.minimum(np.abs(a), np.abs(b))
    x_left, u_left, metric, origin = _decode(left, info[:half], metric, list_size)
    a, b = a[origin], b[origin]
    right = b + (1.0 - 2.0 * x_left) * a
    x_right, u_right, metric, chosen = _decode(right, info[half:], metric, list_size)
    codeword = np.concatenate([x_left[chosen] ^ x_right, x_right], axis=1)
    return codeword, np.concatenate([u_left[chosen], u_right], axis=1), metric, origin[chosen]
