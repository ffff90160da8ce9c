"""cydrop.MLP learning its keep probabilities (Concrete dropout): the two
engines against each other, the gradients with the noise held fixed, the
prior in the cost, the learned values, model files and bad settings.

The expected values here come from formulas written out in the tests
(the prior, the keep probability of a p_logit) or from central differences,
never from the code under test."""
import math

import numpy as np
import pytest

import cydrop
from cydrop.mlp import losses
from cydrop.mlp.engines.reference import ReferenceEngine


def _regression(n=300, n_features=6, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, n_features))
    y = X @ rng.standard_normal(n_features) + 0.3 * rng.standard_normal(n)
    return X, y


def _classes(n=300, n_features=6, seed=0):
    X, y = _regression(n, n_features, seed)
    return X, np.digitize(y, [-0.7, 0.7])


def _sigmoid(a):
    return 1.0 / (1.0 + math.exp(-a))


# -- the engines learn the same rates ------------------------------------------------

@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("output, keep_prob", [
    ("gaussian", "learn"),
    ("softmax", [1.0, "learn", 0.8]),
    ("linear", ["learn", 0.9, "learn"]),
])
def test_compiled_and_reference_engines_learn_the_same_rates(dtype, output, keep_prob):
    X, y = _regression() if output != "softmax" else _classes()
    n_out = {"gaussian": 2, "softmax": 3, "linear": 1}[output]
    nets = []
    for engine in ("compiled", "reference"):
        net = cydrop.MLP([6, 24, 16, n_out], keep_prob=keep_prob, output=output, dtype=dtype, seed=3,
                         engine=engine, init_keep_prob=0.8, lengthscale=0.1)
        history = net.fit(X.astype(dtype), y, epochs=3, batch_size=32, learning_rate=0.01, l2=1e-3,
                          max_norm=3.0, progress=False)
        nets.append((net, history))
    (a, ha), (b, hb) = nets
    tol = {"float32": 2e-5, "float64": 1e-11}[dtype]
    # the same noise was drawn: with other noise the rates and weights would
    # differ by far more than round-off
    assert a._network.mask_gen.state == b._network.mask_gen.state
    np.testing.assert_allclose(a.keep_prob_, b.keep_prob_, rtol=0, atol=tol)
    np.testing.assert_allclose(ha["keep_prob"], hb["keep_prob"], rtol=0, atol=tol)
    for p, q in zip(a.weights + a.biases, b.weights + b.biases):
        np.testing.assert_allclose(p, q, rtol=0, atol=tol * 10)
    np.testing.assert_allclose(ha["loss"], hb["loss"], rtol=tol * 10)


