"""cydrop.MLP and cydrop.dropout_l2_equivalent."""
import io
import json
import zipfile

import numpy as np
import pytest

import cydrop


def blobs(n=240, n_features=6, n_classes=3, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((n_classes, n_features)) * 3
    y = rng.integers(0, n_classes, n)
    X = centers[y] + rng.standard_normal((n, n_features))
    return X.astype(dtype), y


def test_float_keep_prob_applies_to_hidden_layers_only(MLP):
    net = MLP([5, 8, 8, 3], keep_prob=0.6)
    assert net.keep_prob == [1.0, 0.6, 0.6]


@pytest.mark.parametrize("value, expected", [(np.array(0.6), [1.0, 0.6, 0.6]),
                                             (np.array("learn"), ["learn"] * 3)])
def test_a_0d_array_keep_prob_is_its_value(MLP, value, expected):
    assert MLP([5, 8, 8, 3], keep_prob=value).keep_prob == expected


def test_per_layer_keep_prob_reaches_the_right_layers():
    from cydrop.mlp.engines.reference import ReferenceEngine

    net = cydrop.MLP([50, 64, 64, 3], keep_prob=[1.0, 0.5, 0.9], seed=0)
    X, _ = blobs(n=200, n_features=50)
    # the reference engine's layer caches hold each layer's mask
    _, layers = ReferenceEngine()._forward(net._network, X, masks="relaxed")
    caches = [cache for cache, _ in layers]
    assert [c.keep_prob for c in caches] == [1.0, 0.5, 0.9]
    assert caches[0].mask.count_kept() == X.size          # input kept whole
    rate1 = caches[1].mask.count_kept() / caches[1].mask.size
    rate2 = caches[2].mask.count_kept() / caches[2].mask.size
    assert abs(rate1 - 0.5) < 0.03 and abs(rate2 - 0.9) < 0.03
    _, layers = ReferenceEngine()._forward(net._network, X, masks=None)
    caches = [cache for cache, _ in layers]
    assert all(c.keep_prob == 1.0 for c in caches)       # dropout off outside training


def test_learns_and_beats_chance(MLP):
    X, y = blobs()
    net = MLP([6, 32, 3], keep_prob=[1.0, 0.8], seed=1)
    history = net.fit(X, y, epochs=30, batch_size=32, progress=False)
    assert net.score(X, y) > 0.9
    assert set(history) == {"loss", "eval_epoch", "best_epoch", "stopped"}  # J only when asked
    assert len(history["loss"]) == 30
    assert net.predict(X).dtype == y.dtype
    assert set(np.unique(net.predict(X))) <= set(y)


def test_keep_prob_one_is_deterministic_and_full_batch_cost_falls_monotonically(MLP):
    X, y = blobs(n=120)
    nets = [MLP([6, 16, 3], keep_prob=1.0, dtype="float64", seed=3) for _ in range(2)]
    histories = [net.fit(X, y, epochs=40, batch_size=len(X), optimizer="sgd", learning_rate=0.1,
                         shuffle=False, track_cost=True, progress=False) for net in nets]
    for W1, W2 in zip(nets[0].weights, nets[1].weights):
        np.testing.assert_array_equal(W1, W2)
    cost = np.array(histories[0]["cost"])
    assert np.all(np.diff(cost) < 0), cost


@pytest.mark.parametrize("output, activation", [("softmax", "relu"), ("softmax", "tanh"),
                                                ("sigmoid", "sigmoid"), ("linear", "tanh")])
def test_gradient_check_float64(MLP, output, activation):
    rng = np.random.default_rng(4)
    X = rng.standard_normal((12, 5))
    n_out = {"softmax": 3, "sigmoid": 1, "linear": 2}[output]
    net = MLP([5, 7, 6, n_out], keep_prob=0.5, activation=activation, output=output,
                     dtype="float64", seed=2)
    y = rng.standard_normal((12, 2)) if output == "linear" else rng.integers(0, 2 if output == "sigmoid" else 3, 12)
    net.fit(X, y, epochs=2, batch_size=4, l2=0.1, progress=False)
    assert net.gradient_check(X, y, max_checks=10_000) < 1e-7


def test_gradient_check_detects_a_wrong_gradient(MLP, monkeypatch):
    X, y = blobs(n=20, n_features=4)
    net = MLP([4, 5, 3], dtype="float64", seed=0)
    net.fit(X, y, epochs=1, batch_size=20, progress=False)
    scale_backprop(monkeypatch, net, 1.5)
    assert net.gradient_check(X, y) > 1e-2


def test_save_load_round_trip(MLP, tmp_path):
    X, y = blobs()
    labels = np.array(["a", "b", "c"])[y]
    net = MLP([6, 16, 16, 3], keep_prob=[0.9, 0.5, 0.5], seed=0)
    net.fit(X, labels, epochs=3, batch_size=32, progress=False)
    path = tmp_path / "net.npz"
    net.save(path)
    loaded = cydrop.MLP.load(path)
    np.testing.assert_array_equal(loaded.predict_proba(X), net.predict_proba(X))
    np.testing.assert_array_equal(loaded.predict(X), net.predict(X))
    assert loaded.keep_prob == net.keep_prob and loaded.layer_sizes == net.layer_sizes


def scale_backprop(monkeypatch, net, factor):
    """Make the network's engine return backprop's gradients times ``factor``: a wrong gradient."""
    engine = type(net._current_engine())
    original = engine.gradients

    def wrong(self, *args):
        loss, dW, db = original(self, *args)
        return loss, [factor * g for g in dW], [factor * g for g in db]

    monkeypatch.setattr(engine, "gradients", wrong)


def _write_npz(path, **arrays):
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def _header(**changes):
    header = {"format": "cydrop-mlp", "version": 1, "layer_sizes": [2, 3], "keep_prob": [1.0],
              "activation": "relu", "output": "softmax", "dtype": "float32", "classes": [0, 1, 2], "l2": 0.0}
    header.update(changes)
    return np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)


