"""The NR broadcast channel: the MIB, the PBCH payload and its polar code (TS 38.212 7.1, 5.3.1,
5.4.1), and the PBCH's bits (TS 38.211 7.3.3.1), shared by the generator and the receiver
(:mod:`monitor.dsp.nr_mib`). FR1 only (L_max 4 or 8).

Every SS/PBCH block carries a 32-bit payload: the MIB's 24 bits (38.331 BCCH-BCH-Message: the
message choice, the 6 high bits of the system frame number, subCarrierSpacingCommon,
ssb-SubcarrierOffset, dmrs-TypeA-Position, pdcch-ConfigSIB1, cellBarred,
intraFreqReselection, a spare bit), the 4 low bits of the SFN, the half-frame bit and the MSB of
k_SSB. The payload is interleaved, scrambled by the cell's Gold sequence at an offset set by
the SFN's 2nd and 3rd bits (so it changes every 20 ms), given a CRC-24C, polar coded (K = 56,
N = 512), repeated to 864 bits and scrambled again at an offset set by the SSB index: 432 QPSK
symbols.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

from monitor.synth.sequences import crc_parity, gold_sequence

__all__ = [
    "CODED_BITS",
    "CRC_BITS",
    "INFO_BITS",
    "MIB_BITS",
    "PAYLOAD_BITS",
    "POLAR_N",
    "UNSCRAMBLED",
    "NrMib",
    "crc24c",
    "info_positions",
    "input_interleaver",
    "payload_order",
    "payload_scrambling",
    "pbch_bits",
    "pbch_scrambling",
    "polar_transform",
    "rate_match_indices",
]

MIB_BITS = 24  # A-bar: the BCCH-BCH-Message
PAYLOAD_BITS = 32  # A
CRC_BITS = 24
INFO_BITS = PAYLOAD_BITS + CRC_BITS  # K
POLAR_N = 512  # 38.212 5.3.1 for K = 56, E = 864, n_max = 9
CODED_BITS = 864  # E, the PBCH's bits in one SSB (432 QPSK symbols)
#: Bits 1-6 of the MIB and A-bar .. A-bar + 3 of the payload: the SFN, high bits first.
_SFN_BITS = (*range(1, 7), *range(MIB_BITS, MIB_BITS + 4))
_HALF_FRAME_BIT = MIB_BITS + 4
#: gCRC24C(D) (38.212 5.1): the coefficients of D^23 .. D^0.
_CRC24C = np.array([(0xB2B117 >> (23 - i)) & 1 for i in range(CRC_BITS)], np.uint8)
#: The PBCH payload interleaver (38.212 table 7.1.1-1).
_G = (16, 23, 18, 17, 8, 30, 10, 6, 24, 7, 0, 5, 3, 2, 1, 4,
      9, 11, 12, 13, 14, 15, 19, 20, 21, 22, 25, 26, 27, 28, 29, 31)
#: The polar code's input interleaving pattern for K_IL_max = 164 (38.212 table 5.3.1.1-1).
_INTERLEAVER_MAX = (
    0, 2, 4, 7, 9, 14, 19, 20, 24, 25, 26, 28, 31, 34, 42, 45, 49, 50, 51, 53, 54, 56, 58, 59,
    61, 62, 65, 66, 67, 69, 70, 71, 72, 76, 77, 81, 82, 83, 87, 88, 89, 91, 93, 95, 98, 101,
    104, 106, 108, 110, 111, 113, 115, 118, 119, 120, 122, 123, 126, 127, 129, 132, 134, 138,
    139, 140, 1, 3, 5, 8, 10, 15, 21, 27, 29, 32, 35, 43, 46, 52, 55, 57, 60, 63, 68, 73, 78,
    84, 90, 92, 94, 96, 99, 102, 105, 107, 109, 112, 114, 116, 121, 124, 128, 130, 133, 135,
    141, 6, 11, 16, 22, 30, 33, 36, 44, 47, 64, 74, 79, 85, 97, 100, 103, 117, 125, 131, 136,
    142, 12, 17, 23, 37, 48, 75, 80, 86, 137, 143, 13, 18, 38, 144, 39, 145, 40, 146, 41, 147,
    148, 149, 150, 151, 152, 153, 154, 155, 156, 157, 158, 159, 160, 161, 162, 163)
#: The polar sequence Q_0^{N-1} for N = 512 (38.212 table 5.3.1.2-1, the indices under 512 in
#: its order): least reliable first.
_RELIABILITY = (
    0, 1, 2, 4, 8, 16, 32, 3, 5, 64, 9, 6, 17, 10, 18, 128, 12, 33, 65, 20, 256, 34, 24, 36,
    7, 129, 66, 11, 40, 68, 130, 19, 13, 48, 14, 72, 257, 21, 132, 35, 258, 26, 80, 37, 25, 22,
    136, 260, 264, 38, 96, 67, 41, 144, 28, 69, 42, 49, 74, 272, 160, 288, 192, 70, 44, 131,
    81, 50, 73, 15, 320, 133, 52, 23, 134, 384, 76, 137, 82, 56, 27, 97, 39, 259, 84, 138,
    145, 261, 29, 43, 98, 88, 140, 30, 146, 71, 262, 265, 161, 45, 100, 51, 148, 46, 75, 266,
    273, 104, 162, 53, 193, 152, 77, 164, 268, 274, 54, 83, 57, 112, 135, 78, 289, 194, 85,
    276, 58, 168, 139, 99, 86, 60, 280, 89, 290, 196, 141, 101, 147, 176, 142, 321, 31, 200,
    90, 292, 322, 263, 149, 102, 105, 304, 296, 163, 92, 47, 267, 385, 324, 208, 386, 150,
    153, 165, 106, 55, 328, 113, 154, 79, 269, 108, 224, 166, 195, 270, 275, 291, 59, 169,
    114, 277, 156, 87, 197, 116, 170, 61, 281, 278, 177, 293, 388, 91, 198, 172, 120, 201,
    336, 62, 282, 143, 103, 178, 294, 93, 202, 323, 392, 297, 107, 180, 151, 209, 284, 94,
    204, 298, 400, 352, 325, 155, 210, 305, 300, 109, 184, 115, 167, 225, 326, 306, 157,
    329, 110, 117, 212, 171, 330, 226, 387, 308, 216, 416, 271, 279, 158, 337, 118, 332,
    389, 173, 121, 199, 179, 228, 338, 312, 390, 174, 393, 283, 122, 448, 353, 203, 63, 340,
    394, 181, 295, 285, 232, 124, 205, 182, 286, 299, 354, 211, 401, 185, 396, 344, 240, 206,
    95, 327, 402, 356, 307, 301, 417, 213, 186, 404, 227, 418, 302, 360, 111, 331, 214, 309,
    188, 449, 217, 408, 229, 159, 420, 310, 333, 119, 339, 218, 368, 230, 391, 313, 450, 334,
    233, 175, 123, 341, 220, 314, 424, 395, 355, 287, 183, 234, 125, 342, 316, 241, 345, 452,
    397, 403, 207, 432, 357, 187, 236, 126, 242, 398, 346, 456, 358, 405, 303, 244, 189, 361,
    215, 348, 419, 406, 464, 362, 409, 219, 311, 421, 410, 231, 248, 369, 190, 364, 335, 480,
    315, 221, 370, 422, 425, 451, 235, 412, 343, 372, 317, 222, 426, 453, 237, 433, 347, 243,
    454, 318, 376, 428, 238, 359, 457, 399, 434, 349, 245, 458, 363, 127, 191, 407, 436, 465,
    246, 350, 460, 249, 411, 365, 440, 374, 423, 466, 250, 371, 481, 413, 366, 468, 429, 252,
    373, 482, 427, 414, 223, 472, 455, 377, 435, 319, 484, 430, 488, 239, 378, 459, 437, 380,
    461, 496, 351, 467, 438, 251, 462, 442, 441, 469, 247, 367, 253, 375, 444, 470, 483, 415,
    485, 473, 474, 254, 379, 431, 489, 486, 476, 439, 490, 463, 381, 497, 492, 443, 382, 498,
    445, 471, 500, 446, 475, 487, 504, 255, 477, 491, 478, 383, 493, 499, 502, 494, 501, 447,
    505, 506, 479, 508, 495, 503, 507, 509, 510, 511)
#: The sub-block interleaver pattern P(i) (38.212 table 5.4.1.1-1).
_SUB_BLOCKS = (0, 1, 2, 4, 3, 5, 6, 7, 8, 16, 9, 17, 10, 18, 11, 19,
               12, 20, 13, 21, 14, 22, 15, 23, 24, 25, 26, 28, 27, 29, 30, 31)


@dataclass(frozen=True)
class NrMib:
    """The MIB's fields (38.331 MIB), with the payload's k_SSB MSB and the SFN's low bits.

    Attributes:
        sfn: the system frame number, 0-1023.
        scs_common_hz: subCarrierSpacingCommon in FR1: SIB1's and the initial access
            messages' spacing, 15 or 30 kHz.
        k_ssb: the SSB's offset from the common resource block grid, subcarriers, 0-31 (FR1:
            ssb-SubcarrierOffset and the payload's MSB); 24 or more: no CORESET#0, so no SIB1
            (a cell that only serves as a secondary one, as in EN-DC).
        dmrs_type_a_position: the first PDSCH DMRS symbol, 2 or 3.
        coreset_zero: controlResourceSetZero, 0-15 (38.213 tables 13-1 to 13-10).
        search_space_zero: searchSpaceZero, 0-15.
        cell_barred: cellBarred is "barred".
        intra_freq_reselection: intraFreqReselection is "allowed".
    """

    sfn: int = 0
    scs_common_hz: float = 15e3
    k_ssb: int = 0
    dmrs_type_a_position: int = 2
    coreset_zero: int = 0
    search_space_zero: int = 0
    cell_barred: bool = False
    intra_freq_reselection: bool = True

    @property
    def has_sib1(self) -> bool:
        """Whether the cell has a CORESET#0 for SIB1 (k_SSB <= 23 in FR1, 38.213 13)."""
        return self.k_ssb <= 23

    def summary(self) -> str:
        """What a survey wants of it: ``barred, no SIB1``, ``SIB1``, ..."""
        return ", ".join([*(["barred"] if self.cell_barred else []),
                          "SIB1" if self.has_sib1 else "no SIB1"])

    def bits(self) -> np.ndarray:
        """The BCCH-BCH-Message's 24 bits (unaligned PER), first sent first."""
        fields = ((0, 1), (self.sfn >> 4, 6), (int(self.scs_common_hz == 30e3), 1),
                  (self.k_ssb & 15, 4), (self.dmrs_type_a_position - 2, 1),
                  (self.coreset_zero, 4), (self.search_space_zero, 4),
                  (int(not self.cell_barred), 1), (int(not self.intra_freq_reselection), 1),
                  (0, 1))
        return _bits(fields)

    def payload(self, half_frame: int) -> np.ndarray:
        """The PBCH payload a (38.212 7.1.1) of an SSB in ``half_frame`` (0 or 1): 32 bits."""
        extra = ((self.sfn & 15, 4), (half_frame, 1), (self.k_ssb >> 4, 1), (0, 2))
        return np.concatenate([self.bits(), _bits(extra)])

    @classmethod
    def from_payload(cls, a: np.ndarray) -> tuple[NrMib, int]:
        """The MIB and half-frame bit of a payload a.

        Raises:
            ValueError: for a payload whose message is not a MIB.
        """
        def field(start: int, width: int) -> int:
            return int(sum(int(b) << (width - 1 - i) for i, b in enumerate(a[start:start + width])))

        if a[0]:
            raise ValueError("the BCCH-BCH message is not a MIB")
        mib = cls(sfn=(field(1, 6) << 4) | field(MIB_BITS, 4),
                  scs_common_hz=30e3 if a[7] else 15e3,
                  k_ssb=field(8, 4) | (int(a[MIB_BITS + 5]) << 4),
                  dmrs_type_a_position=2 + int(a[12]), coreset_zero=field(13, 4),
                  search_space_zero=field(17, 4), cell_barred=not a[21],
                  intra_freq_reselection=not a[22])
        return mib, int(a[_HALF_FRAME_BIT])


