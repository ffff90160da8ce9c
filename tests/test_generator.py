"""cydrop.Generator and the mask bits it draws, against tests/reference.py."""
import copy
import pickle
import threading

import numpy as np
import pytest

import cydrop
from reference import (
    GAMMA,
    key_from_seed,
    mix64,
    reference_mask,
    reference_mask_for_seed,
    threshold,
    uniforms,
    words_of,
)

DTYPES = [np.float32, np.float64]
KEEP_PROBS = [0.5, 0.75, 0.8, 0.86, 0.1, 1 / 3, 0.999, 1e-9]
SIZES = [1, 63, 64, 65, 511, 512, 513, 4096 * 3 + 7]
# counter space ends at 2^59 blocks (word indices stay below 2^64)
MAX_BLOCKS = 1 << 59
STATE_NAME = cydrop.Generator(0).state["generator"]


def draw(gen, shape, keep_prob, dtype=np.float64):
    """The Mask of one dropout call drawn from ``gen``."""
    return cydrop.dropout(np.ones(shape, dtype=dtype), keep_prob, seed=gen)[1]


def generator_at(seed, counter):
    """A Generator of ``seed`` positioned at block ``counter``."""
    return cydrop.Generator.from_state(
        {"generator": STATE_NAME, "key": key_from_seed(seed), "counter": counter}
    )


def assert_mask_is_reference(mask, expected_bool):
    """Same bits both as bools and as canonical packed words (padding bits zero)."""
    assert mask.shape == expected_bool.shape
    np.testing.assert_array_equal(mask.to_bool(), expected_bool)
    np.testing.assert_array_equal(mask.words, words_of(expected_bool))


def test_reference_mix64_known_answers():
    # Published SplitMix64 outputs for seed 0: output k is mix64(k * GAMMA).
    expected = [0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4, 0x06C45D188009454F, 0xF88BB8A8724C81EC]
    got = mix64(np.arange(1, 5, dtype=np.uint64) * np.uint64(GAMMA))
    assert [int(v) for v in got] == expected
    assert key_from_seed(0) == expected[0]


@pytest.mark.parametrize("seed", [0, 1, 12345, 2**63, 2**64 - 1])
def test_key_is_mix64_of_seed_plus_gamma(seed):
    state = cydrop.Generator(seed).state
    assert state["key"] == key_from_seed(seed)
    assert state["counter"] == 0


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("keep_prob", KEEP_PROBS)
@pytest.mark.parametrize("seed", [0, 2024, 2**64 - 1])
def test_mask_matches_reference(seed, keep_prob, size):
    mask = draw(cydrop.Generator(seed), (size,), keep_prob)
    assert_mask_is_reference(mask, reference_mask_for_seed(seed, (size,), keep_prob))