@pytest.mark.parametrize("case", ["object", "truncated", "version", "shape", "not_npz", "pickle", "missing"])
def test_hostile_files_refused(tmp_path, case):
    path = tmp_path / "bad.npz"
    good = dict(header=_header(), W0=np.zeros((2, 3), np.float32), b0=np.zeros(3, np.float32))
    if case == "object":
        _write_npz(path, header=_header(), W0=np.array([{"x": 1}, None], dtype=object),
                   b0=np.zeros(3, np.float32))
    elif case == "truncated":
        _write_npz(path, **good)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif case == "version":
        _write_npz(path, **dict(good, header=_header(version=99)))
    elif case == "shape":
        _write_npz(path, **dict(good, W0=np.zeros((3, 3), np.float32)))
    elif case == "not_npz":
        path.write_bytes(b"hello, I am not a model")
    elif case == "pickle":
        import pickle

        path.write_bytes(pickle.dumps({"W0": [1, 2]}))
    elif case == "missing":
        _write_npz(path, header=_header(), W0=np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError):
        cydrop.MLP.load(path)


def test_good_hand_written_file_loads(tmp_path):
    """The hostile-file tests above differ from this one in one thing each."""
    path = tmp_path / "good.npz"
    _write_npz(path, header=_header(), W0=np.ones((2, 3), np.float32), b0=np.zeros(3, np.float32))
    net = cydrop.MLP.load(path)
    assert net.predict(np.zeros((1, 2), np.float32)).tolist() in ([0], [1], [2])


def test_mc_dropout_std(MLP):
    X, y = blobs(n=60)
    net1 = MLP([6, 16, 3], keep_prob=1.0, seed=0)
    net1.fit(X, y, epochs=2, batch_size=20, progress=False)
    mean, std = net1.predict_proba(X, mc_samples=5)
    assert np.all(std == 0)
    np.testing.assert_allclose(mean, net1.predict_proba(X), rtol=1e-6)
    net2 = MLP([6, 16, 3], keep_prob=[1.0, 0.5], seed=0)
    net2.fit(X, y, epochs=2, batch_size=20, progress=False)
    mean, std = net2.predict_proba(X, mc_samples=20)
    assert mean.shape == std.shape == (60, 3)
    assert np.all(std.max(axis=1) > 0)
    np.testing.assert_allclose(mean.sum(axis=1), 1, rtol=1e-5)