def _bits(fields: tuple[tuple[int, int], ...]) -> np.ndarray:
    return np.array([(value >> (width - 1 - i)) & 1 for value, width in fields
                     for i in range(width)], dtype=np.uint8)


@cache
def payload_order() -> np.ndarray:
    """Where the payload interleaver (38.212 7.1.1) puts each bit of a: a'[order[i]] = a[i]."""
    order = np.empty(PAYLOAD_BITS, dtype=np.int64)
    j_sfn, j_ssb, j_other = 0, 11, 14
    for i in range(PAYLOAD_BITS):
        if i in _SFN_BITS:
            order[i], j_sfn = _G[j_sfn], j_sfn + 1
        elif i == _HALF_FRAME_BIT:
            order[i] = _G[10]
        elif i > _HALF_FRAME_BIT:
            order[i], j_ssb = _G[j_ssb], j_ssb + 1
        else:
            order[i], j_other = _G[j_other], j_other + 1
    return order


#: The bits of a' the payload scrambling leaves alone (38.212 7.1.2, L_max 4 or 8): the SFN's
#: 3rd and 2nd lowest bits, which set the scrambling's offset, and the half-frame bit.
UNSCRAMBLED = tuple(int(payload_order()[i]) for i in (_SFN_BITS[7], _SFN_BITS[8],
                                                       _HALF_FRAME_BIT))


