"""The demo network on MNIST-1D: cydrop.MLP beside plain NumPy and PyTorch.

The network is the one ``cydrop demo`` trains: 40-512-512-10, ReLU, softmax
cross-entropy, keep_prob ``[1.0, 0.5, 0.5]`` (no dropout on the input
features, dropout 0.5 on each hidden layer's output), float32, on MNIST-1D
(``cydrop.apps.demo.load_mnist1d()``: 4000 training and 1000 test examples).
All three implementations start from the same initial weights (those of
``cydrop.MLP(..., seed=SEED)``: He for the hidden layers, Glorot for the
output layer, zero biases).

Group ``mlp-train-mnist1d``: 2 epochs of Adam (lr 1e-3, betas 0.9/0.999,
eps 1e-8), mini-batches of 100, reshuffled every epoch. A fresh network is
built in pytest-benchmark's ``setup`` before every round (not timed), so every
round times the same 2 epochs from the same start and the accuracies of the
three cases are comparable.

``gemms``   the floor: the 2 epochs' training GEMMs alone with NumPy ``@`` (8 per batch),
            :func:`cydrop.apps.bench.baselines.mlp_epoch_gemms`.
``cydrop``  ``cydrop.MLP(...).fit(x, y, epochs=2, batch_size=100, progress=False)``, default
            options: no evaluation pass.
``numpy``   the deeplearning.ai course's network: forward and backward by hand,
            ``D = np.random.rand(*A.shape) < keep_prob; A = A * D / keep_prob``,
            Adam by hand with NumPy ops (:mod:`cydrop.apps.bench.baselines`, shared with
            ``cydrop bench``). Arrays are
            ``(batch, features)`` like cydrop's (the course's column layout
            transposed: ``Z = A @ W + b`` for ``Z = np.dot(W, A) + b``).
``torch``   ``nn.Sequential(Linear, ReLU, Dropout(0.5), Linear, ReLU, Dropout(0.5),
            Linear)``, ``nn.CrossEntropyLoss``, ``torch.optim.Adam``, ``model.train()``,
            mini-batches indexed from tensors made once outside the timed body.

"The same work": all three train and record the mean training loss over the
epoch's batches, and none makes an evaluation pass over the training set
(``fit`` computes J only when a stopping rule or ``track_cost`` asks for it).
What one evaluation of J costs is its own group, ``mlp-cost-mnist1d``.

Group ``mlp-mc-predict``: Monte Carlo dropout on the 1000 test examples, 20
passes with dropout on, mean and (population) std of the softmax outputs,
all three with the same weights (a cydrop net trained for 2 epochs):
``net.predict_proba(x_test, mc_samples=20)``; 20 course-style forward passes;
``model.train()`` and 20 passes under ``torch.no_grad()``, ``torch.std_mean``.

Timing never decides pass/fail; every case checks its result cheaply, so a
broken case fails even under ``--benchmark-disable``: training history of 2
finite epochs, training accuracy (dropout off, measured after the timed run)
above ``_MIN_TRAIN_ACC`` (chance is 0.1; 2 epochs reach about 0.35), training
loss below ln(10) (uniform guessing), weights changed; MC outputs of shape (1000, 10), finite, rows of
the mean summing to 1, std >= 0 with a mean above round-off (dropout on), MC
accuracy above chance.
``extra_info`` records the train and test accuracy each case reached, so the
accuracy band can be read beside the times.

Run::

    python -m pytest benchmarks/bench_mlp.py -q --benchmark-disable   # each body once, checks only
    python -m pytest benchmarks/bench_mlp.py --benchmark-only \\
        --benchmark-columns=median,iqr,rounds -q

Threads: the NumPy case and cydrop's GEMMs (default mode) run on NumPy's
OpenBLAS threads, cydrop's element-wise passes on ``cydrop.get_num_threads()``
OpenMP threads, PyTorch on ``torch.get_num_threads()``; NumPy's element-wise
work (masks, ReLU, Adam) is single-threaded. Set
``OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1`` for a one-thread comparison.
"""
import math