def test_dropout_l2_equivalent_matches_monte_carlo():
    """E_D ||y - (X * D / p) w||^2 = ||y - X w||^2 + sum_j lambda_j w_j^2."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((50, 4)) * np.array([0.5, 1.0, 2.0, 3.0])
    w = rng.standard_normal(4)
    y = X @ w + rng.standard_normal(50)
    p = 0.7
    lam = cydrop.dropout_l2_equivalent(X, p)
    np.testing.assert_allclose(lam, (1 - p) / p * (X ** 2).sum(axis=0))
    gen = cydrop.Generator(1)
    trials = 20000
    total = 0.0
    for _ in range(trials // 100):
        Xs = np.broadcast_to(X, (100, *X.shape)).copy()
        Xd, _ = cydrop.dropout(Xs, p, seed=gen)
        total += float(np.sum((y - Xd @ w) ** 2))
    mc = total / trials
    expected = float(np.sum((y - X @ w) ** 2) + np.sum(lam * w ** 2))
    assert abs(mc - expected) / expected < 0.02, (mc, expected)


@pytest.mark.parametrize("call, match", [
    (lambda net, X, y: net.fit(X, y[:-1], epochs=1, batch_size=8, progress=False), "y"),
    (lambda net, X, y: net.fit(X[:, :5], y, epochs=1, batch_size=8, progress=False), "features"),
    (lambda net, X, y: net.fit(np.where(X > 2, np.nan, X), y, epochs=1, batch_size=8, progress=False), "NaN"),
    (lambda net, X, y: net.fit(X[:0], y[:0], epochs=1, batch_size=8, progress=False), "empty"),
    (lambda net, X, y: net.fit(X, y, epochs=-1, batch_size=8, progress=False), "epochs"),
    (lambda net, X, y: net.fit(X, y, epochs=1, batch_size=0, progress=False), "batch_size"),
    (lambda net, X, y: net.fit(X, y, epochs=1, batch_size=8, optimizer="rmsprop", progress=False), "optimizer"),
    (lambda net, X, y: net.fit(X, y, epochs=1, batch_size=8, learning_rate=-1, progress=False), "learning_rate"),
    (lambda net, X, y: net.fit(X, y, epochs=1, batch_size=8, max_norm=0, progress=False), "max_norm"),
])
def test_bad_fit_arguments(MLP, call, match):
    X, y = blobs()
    net = MLP([6, 8, 3], seed=0)
    with pytest.raises((ValueError, TypeError), match=match):
        call(net, X, y)


def test_unseen_labels_refused(MLP):
    X, y = blobs()
    net = MLP([6, 8, 3], seed=0)
    net.fit(X, y, epochs=1, batch_size=32, progress=False)
    with pytest.raises(ValueError, match=r"not among the classes \[0, 1, 2\]: \[5, 6, 7\]"):
        net.score(X, y + 5)


@pytest.mark.parametrize("keep_prob, exc", [([1.0, 0.5], ValueError), ([1.0, 0.5, 0.0], ValueError),
                                            ([1.0, 1.5, 0.5], ValueError), (0, ValueError),
                                            ("0.5", TypeError)])
def test_bad_keep_prob(MLP, keep_prob, exc):
    with pytest.raises(exc, match="keep_prob"):
        MLP([4, 8, 8, 2], keep_prob=keep_prob)


@pytest.mark.parametrize("kwargs, match", [(dict(layer_sizes=[4]), "layer_sizes"),
                                           (dict(layer_sizes=[4, 0, 2]), "layer_sizes"),
                                           (dict(layer_sizes=[4, 2], activation="elu"), "activation"),
                                           (dict(layer_sizes=[4, 2], output="poisson"), "output"),
                                           (dict(layer_sizes=[4, 2], output="sigmoid"), "sigmoid"),
                                           (dict(layer_sizes=[4, 2], dtype="float16"), "dtype")])
def test_bad_constructor_arguments(MLP, kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        MLP(**kwargs)


def test_divergence_stops_with_the_epoch_named(MLP):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 3)).astype(np.float32) * 100
    y = rng.standard_normal(64).astype(np.float32) * 100
    net = MLP([3, 32, 1], output="linear", seed=0)
    with pytest.raises(FloatingPointError, match=r"diverged at epoch \d+"):
        net.fit(X, y, epochs=5, batch_size=64, optimizer="sgd", learning_rate=1e6, progress=False)


def test_softmax_stays_finite_for_large_logits():
    P = cydrop.mlp.losses.activate("softmax", np.array([[1e4, -1e4, 0.0]], dtype=np.float32))
    assert np.isfinite(P).all() and P[0, 0] == 1.0


def test_validation_data_and_early_stopping(MLP):
    X, y = blobs(n=300)
    net = MLP([6, 32, 3], keep_prob=[1.0, 0.8], seed=0)
    # a tol: on these easy blobs the validation loss may creep down by tiny
    # steps for all 200 epochs, and whether it ever stalls is up to the shuffling
    history = net.fit(X[:200], y[:200], epochs=200, batch_size=50, validation_data=(X[200:], y[200:]),
                      early_stopping=3, tol=1e-3, progress=False)
    assert len(history["val_loss"]) < 200               # stopped early
    best = min(history["val_loss"])
    assert net.cost(X[200:], y[200:]) == pytest.approx(best, rel=1e-5)  # best weights restored


def test_partial_fit_streams(MLP):
    X, y = blobs()
    net = MLP([6, 16, 3], seed=0)
    with pytest.raises(ValueError, match=r"not among the classes \[0, 1, 2\]"):
        net.partial_fit(X[:40], np.array(["a", "b", "c"])[y[:40]])  # labels need classes=
    losses = [net.partial_fit(X[i:i + 40], y[i:i + 40], classes=[0, 1, 2], learning_rate=0.01)
              for _ in range(10) for i in range(0, 240, 40)]
    assert losses[-1] < losses[0]
    assert net.score(X, y) > 0.8


def test_max_norm_caps_incoming_weights(MLP):
    X, y = blobs()
    net = MLP([6, 16, 3], seed=0)
    net.fit(X, y, epochs=5, batch_size=16, learning_rate=0.05, max_norm=0.5, progress=False)
    for W in net.weights:
        assert np.linalg.norm(W.astype(np.float64), axis=0).max() <= 0.5 * (1 + 1e-5)


def test_pickle_and_deepcopy_carry_on_training_identically(MLP):
    """The mask Generator's lock is not pickled, its position is: a copy
    draws the same masks, shuffles the same way and keeps the Adam state."""
    import copy
    import pickle

    X, y = blobs(n=120)
    net = MLP([6, 16, 3], keep_prob=[0.9, 0.5], seed=0)
    net.fit(X, y, epochs=2, batch_size=32, progress=False)
    twins = [pickle.loads(pickle.dumps(net)), copy.deepcopy(net)]
    for n in [net, *twins]:
        n.fit(X, y, epochs=2, batch_size=32, progress=False)
    for twin in twins:
        for W1, W2 in zip(net.weights, twin.weights):
            np.testing.assert_array_equal(W1, W2)
        assert twin._network.mask_gen.state == net._network.mask_gen.state


# --- found by fuzzing (tests/_fuzz_targets.py) -------------------------------------

def test_scalar_y_refused(MLP):
    X, _ = blobs(n=10)
    net = MLP([6, 4, 3], seed=0)
    for y in (3, np.array(1.5), None):
        with pytest.raises(ValueError, match="one target per sample"):
            net.fit(X, y, epochs=1, batch_size=5, progress=False)


@pytest.mark.parametrize("output, n_out", [("softmax", 4), ("sigmoid", 1)])
def test_training_that_labels_fewer_classes_than_outputs_is_refused(MLP, output, n_out):
    """An output without a label made predict (which skipped it) and score
    (which did not) disagree: a network has one label per output."""
    X, _ = blobs(n=40, n_features=3)
    net = MLP([3, 5, n_out], output=output, seed=0)
    with pytest.raises(ValueError, match=r"y has 1 class\(es\), the network has"):
        net.fit(X, np.full(40, 7), epochs=1, batch_size=20, progress=False)  # one class seen
    assert net.classes_.tolist() == list(range(max(n_out, 2))) and not net._training.trained


def test_classes_fewer_than_outputs_are_refused_at_construction(MLP):
    with pytest.raises(ValueError, match=r"classes has 2 class\(es\), the network has 3 outputs"):
        MLP([4, 6, 3], classes=["a", "b"], seed=3)
    net = MLP([4, 6, 3], seed=3)
    with pytest.raises(ValueError, match=r"classes has 2 class\(es\)"):
        net.partial_fit(np.zeros((2, 4)), ["a", "b"], classes=["a", "b"])


@pytest.mark.parametrize("output, n_out", [("softmax", 3), ("sigmoid", 1)])
def test_score_is_the_accuracy_of_predict(MLP, output, n_out):
    X, y = blobs(n=90, n_features=4, n_classes=max(n_out, 2), seed=5)
    labels = np.array(["a", "b", "c"])[y]
    net = MLP([4, 6, n_out], output=output, classes=sorted(set(labels)), seed=3)
    for _ in range(2):   # untrained, then trained
        assert net.score(X, labels) == np.mean(net.predict(X) == labels)
        w = np.random.default_rng(0).uniform(0, 2, len(X))
        assert net.score(X, labels, sample_weight=w) == pytest.approx(np.average(net.predict(X) == labels, weights=w))
        assert net.predict_proba(X).shape == (len(X), n_out)
        net.fit(X, labels, epochs=3, batch_size=30, progress=False)


def test_r2_finite_for_huge_float32_outputs(MLP):
    # the squared float32 residuals used to overflow (R^2 = -inf) while the loss was finite
    X = np.ones((4, 1), np.float32)
    net = MLP([1, 1], output="linear", seed=0)
    net.weights[0][...] = 1e20
    assert np.isfinite(net.score(X, np.zeros(4))) and net.score(X, np.arange(4.0)) < -1e30


def test_unaligned_X_accepted(MLP):
    X, y = blobs(n=30)
    raw = np.zeros(X.nbytes + 4, np.uint8)
    odd = raw[1:1 + X.nbytes].view(X.dtype).reshape(X.shape)
    odd[...] = X
    net = MLP([6, 8, 3], seed=0)
    net.fit(X, y, epochs=1, batch_size=10, progress=False)
    np.testing.assert_array_equal(net.predict_proba(odd), net.predict_proba(X))


# -- the unchecked kernel calls of the training loop ----------------------------

def test_training_step_equals_the_public_functions():
    """The reference engine calls the dense and Adam kernels without their
    per-call checks; one step must equal the same step through
    dense_forward, dense_backward and adam_update, bit for bit (same mask
    stream: the network's mask generator is Generator(seed)). The compiled
    engine is held against the reference one in tests/test_engines.py."""
    from cydrop.mlp.losses import activate as _output_activation
    from cydrop.optim import adam_update

    X, y = blobs(n=64, n_features=6)
    net = cydrop.MLP([6, 16, 16, 3], keep_prob=[0.9, 0.5, 0.8], seed=3, engine="reference")
    weights, biases = [W.copy() for W in net.weights], [b.copy() for b in net.biases]
    net.partial_fit(X, y, classes=[0, 1, 2], learning_rate=0.01, shuffle=False)

    gen, h, caches = cydrop.Generator(3), X, []
    for i, (W, b) in enumerate(zip(weights, biases)):
        h, cache = cydrop.dense_forward(h, W, b, net.keep_prob[i], seed=gen,
                                        activation="linear" if i == 2 else "relu")
        caches.append(cache)
    grad = (_output_activation("softmax", h) - np.eye(3, dtype=np.float32)[y]) / len(X)
    for i in (2, 1, 0):
        grad, dW, db = cydrop.dense_backward(np.ascontiguousarray(grad), caches[i], need_dx=i > 0)
        for param, g, mine in ((weights[i], dW, net.weights[i]), (biases[i], db, net.biases[i])):
            adam_update(param, g, np.zeros_like(param), np.zeros_like(param), 1, lr=0.01)
            np.testing.assert_array_equal(mine, param)


@pytest.mark.parametrize("replace", [
    lambda W: np.ascontiguousarray(W[:, :-1]),   # a column short: kernels would overrun
    lambda W: np.zeros((W.shape[0] + 1, W.shape[1]), W.dtype),
    lambda W: W.astype(np.float64),
    lambda W: np.asfortranarray(W),
    lambda W: W.tolist(),
], ids=["narrower", "taller", "float64", "fortran", "list"])
def test_replaced_weights_are_refused_before_any_kernel(MLP, replace):
    X, y = blobs(n=40)
    net = MLP([6, 8, 3], seed=0)
    net.fit(X, y, epochs=1, batch_size=20, progress=False)
    net.weights[1] = replace(net.weights[1])
    for call in (lambda: net.predict(X), lambda: net.predict_proba(X, mc_samples=2), lambda: net.cost(X, y),
                 lambda: net.fit(X, y, epochs=1, batch_size=20, progress=False),
                 lambda: net.partial_fit(X, y)):
        with pytest.raises(ValueError, match=r"weights\[1\] .*C-contiguous float32 array of shape \(8, 3\)"):
            call()


@pytest.mark.parametrize("replace", [
    lambda W: np.zeros((W.shape[0] + 1, W.shape[1]), W.dtype),
    lambda W: W.astype(np.float64),
    lambda W: W.tolist(),
], ids=["taller", "float64", "list"])
def test_replaced_weights_are_refused_by_save_and_the_checks(MLP, replace):
    # save would write a file load refuses; the checks would run on a
    # float64 copy of weights the network itself cannot use
    X, y = blobs(n=40)
    net = MLP([6, 8, 3], seed=0)
    net.weights[1] = replace(net.weights[1])
    for call in (lambda: net.save(io.BytesIO()), lambda: net.check(X, y, iterations=1),
                 lambda: net.gradient_check(X, y)):
        with pytest.raises(ValueError, match=r"weights\[1\] .*C-contiguous float32 array of shape \(8, 3\)"):
            call()


def test_a_missing_layer_is_refused(MLP):
    X, y = blobs(n=40)
    net = MLP([6, 8, 3], seed=0)
    net.biases.pop()
    with pytest.raises(ValueError, match="2 layers but 2 weights and 1 biases"):
        net.fit(X, y, epochs=1, batch_size=20, progress=False)


def test_read_only_weights_predict_but_do_not_train(MLP):
    X, y = blobs(n=40)
    net = MLP([6, 8, 3], seed=0)
    net.fit(X, y, epochs=1, batch_size=20, progress=False)
    expected = net.predict_proba(X)
    for W in net.weights:
        W.flags.writeable = False
    np.testing.assert_array_equal(net.predict_proba(X), expected)
    with pytest.raises(ValueError, match=r"weights\[0\] is read-only"):
        net.partial_fit(X, y)


def test_optimizer_state_that_does_not_fit_is_made_again(MLP):
    """The optimizer kernels run unchecked on the saved moments: a state that no
    longer matches the parameters (here: tampered) is rebuilt, not used."""
    X, y = blobs(n=40)
    net = MLP([6, 8, 3], seed=0)
    net.fit(X, y, epochs=1, batch_size=20, progress=False)
    bad = [np.zeros(1, np.float32)] * 3   # too few, and of the wrong shape
    net._training.optimizer.state = [bad, bad]
    net.fit(X, y, epochs=1, batch_size=20, progress=False)
    first, second = net._training.optimizer.state
    params = net.weights + net.biases
    assert [m.shape for m in first] == [v.shape for v in second] == [p.shape for p in params]
    assert all(np.any(m != 0) for m in first[:2])   # used: the moments moved from zero


# -- what a user meets in the first hour ---------------------------------

def test_r2_of_several_outputs_is_uniform_as_scikit_learns(MLP):
    from sklearn.metrics import r2_score

    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 3))
    Y = np.column_stack([1000 * X[:, 0], 0.01 * rng.standard_normal(200)])  # very different scales
    net = MLP([3, 16, 2], output="linear", dtype="float64", seed=0)
    net.fit(X, Y, epochs=20, batch_size=20, learning_rate=0.05, progress=False)
    assert net.score(X, Y) == pytest.approx(r2_score(Y, net.predict(X)), rel=1e-12)
    w = rng.uniform(0.5, 2, 200)
    assert net.score(X, Y, sample_weight=w) == pytest.approx(r2_score(Y, net.predict(X), sample_weight=w), rel=1e-12)


def test_a_refused_fit_changes_nothing(MLP):
    X, y = blobs(n=40)
    net = MLP([6, 8, 3], seed=0)
    before = net.predict_proba(X)
    with pytest.raises(ValueError, match="epochs"):
        net.fit(X, np.array(["a", "b", "c"])[y], epochs=0, batch_size=16, progress=False)
    assert net.classes_.tolist() == [0, 1, 2] and not net._training.trained
    np.testing.assert_array_equal(net.predict_proba(X), before)
    net.fit(X, y + 10, epochs=1, batch_size=16, progress=False)  # other labels: still free to learn
    assert net.classes_.tolist() == [10, 11, 12]


def test_partial_fit_with_other_classes_is_refused(MLP):
    X, y = blobs(n=40)
    net = MLP([6, 8, 3], seed=0)
    net.partial_fit(X, y, classes=[0, 1, 2])
    with pytest.raises(ValueError, match=r"classes \[5, 6, 7\] differ"):
        net.partial_fit(X, y + 5, classes=[5, 6, 7])
    net.partial_fit(X, y, classes=[2, 1, 0])  # the same set in another order is the same classes


@pytest.mark.parametrize("value, exc, match", [
    ([1.0, 0.0], ValueError, r"keep_prob\[1\] must be in \(0, 1\]"),
    ([1.0, -0.5], ValueError, r"keep_prob\[1\] must be in \(0, 1\]"),
    ([1.0], ValueError, "one entry per dense layer"),
    ("0.5", TypeError, "keep_prob"),
])
def test_keep_prob_is_checked_when_assigned(MLP, value, exc, match):
    net = MLP([6, 8, 3], seed=0)
    with pytest.raises(exc, match=match):
        net.keep_prob = value
    assert net.keep_prob == [1.0, 1.0]
    net.keep_prob = 0.5  # a float, as the constructor takes it
    assert net.keep_prob == [1.0, 0.5]


@pytest.mark.parametrize("dtype", [np.dtype("float64"), "f8", np.float64, "float64"])
def test_dtype_accepts_what_numpy_reads_as_float64(MLP, dtype):
    assert MLP([2, 3], dtype=dtype).dtype == np.float64


@pytest.mark.parametrize("dtype", ["f2", "int64", True, "nonsense"])
def test_other_dtypes_are_refused(MLP, dtype):
    with pytest.raises(ValueError, match="dtype must be float32 or float64"):
        MLP([2, 3], dtype=dtype)


def test_column_vector_labels_are_ravelled_with_a_warning(MLP):
    from sklearn.exceptions import DataConversionWarning

    X, y = blobs(n=40)
    net = MLP([6, 8, 3], seed=0)
    with pytest.warns(DataConversionWarning, match="column-vector y"):
        net.fit(X, y.reshape(-1, 1), epochs=1, batch_size=20, progress=False)
    with pytest.warns(DataConversionWarning, match="column-vector y"):
        column_score = net.score(X, y.reshape(-1, 1))
    assert net.score(X, y) == column_score


def test_pandas_nullable_columns(MLP):
    pd = pytest.importorskip("pandas")
    X, y = blobs(n=40)
    frame = pd.DataFrame(X).astype("Float64")
    labels = pd.Series(y, dtype="Int64")
    net = MLP([6, 8, 3], seed=0)
    net.fit(frame, labels, epochs=2, batch_size=20, progress=False)
    np.testing.assert_array_equal(net.predict(frame), net.predict(X))
    with pytest.raises(ValueError, match="y contains NaN"):
        net.score(frame, pd.Series([*y[:-1], None], dtype="Int64"))
    with pytest.raises(ValueError, match="X contains NaN"):
        net.predict(frame.mask(frame > 2))


@pytest.mark.parametrize("case, match", [
    ("nan_label", "y contains NaN"),
    ("huge_x", "values too large for float32"),
    ("fortran_weight", r"weights\[0\] is not C-contiguous"),
])
def test_error_messages_say_what_is_wrong(MLP, case, match):
    X, y = blobs(n=20)
    net = MLP([6, 8, 3], seed=0)
    with pytest.raises(ValueError, match=match):
        if case == "nan_label":
            net.fit(X, np.where(np.arange(20) == 3, np.nan, y.astype(float)), epochs=1, batch_size=5, progress=False)
        elif case == "huge_x":
            net.predict(np.where(np.arange(6) == 2, 1e39, X.astype(np.float64)))  # finite in float64
        else:
            net.weights[0] = np.asfortranarray(net.weights[0])
            net.predict(X)


def test_save_and_load_take_file_objects_and_training_continues_exactly(MLP, tmp_path):
    import io

    X, y = blobs(n=120)
    labels = np.array([3, 7, 9], dtype=np.int32)[y]
    net = MLP([6, 16, 16, 3], keep_prob=[0.9, 0.5, 0.5], seed=5)
    net.fit(X, labels, epochs=2, batch_size=32, l2=0.01, max_norm=3.0, progress=False)
    buffer = io.BytesIO()
    net.save(buffer)
    buffer.seek(0)
    loaded = cydrop.MLP.load(buffer)
    assert loaded.classes_.dtype == np.int32 and loaded.seed == 5
    assert loaded._training.l2 == 0.01 and loaded._training.max_norm == 3.0 and loaded._training.optimizer.t == net._training.optimizer.t
    with open(tmp_path / "net.npz", "wb") as f:  # a file object written, a path read
        net.save(f)
    from_path = cydrop.MLP.load(tmp_path / "net.npz")
    runs = [n.fit(X, labels, epochs=2, batch_size=32, l2=0.01, max_norm=3.0, progress=False)["loss"]
            for n in (net, loaded, from_path)]
    assert runs[0] == runs[1] == runs[2]  # same shuffles, masks and Adam moments
    for W, W1, W2 in zip(net.weights, loaded.weights, from_path.weights):
        np.testing.assert_array_equal(W, W1)
        np.testing.assert_array_equal(W, W2)


def test_string_classes_keep_their_dtype_through_a_file(MLP, tmp_path):
    X, y = blobs(n=60)
    net = MLP([6, 8, 3], seed=0)
    net.fit(X, np.array(["ant", "bee", "cow"])[y], epochs=1, batch_size=20, progress=False)
    net.save(tmp_path / "n.npz")
    loaded = cydrop.MLP.load(tmp_path / "n.npz")
    assert loaded.classes_.dtype == net.classes_.dtype and loaded.classes_.tolist() == ["ant", "bee", "cow"]


def test_init_options(MLP):
    """"auto": He normal for ReLU hidden layers, Glorot normal for the output;
    "glorot_uniform": U(-a, a) with a = sqrt(6 / (n_in + n_out)) everywhere."""
    auto = MLP([400, 300, 200], seed=0)
    assert abs(auto.weights[0].std() - np.sqrt(2 / 400)) < 0.002
    assert abs(auto.weights[1].std() - np.sqrt(2 / 500)) < 0.002
    glorot = MLP([400, 300, 200], seed=0, init="glorot_uniform")
    for W, (n_in, n_out) in zip(glorot.weights, [(400, 300), (300, 200)]):
        limit = np.sqrt(6 / (n_in + n_out))
        assert np.abs(W).max() <= limit and np.abs(W).max() > 0.99 * limit
        assert abs(W.std() - limit / np.sqrt(3)) < 0.002
    assert all((b == 0).all() for b in glorot.biases)
    with pytest.raises(ValueError, match="init must be one of"):
        MLP([4, 2], init="he")


def test_public_surface_is_what_the_readme_documents():
    """The face holds its settings and the user's operations; the engines,
    the network state and the training loop stay behind it."""
    public = {name for name in dir(cydrop.MLP) if not name.startswith("_")}
    assert public == {"fit", "partial_fit", "predict", "predict_proba", "score", "cost", "gradient_check", "check",
                      "save", "load", "keep_prob", "keep_prob_", "weights", "biases",
                      # the constructor's settings
                      "layer_sizes", "activation", "output", "dtype", "seed", "init", "engine",
                      "init_keep_prob", "temperature", "lengthscale"}
    net = cydrop.MLP([3, 4, 2], seed=0)
    assert {name for name in vars(net) if not name.startswith("_")} == {"classes_"}
    assert cydrop.mlp.MLP is cydrop.MLP


# -- arguments refused with their names --------------------------------------------

@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(max_checks=0), ValueError, "max_checks must be >= 1"),
    (dict(max_checks=-1), ValueError, "max_checks must be >= 1"),
    (dict(max_checks=2.5), TypeError, "max_checks must be an integer"),
    (dict(eps=0.0), ValueError, "eps must be in"),
    (dict(eps=-1.0), ValueError, "eps must be in"),
    (dict(eps=float("nan")), ValueError, "eps must be in"),
    (dict(seed=-1), ValueError, "seed must be >= 0"),
])
def test_gradient_check_refuses_settings_that_check_nothing(MLP, kwargs, exc, match):
    """max_checks=0 returned 0.0 ('right' after checking nothing); eps=0 divided by zero."""
    X, y = blobs(n=20, n_features=4)
    net = MLP([4, 5, 3], seed=0)
    with pytest.raises(exc, match=match):
        net.gradient_check(X, y, **kwargs)
    if "seed" not in kwargs:
        with pytest.raises(exc, match=match):
            net.check(X, y, iterations=1, **kwargs)


@pytest.mark.parametrize("file", [None, 3.5, 3, object(), ["net.npz"]])
def test_save_and_load_refuse_what_is_not_a_path_or_binary_file(MLP, file):
    """MLP.save(3) wrote into file descriptor 3; load(None) raised AttributeError."""
    net = MLP([2, 3], seed=0)
    with pytest.raises(TypeError, match="file must be a path"):
        net.save(file)
    with pytest.raises(TypeError, match="file must be a path"):
        cydrop.MLP.load(file)


def test_save_and_load_take_paths_of_every_kind_and_refuse_text_files(MLP, tmp_path):
    import io
    import os

    net = MLP([2, 3], seed=0)
    X = np.ones((4, 2), np.float32)
    for path in (str(tmp_path / "a.npz"), tmp_path / "b.npz", os.fsencode(tmp_path / "c.npz")):
        net.save(path)
        np.testing.assert_array_equal(cydrop.MLP.load(path).predict_proba(X), net.predict_proba(X))
    with pytest.raises(TypeError, match="binary mode"):
        net.save(io.StringIO())
    with open(tmp_path / "a.npz") as text:
        with pytest.raises(TypeError, match="binary mode"):
            cydrop.MLP.load(text)


@pytest.mark.parametrize("labels", [["a", 1, "b"] * 10, ["a", None, "b"] * 10,
                                    np.array(["a", 1, "b"] * 10, dtype=object)])
def test_labels_of_mixed_types_are_refused_naming_y(MLP, labels):
    X, _ = blobs(n=30, n_features=4)
    net = MLP([4, 5, 3], seed=0)
    with pytest.raises(TypeError, match="y mixes labels of types"):
        net.fit(X, labels, epochs=1, batch_size=10, progress=False)


def test_pandas_string_labels_are_kept_as_strings_and_saved(MLP, tmp_path):
    pd = pytest.importorskip("pandas")
    X, y = blobs(n=60, n_features=4)
    words = np.array(["ant", "bee", "cat"])[y]
    for column in (pd.Series(words, dtype=object), pd.Series(words, dtype="string[python]").astype(str),
                   pd.Series(words, dtype="category")):
        net = MLP([4, 5, 3], seed=0)
        net.fit(X, column, epochs=1, batch_size=20, progress=False)
        assert net.classes_.dtype.kind == "U" and net.classes_.tolist() == ["ant", "bee", "cat"]
        net.save(tmp_path / "net.npz")
        loaded = cydrop.MLP.load(tmp_path / "net.npz")
        np.testing.assert_array_equal(loaded.predict(X), net.predict(X))
        assert loaded.score(X, column) == net.score(X, column)


# -- output="gaussian": a variance learned per sample --------------------------------

def _heteroscedastic(n=1500, seed=0):
    """y = 2x + noise whose standard deviation grows with |x|: 0.2 at x = 0, 1.2 at |x| = 1."""
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1, 1, (n, 1))
    return X, 2 * X[:, 0] + rng.standard_normal(n) * (0.2 + np.abs(X[:, 0]))


def test_gaussian_output_gradients_are_right(MLP):
    X, y = _heteroscedastic(60)
    net = MLP([1, 7, 6, 2], output="gaussian", activation="tanh", keep_prob=0.8, dtype="float64", seed=2)
    net.fit(X, y, epochs=2, batch_size=10, l2=0.1, progress=False)
    assert net.gradient_check(X, y, max_checks=10_000) < 1e-7
    # the loss is the Gaussian negative log-likelihood, written here from its formula
    P = net.predict_proba(X)
    mu, var = P[:, 0], P[:, 1]
    nll = np.mean(0.5 * ((y - mu) ** 2 / var + np.log(var) + np.log(2 * np.pi)))
    assert net.cost(X, y, l2=0.0) == pytest.approx(nll, rel=1e-12)


def test_gaussian_output_learns_the_noise_and_its_predictive_spread(MLP):
    X, y = _heteroscedastic()
    net = MLP([1, 64, 64, 2], output="gaussian", keep_prob=0.9, dtype="float64", seed=0)
    net.fit(X, y, epochs=60, batch_size=64, learning_rate=3e-3, progress=False)
    grid = np.array([[0.0], [0.9]])
    mean, var = net.predict_proba(grid).T
    # the mean is learnt slowly where the noise is large (its gradient is divided by the variance)
    assert abs(mean[0]) < 0.15 and abs(mean[1] - 1.8) < 0.45
    np.testing.assert_allclose(np.sqrt(var), [0.2, 1.1], rtol=0.35)   # the noise's own standard deviation
    assert net.predict(grid).shape == (2,)
    mc_mean, mc_std, samples = net.predict_proba(grid, mc_samples=400, return_samples=True)
    assert mc_mean.shape == mc_std.shape == (2, 1) and samples.shape == (400, 2, 2)
    # the law of total variance: the spread of the passes' means plus their mean variance
    expected = np.sqrt(samples[:, :, 0].var(axis=0) + samples[:, :, 1].mean(axis=0))
    np.testing.assert_allclose(mc_std[:, 0], expected, rtol=1e-6)
    np.testing.assert_allclose(mc_mean[:, 0], samples[:, :, 0].mean(axis=0), rtol=1e-6, atol=1e-9)
    assert 0.5 < net.score(X, y) < 1   # R^2 of the means


def test_gaussian_output_shape_checks_and_files(MLP, tmp_path):
    with pytest.raises(ValueError, match="two output units per target"):
        MLP([2, 4, 3], output="gaussian")
    with pytest.raises(ValueError, match="output='gaussian' takes none"):
        MLP([2, 4, 2], output="gaussian", classes=[0, 1])
    net = MLP([2, 4, 4], output="gaussian", seed=1)
    X = np.ones((5, 2))
    with pytest.raises(ValueError, match="y has 1 targets per sample, the network has 2 targets"):
        net.fit(X, np.ones(5), epochs=1, batch_size=5, progress=False)
    net.fit(X, np.ones((5, 2)), epochs=1, batch_size=5, progress=False)
    assert net.predict(X).shape == (5, 2) and net.classes_ is None
    net.save(tmp_path / "g.npz")
    loaded = cydrop.MLP.load(tmp_path / "g.npz")
    np.testing.assert_array_equal(loaded.predict_proba(X), net.predict_proba(X))


@pytest.mark.parametrize("activation, factor", [("relu", 6), ("tanh", 6), ("linear", 6), ("sigmoid", 2)])
def test_sklearn_init_draws_weights_and_biases_within_scikit_learns_bounds(activation, factor):
    """init="sklearn": every layer's weights and biases from U(-a, a),
    a = sqrt(factor / (n_in + n_out)), factor 2 for the sigmoid (scikit-learn's
    "logistic") and 6 otherwise, the output layer included."""
    net = cydrop.MLP([400, 300, 200], activation=activation, seed=0, init="sklearn", dtype="float64")
    for W, b, (n_in, n_out) in zip(net.weights, net.biases, [(400, 300), (300, 200)]):
        limit = np.sqrt(factor / (n_in + n_out))
        for arr in (W, b):
            assert np.abs(arr).max() <= limit and np.abs(arr).max() > 0.95 * limit
        assert abs(W.std() - limit / np.sqrt(3)) < 0.002   # the std of U(-a, a)
        assert abs(b.std() - limit / np.sqrt(3)) < 0.2 * limit


def test_sklearn_init_draws_what_scikit_learn_draws_from_the_same_stream():
    from cydrop.mlp.network import initial_params

    # scikit-learn's _init_coef, layer after layer: the weights, then the biases
    rs = np.random.RandomState(7)
    expected = []
    for n_in, n_out in [(5, 4), (4, 3)]:
        limit = np.sqrt(6 / (n_in + n_out))
        expected.append((rs.uniform(-limit, limit, (n_in, n_out)), rs.uniform(-limit, limit, n_out)))
    weights, biases = initial_params([5, 4, 3], "relu", "sklearn", np.random.RandomState(7), np.float64)
    for (W, b), W_got, b_got in zip(expected, weights, biases):
        np.testing.assert_array_equal(W_got, W)
        np.testing.assert_array_equal(b_got, b)


@pytest.mark.parametrize("options, exc, match", [
    (dict(schedule="cosine"), ValueError, "schedule"), (dict(schedule=None), ValueError, "schedule"),
    (dict(power_t=-0.5), ValueError, "power_t"), (dict(beta1=1.0), ValueError, "beta1"),
    (dict(beta2=-0.1), ValueError, "beta2"), (dict(eps=0.0), ValueError, "eps"),
    (dict(eps=1e-50), ValueError, "eps=1e-50 is too small for float32"),
    (dict(eps_hat=1), TypeError, "eps_hat"), (dict(optimizer="nesterov", momentum=1.0), ValueError, "momentum"),
    (dict(shuffle=1), TypeError, "shuffle must be a bool, a numpy.random.Generator"),
])
def test_bad_optimizer_settings_are_named_and_change_nothing(MLP, options, exc, match):
    X, y = blobs(n=30)
    net = MLP([6, 8, 3], seed=0)
    before = [p.copy() for p in net._network.params]
    for train in (lambda: net.fit(X, y, epochs=1, batch_size=10, progress=False, **options),
                  lambda: net.partial_fit(X, y, batch_size=10, **options)):
        with pytest.raises(exc, match=match):
            train()
    assert net._training.optimizer is None and not net._training.trained
    for p, q in zip(net._network.params, before):
        np.testing.assert_array_equal(p, q)


def test_invscaling_sets_the_rate_after_every_epoch_from_the_samples_seen(MLP, monkeypatch):
    X, y = blobs(n=90)
    net = MLP([6, 8, 3], seed=0, dtype="float64")
    rates = []
    engine = net._current_engine()
    real = engine.train_epoch
    monkeypatch.setattr(engine, "train_epoch", lambda network, opt, *args: rates.append(opt.learning_rate)
                        or real(network, opt, *args))
    net.fit(X, y, epochs=4, batch_size=20, optimizer="sgd", learning_rate=0.5, schedule="invscaling", power_t=0.3,
            progress=False)
    net.partial_fit(X[:30], y[:30], batch_size=20, optimizer="sgd", learning_rate=0.5, schedule="invscaling",
                    power_t=0.3)
    # scikit-learn's rule: learning_rate_init / (t + 1) ** power_t, t the
    # samples trained on before the epoch, the first epoch at the initial rate
    expected = [0.5] + [0.5 / (90 * k + 1) ** 0.3 for k in (1, 2, 3, 4)]
    np.testing.assert_allclose(rates, expected, rtol=1e-15)
    assert net._training.optimizer.samples == 4 * 90 + 30
    # "constant" keeps the rate; a new call takes its own initial rate
    net.fit(X, y, epochs=2, batch_size=20, optimizer="sgd", learning_rate=0.1, progress=False)
    assert rates[-2:] == [0.1, 0.1]


def test_adaptive_divides_the_rate_by_five_on_each_plateau_and_stops_below_1e_6(MLP, monkeypatch):
    X, y = blobs(n=60)
    net = MLP([6, 8, 3], seed=0, dtype="float64")
    rates = []
    engine = net._current_engine()
    real = engine.train_epoch
    monkeypatch.setattr(engine, "train_epoch", lambda network, opt, *args: rates.append(opt.learning_rate)
                        or real(network, opt, *args))
    # no evaluation improves by tol = 1e9: the first sets the best, then
    # every second one is a plateau (patience 2)
    history = net.fit(X, y, epochs=100, batch_size=20, optimizer="sgd", learning_rate=1e-3, schedule="adaptive",
                      early_stopping=2, tol=1e9, progress=False)
    expected = [1e-3] * 3 + [2e-4] * 2 + [4e-5] * 2 + [8e-6] * 2 + [1.6e-6] * 2 + [3.2e-7] * 2
    np.testing.assert_allclose(rates, expected, rtol=1e-12)
    assert history["stopped"] and len(history["loss"]) == 13


def test_shuffling_permutes_the_previous_epochs_order_as_scikit_learns_mlp(MLP, monkeypatch):
    from sklearn.utils import shuffle

    X, y = blobs(n=50)
    net = MLP([6, 8, 3], seed=0)
    orders = []
    engine = net._current_engine()
    real = engine.train_epoch
    monkeypatch.setattr(engine, "train_epoch", lambda network, opt, X, Y, w, order, *args:
                        orders.append(order.copy()) or real(network, opt, X, Y, w, order, *args))
    net.fit(X, y, epochs=3, batch_size=10, shuffle=np.random.RandomState(4), progress=False)
    # scikit-learn's MLP: sample_idx = shuffle(sample_idx, random_state=...) every epoch
    rs, sample_idx, expected = np.random.RandomState(4), np.arange(50), []
    for _ in range(3):
        sample_idx = shuffle(sample_idx, random_state=rs)
        expected.append(sample_idx)
    for got, want in zip(orders, expected):
        np.testing.assert_array_equal(got, want)
    # a Generator shuffles too; the network's own generator when shuffle=True
    net.fit(X, y, epochs=1, batch_size=10, shuffle=np.random.default_rng(4), progress=False)
    np.testing.assert_array_equal(orders[-1], np.random.default_rng(4).permutation(50))


@pytest.mark.parametrize("keep_prob", [1.0, 0.8])
@pytest.mark.parametrize("fmt", ["csr", "csc", "coo"])
def test_sparse_X_trains_and_predicts_as_its_dense_copy(MLP, keep_prob, fmt):
    sparse = pytest.importorskip("scipy.sparse")
    X, y = blobs(n=130, dtype=np.float64)
    X[np.abs(X) < 1] = 0
    Xs = sparse.csr_matrix(X).asformat(fmt)
    nets = [MLP([6, 16, 3], keep_prob=keep_prob, seed=3, dtype="float32") for _ in range(2)]
    histories = [net.fit(data, y, epochs=3, batch_size=40, l2=0.1, validation_data=(data, y), early_stopping=5,
                         progress=False) for net, data in zip(nets, (X, Xs))]
    assert histories[0]["loss"] == histories[1]["loss"] and histories[0]["val_loss"] == histories[1]["val_loss"]
    for p, q in zip(nets[0]._network.params, nets[1]._network.params):
        np.testing.assert_array_equal(p, q)
    for method in ("predict", "predict_proba"):
        np.testing.assert_array_equal(getattr(nets[1], method)(Xs), getattr(nets[0], method)(X))
    assert nets[1].score(Xs, y) == nets[0].score(X, y) and nets[1].cost(Xs, y) == nets[0].cost(X, y)
    nets[1].partial_fit(Xs, y, batch_size=40)
    nets[0].partial_fit(X, y, batch_size=40)
    np.testing.assert_array_equal(nets[1].weights[0], nets[0].weights[0])
    mean, std = nets[1].predict_proba(Xs, mc_samples=5)
    expected = nets[0].predict_proba(X, mc_samples=5)
    np.testing.assert_array_equal(mean, expected[0])
    assert nets[1].gradient_check(Xs, y) < 1e-7


@pytest.mark.parametrize("output, n_out", [("linear", 1), ("gaussian", 2)])
@pytest.mark.filterwarnings("error")   # no RuntimeWarning from the cast on the way to the error
def test_a_target_too_large_for_float32_is_refused_by_name_without_a_warning(MLP, output, n_out):
    X, y = np.zeros((4, 3)), np.full(4, 1e300)
    with pytest.raises(ValueError, match="y has values too large for float32"):
        MLP([3, 4, n_out], output=output).fit(X, y, epochs=1, batch_size=2, progress=False)


def test_sparse_X_is_checked_like_a_dense_one(MLP):
    sparse = pytest.importorskip("scipy.sparse")
    net = MLP([3, 4, 2], seed=0)
    with pytest.raises(ValueError, match="X has 4 features, the network expects 3"):
        net.predict(sparse.csr_matrix(np.ones((2, 4))))
    with pytest.raises(ValueError, match="X contains NaN"):
        net.predict(sparse.csr_matrix(np.array([[np.nan, 0, 1.0]])))
    with pytest.raises(ValueError, match="too large for float32"):
        net.predict(sparse.csr_matrix(np.array([[1e300, 0, 1.0]])))
    with pytest.raises(ValueError, match="empty"):
        net.predict(sparse.csr_matrix((0, 3)))
    caller = sparse.csc_matrix(np.array([[1.0, 0, 2.0]]))
    net.predict(caller)
    assert caller.format == "csc" and caller.dtype == np.float64   # the caller's matrix is left alone


def test_nesterov_and_invscaling_state_go_through_a_file(MLP, tmp_path):
    X, y = blobs(n=60)
    options = dict(batch_size=20, optimizer="nesterov", learning_rate=0.05, schedule="invscaling", power_t=0.4)
    net = MLP([6, 8, 3], keep_prob=0.8, seed=1)
    net.partial_fit(X, y, **options)
    net.save(tmp_path / "n.npz")
    loaded = cydrop.MLP.load(tmp_path / "n.npz")
    assert loaded._training.optimizer.name == "nesterov" and loaded._training.optimizer.samples == 60
    for n in (net, loaded):
        n.partial_fit(X, y, **options)   # at the rate of 60 samples seen, with the saved velocity
    for W, W1 in zip(net.weights, loaded.weights):
        np.testing.assert_array_equal(W, W1)