@cache
def payload_scrambling(cell_id: int, offset: int) -> np.ndarray:
    """The payload's scrambling bits s (38.212 7.1.2) for L_max 4 or 8, ``offset`` v being the
    SFN's 3rd and 2nd lowest bits (2 b3 + b2): 32 bits, 0 at :data:`UNSCRAMBLED`."""
    m = PAYLOAD_BITS - len(UNSCRAMBLED)
    c = gold_sequence(cell_id, 4 * m)
    s = np.zeros(PAYLOAD_BITS, dtype=np.uint8)
    scrambled = np.setdiff1d(np.arange(PAYLOAD_BITS), UNSCRAMBLED)
    s[scrambled] = c[offset * m : (offset + 1) * m]
    return s


def crc24c(bits: np.ndarray) -> np.ndarray:
    """The 24 parity bits of gCRC24C (38.212 5.1) of ``bits``, first bit first."""
    return crc_parity(bits, _CRC24C)


@cache
def input_interleaver() -> np.ndarray:
    """The polar code's input interleaver Pi for K = 56 (38.212 5.3.1.1): c'[k] = c[Pi[k]]."""
    skip = len(_INTERLEAVER_MAX) - INFO_BITS
    return np.array([m - skip for m in _INTERLEAVER_MAX if m >= skip])