import numpy as np
import pytest
from _common import import_torch, numpy_blas_threads

import cydrop
from cydrop.apps.bench import baselines as bl

pytest.importorskip(
    "mnist1d", reason='MNIST-1D benchmarks skipped: mnist1d is not importable (pip install "cydrop[demo]")'
)

from cydrop.apps.demo import load_mnist1d  # noqa: E402  (after the skip: it needs mnist1d)

LAYER_SIZES = [40, 512, 512, 10]
# entry i: inputs of dense layer i; entry 0 (the features) must stay 1.0, the
# NumPy and PyTorch networks drop hidden outputs only
KEEP_PROB = [1.0, 0.5, 0.5]
LEARNING_RATE = 1e-3  # Adam's betas and eps: the defaults of cydrop and torch (bl.ADAM)
BATCH_SIZE = 100
EPOCHS = 2
MC_SAMPLES = 20
SEED = 0

# 3 timed rounds after 1 warm-up: each call trains for 2 epochs
_PEDANTIC = dict(rounds=3, iterations=1, warmup_rounds=1)
# Chance is 0.1. With seeds 0-3, 2 epochs reach a training accuracy of 0.355-0.39
# in all three implementations (test 0.30-0.35); a ReLU gradient taken on the
# wrong side ends near 0.24.
_MIN_TRAIN_ACC = 0.3
_MIN_MC_ACC = 0.2  # test set, MC mean of a 2-epoch net (about 0.30-0.33)
# Dropout 0.5 spreads the MC outputs (mean std about 0.07); 20 identical passes
# give a std of round-off only (< 1e-6), which "std > 0" alone would accept.
_MIN_MC_MEAN_STD = 0.01
_CHANCE_LOSS = math.log(10)  # cross-entropy of uniform guessing

# Only the calibrated MC cases use this: their first calls are not what is measured.
pytestmark = pytest.mark.benchmark(warmup=True, warmup_iterations=3)




def _group(benchmark, group, impl, **info):
    benchmark.group = group
    benchmark.extra_info.update(layer_sizes=LAYER_SIZES, keep_prob=KEEP_PROB, dtype="float32",
                                impl=impl, cydrop_threads=cydrop.get_num_threads(),
                                numpy_blas_threads=numpy_blas_threads(), **info)


def _train_info():
    return dict(epochs=EPOCHS, batch_size=BATCH_SIZE, optimizer="adam", learning_rate=LEARNING_RATE,
                fresh_net_per_round=True)


# ---------------------------------------------------------------- data


@pytest.fixture(scope="module")
def mnist1d():
    """(x, y, x_test, y_test): float32 (4000, 40), int64 (4000,), (1000, 40), (1000,); read-only."""
    arrays = load_mnist1d()  # note: mnist1d seeds NumPy's global RNG while generating
    for arr in arrays:
        arr.flags.writeable = False  # a case that writes the data is a bug
    return arrays


@pytest.fixture(scope="module")
def init_params():
    """The initial [W0, b0, W1, b1, W2, b2] of ``cydrop.MLP(..., seed=SEED)``, read-only.

    ``W`` is (n_in, n_out), ``b`` (n_out,), float32.
    """
    net = cydrop.MLP(LAYER_SIZES, keep_prob=KEEP_PROB, seed=SEED)
    params = [p.copy() for W, b in zip(net.weights, net.biases) for p in (W, b)]
    for p in params:
        p.flags.writeable = False
    return params


@pytest.fixture(scope="module")
def trained_net(mnist1d):
    """A cydrop net trained for EPOCHS (not timed): the MC cases all predict with its weights."""
    x, y, _, _ = mnist1d
    net = cydrop.MLP(LAYER_SIZES, keep_prob=KEEP_PROB, seed=SEED + 1)
    net.fit(x, y, epochs=EPOCHS, batch_size=BATCH_SIZE, learning_rate=LEARNING_RATE, progress=False)
    return net


