"""The compiled small-network path (src/_fused_net.pyx, cydrop/_compiled_net.py)
against the per-layer path of cydrop.MLP, and its input checks.

The per-layer path is forced by making no network qualify."""
import numpy as np
import pytest

import cydrop
from cydrop import _compiled_net, _fused_net

TOL = {"float32": 2e-6, "float64": 1e-12}


def _data(n=300, n_features=8, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, n_features))
    y = X @ rng.standard_normal(n_features) + 0.1 * rng.standard_normal(n)
    return X, y


@pytest.fixture
def per_layer(monkeypatch):
    """Call to send every network down the per-layer path from then on."""
    return lambda: monkeypatch.setattr(_compiled_net, "route", lambda net: None)


def _fit_both(per_layer, sizes, output, y, dtype, optimizer, **fit_kwargs):
    X, _ = _data()
    nets = []
    compiled_epochs = []
    real = _compiled_net.train_epoch
    for compiled in (True, False):
        if not compiled:
            per_layer()
        net = cydrop.MLP(sizes, keep_prob=[0.9] + [0.8] * (len(sizes) - 2), output=output, dtype=dtype, seed=1)
        _compiled_net.train_epoch = lambda *args: compiled_epochs.append(compiled) or real(*args)
        try:
            history = net.fit(X.astype(dtype), y, epochs=3, batch_size=64, optimizer=optimizer,
                              progress=False, **fit_kwargs)
        finally:
            _compiled_net.train_epoch = real
        nets.append((net, history))
    assert compiled_epochs == [True] * 3   # the first network trained on the compiled path, the second not
    return nets


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("optimizer", ["adam", "sgd", "momentum", "nesterov"])
@pytest.mark.parametrize("output", ["linear", "softmax", "sigmoid"])
def test_compiled_epoch_equals_per_layer_path(per_layer, dtype, optimizer, output):
    _, y = _data()
    sizes = {"linear": [8, 50, 1], "softmax": [8, 20, 20, 3], "sigmoid": [8, 30, 1]}[output]
    target = y if output == "linear" else np.digitize(y, [-0.5, 0.5]) if output == "softmax" else (y > 0).astype(int)
    (a, ha), (b, hb) = _fit_both(per_layer, sizes, output, target, dtype, optimizer, learning_rate=0.01,
                                 l2=0.5, max_norm=2.0)
    assert a._optimizer.t == b._optimizer.t == 3 * 5
    # the same generator blocks were drawn, and with other masks the weights
    # would differ by far more than round-off
    assert a._gen.state == b._gen.state
    for p, q in zip(a.weights + a.biases, b.weights + b.biases):
        np.testing.assert_allclose(p, q, rtol=0, atol=TOL[dtype] * 10)
    np.testing.assert_allclose(ha["loss"], hb["loss"], rtol=TOL[dtype] * 10)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("optimizer, settings", [
    ("sgd", dict(schedule="invscaling", power_t=0.3, learning_rate=0.05)),
    ("nesterov", dict(schedule="invscaling", power_t=0.7, learning_rate=0.05, momentum=0.5)),
    ("adam", dict(beta1=0.8, beta2=0.99, eps=1e-3, eps_hat=True, learning_rate=0.01)),
    ("adam", dict(beta1=0.8, beta2=0.99, eps=1e-3, schedule="invscaling", learning_rate=0.01)),
])
def test_compiled_epoch_follows_the_optimizer_settings_of_the_per_layer_path(per_layer, dtype, optimizer, settings):
    """The learning rate a schedule changes between epochs, Adam's betas,
    epsilon and where it is added reach the compiled epoch as they reach the
    per-layer updates."""
    _, y = _data()
    (a, ha), (b, hb) = _fit_both(per_layer, [8, 30, 1], "linear", y, dtype, optimizer, l2=0.1, **settings)
    assert a._optimizer.learning_rate == b._optimizer.learning_rate
    for p, q in zip(a.weights + a.biases, b.weights + b.biases):
        np.testing.assert_allclose(p, q, rtol=0, atol=TOL[dtype] * 10)
    np.testing.assert_allclose(ha["loss"], hb["loss"], rtol=TOL[dtype] * 10)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_compiled_epoch_with_sample_weight_equals_per_layer_path(per_layer, dtype):
    """Weighted batches, and whole batches of weight 0 (no sample: no update,
    their masks passed over) in both paths."""
    _, y = _data()
    w = np.random.default_rng(5).uniform(0.0, 3.0, 300)
    w[:64] = 0   # the first batch (shuffle off) holds no sample
    (a, ha), (b, hb) = _fit_both(per_layer, [8, 30, 1], "linear", y, dtype, "adam", learning_rate=0.01,
                                 sample_weight=w, shuffle=False, l2=0.1)
    assert a._optimizer.t == b._optimizer.t == 3 * 4
    assert a._gen.state == b._gen.state
    for p, q in zip(a.weights + a.biases, b.weights + b.biases):
        np.testing.assert_allclose(p, q, rtol=0, atol=TOL[dtype] * 10)
    np.testing.assert_allclose(ha["loss"], hb["loss"], rtol=TOL[dtype] * 10)


