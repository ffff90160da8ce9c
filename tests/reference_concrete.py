"""Plain-NumPy reference for concrete dropout, written from the contract in
src/concrete.h, not from the kernels, and in a different form:

- the uniforms: the kernel reads a block's 32 stream words as 64 uint32 in
  memory; here each lane's 32 bits are cut out of its word by shifts and
  masks, lane l taking the low half of word l // 2 for even l and the high
  half for odd l;
- the noise, in float64 with libm: logit(u) = 2 atanh(2u - 1), whose
  argument (2U + 1 - 2^32) / 2^32 is exact in float64, and the logistic
  function from scipy.special (the kernel has its own log2 and exp2 series);
- the p_logit gradient from the chain rule written out, summed by NumPy.
"""
import numpy as np
from scipy.special import expit

from reference import BLOCK, stream_words

_U64 = np.uint64


def concrete_uniforms(key, block0, n):
    """U_e, the 32-bit uniform of each of n noise values drawn from block block0 (uint64 array)."""
    n_blocks = -(-n // BLOCK)
    words = stream_words(key, np.arange(block0, block0 + n_blocks, dtype=_U64))   # (blocks, 32)
    lanes = np.arange(BLOCK)
    word = words[:, lanes // 2]                                                  # (blocks, 64)
    shift = (32 * (lanes % 2)).astype(_U64)
    return ((word >> shift) & _U64(0xFFFFFFFF)).reshape(-1)[:n]


def concrete_logistic(U):
    """log(u) - log(1 - u), u = (U + 1/2) / 2^32, in float64."""
    return 2.0 * np.arctanh((2.0 * U.astype(np.float64) + 1.0 - 2.0 ** 32) / 2.0 ** 32)


def concrete_noise(key, block0, n, p_logit, temperature):
    """(w, z, logistic) in float64: z = sigmoid((p_logit + logistic) / t), w = 1 - z."""
    logistic = concrete_logistic(concrete_uniforms(key, block0, n))
    s = (p_logit + logistic) / temperature
    return expit(-s), expit(s), logistic


def sigmoid(a):
    return float(expit(a))


def reference_forward(x, w, p_logit, run=1):
    """y = x * w / (1 - p) in float64, one w per run of `run` consecutive elements."""
    scale = 1.0 / (1.0 - sigmoid(p_logit)) if p_logit <= 0 else 1.0 + np.exp(p_logit)
    flat = np.asarray(x, dtype=np.float64).reshape(-1)
    return (flat * np.repeat(w, run) * scale).reshape(np.shape(x))


def reference_backward(dy, x, w, z, p_logit, temperature, run=1):
    """(dx, dL/dp_logit) in float64 for L = sum dy * y, y = reference_forward(x, w, p_logit):
    dy/dp_logit = x [-(dz/da) / (1 - p) + (1 - z) p (1 - p) / (1 - p)^2],
    dz/da = z (1 - z) / t."""
    p = sigmoid(p_logit)
    keep = 1.0 - p
    dy64 = np.asarray(dy, dtype=np.float64).reshape(-1)
    x64 = np.asarray(x, dtype=np.float64).reshape(-1)
    w_e, z_e = np.repeat(w, run), np.repeat(z, run)
    dx = dy64 * w_e / keep
    dz_da = z_e * w_e / temperature
    dy_da = x64 * (-dz_da / keep + w_e * p * keep / keep ** 2)
    return dx.reshape(np.shape(dy)), float(np.sum(dy64 * dy_da))
