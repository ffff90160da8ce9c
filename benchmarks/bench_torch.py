"""cydrop.torch beside torch.nn, in eager PyTorch CPU loops.

Groups (each cydrop case beside its torch twin, ratios in one run):

``torch-dropout-fwd-<shape>`` / ``torch-dropout-fwdbwd-<shape>``
    ``cydrop.torch.Dropout(p=0.2)`` (``cydrop``, the eager path) and the bare
    custom op ``cydrop::dropout`` (``cydrop_op``, the path torch.compile
    takes, dispatcher included) against ``nn.Dropout(p=0.2)``, float32,
    1024x4096 and 64x784, call overhead included; fwdbwd on an input that
    requires grad, ``out.backward(g)``. ``floor`` in the fwdbwd groups: the
    same round trip through a trivial autograd Function (forward
    ``empty_like``, backward the identity), autograd's own per-call cost.
``torch-dropout2d-channels_last`` / ``torch-dropout-channels_last``
    fwd+bwd of ``Dropout2d(p=0.2)`` and ``Dropout(p=0.2)`` against torch's
    on a float32 32x64x28x28 input in channels_last memory (a conv's
    output on CPU), outputs and gradients laid out alike: the channel mask
    runs on the memory as it is, the element-wise mask (over the logical
    order) through a contiguous copy in and out.
``torch-epoch``
    The demo network (40-512-512-10, p = 0.5 after each hidden layer, Adam
    1e-3, batch 100) on MNIST-1D (``load_mnist1d``): nn.Dropout,
    replace_dropout, DropoutLinear, nn.Identity (the limit), and a copying
    autograd Function (``copy``: what any eager Python-Function module pays),
    and ``x * 2.0`` (``scale``: torch's own C++ op with the same traffic). Exactly
    DEMO_EPOCHS timed epochs of one model per case (seeded: torch.manual_seed(0)
    before the model is built, the batch order from its own generator), then
    its accuracy on the MNIST-1D test and training sets, recorded in the
    case's ``extra_info`` (``--benchmark-json``).
``torch-mc``
    Monte Carlo dropout, 20 passes over 1000 test rows under ``mc_dropout``
    and no_grad: cydrop's modules against nn.Dropout.
``torch-linear``, ``torch-linear-100x512x512``, ``torch-linear-100x512x10``
    ``DropoutLinear`` forward + backward against ``nn.Linear`` alone and
    nn.Dropout + nn.Linear: batch 256, 1024->1024, p = 0.2 (the issue's
    target), and the demo network's two dropout layers at batch 100, p = 0.5
    (512->512, where the GEMMs dominate, and 512->10, where the mask passes
    and the Python around them do).
``torch-threads-step`` / ``torch-threads-after-gemm``
    How cydrop's kernels share torch's OpenMP threads: a torch training step
    (Linear 1024->1024, dropout on its 1024x1024 output, Linear 1024->256,
    backward, SGD), and Dropout fwd+bwd at 1024x4096 right after a torch GEMM,
    with cydrop's kernels on torch's threads (the default when the two share
    one OpenMP runtime, ``cydrop/torch/_threads.py``: ``torch``) or on the
    calling thread (``cydrop.set_num_threads(1)``: ``calling``).

Every case checks its result (zeros where dropped, kept values scaled,
gradients finite, losses finite), so ``--benchmark-disable`` runs each body
once as a test. Run::

    python -m pytest benchmarks/bench_torch.py --benchmark-only \\
        --benchmark-columns=median,iqr,rounds --benchmark-sort=name -q
"""
import numpy as np
import pytest
from _common import import_torch

import cydrop
from cydrop.apps.bench import baselines as bl
from cydrop.apps.bench.cases import MC_ROWS, MC_SAMPLES, MLP_BATCH, MLP_KEEP_PROB, MLP_LR, MLP_SIZES

torch = import_torch()
import cydrop.torch as ct  # noqa: E402

pytestmark = pytest.mark.benchmark(warmup=True, warmup_iterations=3)

P = 0.2


def _check_dropout(x, y, p=P, n=8192):
    """The first n elements: zero where dropped, x / (1 - p) where kept."""
    x, y = x.reshape(-1)[:n], y.reshape(-1)[:n]
    kept = y != 0
    torch.testing.assert_close(y, torch.where(kept, x / (1 - p), 0.0), rtol=1e-6, atol=0)
    assert abs(kept.float().mean().item() - (1 - p)) < 0.05