def test_all_ones_weights_are_no_weights_on_the_compiled_path():
    X, y = _data()
    nets = []
    for w in (None, np.ones(300)):
        net = cydrop.MLP([8, 20, 1], keep_prob=0.8, output="linear", seed=2)
        net.fit(X.astype(np.float32), y, epochs=2, batch_size=64, sample_weight=w, progress=False)
        nets.append(net)
    for p, q in zip(nets[0].params, nets[1].params):
        np.testing.assert_array_equal(p, q)


def test_compiled_epoch_masks_matter():
    """The equality above is not an accident of weak masks: another seed of
    the dropout generator alone gives other weights."""
    X, y = _data()
    nets = []
    for seed in (1, 2):
        net = cydrop.MLP([8, 50, 1], keep_prob=0.8, output="linear", dtype="float64", seed=1)
        net._gen = cydrop.Generator(seed)
        net.fit(X, y, epochs=1, batch_size=64, progress=False)
        nets.append(net)
    assert np.abs(nets[0].weights[0] - nets[1].weights[0]).max() > 1e-6


@pytest.mark.parametrize("keep_prob", [[1.0, 0.9, 0.7], [0.8, 0.9, 0.7]])
def test_compiled_mc_equals_per_layer_mc(per_layer, keep_prob):
    """Same masks pass by pass: every MC sample agrees (1500 rows: two chunks)."""
    X, y = _data(1500)
    net = cydrop.MLP([8, 50, 30, 1], keep_prob=keep_prob, output="linear", dtype="float64", seed=3)
    net.fit(X, y, epochs=1, batch_size=128, progress=False)
    state = net._gen.state
    fast = net.predict_proba(X, mc_samples=5, return_samples=True)
    net._gen.state = state
    per_layer()
    slow = net.predict_proba(X, mc_samples=5, return_samples=True)
    for u, v in zip(fast, slow):
        np.testing.assert_allclose(u, v, rtol=0, atol=1e-12)
    assert fast[2].shape == (5, 1500, 1)


def test_qualifies_rule():
    assert _compiled_net.qualifies([8, 50, 1])
    assert _compiled_net.qualifies([40, 256, 256, 10])
    assert not _compiled_net.qualifies([40, 512, 10])
    assert not _compiled_net.qualifies([4] * 10)   # 9 dense layers


def _net(**kwargs):
    W = [np.zeros((3, 4)), np.zeros((4, 1))]
    b = [np.zeros(4), np.zeros(1)]
    state = [np.zeros_like(a) for a in W + b]
    args = dict(first=state, second=[np.zeros_like(a) for a in W + b], optimizer=_fused_net.Optimizer.OPT_ADAM,
                lr=1e-3)
    args.update(kwargs)
    return _fused_net.Net(W, b, [1.0, 0.5], 1, 0, 8, **args), W


@pytest.mark.parametrize("value", [0.0, -1.0, float("nan"), float("inf")])
def test_learning_rate_set_between_epochs_is_checked(value):
    net, _ = _net()
    net.lr = 0.5
    assert net.lr == 0.5
    with pytest.raises(ValueError, match="lr must be in"):
        net.lr = value
    assert net.lr == 0.5