def _net_params(net):
    params = [p.copy() for W, b in zip(net.weights, net.biases) for p in (W, b)]
    for p in params:
        p.flags.writeable = False
    return params


# ---------------------------------------------------------------- checks


def _check_history(history, init, params, train_acc):
    """A 2-epoch training run: finite losses, better than guessing, weights moved.
    ``train_acc``: accuracy on the training set with dropout off, measured
    after the timed run (no case spends an evaluation pass while timed)."""
    assert len(history["loss"]) == EPOCHS, f"history['loss'] has {len(history['loss'])} entries"
    assert all(math.isfinite(v) for v in history["loss"]), f"history['loss'] = {history['loss']}"
    assert history["loss"][-1] < _CHANCE_LOSS, \
        f"training loss {history['loss'][-1]:.3f} not below uniform guessing ({_CHANCE_LOSS:.3f})"
    assert train_acc > _MIN_TRAIN_ACC, f"training accuracy {train_acc:.3f} <= {_MIN_TRAIN_ACC} (chance 0.1)"
    for k, (p, p0) in enumerate(zip(params, init)):
        assert p.shape == p0.shape and p.dtype == np.float32, f"param {k}: {p.shape} {p.dtype}"
        assert np.isfinite(p).all(), f"param {k} has non-finite values"
    assert not np.array_equal(params[0], init[0]), "W0 was never updated"


def _record_accuracy(benchmark, history, train_acc, test_acc):
    benchmark.extra_info.update(train_accuracy=round(float(train_acc), 4),
                                train_loss_dropout_on=round(history["loss"][-1], 4),
                                test_accuracy=round(float(test_acc), 4))


def _check_mc(mean, std, y_test):
    """MC dropout outputs: shapes, probabilities, some spread; returns the MC accuracy."""
    n = y_test.shape[0]
    for name, arr in (("mean", mean), ("std", std)):
        assert arr.shape == (n, LAYER_SIZES[-1]), f"{name} shape {arr.shape}"
        assert arr.dtype == np.float32, f"{name} dtype {arr.dtype}"
        assert np.isfinite(arr).all(), f"{name} has non-finite values"
    assert (mean >= 0).all() and (mean <= 1 + 1e-6).all(), "mean probabilities outside [0, 1]"
    np.testing.assert_allclose(mean.sum(axis=1, dtype=np.float64), 1.0, atol=1e-5,
                               err_msg="rows of the MC mean do not sum to 1")
    assert (std >= 0).all(), "negative std"
    assert float(std.mean()) > _MIN_MC_MEAN_STD, \
        f"mean std {float(std.mean()):.2e} <= {_MIN_MC_MEAN_STD}: dropout was off"
    acc = float(np.mean(mean.argmax(axis=1) == y_test))
    assert acc > _MIN_MC_ACC, f"MC accuracy {acc:.3f} <= {_MIN_MC_ACC} (chance 0.1)"
    return acc


def _record_mc(benchmark, net, mean, std, acc, x_test, y_test):
    benchmark.extra_info.update(mc_samples=MC_SAMPLES, n_samples=x_test.shape[0],
                                test_accuracy_mc_mean=round(acc, 4),
                                test_accuracy_dropout_off=round(float(net.score(x_test, y_test)), 4),
                                mean_std=round(float(std.mean()), 5))


# ---------------------------------------------------------------- training


def _numpy_train(X, y, params):
    return bl.numpy_mlp_train(X, y, params, KEEP_PROB, epochs=EPOCHS, batch_size=BATCH_SIZE,
                              learning_rate=LEARNING_RATE)


def _torch_train(torch, model, optimizer, x_t, y_t, perm_gen):
    return bl.torch_mlp_train(torch, model, optimizer, x_t, y_t, perm_gen, epochs=EPOCHS,
                              batch_size=BATCH_SIZE)


