"""The MLP's two engines held against each other (cydrop.mlp.engines: the
compiled engine, src/_fused_net.pyx, against the reference engine), the
choice between them, and the compiled nets' input checks.

Every test of the MLP's behaviour also runs on both engines (the ``MLP``
fixture of tests/conftest.py); these compare them directly."""
import numpy as np
import pytest

import cydrop
from cydrop import _fused_net
from cydrop.mlp import engines
from cydrop.mlp.engines import compiled

TOL = {"float32": 2e-6, "float64": 1e-12}


def _data(n=300, n_features=8, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, n_features))
    y = X @ rng.standard_normal(n_features) + 0.1 * rng.standard_normal(n)
    return X, y


def _fit_both(sizes, output, y, dtype, optimizer, **fit_kwargs):
    X, _ = _data()
    nets = []
    for engine in ("compiled", "reference"):
        net = cydrop.MLP(sizes, keep_prob=[0.9] + [0.8] * (len(sizes) - 2), output=output, dtype=dtype, seed=1,
                         engine=engine)
        history = net.fit(X.astype(dtype), y, epochs=3, batch_size=64, optimizer=optimizer,
                          progress=False, **fit_kwargs)
        assert net._engine.name == engine
        nets.append((net, history))
    return nets


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("optimizer", ["adam", "sgd", "momentum", "nesterov"])
@pytest.mark.parametrize("output", ["linear", "softmax", "sigmoid"])
def test_compiled_epoch_equals_reference_epoch(dtype, optimizer, output):
    _, y = _data()
    sizes = {"linear": [8, 50, 1], "softmax": [8, 20, 20, 3], "sigmoid": [8, 30, 1]}[output]
    target = y if output == "linear" else np.digitize(y, [-0.5, 0.5]) if output == "softmax" else (y > 0).astype(int)
    (a, ha), (b, hb) = _fit_both(sizes, output, target, dtype, optimizer, learning_rate=0.01,
                                 l2=0.5, max_norm=2.0)
    assert a._training.optimizer.t == b._training.optimizer.t == 3 * 5
    # the same generator blocks were drawn, and with other masks the weights
    # would differ by far more than round-off
    assert a._network.mask_gen.state == b._network.mask_gen.state
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
def test_compiled_epoch_follows_the_optimizer_settings_of_the_reference_engine(dtype, optimizer, settings):
    """The learning rate a schedule changes between epochs, Adam's betas,
    epsilon and where it is added reach the compiled epoch as they reach the
    reference engine's updates."""
    _, y = _data()
    (a, ha), (b, hb) = _fit_both([8, 30, 1], "linear", y, dtype, optimizer, l2=0.1, **settings)
    assert a._training.optimizer.learning_rate == b._training.optimizer.learning_rate
    for p, q in zip(a.weights + a.biases, b.weights + b.biases):
        np.testing.assert_allclose(p, q, rtol=0, atol=TOL[dtype] * 10)
    np.testing.assert_allclose(ha["loss"], hb["loss"], rtol=TOL[dtype] * 10)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_compiled_epoch_with_sample_weight_equals_reference_epoch(dtype):
    """Weighted batches, and whole batches of weight 0 (no sample: no update,
    their masks passed over) in both engines."""
    _, y = _data()
    w = np.random.default_rng(5).uniform(0.0, 3.0, 300)
    w[:64] = 0   # the first batch (shuffle off) holds no sample
    (a, ha), (b, hb) = _fit_both([8, 30, 1], "linear", y, dtype, "adam", learning_rate=0.01,
                                 sample_weight=w, shuffle=False, l2=0.1)
    assert a._training.optimizer.t == b._training.optimizer.t == 3 * 4
    assert a._network.mask_gen.state == b._network.mask_gen.state
    for p, q in zip(a.weights + a.biases, b.weights + b.biases):
        np.testing.assert_allclose(p, q, rtol=0, atol=TOL[dtype] * 10)
    np.testing.assert_allclose(ha["loss"], hb["loss"], rtol=TOL[dtype] * 10)


def test_all_ones_weights_are_no_weights_on_the_compiled_engine():
    X, y = _data()
    nets = []
    for w in (None, np.ones(300)):
        net = cydrop.MLP([8, 20, 1], keep_prob=0.8, output="linear", seed=2, engine="compiled")
        net.fit(X.astype(np.float32), y, epochs=2, batch_size=64, sample_weight=w, progress=False)
        nets.append(net)
    for p, q in zip(nets[0]._network.params, nets[1]._network.params):
        np.testing.assert_array_equal(p, q)