@pytest.mark.parametrize("bad, match", [
    (dict(optimizer=_fused_net.Optimizer.OPT_NESTEROV, first=None), "first must be a list"),
    (dict(first=None), "first must be a list"),
    (dict(second=[np.zeros(1)] * 4), r"second\[0\] must have shape"),
    (dict(first=[np.zeros((3, 4), np.float32)] * 4), r"first\[0\] must have dtype"),
    (dict(lr=0.0), "lr must be > 0"),
    (dict(beta2=1.0), "beta2 must be in"),
    (dict(max_norm=float("nan")), "max_norm must be in"),
])
def test_net_refuses_bad_state(bad, match):
    with pytest.raises((ValueError, TypeError), match=match):
        _net(**bad)


def test_net_refuses_a_gemm_routine_it_did_not_find():
    W, b = [np.zeros((3, 4))], [np.zeros(4)]
    with pytest.raises(ValueError, match="gemm_routine must be 0 or"):
        _fused_net.Net(W, b, [1.0], 1, 0, 8, gemm_routine=12345)
    found = _compiled_net.numpy_gemm(np.float64)
    if found is not None:
        assert _fused_net.Net(W, b, [1.0], 1, 0, 8, gemm_routine=found).rows == 8
        with pytest.raises(ValueError, match="gemm_routine must be 0 or"):   # float32's for float64 weights
            _fused_net.Net(W, b, [1.0], 1, 0, 8, gemm_routine=_compiled_net.numpy_gemm(np.float32))


def test_net_refuses_bad_layers():
    with pytest.raises(ValueError, match=r"weights\[1\] must have shape \(4"):
        _fused_net.Net([np.zeros((3, 4)), np.zeros((5, 1))], [np.zeros(4), np.zeros(1)], [1, 1], 1, 0, 8)
    with pytest.raises(ValueError, match=r"keep_prob\[1\] must be in"):
        _fused_net.Net([np.zeros((3, 4)), np.zeros((4, 1))], [np.zeros(4), np.zeros(1)], [1, 0], 1, 0, 8)
    with pytest.raises(ValueError, match="rows must be >= 1"):
        _fused_net.Net([np.zeros((3, 4))], [np.zeros(4)], [1], 1, 0, 0)
    with pytest.raises(ValueError, match="one entry per layer"):
        _fused_net.Net([np.zeros((3, 4))], [np.zeros(4)], [1, 1], 1, 0, 8)
    with pytest.raises(ValueError, match=r"biases\[0\] must be writable"):
        b = np.zeros(4)
        b.flags.writeable = False
        _fused_net.Net([np.zeros((3, 4))], [b], [1], 1, 0, 8, optimizer=_fused_net.Optimizer.OPT_SGD, lr=0.1)


def test_train_epoch_refuses_bad_arrays():
    net, W = _net()
    X, Y = np.zeros((10, 3)), np.zeros((10, 1))
    order = np.arange(10)
    with pytest.raises(ValueError, match=r"order\[3\] = 10 is not a row of X"):
        net.train_epoch(X, Y, np.array([0, 1, 2, 10]), 0, 0, 0)
    with pytest.raises(ValueError, match=r"order\[0\] = -1"):
        net.train_epoch(X, Y, np.array([-1]), 0, 0, 0)
    with pytest.raises(TypeError, match="order must have dtype"):
        net.train_epoch(X, Y, order.astype(np.int32), 0, 0, 0)
    with pytest.raises(ValueError, match=r"Y must have shape \(10, 1\)"):
        net.train_epoch(X, np.zeros((9, 1)), order, 0, 0, 0)
    with pytest.raises(ValueError, match=r"X must have shape \(10, 3\)"):
        net.train_epoch(np.zeros((10, 4)), Y, order, 0, 0, 0)
    with pytest.raises(TypeError, match="X must have dtype float64"):
        net.train_epoch(X.astype(np.float32), Y, order, 0, 0, 0)
    with pytest.raises(ValueError, match="X must be C-contiguous"):
        net.train_epoch(np.zeros((3, 10)).T, Y, order, 0, 0, 0)
    with pytest.raises(ValueError, match="t must be >= 0"):
        net.train_epoch(X, Y, order, 0, 0, -1)
    W[0].resize((2, 4), refcheck=False)   # legal NumPy, fatal to an unchecked kernel
    with pytest.raises(ValueError, match=r"weights\[0\] must have shape \(3, 4\)"):
        net.train_epoch(X, Y, order, 0, 0, 0)