def _cydrop_fit(net, x, y):
    history = net.fit(x, y, epochs=EPOCHS, batch_size=BATCH_SIZE, optimizer="adam",
                      learning_rate=LEARNING_RATE, shuffle=True, progress=False)
    return net, history


def test_train_cydrop(benchmark, mnist1d, init_params):
    x, y, x_test, y_test = mnist1d
    _group(benchmark, "mlp-train-mnist1d", "cydrop.MLP(...).fit(progress=False)", **_train_info())

    def setup():  # a fresh net per round, as init_params
        return (cydrop.MLP(LAYER_SIZES, keep_prob=KEEP_PROB, seed=SEED), x, y), {}

    net, history = benchmark.pedantic(_cydrop_fit, setup=setup, **_PEDANTIC)
    params = [p for W, b in zip(net.weights, net.biases) for p in (W, b)]
    train_acc = net.score(x, y)
    _check_history(history, init_params, params, train_acc)
    _record_accuracy(benchmark, history, train_acc, net.score(x_test, y_test))


def _train_gemms(x, params):
    return [bl.mlp_epoch_gemms(x, params, BATCH_SIZE) for _ in range(EPOCHS)]


def test_train_gemms(benchmark, mnist1d, init_params):
    x = mnist1d[0]
    _group(benchmark, "mlp-train-mnist1d", "the epochs' GEMMs alone (NumPy @)", **_train_info())
    results = benchmark.pedantic(_train_gemms, args=(x, init_params), **_PEDANTIC)
    for out, dW in results:  # the last batch's output and first-layer dW
        assert out.shape == (BATCH_SIZE, LAYER_SIZES[-1]) and dW.shape == (LAYER_SIZES[0], LAYER_SIZES[1])
        assert np.isfinite(out).all() and np.isfinite(dW).all()


def test_train_numpy(benchmark, mnist1d, init_params):
    x, y, x_test, y_test = mnist1d
    _group(benchmark, "mlp-train-mnist1d",
           "course NumPy: np.random.rand < keep_prob, A * D / keep_prob, backprop and Adam by hand",
           **_train_info())

    def setup():
        np.random.seed(SEED)  # the course's global RNG; benchmarks only, never the library
        return (x, y, [p.copy() for p in init_params]), {}

    params, history = benchmark.pedantic(_numpy_train, setup=setup, **_PEDANTIC)
    train_acc = np.mean(bl.numpy_mlp_forward(x, params, KEEP_PROB, train=False)[0].argmax(axis=1) == y)
    _check_history(history, init_params, params, train_acc)
    P, _ = bl.numpy_mlp_forward(x_test, params, KEEP_PROB, train=False)
    _record_accuracy(benchmark, history, train_acc, np.mean(P.argmax(axis=1) == y_test))


def test_train_torch(benchmark, mnist1d, init_params):
    torch = import_torch()
    x, y, x_test, y_test = mnist1d
    # copies: torch warns on read-only arrays
    x_t, y_t = torch.from_numpy(x.copy()), torch.from_numpy(y.copy())
    _group(benchmark, "mlp-train-mnist1d",
           "nn.Sequential(Linear, ReLU, Dropout) + CrossEntropyLoss + optim.Adam",
           torch_threads=torch.get_num_threads(), **_train_info())

    def setup():
        torch.manual_seed(SEED)  # dropout masks
        model = bl.torch_mlp_model(torch, init_params, KEEP_PROB)
        optimizer = bl.torch_mlp_optimizer(torch, model, LEARNING_RATE)
        perm_gen = torch.Generator().manual_seed(SEED)
        return (torch, model, optimizer, x_t, y_t, perm_gen), {}

    model, history = benchmark.pedantic(_torch_train, setup=setup, **_PEDANTIC)
    model.eval()
    with torch.no_grad():
        train_acc = (model(x_t).argmax(dim=1).numpy() == y).mean()
        test_acc = (model(torch.from_numpy(x_test.copy())).argmax(dim=1).numpy() == y_test).mean()
    _check_history(history, init_params, bl.torch_mlp_params(model), train_acc)
    _record_accuracy(benchmark, history, train_acc, test_acc)


