"""The LTE broadcast channel: the MIB, its coding (TS 36.212 5.3.1) and the PBCH's bits and
symbols (TS 36.211 6.6), shared by the generator and the receiver (:mod:`monitor.dsp.lte_mib`).

A MIB of 24 bits (36.331 6.2.2: dl-Bandwidth, phich-Config, the 8 high bits of the system
frame number, 10 spare) gets a CRC-16 masked by the number of antenna ports, a tail-biting
convolutional code of rate 1/3 (120 bits), and rate matching to 1920 bits, the PBCH's 40 ms
(four radio frames of 480 bits, 240 QPSK symbols). The bits are scrambled by the cell's Gold
sequence, restarted every four frames, so a frame's quarter of it is the system frame number
modulo 4.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

from monitor.synth.sequences import crc_parity, gold_sequence

__all__ = ["BANDWIDTH_RB", "CODED_BITS", "CRC_MASKS", "FRAME_BITS", "GENERATORS", "MIB_BITS",
           "Mib", "crc16", "pbch_bits", "pbch_symbols", "rate_match_indices", "scrambling",
           "tbcc_encode"]

MIB_BITS = 24
CRC_BITS = 16
CODED_BITS = 3 * (MIB_BITS + CRC_BITS)  # 120
PBCH_BITS = 1920  # 40 ms, normal CP (36.212 5.3.1.3)
FRAME_BITS = PBCH_BITS // 4
#: dl-Bandwidth's six values (36.331 MasterInformationBlock), in resource blocks.
BANDWIDTH_RB = (6, 15, 25, 50, 75, 100)
#: The CRC's mask by number of CRS antenna ports (36.212 table 5.3.1.1-1).
CRC_MASKS = {1: np.zeros(CRC_BITS, np.uint8), 2: np.ones(CRC_BITS, np.uint8),
             4: np.tile(np.array([0, 1], np.uint8), CRC_BITS // 2)}
#: gCRC16(D) = D^16 + D^12 + D^5 + 1 (36.212 5.1.1): the coefficients of D^15 .. D^0.
_CRC16 = np.zeros(CRC_BITS, np.uint8)
_CRC16[[15 - 12, 15 - 5, 15 - 0]] = 1
#: The generators 133, 171 and 165 (octal) of the convolutional code (36.212 5.1.3.1),
#: coefficient i applying to the input i bits back.
GENERATORS = np.array([[int(b) for b in f"{int(g, 8):07b}"] for g in ("133", "171", "165")],
                      dtype=np.uint8)
#: The sub-block interleaver's column permutation for convolutional codes (36.212 table
#: 5.1.4-2).
_COLUMNS = (1, 17, 9, 25, 5, 21, 13, 29, 3, 19, 11, 27, 7, 23, 15, 31,
            0, 16, 8, 24, 4, 20, 12, 28, 2, 18, 10, 26, 6, 22, 14, 30)


@dataclass(frozen=True)
class Mib:
    """The master information block's fields (36.331 6.2.2).

    Attributes:
        n_rb: the downlink bandwidth in resource blocks, one of :data:`BANDWIDTH_RB`.
        sfn: the system frame number, 0-1023 (the MIB carries its 8 high bits; its 2 low bits
            are the frame's place in the PBCH's 40 ms).
        phich_extended: phich-Duration extended.
        phich_resource: phich-Resource N_g as its index 0-3 (1/6, 1/2, 1, 2).
    """

    n_rb: int
    sfn: int = 0
    phich_extended: bool = False
    phich_resource: int = 2

    def bits(self) -> np.ndarray:
        """The 24 bits, first sent first."""
        fields = ((BANDWIDTH_RB.index(self.n_rb), 3), (int(self.phich_extended), 1),
                  (self.phich_resource, 2), (self.sfn >> 2, 8), (0, 10))
        return np.array([(value >> (width - 1 - i)) & 1 for value, width in fields
                         for i in range(width)], dtype=np.uint8)

    @classmethod
    def from_bits(cls, bits: np.ndarray, sfn_low: int) -> Mib:
        """The fields of 24 bits, the frame's place in the 40 ms (``sfn_low``) completing the
        system frame number.

        Raises:
            ValueError: for a dl-Bandwidth beyond the six values.
        """
        def field(start: int, width: int) -> int:
            part = bits[start : start + width]
            return int(sum(int(b) << (width - 1 - i) for i, b in enumerate(part)))

        bandwidth = field(0, 3)
        if bandwidth >= len(BANDWIDTH_RB):
            raise ValueError(f"dl-Bandwidth {bandwidth} is not one of the six values")
        return cls(BANDWIDTH_RB[bandwidth], 4 * field(6, 8) + sfn_low, bool(field(3, 1)),
                   field(4, 2))


def crc16(bits: np.ndarray) -> np.ndarray:
    """The 16 parity bits of gCRC16 (36.212 5.1.1) of ``bits``, first bit first."""
    return crc_parity(bits, _CRC16)


def tbcc_encode(bits: np.ndarray) -> np.ndarray:
    """The tail-biting convolutional code of 36.212 5.1.3.1: three streams (3, len(bits)).

    The register starts with the last six bits, so each stream is the input circularly
    convolved with its generator.
    """
    k = np.arange(len(bits))
    taps = (k[:, None] - np.arange(GENERATORS.shape[1])[None, :]) % len(bits)
    return (np.einsum("gi,ki->gk", GENERATORS, bits[taps]) % 2).astype(np.uint8)


@cache
def rate_match_indices(stream_bits: int = MIB_BITS + CRC_BITS, out_bits: int = PBCH_BITS
                       ) -> np.ndarray:
    """Rate matching for convolutional codes (36.212 5.1.4.2): for each output bit, the index
    of the coded bit it repeats (stream s, bit k at ``s * stream_bits + k``)."""
    columns = len(_COLUMNS)
    rows = -(-stream_bits // columns)
    dummies = rows * columns - stream_bits
    index = np.full(rows * columns, -1)  # -1: a dummy bit, leading
    index[dummies:] = np.arange(stream_bits)
    read = index.reshape(rows, columns)[:, list(_COLUMNS)].T.ravel()  # column by column
    w = np.concatenate([np.where(read < 0, -1, read + s * stream_bits) for s in range(3)])
    w = w[w >= 0]
    return np.resize(w, out_bits)


@cache
def scrambling(cell_id: int) -> np.ndarray:
    """The PBCH's scrambling sequence over its 40 ms (36.211 6.6.1): 1920 bits."""
    return gold_sequence(cell_id, PBCH_BITS)


