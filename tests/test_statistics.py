"""Statistical quality of the mask bits.

Every bound is five standard deviations of the statistic under the null
hypothesis (independent Bernoulli(P) bits, P = T / 2^32), i.e. a false alarm
rate of about 6e-7 per assertion; seeds are fixed, so the suite is
deterministic anyway. Exactness of the bits is tested in test_generator.py;
these tests look for what an exact-but-bad generator would get wrong.
"""
import math

import numpy as np
import pytest
from scipy import stats

import cydrop
from reference import threshold

N = 1 << 22  # 4M elements per sample
# chi-square tail probability matching a 5 sigma two-sided normal bound
FIVE_SIGMA_P = 2 * stats.norm.sf(5.0)


def p_keep(keep_prob):
    """The exact P(keep) of the generator: T / 2^32."""
    return threshold(keep_prob) / 2.0**32


def mask_bits(gen, shape, keep_prob):
    """Bool mask of one draw (drawn on a zero float32 buffer, in place)."""
    x = np.zeros(shape, dtype=np.float32)
    return cydrop.dropout(x, keep_prob, seed=gen, out=x)[1].to_bool()


def pearson(a, b):
    """Pearson correlation of two bool arrays, from exact integer counts."""
    a, b = a.reshape(-1), b.reshape(-1)
    n = a.size
    na, nb = int(a.sum()), int(b.sum())
    n11 = int(np.count_nonzero(a & b))
    return (n * n11 - na * nb) / math.sqrt(na * (n - na) * nb * (n - nb))


def assert_uncorrelated(a, b):
    # Under independence r is approximately normal with sd 1 / sqrt(n).
    r = pearson(a, b)
    bound = 5 / math.sqrt(a.size)
    assert abs(r) < bound, f"r = {r:.3g}, bound {bound:.3g}"


@pytest.mark.parametrize("keep_prob", [0.5, 0.86, 1 / 3, 0.7071, 0.1, 0.999])
def test_keep_rate(keep_prob):
    kept = int(mask_bits(cydrop.Generator(11), N, keep_prob).sum())
    p = p_keep(keep_prob)
    assert abs(p - keep_prob) <= 2.0**-33
    # binomial(N, p): sd sqrt(N p (1 - p))
    sd = math.sqrt(N * p * (1 - p))
    assert abs(kept - N * p) < 5 * sd


def test_keep_probability_is_not_quantized_to_8_bits():
    # 0.86 against 220/256 = 0.859375 (an 8-bit threshold): the rates differ
    # by 6.25e-4. With n = 2^25, sd = sqrt(0.86 * 0.14 / n) = 6.0e-5, so they
    # are 10.4 sd apart: a rate within 5 sd of 0.86 is > 5 sd from 220/256.
    gen = cydrop.Generator(12)
    n_draws = 8
    kept = sum(int(mask_bits(gen, N, 0.86).sum()) for _ in range(n_draws))
    n = n_draws * N
    rate = kept / n
    sd = math.sqrt(0.86 * 0.14 / n)
    assert abs(rate - 0.86) < 5 * sd
    assert abs(rate - 220 / 256) > 5 * sd


@pytest.mark.parametrize("keep_prob", [0.5, 0.86])
def test_keep_rate_per_lane(keep_prob):
    # Each of the 64 bit lanes of a block word gets N / 64 samples; a bad bit
    # of the mixer output would bias one lane. Binomial 5 sd per lane.
    bits = mask_bits(cydrop.Generator(13), N, keep_prob).reshape(-1, 64)
    n_lane = bits.shape[0]
    p = p_keep(keep_prob)
    sd = math.sqrt(n_lane * p * (1 - p))
    deviation = np.abs(bits.sum(axis=0) - n_lane * p)
    assert deviation.max() < 5 * sd, f"worst lane {deviation.argmax()}: {deviation.max() / sd:.1f} sd"