# ---------------------------------------------------------------- the epoch's cost pass
#
# Group ``mlp-cost-mnist1d``: the cost J with dropout off on the 4000 training
# rows, which ``fit`` computes at each evaluation of a stopping rule (or with
# ``track_cost``), with the trained weights: ``net.cost`` in its default passes
# of ``cydrop.mlp.engines.interface.PREDICT_ROWS`` (1024) rows, the same in one pass of all
# 4000 rows, and the floor, NumPy's three bare GEMMs on the whole set.


@pytest.mark.parametrize("rows", ["default", "all"])
def test_cost_cydrop(benchmark, monkeypatch, mnist1d, trained_net, rows):
    from cydrop.mlp.engines import interface

    x, y, _, _ = mnist1d
    if rows == "all":
        monkeypatch.setattr(interface, "PREDICT_ROWS", x.shape[0])
    _group(benchmark, "mlp-cost-mnist1d", f"net.cost(x, y), passes of {interface.PREDICT_ROWS} rows")
    cost = benchmark(trained_net.cost, x, y)
    assert math.isfinite(cost) and 0 < cost < _CHANCE_LOSS, f"cost {cost}"


def test_cost_gemms(benchmark, mnist1d, trained_net):
    x = mnist1d[0]
    _group(benchmark, "mlp-cost-mnist1d", "the three forward GEMMs on all rows (NumPy @)")

    def gemms():
        h = x
        for W in trained_net.weights:
            h = h @ W
        return h

    out = benchmark(gemms)
    assert out.shape == (x.shape[0], LAYER_SIZES[-1]) and np.isfinite(out).all()



# ---------------------------------------------------------------- MC dropout


def test_mc_predict_cydrop(benchmark, mnist1d, trained_net):
    _, _, x_test, y_test = mnist1d
    _group(benchmark, "mlp-mc-predict", f"net.predict_proba(x_test, mc_samples={MC_SAMPLES})")
    mean, std = benchmark(trained_net.predict_proba, x_test, mc_samples=MC_SAMPLES)
    acc = _check_mc(mean, std, y_test)
    _record_mc(benchmark, trained_net, mean, std, acc, x_test, y_test)


def test_mc_predict_numpy(benchmark, mnist1d, trained_net):
    _, _, x_test, y_test = mnist1d
    params = _net_params(trained_net)
    np.random.seed(SEED)  # the course's global RNG; benchmarks only
    _group(benchmark, "mlp-mc-predict",
           f"{MC_SAMPLES} course forward passes (np.random.rand < keep_prob), np.stack, mean, std")
    mean, std = benchmark(bl.numpy_mlp_mc, x_test, params, KEEP_PROB, MC_SAMPLES)
    acc = _check_mc(mean, std, y_test)
    _record_mc(benchmark, trained_net, mean, std, acc, x_test, y_test)


def test_mc_predict_torch(benchmark, mnist1d, trained_net):
    torch = import_torch()
    _, _, x_test, y_test = mnist1d
    torch.manual_seed(SEED)
    model = bl.torch_mlp_model(torch, _net_params(trained_net), KEEP_PROB)
    x_t = torch.from_numpy(x_test.copy())
    _group(benchmark, "mlp-mc-predict",
           f"model.train(), {MC_SAMPLES} passes under torch.no_grad(), softmax, torch.std_mean",
           torch_threads=torch.get_num_threads())
    mean, std = benchmark(bl.torch_mlp_mc, torch, model, x_t, MC_SAMPLES)
    mean, std = mean.numpy(), std.numpy()
    acc = _check_mc(mean, std, y_test)
    _record_mc(benchmark, trained_net, mean, std, acc, x_test, y_test)
