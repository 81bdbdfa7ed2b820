"""Floating-point bit layouts and small code books: FP32, FP16, BF16, FP8 and NF4.

Lesson 01 ("Number formats") derives everything here. A binary floating-point format
with ``E`` exponent bits, ``M`` mantissa bits and bias ``b`` stores a sign bit ``s``, an
exponent field ``e`` and a mantissa field ``m`` and means

    normal    (e > 0):  x = (-1)^s * 2^(e - b)     * (1 + m / 2^M)
    subnormal (e = 0):  x = (-1)^s * 2^(1 - b)     * (m / 2^M)

IEEE-style formats (FP32, FP16, BF16, FP8 E5M2) reserve the all-ones exponent for
infinity (m = 0) and NaN (m != 0). FP8 E4M3 in its "fn" flavour (finite, NaN) has no
infinity: only ``S.1111.111`` is NaN, so the largest finite value is
2^(15 - 7) * (1 + 6/8) = 448.

Rounding is round-to-nearest, ties-to-even (the IEEE default, also what numpy, torch
and llama.cpp's FP16 conversion do). Overflow goes to +-inf in formats that have one and
saturates at +-max in E4M3 (what ``torch.float8_e4m3fn`` does too).

Also here: the NF4 code book of QLoRA (Dettmers et al., 2023) and round-to-nearest
quantization onto any code book with a per-block absmax scale.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.errors import CourseError

__all__ = [
    "FloatFormat",
    "FORMATS",
    "get_format",
    "round_to_format",
    "encode",
    "decode",
    "FloatBits",
    "float_bits",
    "format_values",
    "NF4_CODE",
    "nf4_from_quantiles",
    "fp_code",
    "quantize_to_code",
    "dequantize_code",
    "fake_quantize_float",
]


@dataclass(frozen=True)
class FloatFormat:
    """A binary floating-point format: field widths, bias and how it spends the top exponent."""

    name: str
    exponent_bits: int  # E
    mantissa_bits: int  # M (stored fraction bits; the leading 1 of normal numbers is implicit)
    bias: int  # b
    ieee_specials: bool  # True: top exponent = inf/NaN; False (E4M3fn): only S.1111.111 is NaN

    @property
    def total_bits(self) -> int:
        return 1 + self.exponent_bits + self.mantissa_bits

    @property
    def min_exponent(self) -> int:
        """Exponent of the smallest normal number, 1 - b (subnormals share it)."""
        return 1 - self.bias

    @property
    def max_exponent(self) -> int:
        top = 2**self.exponent_bits - 1
        return (top - 1 if self.ieee_specials else top) - self.bias

    @property
    def max_finite(self) -> float:
        """Largest finite value: (2 - 2^-M) * 2^emax, or one mantissa step less in E4M3fn."""
        frac_steps = 2**self.mantissa_bits - (1 if self.ieee_specials else 2)
        return float(2.0**self.max_exponent * (1 + frac_steps / 2**self.mantissa_bits))

    @property
    def min_normal(self) -> float:
        return float(2.0**self.min_exponent)

    @property
    def min_subnormal(self) -> float:
        return float(2.0 ** (self.min_exponent - self.mantissa_bits))

    @property
    def epsilon(self) -> float:
        """Gap between 1 and the next larger value, 2^-M (relative step of the format)."""
        return float(2.0**-self.mantissa_bits)


FORMATS: dict[str, FloatFormat] = {
    "FP32": FloatFormat("FP32", 8, 23, 127, True),
    "FP16": FloatFormat("FP16", 5, 10, 15, True),
    "BF16": FloatFormat("BF16", 8, 7, 127, True),
    "FP8_E4M3": FloatFormat("FP8_E4M3", 4, 3, 7, False),
    "FP8_E5M2": FloatFormat("FP8_E5M2", 5, 2, 15, True),
}


def get_format(fmt: str | FloatFormat) -> FloatFormat:
    """Look a format up by name (``FP32``, ``FP16``, ``BF16``, ``FP8_E4M3``, ``FP8_E5M2``)."""
    if isinstance(fmt, FloatFormat):
        return fmt
    key = str(fmt).upper().replace("-", "_")
    if key not in FORMATS:
        raise CourseError(f"fmt={fmt!r} is not a known format; allowed: {sorted(FORMATS)}")
    return FORMATS[key]


def _as_float64(x, param: str = "x") -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor: go through float32 (exact for bf16/fp16/fp8)
        x = x.detach().float().cpu().numpy()
    arr = np.asarray(x)
    if arr.dtype.kind not in "fiu":
        raise CourseError(f"{param} has dtype {arr.dtype}; give real numbers (float or int)")
    return arr.astype(np.float64)


def round_to_format(x, fmt: str | FloatFormat) -> np.ndarray:
    """Round ``x`` to the nearest value of ``fmt`` (ties to even); returns float64 values.

    With ``e = floor(log2|x|)`` clamped below at the smallest normal exponent ``1 - b``,
    representable numbers near ``x`` are the multiples of the quantum ``2^(e - M)``, so
    ``round(|x| / 2^(e-M)) * 2^(e-M)`` with ties-to-even is the correctly rounded value
    (an even multiple is a mantissa ending in 0). Values that round past the largest
    finite number become +-inf, or +-max in E4M3. NaN stays NaN; the sign of zero is kept.
    """
    f = get_format(fmt)
    x = _as_float64(x)
    a = np.abs(x)
    _, ex = np.frexp(a)  # a = frac * 2^ex with frac in [0.5, 1): floor(log2 a) = ex - 1, exactly
    e = np.maximum(ex - 1, f.min_exponent)
    quantum = np.ldexp(1.0, e - f.mantissa_bits)
    with np.errstate(invalid="ignore", over="ignore"):
        r = np.rint(a / quantum) * quantum  # np.rint rounds half to even
        r = np.where(np.isinf(a), np.inf, r)
        over = r > f.max_finite
        r = np.where(over, np.inf if f.ieee_specials else f.max_finite, r)
    return np.copysign(r, x)  # NaN propagates through rint


def encode(x, fmt: str | FloatFormat) -> np.ndarray:
    """Round ``x`` to ``fmt`` and return its bit patterns as unsigned integers (uint64).

    The code is ``s << (E + M) | e << M | m``, the fields of the module docstring.
    NaN is encoded as the canonical quiet NaN (``0x7E00`` in FP16, ``0x7F`` in E4M3).
    """
    f = get_format(fmt)
    v = round_to_format(x, fmt)
    sign = np.signbit(v).astype(np.uint64)
    a = np.abs(v)
    top = 2**f.exponent_bits - 1
    _, ex = np.frexp(a)
    normal = a >= f.min_normal
    with np.errstate(invalid="ignore"):
        e_field = np.where(normal, ex - 1 + f.bias, 0)
        m_norm = (np.ldexp(a, -(ex - 1)) - 1) * 2**f.mantissa_bits  # (a / 2^e - 1) * 2^M
        m_sub = np.ldexp(a, f.mantissa_bits - f.min_exponent)  # a / 2^(1 - b - M)
        m_field = np.where(normal, m_norm, m_sub)
        m_field = np.nan_to_num(m_field, nan=0.0, posinf=0.0)
    e_field = np.where(np.isinf(a), top, e_field)
    m_field = np.where(np.isinf(a), 0, m_field)
    nan = np.isnan(a)
    if f.ieee_specials:
        e_field = np.where(nan, top, e_field)
        m_field = np.where(nan, 2 ** (f.mantissa_bits - 1), m_field)
    else:
        e_field = np.where(nan, top, e_field)
        m_field = np.where(nan, 2**f.mantissa_bits - 1, m_field)
    e_field = e_field.astype(np.uint64)
    m_field = m_field.astype(np.uint64)
    shift_s = np.uint64(f.exponent_bits + f.mantissa_bits)
    return (sign << shift_s) | (e_field << np.uint64(f.mantissa_bits)) | m_field


def decode(codes, fmt: str | FloatFormat) -> np.ndarray:
    """Value of each bit pattern in ``codes`` (integers) under ``fmt``, as float64."""
    f = get_format(fmt)
    c = np.asarray(codes)
    if c.dtype.kind not in "iu":
        raise CourseError(f"codes has dtype {c.dtype}; give integer bit patterns")
    c = c.astype(np.uint64)
    if np.any(c >> np.uint64(f.total_bits)):
        raise CourseError(f"codes contain values >= 2^{f.total_bits}, too wide for {f.name}")
    m = (c & np.uint64(2**f.mantissa_bits - 1)).astype(np.float64)
    e = ((c >> np.uint64(f.mantissa_bits)) & np.uint64(2**f.exponent_bits - 1)).astype(np.int64)
    s = (c >> np.uint64(f.exponent_bits + f.mantissa_bits)).astype(np.float64)
    frac = m / 2**f.mantissa_bits
    value = np.where(
        e == 0,
        np.ldexp(frac, f.min_exponent),  # subnormal: 2^(1-b) * m/2^M
        np.ldexp(1 + frac, e - f.bias),  # normal:    2^(e-b) * (1 + m/2^M)
    )
    top = 2**f.exponent_bits - 1
    if f.ieee_specials:
        value = np.where(e == top, np.where(m == 0, np.inf, np.nan), value)
    else:
        value = np.where((e == top) & (m == 2**f.mantissa_bits - 1), np.nan, value)
    return np.where(s == 1, -value, value)


@dataclass(frozen=True)
class FloatBits:
    """The fields of one number stored in a format, as integers and as bit strings."""

    fmt: str
    x: float  # the number asked for
    value: float  # the number actually stored (x rounded to the format)
    sign: int
    exponent: int  # the stored (biased) exponent field e
    mantissa: int  # the stored mantissa field m
    sign_bits: str
    exponent_bits: str
    mantissa_bits: str

    @property
    def bits(self) -> str:
        """All bits, fields separated by spaces: ``s eeeee mmmmmmmmmm``."""
        return f"{self.sign_bits} {self.exponent_bits} {self.mantissa_bits}"

    def formula(self) -> str:
        """The decoding equation filled in with this number's fields."""
        f = get_format(self.fmt)
        top = 2**f.exponent_bits - 1
        if self.exponent == top and (f.ieee_specials or self.mantissa == 2**f.mantissa_bits - 1):
            return f"exponent field all ones: {'inf' if np.isinf(self.value) else 'NaN'}"
        if self.exponent == 0:
            return (f"(-1)^{self.sign} * 2^(1-{f.bias}) * ({self.mantissa}/2^{f.mantissa_bits})"
                    f" = {self.value!r}  (subnormal)")
        return (f"(-1)^{self.sign} * 2^({self.exponent}-{f.bias}) * (1 + {self.mantissa}/2^{f.mantissa_bits})"
                f" = {self.value!r}")