def test_compiled_epoch_masks_matter():
    """The equality above is not an accident of weak masks: another seed of
    the dropout generator alone gives other weights."""
    X, y = _data()
    nets = []
    for seed in (1, 2):
        net = cydrop.MLP([8, 50, 1], keep_prob=0.8, output="linear", dtype="float64", seed=1, engine="compiled")
        net._network.mask_gen = cydrop.Generator(seed)
        net.fit(X, y, epochs=1, batch_size=64, progress=False)
        nets.append(net)
    assert np.abs(nets[0].weights[0] - nets[1].weights[0]).max() > 1e-6


@pytest.mark.parametrize("keep_prob", [[1.0, 0.9, 0.7], [0.8, 0.9, 0.7]])
def test_compiled_mc_equals_reference_mc(keep_prob):
    """Same masks pass by pass: every MC sample agrees (1500 rows: two chunks)."""
    X, y = _data(1500)
    net = cydrop.MLP([8, 50, 30, 1], keep_prob=keep_prob, output="linear", dtype="float64", seed=3,
                     engine="compiled")
    net.fit(X, y, epochs=1, batch_size=128, progress=False)
    state = net._network.mask_gen.state
    fast = net.predict_proba(X, mc_samples=5, return_samples=True)
    net._network.mask_gen.state = state
    net._engine_choice = "reference"
    slow = net.predict_proba(X, mc_samples=5, return_samples=True)
    for u, v in zip(fast, slow):
        np.testing.assert_allclose(u, v, rtol=0, atol=1e-12)
    assert fast[2].shape == (5, 1500, 1)


def test_compiled_engine_prefers_small_layers_and_takes_at_most_eight():
    assert compiled.prefers(cydrop.MLP([8, 50, 1])._network)
    assert compiled.prefers(cydrop.MLP([40, 256, 256, 10])._network)
    deep = cydrop.MLP([4] * 10)._network   # 9 dense layers
    assert not compiled.takes(deep) and not compiled.prefers(deep)
    with pytest.raises(ValueError, match="engine='compiled' takes at most 8 dense layers"):
        cydrop.MLP([4] * 10, engine="compiled")
    with pytest.raises(ValueError, match="engine must be one of"):
        cydrop.MLP([4, 4], engine="fast")


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


def test_net_refuses_numpy_blas_without_a_registered_routine(monkeypatch):
    W, b = [np.zeros((3, 4))], [np.zeros(4)]
    monkeypatch.setattr(compiled, "_register_numpy_gemm", compiled._register_numpy_gemm)   # restored after
    _fused_net.set_numpy_gemm(0, 0)
    try:
        with pytest.raises(ValueError, match="no \\?gemm of NumPy's BLAS is registered for float64"):
            _fused_net.Net(W, b, [1.0], 1, 0, 8, numpy_blas=True)
    finally:
        _fused_net.set_numpy_gemm(compiled.numpy_gemm(np.float32), compiled.numpy_gemm(np.float64))
    if compiled.numpy_gemm(np.float64):
        assert _fused_net.Net(W, b, [1.0], 1, 0, 8, numpy_blas=True).rows == 8


@pytest.mark.parametrize("n_threads", [0, -1, 4097])
def test_net_refuses_thread_counts_out_of_range(n_threads):
    net = _fused_net.Net([np.zeros((3, 4))], [np.zeros(4)], [1.0], 1, 0, 8)
    with pytest.raises(ValueError, match="n_threads must be in"):
        net.set_threads(n_threads)


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
    net = cydrop.MLP([8, 20, 1], keep_prob=0.9, output="linear", dtype="float64", seed=0, engine="compiled")
    net.fit(X, y, epochs=2, batch_size=64, progress=False)
    old = net.weights[0]
    net.weights[0] = old.copy()
    before_old, before_new = old.copy(), net.weights[0].copy()
    net.fit(X, y, epochs=1, batch_size=64, progress=False)
    np.testing.assert_array_equal(old, before_old)          # the replaced array is left alone
    assert not np.array_equal(net.weights[0], before_new)   # the new one trained
    twin = pickle.loads(pickle.dumps(net))                  # the kept Net is not pickled
    np.testing.assert_array_equal(twin.predict(X), net.predict(X))


def test_auto_selection_rule():
    """Networks of at most 8 layers on the compiled engine, whatever their
    width and mode (its GEMMs take the reference engine's routes); deeper
    ones on the reference engine."""
    small = cydrop.MLP([8, 50, 1], output="linear")._network
    wide = cydrop.MLP([8, 300, 3])._network
    deep = cydrop.MLP([8] * 10 + [3])._network
    assert engines.select(small).name == "compiled"
    assert engines.select(deep).name == "reference"
    assert engines.select(wide).name == "compiled"
    cydrop.set_deterministic(True)
    try:
        assert engines.select(wide).name == "compiled"
        assert engines.select(small).name == "compiled"
    finally:
        cydrop.set_deterministic(False)
    current = engines.select(small)
    assert engines.select(small, current=current) is current   # its caches survive