def pbch_bits(mib: Mib, n_ports: int, cell_id: int) -> np.ndarray:
    """The scrambled PBCH bits of the radio frame ``mib.sfn``: 480 bits."""
    a = mib.bits()
    block = np.concatenate([a, crc16(a) ^ CRC_MASKS[n_ports]])
    coded = tbcc_encode(block).ravel()[rate_match_indices()]
    quarter = slice(FRAME_BITS * (mib.sfn % 4), FRAME_BITS * (mib.sfn % 4 + 1))
    return coded[quarter] ^ scrambling(cell_id)[quarter]


def pbch_symbols(mib: Mib, n_ports: int, cell_id: int) -> np.ndarray:
    """The PBCH's 240 symbols of one radio frame, as a single-antenna receiver would see them
    with every port's channel the same: the ports' transmit-diversity outputs (36.211 6.3.3.3,
    6.3.4.3) summed.

    With two ports, RE 2i carries (d(2i) - d(2i+1)*) / sqrt 2 and RE 2i+1 carries
    (d(2i+1) + d(2i)*) / sqrt 2.
    """
    bits = pbch_bits(mib, n_ports, cell_id).astype(np.float32)
    d = ((1 - 2 * bits[0::2]) + 1j * (1 - 2 * bits[1::2])) / np.sqrt(2)  # QPSK, 36.211 7.1.2
    if n_ports == 1:
        return d.astype(np.complex64)
    if n_ports != 2:
        raise ValueError(f"{n_ports} ports: the generator sends 1 or 2")
    out = np.empty_like(d)
    out[0::2] = (d[0::2] - np.conj(d[1::2])) / np.sqrt(2)
    out[1::2] = (d[1::2] + np.conj(d[0::2])) / np.sqrt(2)
    return out.astype(np.complex64)