def test_mc_passes_refuse_bad_arrays():
    net, _ = _net(optimizer=_fused_net.Optimizer.OPT_NONE, first=None, second=None)
    X = np.zeros((5, 3))
    total, total_sq = np.zeros((5, 1)), np.zeros((5, 1))
    with pytest.raises(ValueError, match="this Net was made for prediction"):
        net.train_epoch(X, np.zeros((5, 1)), np.arange(5), 0, 0, 0)
    with pytest.raises(ValueError, match=r"total must have shape \(5, 1\)"):
        net.mc_passes(X, 3, 0, 0, np.zeros((4, 1)), total_sq)
    with pytest.raises(ValueError, match=r"samples must have shape \(3, 5, 1\)"):
        net.mc_passes(X, 3, 0, 0, total, total_sq, np.zeros((2, 5, 1)))
    with pytest.raises(ValueError, match="total_sq must be writable"):
        ro = np.zeros((5, 1))
        ro.flags.writeable = False
        net.mc_passes(X, 3, 0, 0, total, ro)
    with pytest.raises(ValueError, match="n_passes must be >= 0"):
        net.mc_passes(X, -1, 0, 0, total, total_sq)


def test_kept_compiled_net_follows_replaced_arrays():
    """The compiled Net is kept from epoch to epoch; a weight array replaced
    between fits is the one trained next (not the old one the Net held)."""
    import pickle

    X, y = _data()
    net = cydrop.MLP([8, 20, 1], keep_prob=0.9, output="linear", dtype="float64", seed=0)
    net.fit(X, y, epochs=2, batch_size=64, progress=False)
    old = net.weights[0]
    net.weights[0] = old.copy()
    before_old, before_new = old.copy(), net.weights[0].copy()
    net.fit(X, y, epochs=1, batch_size=64, progress=False)
    np.testing.assert_array_equal(old, before_old)          # the replaced array is left alone
    assert not np.array_equal(net.weights[0], before_new)   # the new one trained
    twin = pickle.loads(pickle.dumps(net))                  # the kept Net is not pickled
    np.testing.assert_array_equal(twin.predict(X), net.predict(X))


def test_route_rule():
    """Small networks on one thread (SciPy's BLAS), wider ones through NumPy's
    BLAS, none in deterministic mode (blocked GEMMs) or past 8 layers."""
    small = cydrop.MLP([8, 50, 1], output="linear")
    wide = cydrop.MLP([8, 300, 3])
    deep = cydrop.MLP([8] * 10 + [3])
    assert _compiled_net.route(small) == 0
    assert _compiled_net.route(deep) is None
    assert _compiled_net.route(wide) == _compiled_net.numpy_gemm(np.float32)
    cydrop.set_deterministic(True)
    try:
        assert _compiled_net.route(wide) is None
        assert _compiled_net.route(small) == 0   # one thread, deterministic already
    finally:
        cydrop.set_deterministic(False)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_wide_network_through_numpy_blas_equals_per_layer_path(per_layer, dtype):
    if _compiled_net.numpy_gemm(np.dtype(dtype)) is None:
        pytest.skip("NumPy's BLAS exports no ILP64 ?gemm here: wide networks take the per-layer path")
    X, y = _data()
    target = np.digitize(y, [-0.5, 0.5])
    nets = []
    for compiled in (True, False):
        if not compiled:
            per_layer()
        net = cydrop.MLP([8, 300, 260, 3], keep_prob=[1.0, 0.7, 0.8], dtype=dtype, seed=4)
        assert (_compiled_net.route(net) is not None) == compiled
        history = net.fit(X.astype(dtype), target, epochs=2, batch_size=64, learning_rate=0.01, progress=False)
        mc = net.predict_proba(X[:50].astype(dtype), mc_samples=3)
        nets.append((net, history, mc))
    (a, ha, mca), (b, hb, mcb) = nets
    assert a._gen.state == b._gen.state
    for p, q in zip(a.params, b.params):
        np.testing.assert_allclose(p, q, rtol=0, atol=TOL[dtype] * 100)
    np.testing.assert_allclose(ha["loss"], hb["loss"], rtol=TOL[dtype] * 100)
    for u, v in zip(mca, mcb):
        np.testing.assert_allclose(u, v, rtol=0, atol=TOL[dtype] * 100)
