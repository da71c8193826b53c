"""Pseudo-random sequences shared by the LTE and NR generators."""

from __future__ import annotations

import numpy as np

__all__ = ["crc_parity", "gold_sequence"]

_NC = 1600  # TS 36.211 7.2, TS 38.211 5.2.1


def gold_sequence(c_init: np.ndarray | int, length: int) -> np.ndarray:
    """The length-31 Gold sequence c(n) of TS 36.211 7.2 and TS 38.211 5.2.1 (the same sequence),
    for each initial value.

    Parameters
    ----------
    c_init : array_like of int
        Initial values of the second m-sequence, any shape.
    length : int
        Number of values n = 0 .. length - 1 to return.

    Returns
    -------
    np.ndarray
        uint8 of shape ``c_init.shape + (length,)``, values 0 or 1.
    """
    c_init = np.asarray(c_init, dtype=np.int64)
    total = _NC + length
    x1 = np.zeros(total, dtype=np.uint8)
    x1[0] = 1
    x2 = np.zeros((*c_init.shape, total), dtype=np.uint8)
    x2[..., :31] = (c_init[..., None] >> np.arange(31)) & 1  # c_init = sum x2(i) 2^i
    # x(n + 31) needs x(n) .. x(n + 3), so 28 consecutive values depend only on known ones.
    for n0 in range(0, total - 31, 28):
        n1 = min(n0 + 28, total - 31)
        x1[n0 + 31 : n1 + 31] = x1[n0 + 3 : n1 + 3] ^ x1[n0:n1]
        x2[..., n0 + 31 : n1 + 31] = (
            x2[..., n0 + 3 : n1 + 3] ^ x2[..., n0 + 2 : n1 + 2] ^ x2[..., n0 + 1 : n1 + 1]
        ) ^ x2[..., n0:n1]
    return x1[_NC:] ^ x2[..., _NC:]


def crc_parity(bits: np.ndarray, generator: np.ndarray) -> np.ndarray:
    """The parity bits of the cyclic code whose generator polynomial has the coefficients
    ``generator`` (of D^(L-1) .. D^0; D^L's is implied) over ``bits``, first bit first: the CRCs
    of TS 36.212 5.1.1 and TS 38.212 5.1, with no initial value."""
    register = np.zeros(len(generator), np.uint8)
    for bit in bits:
        feedback = register[0] ^ bit
        register = np.append(register[1:], np.uint8(0))
        if feedback:
            register ^= generator
    return register