def _module(kind, p=P):
    """cydrop.torch.Dropout (eager path), the bare custom op (the path
    torch.compile takes, dispatcher included), nn.Dropout, or the trivial
    autograd Function (the floor)."""
    if kind == "floor":
        return bl.torch_trivial_function(torch)
    if kind == "cydrop_op":
        from cydrop.torch import _ops

        position = torch.tensor([12345, 0])
        return lambda x: _ops.dropout_op(x, 1 - p, position, [])[0]
    return (ct.Dropout(p) if kind == "cydrop" else torch.nn.Dropout(p)).train()


@pytest.mark.parametrize("kind", ["cydrop", "cydrop_op", "torch"])
@pytest.mark.parametrize("shape", [(1024, 4096), (64, 784)], ids=["1024x4096", "64x784"])
def test_dropout_forward(benchmark, shape, kind):
    benchmark.group = f"torch-dropout-fwd-{shape[0]}x{shape[1]}"
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    m = _module(kind)
    y = benchmark(m, x)
    _check_dropout(x, y)


@pytest.mark.parametrize("kind", ["cydrop", "cydrop_op", "torch", "floor"])
@pytest.mark.parametrize("shape", [(1024, 4096), (64, 784)], ids=["1024x4096", "64x784"])
def test_dropout_forward_backward(benchmark, shape, kind):
    benchmark.group = f"torch-dropout-fwdbwd-{shape[0]}x{shape[1]}"
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=gen).requires_grad_()
    g = torch.randn(shape, generator=gen)
    m = _module(kind)
    y, dx = benchmark(bl.torch_fwd_bwd, m, x, g)
    if kind == "floor":     # no dropout: the gradient passes through unchanged
        assert y.shape == x.shape and torch.equal(dx, g)
        return
    _check_dropout(x.detach(), y.detach())
    n = 8192
    torch.testing.assert_close(dx.reshape(-1)[:n], torch.where(y.reshape(-1)[:n] != 0, g.reshape(-1)[:n] / (1 - P), 0.0))


@pytest.mark.parametrize("kind", ["cydrop", "torch"])
@pytest.mark.parametrize("name", ["Dropout2d", "Dropout"])
def test_dropout_channels_last(benchmark, name, kind):
    benchmark.group = f"torch-{name.lower()}-channels_last"
    gen = torch.Generator().manual_seed(0)
    layout = torch.channels_last
    x = torch.randn(32, 64, 28, 28, generator=gen).contiguous(memory_format=layout).requires_grad_()
    g = torch.randn(32, 64, 28, 28, generator=gen).contiguous(memory_format=layout)
    m = getattr(ct if kind == "cydrop" else torch.nn, name)(P).train()
    y, dx = benchmark(bl.torch_fwd_bwd, m, x, g)
    assert y.is_contiguous(memory_format=layout) and dx.is_contiguous(memory_format=layout)
    kept = y != 0
    torch.testing.assert_close(y, torch.where(kept, x.detach() / (1 - P), 0.0))
    torch.testing.assert_close(dx, torch.where(kept, g / (1 - P), 0.0))


@pytest.fixture(scope="module")
def demo():
    """MNIST-1D as tensors, and the demo network's initial parameters."""
    from cydrop.apps.demo import load_mnist1d

    x, y, x_test, y_test = load_mnist1d()
    net = cydrop.MLP(MLP_SIZES, keep_prob=MLP_KEEP_PROB, seed=0)
    params = [p.copy() for W, b in zip(net.weights, net.biases) for p in (W, b)]
    return [torch.from_numpy(a) for a in (x, y, x_test, y_test)], params


# timed epochs per torch-epoch case: each trains one model this many epochs
# (pedantic rounds, no warm-up round), so the accuracies compare like for like
DEMO_EPOCHS = 20


def _accuracy(model, x, y):
    model.eval()
    with torch.no_grad():
        return (model(x).argmax(dim=1) == y).float().mean().item()


@pytest.mark.parametrize("kind", list(bl.TORCH_DEMO_KINDS))
def test_demo_epoch(benchmark, demo, kind):
    benchmark.group = "torch-epoch"
    benchmark.extra_info["model"] = bl.TORCH_DEMO_KINDS[kind]
    (x, y, x_test, y_test), params = demo
    if benchmark.disabled:     # the untimed test run: one epoch on a tenth of the rows
        x, y = x[:400], y[:400]
    torch.manual_seed(0)
    model = bl.torch_demo_model(torch, params, MLP_KEEP_PROB, kind)
    optimizer = bl.torch_mlp_optimizer(torch, model, MLP_LR)
    perm = torch.Generator().manual_seed(1)
    losses = []

    def epoch():
        _, history = bl.torch_mlp_train(torch, model, optimizer, x, y, perm, epochs=1, batch_size=MLP_BATCH)
        losses.extend(history["loss"])

    benchmark.pedantic(epoch, rounds=DEMO_EPOCHS, iterations=1, warmup_rounds=0)
    # the accuracies after the timed epochs, measured outside them
    test_acc, train_acc = _accuracy(model, x_test, y_test), _accuracy(model, x, y)
    benchmark.extra_info.update(epochs=len(losses), test_accuracy=round(test_acc, 4),
                                train_accuracy=round(train_acc, 4), last_loss=round(losses[-1], 4))
    assert np.isfinite(losses).all() and train_acc > 0.12, (losses, train_acc)