def float_bits(x: float, fmt: str | FloatFormat = "FP32") -> FloatBits:
    """Sign, exponent and mantissa of ``x`` stored in ``fmt`` (after rounding to it)."""
    f = get_format(fmt)
    code = int(encode(np.float64(x), f))
    m = code & (2**f.mantissa_bits - 1)
    e = (code >> f.mantissa_bits) & (2**f.exponent_bits - 1)
    s = code >> (f.exponent_bits + f.mantissa_bits)
    return FloatBits(
        fmt=f.name, x=float(x), value=float(decode(np.uint64(code), f)), sign=s, exponent=e, mantissa=m,
        sign_bits=str(s), exponent_bits=format(e, f"0{f.exponent_bits}b"),
        mantissa_bits=format(m, f"0{f.mantissa_bits}b"),
    )


def format_values(fmt: str | FloatFormat) -> np.ndarray:
    """Every finite value of a format with at most 16 bits, sorted, without duplicates (+-0 -> 0)."""
    f = get_format(fmt)
    if f.total_bits > 16:
        raise CourseError(f"fmt={f.name!r} has {f.total_bits} bits; format_values enumerates formats of <= 16 bits")
    v = decode(np.arange(2**f.total_bits, dtype=np.uint64), f)
    return np.unique(v[np.isfinite(v)])