@cache
def info_positions() -> np.ndarray:
    """The polar code's information bits u (38.212 5.3.1.2): the K most reliable of N, in
    increasing order. With E > N (repetition) no bit is frozen by rate matching."""
    return np.sort(np.array(_RELIABILITY[-INFO_BITS:]))


def polar_transform(u: np.ndarray) -> np.ndarray:
    """d = u G_N, G_N the n-th Kronecker power of [[1, 0], [1, 1]] (38.212 5.3.1.2)."""
    x = np.array(u, dtype=np.uint8)
    half = 1
    while half < len(x):
        pairs = x.reshape(-1, 2, half)
        pairs[:, 0] ^= pairs[:, 1]
        half *= 2
    return x


@cache
def rate_match_indices() -> np.ndarray:
    """For each of the E rate-matched bits, the polar code bit it repeats (38.212 5.4.1.1
    sub-block interleaving, 5.4.1.2 repetition: e_k = y_(k mod N), y_n = d_J(n))."""
    n = np.arange(POLAR_N)
    block = POLAR_N // 32
    j = np.array(_SUB_BLOCKS)[n // block] * block + n % block
    return j[np.arange(CODED_BITS) % POLAR_N]


@cache
def pbch_scrambling(cell_id: int, ssb_offset: int) -> np.ndarray:
    """The PBCH's scrambling bits (38.211 7.3.3.1), ``ssb_offset`` v being the SSB index's
    2 (L_max 4) or 3 (L_max 8) lowest bits: 864 bits."""
    return gold_sequence(cell_id, 8 * CODED_BITS)[ssb_offset * CODED_BITS :
                                                  (ssb_offset + 1) * CODED_BITS]


def pbch_bits(mib: NrMib, half_frame: int, cell_id: int, ssb_offset: int) -> np.ndarray:
    """The scrambled PBCH bits of one SSB: 864 bits, two per QPSK symbol.

    Args:
        mib: the MIB, its ``sfn`` the SSB's frame.
        half_frame: 0 or 1.
        cell_id: the PCI.
        ssb_offset: the SSB index modulo L_max's 4 or 8 (:func:`pbch_scrambling`).
    """
    interleaved = np.empty(PAYLOAD_BITS, dtype=np.uint8)
    interleaved[payload_order()] = mib.payload(half_frame)
    scrambled = interleaved ^ payload_scrambling(cell_id, (mib.sfn >> 1) & 3)
    c = np.concatenate([scrambled, crc24c(scrambled)])
    u = np.zeros(POLAR_N, dtype=np.uint8)
    u[info_positions()] = c[input_interleaver()]
    e = polar_transform(u)[rate_match_indices()]
    return e ^ pbch_scrambling(cell_id, ssb_offset)