@pytest.mark.parametrize("keep_prob", [0.5, 0.86, 1 / 3, 1e-9])
@pytest.mark.parametrize("counter", [1, 7, 8, 12345, 2**40 + 3, MAX_BLOCKS - 300])
def test_mask_matches_reference_at_counter(counter, keep_prob):
    size = 4096 * 3 + 7
    gen = generator_at(99, counter)
    mask = draw(gen, (size,), keep_prob)
    assert_mask_is_reference(mask, reference_mask_for_seed(99, (size,), keep_prob, counter))
    assert gen.state["counter"] == counter + -(-size // 64)


def test_last_blocks_of_counter_space():
    # The final two blocks use stream words up to 2^64 - 1: no wrap-around.
    gen = generator_at(5, MAX_BLOCKS - 2)
    mask = draw(gen, (128,), 0.5)
    assert_mask_is_reference(mask, reference_mask_for_seed(5, (128,), 0.5, MAX_BLOCKS - 2))
    assert gen.state["counter"] == MAX_BLOCKS


def test_counter_space_exhausted_raises_and_keeps_state():
    gen = generator_at(5, MAX_BLOCKS - 1)
    before = gen.state
    with pytest.raises(ValueError, match="counter"):
        draw(gen, (65,), 0.5)  # needs 2 blocks, 1 left
    assert gen.state == before
    draw(gen, (64,), 0.5)  # exactly the last block still works
    assert gen.state["counter"] == MAX_BLOCKS


def test_an_exhausted_generator_restores_pickles_and_copies_its_state():
    gen = generator_at(5, MAX_BLOCKS - 1)
    draw(gen, (64,), 0.5)  # the last block: the counter is now at the end of its space
    state = gen.state
    assert state["counter"] == MAX_BLOCKS
    for twin in (cydrop.Generator.from_state(state), pickle.loads(pickle.dumps(gen)), copy.deepcopy(gen)):
        assert twin.state == state
        with pytest.raises(ValueError, match="exhausted"):
            draw(twin, (1,), 0.5)
        assert draw(twin, (0,), 0.5).size == 0  # an empty draw needs no block
    gen.state = state
    assert gen.state == state


@pytest.mark.parametrize("shape", [(3, 5, 7), (2, 64), (130, 3)])
def test_mask_follows_c_order_of_shape(shape):
    mask = draw(cydrop.Generator(8), shape, 0.3)
    assert_mask_is_reference(mask, reference_mask_for_seed(8, shape, 0.3))


def test_mask_does_not_depend_on_dtype():
    m32 = draw(cydrop.Generator(4), (1000,), 0.7, np.float32)
    m64 = draw(cydrop.Generator(4), (1000,), 0.7, np.float64)
    np.testing.assert_array_equal(m32.words, m64.words)


@pytest.mark.parametrize(
    "keep_prob, expected_t",
    [
        (1 - 2.0**-34, 1 << 32),  # T rounds up to 2^32: every element kept
        (2.0**-34, 0),            # T rounds down to 0: every element dropped
        (2.0**-32, 1),            # the smallest non-zero P(keep)
        (1 - 2.0**-32, (1 << 32) - 1),
    ],
)
def test_threshold_extremes(keep_prob, expected_t):
    assert threshold(keep_prob) == expected_t
    size = 4096 + 5
    mask = draw(cydrop.Generator(3), (size,), keep_prob)
    expected = reference_mask_for_seed(3, (size,), keep_prob)
    assert_mask_is_reference(mask, expected)
    if expected_t == 1 << 32:
        assert mask.count_kept() == size
    if expected_t == 0:
        assert mask.count_kept() == 0


def test_int_seed_is_fresh_generator_of_that_seed():
    x = np.ones(1000)
    _, by_int = cydrop.dropout(x, 0.4, seed=17)
    _, by_gen = cydrop.dropout(x, 0.4, seed=cydrop.Generator(17))
    _, by_np_int = cydrop.dropout(x, 0.4, seed=np.int64(17))
    assert by_int == by_gen == by_np_int


@pytest.mark.parametrize("keep_prob", [0.5, 0.86, 1e-9])
@pytest.mark.parametrize(
    "pieces_in_blocks",
    [
        [1, 7, 8, 9, 15, 16, 17, 1],  # scalar-only, exactly 8 (SIMD), SIMD + tails
        [74],                          # 9 SIMD steps + 2 scalar blocks in one call
        [3, 64, 2, 5],
    ],
)
def test_one_draw_equals_draws_in_pieces(pieces_in_blocks, keep_prob):
    n_blocks = sum(pieces_in_blocks)
    whole = draw(cydrop.Generator(21), (n_blocks * 64,), keep_prob)
    gen = cydrop.Generator(21)
    parts = [draw(gen, (b * 64,), keep_prob).words for b in pieces_in_blocks]
    np.testing.assert_array_equal(np.concatenate(parts), whole.words)
    # and the draw itself is the reference (not just self-consistent)
    expected = reference_mask(key_from_seed(21), 0, n_blocks * 64, keep_prob)
    np.testing.assert_array_equal(whole.to_bool(), expected)


def test_empty_draw_consumes_no_counter():
    gen = cydrop.Generator(1)
    _, mask = cydrop.dropout(np.ones((0, 5)), 0.5, seed=gen)
    assert gen.state["counter"] == 0
    assert mask.shape == (0, 5) and mask.count_kept() == 0


def test_counter_advances_by_blocks_per_draw():
    gen = cydrop.Generator(1)
    for size, expected in [(1, 1), (64, 2), (65, 4), (640, 14)]:
        draw(gen, (size,), 0.5)
        assert gen.state["counter"] == expected


def test_state_restore_replays_draws():
    gen = cydrop.Generator(31)
    draw(gen, (100,), 0.5)  # move off counter 0
    state = gen.state
    first = [draw(gen, (300,), 0.5), draw(gen, (4, 70), 0.8)]
    gen.state = state
    assert [draw(gen, (300,), 0.5), draw(gen, (4, 70), 0.8)] == first
    replay = cydrop.Generator.from_state(state)
    assert replay.seed is None
    assert [draw(replay, (300,), 0.5), draw(replay, (4, 70), 0.8)] == first


def test_state_is_a_snapshot():
    gen = cydrop.Generator(31)
    state = gen.state
    draw(gen, (640,), 0.5)
    assert state["counter"] == 0
    assert gen.state["counter"] == 10


def test_seed_property():
    assert cydrop.Generator(5).seed == 5
    assert cydrop.Generator(np.uint64(2**64 - 1)).seed == 2**64 - 1
    assert isinstance(cydrop.Generator(None).seed, int)


def test_successive_draws_differ():
    gen = cydrop.Generator(0)
    masks = [draw(gen, (4096,), 0.5) for _ in range(4)]
    for i in range(len(masks)):
        for j in range(i + 1, len(masks)):
            # equal by chance with probability 2^-4096
            assert masks[i] != masks[j]


def test_seed_none_differs_between_generators():
    a, b = cydrop.Generator(None), cydrop.Generator(None)
    assert a.seed != b.seed and a.state["key"] != b.state["key"]
    assert draw(a, (4096,), 0.5) != draw(b, (4096,), 0.5)
    x = np.ones(4096)
    assert cydrop.dropout(x, 0.5)[1] != cydrop.dropout(x, 0.5)[1]


@pytest.mark.parametrize(
    "seed, error",
    [
        (-1, ValueError),
        (2**64, ValueError),
        (-(2**70), ValueError),
        (1.0, TypeError),
        (np.float64(3), TypeError),
        (True, TypeError),
        (np.bool_(False), TypeError),
        ("1", TypeError),
        ([1], TypeError),
    ],
)
def test_seed_validation(seed, error):
    with pytest.raises(error, match="seed"):
        cydrop.Generator(seed)
    with pytest.raises(error, match="seed"):
        cydrop.dropout(np.ones(10), 0.5, seed=seed)


def valid_state():
    return {"generator": STATE_NAME, "key": 123, "counter": 4}


@pytest.mark.parametrize(
    "change, error",
    [
        ({"generator": "PCG64"}, ValueError),
        ({"generator": None}, ValueError),
        ({"key": -1}, ValueError),
        ({"key": 2**64}, ValueError),
        ({"key": 1.5}, ValueError),
        ({"key": True}, ValueError),
        ({"key": "123"}, ValueError),
        ({"counter": -1}, ValueError),
        ({"counter": MAX_BLOCKS + 1}, ValueError),
        ({"counter": 4.0}, ValueError),
        ({"counter": None}, ValueError),
    ],
)
def test_state_validation(change, error):
    state = {**valid_state(), **change}
    gen = cydrop.Generator(1)
    before = gen.state
    with pytest.raises(error, match="state"):
        gen.state = state
    assert gen.state == before  # a refused state changes nothing
    with pytest.raises(error, match="state"):
        cydrop.Generator.from_state(state)


@pytest.mark.parametrize("missing", ["generator", "key", "counter"])
def test_state_missing_entry_refused(missing):
    state = valid_state()
    del state[missing]
    with pytest.raises(ValueError, match="state"):
        cydrop.Generator.from_state(state)


@pytest.mark.parametrize("state", [None, [STATE_NAME, 1, 2], "state"])
def test_state_not_a_dict_refused(state):
    with pytest.raises(TypeError, match="state"):
        cydrop.Generator.from_state(state)


def test_state_accepts_numpy_integers_and_boundaries():
    gen = cydrop.Generator.from_state(
        {"generator": STATE_NAME, "key": np.uint64(2**64 - 1), "counter": np.int64(MAX_BLOCKS - 1)}
    )
    assert gen.state == {"generator": STATE_NAME, "key": 2**64 - 1, "counter": MAX_BLOCKS - 1}
    mask = draw(gen, (64,), 0.5)
    np.testing.assert_array_equal(mask.to_bool(), reference_mask(2**64 - 1, MAX_BLOCKS - 1, 64, 0.5))


@pytest.mark.parametrize("element", [0, 5, 63, 64, 1000, 4095])
def test_threshold_boundary_is_exact(element):
    # Take the actual uniform u of one element and put T right at it: the
    # element is kept iff u < T, and T = round(keep_prob * 2^32) (not floor or
    # ceil), so +0.6 keeps it and +0.4 drops it.
    u = int(uniforms(key_from_seed(42), 0, 4096)[element])
    assert 0 < u < (1 << 32) - 1
    for offset, kept in [(0.0, False), (0.4, False), (0.6, True), (1.0, True)]:
        keep_prob = (u + offset) / 2.0**32
        mask = draw(cydrop.Generator(42), (4096,), keep_prob)
        assert bool(mask.to_bool()[element]) is kept, (offset, u)
        np.testing.assert_array_equal(mask.to_bool(), reference_mask_for_seed(42, (4096,), keep_prob))


def test_concurrent_draws_get_disjoint_counter_ranges():
    # Draws from one Generator in several threads: each draw of 640 elements
    # takes 10 blocks under the generator's lock, so the draws are exactly the
    # masks at counters 0, 10, 20, ... in some order.
    gen = cydrop.Generator(8)
    n_threads, per_thread, size = 4, 25, 640
    results = [[] for _ in range(n_threads)]
    start = threading.Barrier(n_threads)

    def work(i):
        start.wait()
        for _ in range(per_thread):
            results[i].append(draw(gen, (size,), 0.5).words.tobytes())

    threads = [threading.Thread(target=work, args=(i,)) for i in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    n_draws = n_threads * per_thread
    assert gen.state["counter"] == n_draws * size // 64
    drawn = sorted(w for r in results for w in r)
    key = key_from_seed(8)
    expected = sorted(words_of(reference_mask(key, c * size // 64, size, 0.5)).tobytes() for c in range(n_draws))
    assert drawn == expected


# --- pickling and copying, as numpy.random.Generator ---------------------------------

def _pickled(protocol):
    return lambda obj: pickle.loads(pickle.dumps(obj, protocol=protocol))


COPIES = {f"pickle-{p}": _pickled(p) for p in range(2, pickle.HIGHEST_PROTOCOL + 1)}
COPIES.update({"copy": copy.copy, "deepcopy": copy.deepcopy})


def _numpy_draw(rng):
    return rng.random(300) < 0.5


def _cydrop_draw(gen):
    return draw(gen, (300,), 0.5).to_bool()


# numpy.random.Generator's copy.copy shares its bit generator (a shallow copy
# of a wrapper); cydrop.Generator is its own bit generator and copies like one
# (numpy.random.PCG64, random.Random): independently.
NUMPY_COPIES = [how for how in COPIES if how != "copy"]
NUMPY_CASE = (np.random.default_rng, _numpy_draw)
CYDROP_CASE = (cydrop.Generator, _cydrop_draw)


@pytest.mark.parametrize(("make", "draw_bools", "how"),
                         [(*NUMPY_CASE, how) for how in NUMPY_COPIES]
                         + [(*CYDROP_CASE, how) for how in COPIES]
                         + [(lambda seed: np.random.PCG64(seed), lambda bg: _numpy_draw(np.random.Generator(bg)),
                             "copy")],
                         ids=[f"numpy-{how}" for how in NUMPY_COPIES] + [f"cydrop-{how}" for how in COPIES]
                         + ["numpy-PCG64-copy"])
def test_copy_continues_the_stream_independently(make, draw_bools, how):
    # The behaviour numpy defines, checked on numpy itself and on cydrop: the
    # copy goes on where the original was, and the two then draw the same
    # values without moving each other.
    gen = make(2024)
    draw_bools(gen)  # move off the start
    clone = COPIES[how](gen)
    assert clone is not gen
    from_clone = [draw_bools(clone) for _ in range(3)]
    from_original = [draw_bools(gen) for _ in range(3)]
    for a, b in zip(from_clone, from_original):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(from_clone[0], from_clone[1])


@pytest.mark.parametrize("how", COPIES)
def test_unpickled_generator_is_at_the_same_position(how):
    gen = generator_at(77, 12345)
    gen._seed = 77  # a seed travels with the position
    clone = COPIES[how](gen)
    assert clone.state == gen.state and clone.seed == 77
    assert clone._lock is not gen._lock
    mask = draw(clone, (1000,), 0.8)
    assert_mask_is_reference(mask, reference_mask_for_seed(77, (1000,), 0.8, 12345))
    assert gen.state["counter"] == 12345  # the original did not move
    assert COPIES[how](cydrop.Generator.from_state(gen.state)).seed is None


def test_unpickled_generator_has_a_working_lock():
    # the lock is recreated, not shared or missing: threads drawing from the
    # copy still get disjoint counter ranges
    clone = pickle.loads(pickle.dumps(cydrop.Generator(8)))
    words = []
    threads = [threading.Thread(target=lambda: words.append(draw(clone, (640,), 0.5).words.tobytes()))
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    key = key_from_seed(8)
    expected = sorted(words_of(reference_mask(key, c * 10, 640, 0.5)).tobytes() for c in range(4))
    assert sorted(words) == expected


@pytest.mark.parametrize(("pickled", "error"), [
    ({"seed": 1, "state": {"generator": "other", "key": 1, "counter": 0}}, ValueError),
    ({"seed": 1, "state": {"generator": STATE_NAME, "key": 1, "counter": -1}}, ValueError),
    ({"seed": -1, "state": {"generator": STATE_NAME, "key": 1, "counter": 0}}, ValueError),
    ({"seed": "1", "state": {"generator": STATE_NAME, "key": 1, "counter": 0}}, TypeError),
    ({"seed": 1}, TypeError),
    ([1, 2], TypeError),
])
def test_corrupt_pickled_state_refused(pickled, error):
    gen = cydrop.Generator.__new__(cydrop.Generator)
    with pytest.raises(error):
        gen.__setstate__(pickled)


def _masks_of(gen, n_draws):
    return [draw(gen, (500,), 0.5).words.tobytes() for _ in range(n_draws)]


def test_joblib_processes_take_generators():
    joblib = pytest.importorskip("joblib")
    gens = [cydrop.Generator(seed) for seed in range(4)]
    parallel = joblib.Parallel(n_jobs=2, backend="loky")(joblib.delayed(_masks_of)(g, 3) for g in gens)
    assert parallel == [_masks_of(cydrop.Generator(seed), 3) for seed in range(4)]
    # as with numpy.random.Generator, each process gets a copy of the caller's
    # generator: the same Generator handed to two calls draws the same masks
    same = cydrop.Generator(9)
    first, second = joblib.Parallel(n_jobs=2, backend="loky")(joblib.delayed(_masks_of)(same, 2) for _ in range(2))
    assert first == second == _masks_of(cydrop.Generator(9), 2)
    assert same.state["counter"] == 0