# NF4: the 16 levels of QLoRA's 4-bit NormalFloat (Dettmers et al., "QLoRA: Efficient
# Finetuning of Quantized LLMs", 2023, Appendix E; the table bitsandbytes ships). Each
# level is (nearly) an equal-probability quantile of N(0, 1), rescaled to [-1, 1], with
# an exact zero; see nf4_from_quantiles for the construction.
NF4_CODE = np.array([
    -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
    -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
    0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
    0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
], dtype=np.float32)


def nf4_from_quantiles(offset: float = 0.9677083) -> np.ndarray:
    """Build the NF4 levels from normal quantiles (the QLoRA construction).

    8 positive levels are the N(0,1) quantiles at ``linspace(offset, 1/2, 9)[:-1]``, 7
    negative ones the mirrored quantiles at ``linspace(offset, 1/2, 8)[:-1]``, plus an exact
    0; all divided by the largest. ``offset`` = (1/2)(1 - 1/32 + 1 - 1/30) keeps the extreme
    quantiles finite. Asymmetric (8 positive, 7 negative) so that zero is representable.
    """
    from scipy.stats import norm

    pos = norm.ppf(np.linspace(offset, 0.5, 9)[:-1])  # (8,)
    neg = -norm.ppf(np.linspace(offset, 0.5, 8)[:-1])  # (7,)
    v = np.sort(np.concatenate([pos, [0.0], neg]))
    return (v / v.max()).astype(np.float32)