@pytest.mark.parametrize("relaxed", [True, False])
def test_mc_passes_of_the_engines_agree_with_learned_rates(relaxed):
    """Relaxed (Concrete) or Bernoulli masks at the learned rates: the same
    passes from the same generator state on both engines."""
    from cydrop.mlp.engines import CompiledEngine
    X, y = _regression()
    net = cydrop.MLP([6, 20, 20, 2], keep_prob=[1.0, "learn", "learn"], output="gaussian", dtype="float64",
                     seed=5, init_keep_prob=0.6)
    net.fit(X, y, epochs=2, batch_size=50, progress=False)
    network, state = net._network, net._network.mask_gen.state
    results = []
    for engine in (CompiledEngine(), ReferenceEngine()):
        network.mask_gen.state = state
        results.append(engine.mc_passes(network, X, 5, samples=True, relaxed=relaxed))
    (t1, s1, o1), (t2, s2, o2) = results
    np.testing.assert_allclose(o1, o2, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(t1, t2, rtol=1e-12, atol=1e-12)
    assert not np.allclose(o1[0], o1[1])                  # the passes drew other masks
    if not relaxed:
        # hard masks: each hidden unit of a pass is 0 or its value / keep_prob_
        network.mask_gen.state = state
        _, layers = ReferenceEngine()._forward(network, X, masks="bernoulli")
        cache = layers[1][0]
        assert cache.keep_prob == pytest.approx(net.keep_prob_[1], rel=1e-12)


# -- gradients with the noise fixed -------------------------------------------------

def _relaxed_loss_and_grads(network, X, Y, state):
    """The data loss of one pass with Concrete noise drawn from generator
    state ``state`` (so every call draws the same u), and backprop's
    gradients (dW, db, dp_logit)."""
    engine = ReferenceEngine()
    network.mask_gen.state = state
    P, layers = engine._forward(network, X, masks="relaxed")
    loss = losses.loss(network.output, P, Y, None)
    dW, db, da = engine._backward(network, losses.loss_grad(network.output, P, Y, None), layers)
    return loss, dW, db, da


@pytest.mark.parametrize("output", ["gaussian", "softmax"])
def test_p_logit_and_weight_gradients_match_central_differences_with_the_noise_fixed(output):
    """tanh hidden units: no kinks for the differences to straddle."""
    X, y = _regression(n=40) if output == "gaussian" else _classes(n=40)
    net = cydrop.MLP([6, 12, 9, 2 if output == "gaussian" else 3], keep_prob=["learn", "learn", 0.7],
                     activation="tanh", output=output, dtype="float64", seed=2, init_keep_prob=0.7)
    network = net._network
    Y, _ = net._encode(y, X.shape[0])
    state = network.mask_gen.state
    _, dW, _, da = _relaxed_loss_and_grads(network, X, Y, state)
    eps = 1e-6

    def central(arr, index):
        old = arr[index]
        arr[index] = old + eps
        plus = _relaxed_loss_and_grads(network, X, Y, state)[0]
        arr[index] = old - eps
        minus = _relaxed_loss_and_grads(network, X, Y, state)[0]
        arr[index] = old
        return (plus - minus) / (2 * eps)

    # the relative error of net.gradient_check: ||num - grad|| / (||num|| + ||grad||)
    def relative_error(num, grad):
        num, grad = np.asarray(num), np.asarray(grad)
        return np.linalg.norm(num - grad) / (np.linalg.norm(num) + np.linalg.norm(grad))

    for a, grad in zip(network.p_logits, da):
        assert relative_error([central(a, 0)], grad) < 1e-7
    rng = np.random.default_rng(0)
    for W, grad in zip(network.weights, dW):
        indices = [tuple(rng.integers(0, n) for n in W.shape) for _ in range(8)]
        assert relative_error([central(W, i) for i in indices], [grad[i] for i in indices]) < 1e-7


def test_fixed_state_draws_the_same_noise_and_another_state_other_noise():
    """The check above holds the noise fixed only if restoring the state does."""
    X, y = _regression(n=40)
    net = cydrop.MLP([6, 12, 2], keep_prob="learn", output="gaussian", dtype="float64", seed=2)
    network = net._network
    Y, _ = net._encode(y, X.shape[0])
    state = network.mask_gen.state
    first = _relaxed_loss_and_grads(network, X, Y, state)[0]
    assert _relaxed_loss_and_grads(network, X, Y, state)[0] == first
    assert _relaxed_loss_and_grads(network, X, Y, network.mask_gen.state)[0] != first


@pytest.mark.parametrize("activation", ["tanh", "sigmoid"])
def test_gradient_check_covers_the_prior_of_learned_layers(MLP, activation):
    X, y = _regression()
    net = MLP([6, 16, 2], keep_prob="learn", output="gaussian", activation=activation, dtype="float64", seed=0,
              lengthscale=0.5)
    net.fit(X, y, epochs=2, batch_size=50, progress=False)
    assert net.gradient_check(X, y) < 1e-7


# -- the prior in the cost -------------------------------------------------------

def _prior_by_hand(net, n_rows):
    """l^2 / (2N) ||W||^2 / (1 - p) + (1/N) K (p log p + (1 - p) log(1 - p)) per learned layer."""
    total, l = 0.0, net.lengthscale
    for i, kp in enumerate(net.keep_prob):
        if kp != "learn":
            continue
        keep = net.keep_prob_[i]
        p = 1.0 - keep
        K = net.layer_sizes[i]
        total += l * l / (2 * n_rows) * float(np.sum(net.weights[i] ** 2)) / keep
        total += K / n_rows * (p * math.log(p) + keep * math.log(keep))
    return total


def test_cost_adds_the_prior_scaled_by_the_training_rows(MLP):
    X, y = _regression(n=300)
    net = MLP([6, 16, 16, 2], keep_prob=[1.0, "learn", "learn"], output="gaussian", dtype="float64", seed=1,
              lengthscale=0.3)
    net.fit(X, y, epochs=2, batch_size=50, progress=False)
    data_only = MLP([6, 16, 16, 2], keep_prob=1.0, output="gaussian", dtype="float64", seed=1)
    for i, (W, b) in enumerate(zip(net.weights, net.biases)):
        data_only.weights[i][...] = W
        data_only.biases[i][...] = b
    # J on any rows; the prior's N is the training call's 300 rows
    X_eval, y_eval = X[:70], y[:70]
    expected = data_only.cost(X_eval, y_eval) + _prior_by_hand(net, 300)
    assert net.cost(X_eval, y_eval) == pytest.approx(expected, rel=1e-12)


def test_cost_and_check_of_an_untrained_network_weigh_the_prior_by_the_rows_given(MLP):
    # the debugging recipe runs before training: its J includes the prior, for a data set of these rows
    X, y = _regression(n=80)
    net = MLP([6, 10, 2], keep_prob="learn", output="gaussian", dtype="float64", seed=1, lengthscale=2.0)
    data_only = MLP([6, 10, 2], keep_prob=1.0, output="gaussian", dtype="float64", seed=1)
    for i, (W, b) in enumerate(zip(net.weights, net.biases)):
        data_only.weights[i][...] = W
        data_only.biases[i][...] = b
    expected = data_only.cost(X, y) + _prior_by_hand(net, 80)
    assert _prior_by_hand(net, 80) > 0.05 * abs(expected)   # far beyond the tolerance below
    assert net.cost(X, y) == pytest.approx(expected, rel=1e-12)
    assert net.check(X, y, iterations=1).costs[0] == pytest.approx(expected, rel=1e-12)
    assert net.gradient_check(X, y) < 1e-7


def test_partial_fit_weighs_the_prior_by_the_stream_or_n_samples(MLP):
    X, y = _regression(n=120)
    net = MLP([6, 8, 2], keep_prob="learn", output="gaussian", dtype="float64", seed=1, lengthscale=0.3)
    net.partial_fit(X[:50], y[:50])
    net.partial_fit(X[50:], y[50:])
    data_only = MLP([6, 8, 2], keep_prob=1.0, output="gaussian", dtype="float64", seed=1)
    data_only.weights[0][...], data_only.weights[1][...] = net.weights
    data_only.biases[0][...], data_only.biases[1][...] = net.biases
    assert net.cost(X, y) == pytest.approx(data_only.cost(X, y) + _prior_by_hand(net, 120), rel=1e-12)
    net.partial_fit(X[:10], y[:10], n_samples=1000)
    data_only.weights[0][...], data_only.weights[1][...] = net.weights
    data_only.biases[0][...], data_only.biases[1][...] = net.biases
    assert net.cost(X, y) == pytest.approx(data_only.cost(X, y) + _prior_by_hand(net, 1000), rel=1e-12)
    net.fit(X[:100], y[:100], epochs=1, batch_size=50, progress=False)    # a fit starts over: N = its rows
    data_only.weights[0][...], data_only.weights[1][...] = net.weights
    data_only.biases[0][...], data_only.biases[1][...] = net.biases
    assert net.cost(X, y) == pytest.approx(data_only.cost(X, y) + _prior_by_hand(net, 100), rel=1e-12)


def test_no_prior_without_a_learned_layer(MLP):
    X, y = _regression()
    net = MLP([6, 8, 1], keep_prob=0.8, output="linear", dtype="float64", seed=0)
    net.fit(X, y, epochs=1, batch_size=50, progress=False)
    assert net._training.prior is None


# -- the learned values -----------------------------------------------------------

def test_keep_prob_and_keep_prob_(MLP):
    X, y = _classes()
    net = MLP([6, 32, 32, 3], keep_prob=[1.0, "learn", "learn"], seed=0, init_keep_prob=0.8)
    assert net.keep_prob == [1.0, "learn", "learn"]
    np.testing.assert_allclose(net.keep_prob_, [1.0, 0.8, 0.8], rtol=1e-6)   # p_logit in float32
    history = net.fit(X, y, epochs=4, batch_size=32, learning_rate=0.01, progress=False)
    assert len(history["keep_prob"]) == 4
    assert history["keep_prob"][-1] == net.keep_prob_
    assert net.keep_prob_[0] == 1.0                         # a fixed entry stays as given
    assert all(abs(v - 0.8) > 1e-4 for v in net.keep_prob_[1:])   # the learned ones moved
    for a, kp in zip(net._network.p_logits, net.keep_prob_[1:]):
        assert kp == pytest.approx(1.0 - _sigmoid(float(a[0])), rel=1e-12)
    assert [a.dtype for a in net._network.p_logits] == [np.float32, np.float32]


def test_keep_prob_learn_applies_to_every_layer_the_input_included(MLP):
    net = MLP([4, 8, 8, 2], keep_prob="learn", seed=0)
    assert net.keep_prob == ["learn", "learn", "learn"]
    assert net._network.learned_layers == [0, 1, 2]


def test_history_has_no_keep_prob_without_a_learned_layer(MLP):
    X, y = _classes()
    history = MLP([6, 8, 3], keep_prob=0.8, seed=0).fit(X, y, epochs=1, batch_size=64, progress=False)
    assert "keep_prob" not in history


def test_reassigning_keep_prob_keeps_what_a_layer_has_learned(MLP):
    X, y = _classes()
    net = MLP([6, 16, 16, 3], keep_prob="learn", seed=0)
    net.fit(X, y, epochs=2, batch_size=32, learning_rate=0.01, progress=False)
    learned = net.keep_prob_
    net.keep_prob = [1.0, "learn", 0.5]
    assert net.keep_prob_ == [1.0, pytest.approx(learned[1], rel=1e-6), 0.5]
    net.keep_prob = "learn"                                  # layers 0 and 2 start again
    assert net.keep_prob_ == [pytest.approx(0.9, rel=1e-6), pytest.approx(learned[1], rel=1e-6),
                              pytest.approx(0.9, rel=1e-6)]


def test_reassigning_keep_prob_moves_the_optimizer_moments_with_the_learned_layers(MLP):
    X, y = _classes()
    net = MLP([6, 16, 16, 3], keep_prob=["learn", 1.0, "learn"], seed=0)
    net.fit(X, y, epochs=2, batch_size=32, learning_rate=0.01, progress=False)
    m, v = (list(state) for state in net._training.optimizer.state)   # Adam: weights, biases, p_logits 0 and 2
    net.keep_prob = [1.0, "learn", "learn"]
    for before, after in zip((m, v), net._training.optimizer.state):
        assert len(after) == 6 + 2
        for a, b in zip(before[:6], after[:6]):
            assert a is b                                    # the weights' and biases' moments go on
        assert after[6].tolist() == [0.0]                    # layer 1 starts to learn: fresh moments
        assert after[7] is before[7] and after[7].tolist() != [0.0]   # layer 2 goes on with its own


def test_a_network_whose_learned_layers_changed_saves_loads_and_trains_on_alike(MLP, tmp_path):
    X, y = _classes()
    net = MLP([6, 16, 3], keep_prob="learn", seed=0)
    net.fit(X, y, epochs=2, batch_size=32, progress=False)
    net.keep_prob = [1.0, "learn"]
    net.save(tmp_path / "net.npz")
    back = cydrop.MLP.load(tmp_path / "net.npz")
    assert back.keep_prob == [1.0, "learn"] and back.keep_prob_ == net.keep_prob_
    for model in (net, back):
        model.fit(X, y, epochs=1, batch_size=32, progress=False)
    assert back.keep_prob_ == net.keep_prob_
    for p, q in zip(net.weights + net.biases, back.weights + back.biases):
        np.testing.assert_array_equal(p, q)


def test_same_seed_learns_the_same_rates_on_one_and_two_threads(MLP, reset_threads):
    X, y = _classes(n=600)
    values = []
    for threads in (1, 2):
        cydrop.set_num_threads(threads)
        net = MLP([6, 64, 64, 3], keep_prob="learn", seed=4)
        net.fit(X, y, epochs=2, batch_size=64, learning_rate=0.01, progress=False)
        values.append((net.keep_prob_, [w.copy() for w in net.weights]))
    assert values[0][0] == values[1][0]
    for a, b in zip(values[0][1], values[1][1]):
        np.testing.assert_array_equal(a, b)


def test_mc_prediction_with_learned_rates_varies_and_is_seeded(MLP):
    X, y = _regression()
    runs = []
    for _ in range(2):
        net = MLP([6, 32, 2], keep_prob="learn", output="gaussian", seed=7)
        net.fit(X, y, epochs=3, batch_size=32, progress=False)
        runs.append(net.predict_proba(X[:20], mc_samples=30))
    (mean, std), (mean2, std2) = runs
    np.testing.assert_array_equal(mean, mean2)
    np.testing.assert_array_equal(std, std2)
    assert mean.shape == std.shape == (20, 1)
    # the predictive std holds the learned noise, and MC adds the spread of the passes
    plain_var = net.predict_proba(X[:20])[:, 1:]
    assert np.all(std ** 2 > 0.5 * plain_var)


# -- model files -----------------------------------------------------------------

def test_save_and_load_keep_the_learned_rates_and_go_on_training_alike(MLP, tmp_path):
    X, y = _regression()
    net = MLP([6, 16, 2], keep_prob=[1.0, "learn"], output="gaussian", dtype="float64", seed=0,
              init_keep_prob=0.7, temperature=0.2, lengthscale=0.05)
    net.fit(X, y, epochs=2, batch_size=50, progress=False)
    net.partial_fit(X[:60], y[:60])
    net.save(tmp_path / "net.npz")
    back = cydrop.MLP.load(tmp_path / "net.npz")
    assert back.keep_prob == [1.0, "learn"] and back.keep_prob_ == net.keep_prob_
    assert (back.init_keep_prob, back.temperature, back.lengthscale) == (0.7, 0.2, 0.05)
    assert back.cost(X, y) == net.cost(X, y)                 # the prior came back with its N
    for model in (net, back):
        model.partial_fit(X[60:], y[60:])
    assert back.keep_prob_ == net.keep_prob_
    for p, q in zip(net.weights + net.biases, back.weights + back.biases):
        np.testing.assert_array_equal(p, q)


# -- bad settings ----------------------------------------------------------------

@pytest.mark.parametrize("kwargs, error, match", [
    (dict(init_keep_prob=0.0), ValueError, "init_keep_prob"),
    (dict(init_keep_prob=1.0), ValueError, "init_keep_prob"),
    (dict(init_keep_prob=float("nan")), ValueError, "init_keep_prob"),
    (dict(init_keep_prob="0.9"), TypeError, "init_keep_prob"),
    (dict(init_keep_prob=True), TypeError, "init_keep_prob"),
    (dict(temperature=0.0), ValueError, "temperature"),
    (dict(temperature=-0.1), ValueError, "temperature"),
    (dict(temperature=float("inf")), ValueError, "temperature"),
    (dict(temperature=None), TypeError, "temperature"),
    (dict(lengthscale=0.0), ValueError, "lengthscale"),
    (dict(lengthscale=float("nan")), ValueError, "lengthscale"),
    (dict(lengthscale="1e-2"), TypeError, "lengthscale"),
    (dict(lengthscale=1e200), ValueError, "lengthscale"),   # its square, in the prior, overflows
    # 1 / temperature and 1 / init_keep_prob overflow float32 (the default dtype)
    (dict(temperature=1e-300), ValueError, "temperature=1e-300 is too small for float32"),
    (dict(init_keep_prob=1e-300), ValueError, "init_keep_prob=1e-300 is too small for float32"),
    (dict(keep_prob="Learn"), TypeError, "keep_prob"),
    (dict(keep_prob=["learn", "learned", 1.0]), TypeError, r"keep_prob\[1\]"),
    (dict(keep_prob=["learn", 0.0, 1.0]), ValueError, r"keep_prob\[1\]"),
])
def test_bad_concrete_settings_are_named(MLP, kwargs, error, match):
    kwargs = dict(dict(keep_prob="learn"), **kwargs)
    with pytest.raises(error, match=match):
        MLP([4, 8, 8, 2], **kwargs)


def test_settings_too_small_for_float32_suit_float64(MLP):
    net = MLP([4, 8, 2], keep_prob="learn", dtype="float64", temperature=1e-300, init_keep_prob=1e-300)
    assert net.keep_prob_[0] == pytest.approx(1e-300, rel=1e-9)


@pytest.mark.parametrize("engine", ["reference", "compiled"])
def test_a_learned_rate_out_of_range_stops_training_as_divergence_on_both_engines(engine):
    # a learning rate of 100 drives a p_logit past float32's range (1 + exp(p_logit) overflows)
    X, y = np.random.default_rng(0).standard_normal((64, 4)), np.arange(64) % 2
    net = cydrop.MLP([4, 8, 2], keep_prob="learn", seed=0, engine=engine)
    with pytest.raises(FloatingPointError, match=r"the learned keep_prob of layer \d left the range its relaxed "
                                                 r"mask computes in \(p_logit [0-9.e+]+\): training diverged"):
        net.fit(X.astype(np.float32), y, epochs=20, batch_size=8, learning_rate=100.0, progress=False)


@pytest.mark.parametrize("n_samples, error", [(0, ValueError), (-5, ValueError), (2.5, TypeError),
                                              (True, TypeError)])
def test_partial_fit_refuses_bad_n_samples_before_training(MLP, n_samples, error):
    X, y = _regression(n=20)
    net = MLP([6, 8, 2], keep_prob="learn", output="gaussian", seed=0)
    before = [w.copy() for w in net.weights]
    with pytest.raises(error, match="n_samples"):
        net.partial_fit(X, y, n_samples=n_samples)
    for a, b in zip(before, net.weights):
        np.testing.assert_array_equal(a, b)
