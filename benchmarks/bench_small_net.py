"""Small networks, where the cost is per step: the compiled engine's epoch and
MC passes beside the reference engine and PyTorch.

The network of the UCI protocol: 8-50-1, ReLU, linear output with squared
error, keep_prob ``[1.0, 0.95]`` (dropout 0.05 on the hidden layer's output),
float32, Adam (lr 1e-3), batch 128, on 5242 x 8 standard-normal rows with a
linear teacher. All cases start from the same weights (those of
``cydrop.MLP(..., seed=0)``).

Group ``small-net-epoch``: one epoch, 41 steps (5242 rows / 128). Divide a
time by 41 for the time per step. No case computes a cost pass: this is the
work the epoch loop does per epoch when no stopping rule asks for J.

``cydrop``            ``net.fit(X, y, epochs=1, batch_size=128, progress=False)``: the
                      one training loop, whose epoch is one compiled call for a network
                      this small (forward, masks, loss, backward, Adam of both layers).
``cydrop_per_layer``  the same call on the reference engine (``engine="reference"``):
                      one fused kernel call per layer and pass, Adam per array.
``torch``             ``nn.Sequential(Linear, ReLU, Dropout(0.05), Linear)``, ``MSELoss``,
                      ``optim.Adam``, batches indexed from tensors made once.

Group ``small-net-mc``: Monte Carlo dropout, T = 10,000 passes over 200 rows
of that network, mean and std of the outputs.

``cydrop``            ``net.predict_proba(X, mc_samples=10000)``: one compiled call
                      (the first layer, without input dropout, computed once).
``cydrop_per_layer``  the same on the reference engine: 10,000 passes of its
                      layer-by-layer forward.
``torch``             ``model.train()``, the 200 rows repeated 500 times per batch
                      (100,000 rows, 20 batches) under ``no_grad``, mean and std.

Every case checks its result (finite losses that fall, or MC outputs of the
right shape with a spread), so a broken case fails under
``--benchmark-disable`` too.

Run::

    python -m pytest benchmarks/bench_small_net.py --benchmark-only \\
        --benchmark-columns=median,iqr,rounds -q

Threads: cydrop's compiled engine runs on one thread (SciPy's BLAS held to one
thread); PyTorch uses ``torch.get_num_threads()``; set ``OMP_NUM_THREADS=1``
for a one-thread comparison.
"""
import numpy as np
import pytest
from _common import import_torch

import cydrop
from cydrop.apps.bench import baselines as bl

SIZES, KEEP_PROB, N, BATCH, LR = [8, 50, 1], [1.0, 0.95], 5242, 128, 1e-3
STEPS = -(-N // BATCH)
MC_T, MC_ROWS, MC_REPEAT = 10_000, 200, 500


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(13)
    X = rng.standard_normal((N, SIZES[0]), dtype=np.float32)
    y = (X @ rng.standard_normal(SIZES[0]).astype(np.float32)).astype(np.float32)
    return X, y.reshape(-1, 1)


def _net(engine="auto"):
    return cydrop.MLP(SIZES, keep_prob=KEEP_PROB, output="linear", seed=0, engine=engine)


def _check_losses(losses):
    assert np.isfinite(losses).all(), f"losses {losses}"


def _bench_epoch(benchmark, data, engine="auto"):
    X, Y = data
    net = _net(engine)

    def epoch():
        return net.fit(X, Y, epochs=1, batch_size=BATCH, learning_rate=LR, progress=False)["loss"][0]

    first = epoch()
    loss = benchmark(epoch)
    _check_losses([first, loss])
    assert loss < first
    benchmark.extra_info["steps"] = STEPS


@pytest.mark.benchmark(group="small-net-epoch")
def test_epoch_cydrop(benchmark, data):
    _bench_epoch(benchmark, data)


@pytest.mark.benchmark(group="small-net-epoch")
def test_epoch_cydrop_per_layer(benchmark, data):
    _bench_epoch(benchmark, data, "reference")


def _torch_model(torch):
    net = _net()
    return bl.torch_mlp_model(torch, [p.copy() for W, b in zip(net.weights, net.biases) for p in (W, b)],
                              KEEP_PROB)


@pytest.mark.benchmark(group="small-net-epoch")
def test_epoch_torch(benchmark, data):
    torch = import_torch()
    X, Y = data
    model = _torch_model(torch)
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    x_t, y_t = torch.from_numpy(X), torch.from_numpy(Y)
    order = torch.from_numpy(np.random.default_rng(0).permutation(N))

    def epoch():
        return bl.torch_regression_epoch(torch, model, optimizer, x_t, y_t, order, BATCH)

    first = epoch()
    loss = benchmark(epoch)
    _check_losses([first, loss])
    assert loss < first
    benchmark.extra_info["steps"] = STEPS


def _check_mc(mean, std):
    assert mean.shape == std.shape == (MC_ROWS, 1), f"shape {mean.shape}"
    assert np.isfinite(mean).all() and float(std.mean()) > 1e-4, "no spread: dropout was off"


@pytest.fixture(scope="module")
def mc_rows(data):
    return np.ascontiguousarray(data[0][:MC_ROWS])


@pytest.mark.benchmark(group="small-net-mc")
def test_mc_cydrop(benchmark, mc_rows):
    net = _net()
    _check_mc(*benchmark(net.predict_proba, mc_rows, mc_samples=MC_T))


@pytest.mark.benchmark(group="small-net-mc")
def test_mc_cydrop_per_layer(benchmark, mc_rows):
    net = _net("reference")
    _check_mc(*benchmark.pedantic(net.predict_proba, (mc_rows,), {"mc_samples": MC_T}, rounds=3))


@pytest.mark.benchmark(group="small-net-mc")
def test_mc_torch(benchmark, mc_rows):
    torch = import_torch()
    model = _torch_model(torch)
    x_t = torch.from_numpy(mc_rows)
    _check_mc(*benchmark(bl.torch_mc_large_batch, torch, model, x_t, MC_T, MC_REPEAT))