def fp_code(fmt: str | FloatFormat) -> np.ndarray:
    """A small float format as a code book in [-1, 1]: its finite values divided by its max."""
    v = format_values(fmt)
    return (v / v.max()).astype(np.float32)


def _blocks(W, block_size: int | None, param: str = "W") -> tuple[np.ndarray, tuple[int, ...]]:
    if hasattr(W, "detach"):
        W = W.detach().float().cpu().numpy()
    W = np.asarray(W)
    if W.dtype.kind != "f":
        raise CourseError(f"{param} has dtype {W.dtype}; give a floating-point array")
    if not np.all(np.isfinite(W)):
        raise CourseError(f"{param} contains NaN or inf; quantization needs finite values")
    flat = W.astype(np.float32).reshape(-1)
    if block_size is None:
        return flat[None, :], W.shape
    if not isinstance(block_size, (int, np.integer)) or block_size < 1 or flat.size % block_size:
        raise CourseError(f"block_size={block_size!r} must be a positive integer dividing {param}.size={flat.size}")
    return flat.reshape(-1, block_size), W.shape


def quantize_to_code(W, code: np.ndarray, block_size: int | None = 64) -> tuple[np.ndarray, np.ndarray]:
    """Round each value to the nearest level of ``code`` after an absmax scale per block.

    Per block of ``block_size`` consecutive values (the whole tensor when None):
    ``s = max|W| / max|code|``, ``idx = argmin_k |W/s - code_k|`` (QLoRA's NF4 recipe).
    Returns ``(idx, s)``: idx has ``W``'s shape (uint8), s one float32 per block.
    """
    code = np.asarray(code, dtype=np.float32)
    if code.ndim != 1 or code.size < 2 or code.size > 256 or np.any(np.diff(code) <= 0):
        raise CourseError(f"code must be a sorted 1-D array of 2..256 distinct levels, got shape {code.shape}")
    blocks, shape = _blocks(W, block_size)  # (n_blocks, block_size)
    s = np.abs(blocks).max(axis=1) / np.abs(code).max()  # (n_blocks,)
    inv = np.divide(1.0, s, out=np.zeros_like(s), where=s > 0)
    y = blocks * inv[:, None]
    mids = (code[1:] + code[:-1]) / 2  # decision thresholds between neighbouring levels
    idx = np.searchsorted(mids, y)  # nearest level (a tie goes to the lower one)
    return idx.astype(np.uint8).reshape(shape), s.astype(np.float32)


def dequantize_code(idx: np.ndarray, s: np.ndarray, code: np.ndarray, block_size: int | None = 64) -> np.ndarray:
    """Inverse of :func:`quantize_to_code`: ``W_hat = code[idx] * s`` per block (float32)."""
    idx = np.asarray(idx)
    vals = np.asarray(code, dtype=np.float32)[idx.reshape(-1)]
    n = vals.size if block_size is None else block_size
    if vals.size % n or np.size(s) != vals.size // n:
        raise CourseError(f"s has {np.size(s)} scales; expected {vals.size // n} for {vals.size} values "
                          f"in blocks of {n}")
    return (vals.reshape(-1, n) * np.asarray(s, dtype=np.float32).reshape(-1, 1)).reshape(idx.shape)


def fake_quantize_float(W, fmt: str | FloatFormat, block_size: int | None = None) -> np.ndarray:
    """Scale each block so its absmax lands on the format's max, round to the format, scale back.

    ``s = max|W| / max_finite``, ``W_hat = s * round_fmt(W / s)``: FP8 used as a 8-bit code
    with a per-tensor (None) or per-block scale, as FP8 inference engines store weights.
    """
    f = get_format(fmt)
    blocks, shape = _blocks(W, block_size)
    s = np.abs(blocks).max(axis=1, keepdims=True).astype(np.float64) / f.max_finite
    inv = np.divide(1.0, s, out=np.zeros_like(s), where=s > 0)
    return (round_to_format(blocks * inv, f) * s).astype(np.float32).reshape(shape)