@pytest.mark.parametrize("keep_prob", [0.5, 0.86])
def test_kept_per_block_is_binomial(keep_prob):
    # Kept count of each 64-element block ~ Binomial(64, p) if lanes are
    # independent. Chi-square goodness of fit, cells with expectation < 5
    # merged into the tails; bound: tail probability 5.7e-7 (5 sd).
    bits = mask_bits(cydrop.Generator(14), N, keep_prob).reshape(-1, 64)
    counts = np.bincount(bits.sum(axis=1), minlength=65)
    expected = stats.binom.pmf(np.arange(65), 64, p_keep(keep_prob)) * bits.shape[0]
    keep = np.flatnonzero(expected >= 5)
    lo, hi = keep[0], keep[-1]
    obs = np.concatenate([[counts[: lo + 1].sum()], counts[lo + 1 : hi], [counts[hi:].sum()]])
    exp = np.concatenate([[expected[: lo + 1].sum()], expected[lo + 1 : hi], [expected[hi:].sum()]])
    stat = ((obs - exp) ** 2 / exp).sum()
    assert stats.chi2.sf(stat, len(obs) - 1) > FIVE_SIGMA_P, f"chi2 = {stat:.1f} on {len(obs) - 1} dof"


@pytest.mark.parametrize("keep_prob", [0.5, 0.86])
# 1: neighbours in a lane word; 31/32/33: half-word boundaries of the apply
# loop; 63/64/65: block boundaries (64 = same lane of the next block);
# 4096: the parallel chunk size
@pytest.mark.parametrize("lag", [1, 2, 31, 32, 33, 63, 64, 65, 4096])
def test_no_correlation_between_neighbours(keep_prob, lag):
    bits = mask_bits(cydrop.Generator(15), N, keep_prob)
    assert_uncorrelated(bits[:-lag], bits[lag:])


@pytest.mark.parametrize("n_cols", [96, 1000, 4096])
def test_no_correlation_between_rows(n_cols):
    bits = mask_bits(cydrop.Generator(16), (N // n_cols, n_cols), 0.5)
    assert_uncorrelated(bits[:-1], bits[1:])


@pytest.mark.parametrize("keep_prob", [0.5, 0.86])
def test_no_correlation_between_successive_calls(keep_prob):
    gen = cydrop.Generator(17)
    first, second = mask_bits(gen, N, keep_prob), mask_bits(gen, N, keep_prob)
    assert_uncorrelated(first, second)
    # also against the next position of the other draw
    assert_uncorrelated(first[1:], second[:-1])


@pytest.mark.parametrize("seeds", [(0, 1), (1, 2), (0, 2**64 - 1), (2**32, 2**32 + 1)])
def test_no_correlation_between_neighbouring_seeds(seeds):
    a, b = (mask_bits(cydrop.Generator(s), N, 0.5) for s in seeds)
    assert_uncorrelated(a, b)
    assert_uncorrelated(a[1:], b[:-1])


@pytest.mark.parametrize("keep_prob", [0.5, 0.86, 1 / 3])
def test_runs(keep_prob):
    # Wald-Wolfowitz runs test: with n1 ones and n0 zeros, the number of runs
    # has mean mu = 2 n0 n1 / n + 1, variance (mu - 1)(mu - 2) / (n - 1);
    # bound 5 sd.
    bits = mask_bits(cydrop.Generator(18), N, keep_prob)
    n = bits.size
    n1 = int(bits.sum())
    n0 = n - n1
    runs = 1 + int(np.count_nonzero(bits[1:] != bits[:-1]))
    mu = 2 * n0 * n1 / n + 1
    sd = math.sqrt((mu - 1) * (mu - 2) / (n - 1))
    assert abs(runs - mu) < 5 * sd, f"runs {runs}, expected {mu:.0f} +- {sd:.0f}"


@pytest.mark.parametrize("keep_prob", [0.5, 0.86, 1 / 3])
def test_pair_frequencies(keep_prob):
    # Non-overlapping pairs (e0, e1), (e2, e3), ... are independent draws from
    # {00, 01, 10, 11} with probabilities q^2, qp, pq, p^2 (q = 1 - p).
    # Chi-square with 3 dof, bound: tail probability 5.7e-7 (5 sd).
    bits = mask_bits(cydrop.Generator(19), N, keep_prob).reshape(-1, 2)
    pair = bits[:, 0].astype(np.int64) * 2 + bits[:, 1]
    obs = np.bincount(pair, minlength=4)
    p = p_keep(keep_prob)
    q = 1 - p
    exp = np.array([q * q, q * p, p * q, p * p]) * bits.shape[0]
    stat = ((obs - exp) ** 2 / exp).sum()
    assert stats.chi2.sf(stat, 3) > FIVE_SIGMA_P, f"chi2 = {stat:.1f}"