@pytest.mark.parametrize("kind", ["replace", "linear", "nn"])
def test_mc_dropout(benchmark, demo, kind):
    benchmark.group = "torch-mc"
    benchmark.extra_info["model"] = bl.TORCH_DEMO_KINDS[kind]
    (_, _, x_test, _), params = demo
    model = bl.torch_demo_model(torch, params, MLP_KEEP_PROB, kind).eval()
    rows, passes = (x_test[:100], 3) if benchmark.disabled else (x_test[:MC_ROWS], MC_SAMPLES)

    def mc():
        with ct.mc_dropout(model), torch.no_grad():
            samples = torch.stack([torch.softmax(model(rows), dim=1) for _ in range(passes)])
        return torch.std_mean(samples, dim=0, correction=0)

    std, mean = benchmark(mc)
    assert mean.shape == (rows.shape[0], MLP_SIZES[-1]) and float(std.mean()) > 1e-4
    assert not model.training


# (batch, in, out, p) -> group name
LINEAR_CASES = {(256, 1024, 1024, P): "torch-linear", (100, 512, 512, 0.5): "torch-linear-100x512x512",
                (100, 512, 10, 0.5): "torch-linear-100x512x10"}


@pytest.mark.parametrize("kind", ["cydrop", "torch_linear", "torch_dropout_linear"])
@pytest.mark.parametrize("case", list(LINEAR_CASES), ids=list(LINEAR_CASES.values()))
def test_dropout_linear(benchmark, case, kind):
    batch, n_in, n_out, p = case
    benchmark.group = LINEAR_CASES[case]
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, n_in, generator=gen).requires_grad_()
    g = torch.randn(batch, n_out, generator=gen)
    torch.manual_seed(0)
    if kind == "cydrop":
        model = ct.DropoutLinear(n_in, n_out, p=p)
    elif kind == "torch_linear":
        model = torch.nn.Linear(n_in, n_out)
    else:
        model = torch.nn.Sequential(torch.nn.Dropout(p), torch.nn.Linear(n_in, n_out))
    out, dx = benchmark(bl.torch_fwd_bwd, model, x, g)
    assert out.shape == (batch, n_out) and torch.isfinite(dx).all()
    if kind != "torch_linear":     # no gradient reaches a dropped input: a fraction p of dx is 0
        assert abs((dx == 0).float().mean().item() - p) < 0.05


def _set_policy(threads):
    cydrop.set_num_threads(torch.get_num_threads() if threads == "torch" else 1)


@pytest.mark.parametrize("threads", ["torch", "calling"])
def test_thread_policy_in_a_training_step(benchmark, threads, reset_cydrop_threads):
    benchmark.group = "torch-threads-step"
    benchmark.extra_info["cydrop threads"] = threads
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1024, 1024, generator=gen)
    target = torch.randn(1024, 256, generator=gen)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(1024, 1024), ct.Dropout(P), torch.nn.Linear(1024, 256))
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    _set_policy(threads)

    def step():
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), target)
        loss.backward()
        optimizer.step()
        return loss.item()

    assert np.isfinite(benchmark(step))


@pytest.mark.parametrize("threads", ["torch", "calling"])
def test_thread_policy_after_a_torch_gemm(benchmark, threads, reset_cydrop_threads):
    benchmark.group = "torch-threads-after-gemm"
    benchmark.extra_info["cydrop threads"] = threads
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1024, 4096, generator=gen).requires_grad_()
    g = torch.randn(1024, 4096, generator=gen)
    a = torch.randn(512, 512, generator=gen)
    m = ct.Dropout(P)
    _set_policy(threads)

    def gemm_then_dropout():
        a @ a           # torch's pool has just worked, as between two layers
        return bl.torch_fwd_bwd(m, x, g)

    y, dx = benchmark(gemm_then_dropout)
    _check_dropout(x.detach(), y.detach())


@pytest.fixture
def reset_cydrop_threads():
    yield
    cydrop.set_num_threads(None)