@pytest.mark.parametrize("keep_prob", [[1.0, 0.7, 0.8], "learn"])
@pytest.mark.parametrize("route", ["numpy_blas", "pool"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_wide_network_on_each_gemm_route_equals_reference(dtype, route, keep_prob, monkeypatch, reset_threads):
    # the GEMMs of both engines on NumPy's BLAS (every GEMM counted as too
    # large for the pool), or as SciPy's blocks on two threads of the pool;
    # the 300x260 layer's Adam, max-norm (1.0 caps its columns, of norm about
    # 1.4 at the start) and prior's sum of squares run on the pool too
    if route == "numpy_blas":
        if not compiled.numpy_gemm(np.dtype(dtype)):
            pytest.skip("NumPy's BLAS exports no ILP64 ?gemm here")
        monkeypatch.setattr(cydrop._threads, "POOL_GEMM_MAX_MULTIPLY_ADDS", 1)
    else:
        cydrop.set_num_threads(2)
    X, y = _data()
    target = np.digitize(y, [-0.5, 0.5])
    nets = []
    for engine in ("compiled", "reference"):
        net = cydrop.MLP([8, 300, 260, 3], keep_prob=keep_prob, dtype=dtype, seed=4, engine=engine)
        history = net.fit(X.astype(dtype), target, epochs=2, batch_size=64, learning_rate=0.01, max_norm=1.0,
                          progress=False)
        mc = net.predict_proba(X[:50].astype(dtype), mc_samples=3)
        nets.append((net, history, mc))
    (a, ha, mca), (b, hb, mcb) = nets
    assert a._network.mask_gen.state == b._network.mask_gen.state
    for p, q in zip(a._network.params, b._network.params):
        np.testing.assert_allclose(p, q, rtol=0, atol=TOL[dtype] * 100)
    np.testing.assert_allclose(ha["loss"], hb["loss"], rtol=TOL[dtype] * 100)
    for u, v in zip(mca, mcb):
        np.testing.assert_allclose(u, v, rtol=0, atol=TOL[dtype] * 100)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("output", ["linear", "softmax", "sigmoid"])
def test_predictions_gradients_and_the_recipe_agree_across_engines(dtype, output):
    """predict_proba, cost, gradient_check and check on one network: the same
    on both engines to round-off (1300 rows: two prediction chunks)."""
    X, y = _data(1300)
    sizes = {"linear": [8, 40, 1], "softmax": [8, 30, 20, 3], "sigmoid": [8, 30, 1]}[output]
    target = y if output == "linear" else np.digitize(y, [-0.5, 0.5]) if output == "softmax" else (y > 0).astype(int)
    X = X.astype(dtype)
    results = []
    for engine in ("compiled", "reference"):
        net = cydrop.MLP(sizes, keep_prob=0.7, activation="tanh", output=output, dtype=dtype, seed=6, engine=engine)
        net.fit(X, target, epochs=2, batch_size=100, l2=0.3, progress=False)
        report = net.check(X[:200], target[:200], iterations=3, learning_rate=0.01)
        results.append((net.predict_proba(X), net.cost(X, target), net.gradient_check(X[:200], target[:200]),
                        report.costs, report.gradient_error))
        assert net._engine.name == engine
    (Pa, ca, ga, ja, ea), (Pb, cb, gb, jb, eb) = results
    np.testing.assert_allclose(Pa, Pb, rtol=0, atol=TOL[dtype] * 100)
    assert ca == pytest.approx(cb, rel=TOL[dtype] * 100)
    np.testing.assert_allclose(ja, jb, rtol=TOL[dtype] * 100)   # from weights trained to round-off
    assert ga < 1e-7 and gb < 1e-7 and ea < 1e-7 and eb < 1e-7


def test_engine_gradients_agree():
    X, y = _data(50)
    net = cydrop.MLP([8, 12, 9, 2], activation="sigmoid", dtype="float64", seed=2)
    twin = net._network.float64_copy()
    Y = np.eye(2)[(y > 0).astype(int)]
    loss_a, dW_a, db_a = engines.CompiledEngine().gradients(twin, X, Y)
    loss_b, dW_b, db_b = engines.ReferenceEngine().gradients(twin, X, Y)
    assert loss_a == pytest.approx(loss_b, rel=1e-13)
    for u, v in zip(dW_a + db_a, dW_b + db_b):
        np.testing.assert_allclose(u, v, rtol=0, atol=1e-13)
