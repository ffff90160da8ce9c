"""The cases ``cydrop bench`` times: each cydrop operation beside its floor and baselines.

Nothing here seeds NumPy's or PyTorch's global generators (the course code
and ``nn.Dropout`` draw from them): timing does not need their masks to
repeat, and ``cydrop bench`` called from a user's session must not reset them.

A :class:`Group` holds one piece of work done several ways: cydrop's, the
physical floor where one exists (``x.copy()`` for an element-wise pass, the
bare GEMMs for a dense layer) and the baselines of
:mod:`cydrop.apps.bench.baselines`. Every implementation is a no-argument callable
built here, so the timer sees only the work; each has a cheap check that its
result is sane, run once after the warm-up, so a broken case is reported
instead of timed.
"""
import math
from dataclasses import dataclass, field

import numpy as np

import cydrop

from . import baselines as bl

# The demo network (``cydrop demo``): 40-512-512-10, no dropout on the features,
# keep_prob 0.5 on both hidden layers, Adam at 1e-3, batches of 100.
MLP_SIZES = [40, 512, 512, 10]
MLP_KEEP_PROB = [1.0, 0.5, 0.5]
MLP_SAMPLES, MLP_BATCH, MLP_LR = 4000, 100, 1e-3
MC_SAMPLES, MC_ROWS = 20, 1000

_SEED = 20240601


@dataclass
class Impl:
    """One way of doing a group's work."""

    name: str      # short key: "cydrop", "floor", "numpy_course", "numpy_rng", "torch"
    label: str     # what exactly runs
    fn: object     # no-argument callable: the timed work
    check: object  # callable(result) raising AssertionError on a wrong result
    note: object = None  # callable() -> str, read after timing and printed with the row


@dataclass
class Group:
    """One piece of work, done by cydrop and by each baseline."""

    name: str
    work: float    # the amount behind ``metric``: bytes, FLOPs or samples per call
    metric: str    # "GB/s", "GFLOP/s" or "samples/s": work / time, in these units
    elements: int = 0  # array elements per call, for ns per element (element-wise passes)
    impls: list = field(default_factory=list)
    tag: str = ""  # the short name --only matches, set by build_groups' caller
    skipped: dict = field(default_factory=dict)  # impl name -> reason
    # every case runs inside torch (cydrop.torch's groups): no NumPy-BLAS case to
    # keep away from torch's spinning pool, so the timer interleaves them all
    in_torch: bool = False


def _normal(shape, dtype, stream):
    return np.random.default_rng([_SEED, stream]).standard_normal(shape, dtype=np.dtype(dtype).type)


def _check_dropout(x, keep_prob, n=8192):
    """A check that ``(y, kept)`` is x * kept / keep_prob on the first n elements."""
    def check(result):
        y, kept = result
        y, kept = np.asarray(y).reshape(-1)[:n], np.asarray(kept).reshape(-1)[:n].astype(bool)
        xs = x.reshape(-1)[:n]
        assert y.shape == xs.shape, f"result has {y.size} elements"
        np.testing.assert_allclose(y, np.where(kept, xs / keep_prob, 0), rtol=1e-5, atol=0)
        # binomial sd of the kept fraction over >= 8192 elements < 0.006
        assert abs(kept.mean() - keep_prob) < 0.06, f"kept fraction {kept.mean():.3f}"
    return check


def _check_finite(*names):
    def check(result):
        for name, arr in zip(names, result):
            assert np.isfinite(np.asarray(arr)).all(), f"{name} has non-finite values"
    return check


def dropout_forward(shape, dtype, keep_prob, torch):
    x = _normal(shape, dtype, 0)
    gen, rng = cydrop.Generator(1), np.random.default_rng(2)
    check = _check_dropout(x, keep_prob)
    head = -(-min(x.size, 8192) // 64)  # mask words behind the checked elements

    def cydrop_fwd():
        y, mask = cydrop.dropout(x, keep_prob, seed=gen)
        return y, cydrop.Mask(np.array(mask.words[:head]), (head * 64,), keep_prob).to_bool()

    group = Group(f"dropout forward {np.dtype(dtype).name} {_dims(shape)} keep_prob {keep_prob}",
                  work=2 * x.nbytes, metric="GB/s", elements=x.size)
    group.impls += [
        Impl("cydrop", "cydrop.dropout(x, keep_prob, seed=Generator)", cydrop_fwd, check),
        Impl("floor", "x.copy(): one read, one write", x.copy, lambda y: None),
        Impl("numpy_course", "np.random.rand(*x.shape) < keep_prob; x * D / keep_prob",
             lambda: bl.numpy_course_dropout(x, keep_prob), check),
        Impl("numpy_rng", f"rng.random(dtype={np.dtype(dtype).name}) < keep_prob; x * D / keep_prob",
             lambda: bl.numpy_rng_dropout(x, keep_prob, rng), check),
    ]
    _add_torch(group, torch, lambda t: _torch_dropout_impl(t, x, keep_prob, check))
    return group


def _torch_dropout_impl(torch, x, keep_prob, check):
    t = torch.from_numpy(x)

    def fwd():
        y, mask = bl.torch_dropout(torch, t, keep_prob)
        return y.numpy(), mask.numpy()
    return Impl("torch", "torch.ops.aten.native_dropout (F.dropout's kernel)", fwd, check)


def dropout_backward(shape, dtype, keep_prob, torch):
    x, dy = _normal(shape, dtype, 0), _normal(shape, dtype, 1)
    _, mask = cydrop.dropout(x, keep_prob, seed=cydrop.Generator(3))
    kept = mask.to_bool()
    check = _check_dropout(dy, keep_prob)
    group = Group(f"dropout backward {np.dtype(dtype).name} {_dims(shape)} keep_prob {keep_prob}",
                  work=2 * dy.nbytes, metric="GB/s", elements=dy.size)
    group.impls += [
        Impl("cydrop", "cydrop.dropout_backward(dy, mask)",
             lambda: (cydrop.dropout_backward(dy, mask), kept), check),
        Impl("floor", "dy.copy(): one read, one write", dy.copy, lambda y: None),
        Impl("numpy_course", "dy * D / keep_prob (bool D)",
             lambda: (bl.numpy_dropout_backward(dy, kept, keep_prob), kept), check),
    ]

    def torch_impl(torch):
        g, mask_t = torch.from_numpy(dy), torch.from_numpy(kept)
        return Impl("torch", "torch.ops.aten.native_dropout_backward",
                    lambda: (bl.torch_dropout_backward(torch, g, mask_t, keep_prob).numpy(), kept), check)
    _add_torch(group, torch, torch_impl)
    return group


def dense_layer(batch, n_in, n_out, dtype, keep_prob, torch):
    """relu((x * D / keep_prob) @ W + b), forward and backward (dx, dW, db)."""
    x, g = _normal((batch, n_in), dtype, 0), _normal((batch, n_out), dtype, 1)
    W = _normal((n_in, n_out), dtype, 2) * (2.0 / n_in) ** 0.5  # He; a Python float keeps the dtype
    b = _normal((n_out,), dtype, 3) * 0.1
    gen, rng = cydrop.Generator(4), np.random.default_rng(5)
    check = _check_finite("out", "dx", "dW", "db")

    def cydrop_layer():
        out, cache = cydrop.dense_forward(x, W, b, keep_prob, activation="relu", seed=gen)
        return (out, *cydrop.dense_backward(g, cache))

    group = Group(f"dense layer fwd+bwd {np.dtype(dtype).name} batch {batch}, {n_in}->{n_out}, "
                  f"keep_prob {keep_prob}", work=3 * 2 * batch * n_in * n_out, metric="GFLOP/s")
    group.impls += [
        Impl("cydrop", "cydrop.dense_forward + dense_backward", cydrop_layer, check),
        Impl("floor", "x @ W, x.T @ g, g @ W.T: the three GEMMs (NumPy)", lambda: bl.gemms(x, W, g),
             _check_finite("x @ W", "x.T @ g", "g @ W.T")),
        Impl("numpy_course", "course layer: np.random.rand < keep_prob, x * D / keep_prob, @, ...",
             lambda: bl.numpy_layer(x, W, b, g, keep_prob), check),
        Impl("numpy_rng", f"the same with rng.random(dtype={np.dtype(dtype).name})",
             lambda: bl.numpy_layer(x, W, b, g, keep_prob, rng), check),
    ]

    def torch_impl(torch):
        model, params = bl.torch_layer_model(torch, W, b, keep_prob)
        x_t, g_t = torch.from_numpy(x), torch.from_numpy(g)
        return Impl("torch", "nn.Dropout + nn.Linear + nn.ReLU, torch.autograd.grad",
                    lambda: tuple(t.detach().numpy() for t in bl.torch_layer(torch, model, params, x_t, g_t)),
                    check)
    _add_torch(group, torch, torch_impl)
    return group


def _mlp_data(n):
    """Synthetic 10-class data of MNIST-1D's shape: labels from a random linear teacher."""
    X = _normal((n, MLP_SIZES[0]), np.float32, 7)
    y = (X @ _normal((MLP_SIZES[0], MLP_SIZES[-1]), np.float32, 8)).argmax(axis=1)
    return X, y


def _initial_params():
    net = cydrop.MLP(MLP_SIZES, keep_prob=MLP_KEEP_PROB, seed=0)
    return [p.copy() for W, b in zip(net.weights, net.biases) for p in (W, b)]


def mlp_epoch(torch):
    """One epoch of the demo network; a fresh Adam state per call in every case."""
    X, y = _mlp_data(MLP_SAMPLES)
    params = _initial_params()
    net = cydrop.MLP(MLP_SIZES, keep_prob=MLP_KEEP_PROB, seed=0)
    train = dict(epochs=1, batch_size=MLP_BATCH)

    def check(history):
        assert np.isfinite(history["loss"]).all(), f"history {history}"

    group = Group(f"MLP training epoch {'-'.join(map(str, MLP_SIZES))}, keep_prob {MLP_KEEP_PROB}, "
                  f"Adam, batch {MLP_BATCH}, {MLP_SAMPLES} samples float32", work=MLP_SAMPLES, metric="samples/s")
    group.impls += [
        Impl("cydrop", "cydrop.MLP.fit(epochs=1), default options (no evaluation pass)",
             lambda: net.fit(X, y, learning_rate=MLP_LR, progress=False, **train), check),
        Impl("floor", "the epoch's GEMMs alone (NumPy @): 8 per batch",
             lambda: bl.mlp_epoch_gemms(X, params, MLP_BATCH), _check_finite("output", "dW")),
        Impl("numpy_course", "course network: backprop and Adam by hand in NumPy",
             lambda: bl.numpy_mlp_train(X, y, params, MLP_KEEP_PROB, learning_rate=MLP_LR, **train)[1], check),
    ]

    def torch_impl(torch):
        model = bl.torch_mlp_model(torch, params, MLP_KEEP_PROB)
        x_t, y_t = torch.from_numpy(X), torch.from_numpy(y)
        perm = torch.Generator().manual_seed(11)

        def fit():
            optimizer = bl.torch_mlp_optimizer(torch, model, MLP_LR)
            return bl.torch_mlp_train(torch, model, optimizer, x_t, y_t, perm, **train)[1]
        return Impl("torch", "nn.Sequential(Linear, ReLU, Dropout) + CrossEntropyLoss + optim.Adam", fit, check)
    _add_torch(group, torch, torch_impl)
    return group


def mlp_cost():
    """J with dropout off over the training set: what a stopping rule or track_cost adds per evaluation."""
    X, y = _mlp_data(MLP_SAMPLES)
    net = cydrop.MLP(MLP_SIZES, keep_prob=MLP_KEEP_PROB, seed=0)
    params = _initial_params()

    def check(cost):
        assert np.isfinite(cost) and cost > 0, f"cost {cost}"

    group = Group(f"MLP cost J (dropout off) over {MLP_SAMPLES} samples, {'-'.join(map(str, MLP_SIZES))} float32",
                  work=MLP_SAMPLES, metric="samples/s")
    group.impls += [
        Impl("cydrop", "cydrop.MLP.cost(X, y): one evaluation of fit's stopping rule", lambda: net.cost(X, y), check),
        Impl("floor", "the forward GEMMs on all rows (NumPy @)", lambda: bl.mlp_cost_gemms(X, params),
             _check_finite("output")),
    ]
    return group


def mc_predict(torch):
    """Monte Carlo dropout: MC_SAMPLES passes with dropout on, mean and std of the outputs."""
    X, _ = _mlp_data(MC_ROWS)
    net = cydrop.MLP(MLP_SIZES, keep_prob=MLP_KEEP_PROB, seed=0)
    params = _initial_params()
    group = Group(f"MC-dropout predict_proba, {MC_SAMPLES} passes over {MC_ROWS} rows, demo network",
                  work=MC_SAMPLES * MC_ROWS, metric="samples/s")

    def check(result):
        mean, std = (np.asarray(r) for r in result)
        assert mean.shape == std.shape == (MC_ROWS, MLP_SIZES[-1]), f"shape {mean.shape}"
        np.testing.assert_allclose(mean.sum(axis=1), 1.0, atol=1e-4)
        assert float(std.mean()) > 1e-4, "no spread: dropout was off"

    group.impls += [
        Impl("cydrop", f"net.predict_proba(X, mc_samples={MC_SAMPLES})",
             lambda: net.predict_proba(X, mc_samples=MC_SAMPLES), check),
        Impl("numpy_course", "course forward passes, np.stack, mean, std",
             lambda: bl.numpy_mlp_mc(X, params, MLP_KEEP_PROB, MC_SAMPLES), check),
    ]

    def torch_impl(torch):
        model = bl.torch_mlp_model(torch, params, MLP_KEEP_PROB)
        x_t = torch.from_numpy(X)
        return Impl("torch", "model.train(), passes under no_grad, softmax, torch.std_mean",
                    lambda: tuple(t.numpy() for t in bl.torch_mlp_mc(torch, model, x_t, MC_SAMPLES)), check)
    _add_torch(group, torch, torch_impl)
    return group


# ---------------------------------------------------------------- the torch group
# cydrop.torch's modules against torch.nn in eager PyTorch (needs torch: the
# group is left out without it). "floor" is the same work without dropout
# where there is one (nn.Identity in the epoch, nn.Linear alone).
TORCH_P = 0.2


# The network of the UCI protocol (``cydrop uci``): 8-50-1, dropout 0.05 on the
# hidden layer, squared error, Adam, batch 128, on 5242 rows; MC dropout with
# 10,000 passes over 200 rows.
SMALL_SIZES, SMALL_KEEP_PROB, SMALL_SAMPLES, SMALL_BATCH = [8, 50, 1], [1.0, 0.95], 5242, 128
SMALL_MC_SAMPLES, SMALL_MC_ROWS = 10_000, 200


def _small_problem():
    net = cydrop.MLP(SMALL_SIZES, keep_prob=SMALL_KEEP_PROB, output="linear", seed=0)
    X = _normal((SMALL_SAMPLES, SMALL_SIZES[0]), np.float32, 9)
    Y = (X @ _normal((SMALL_SIZES[0], 1), np.float32, 10)).astype(np.float32)
    params = [p.copy() for W, b in zip(net.weights, net.biases) for p in (W, b)]
    return net, X, Y, params


def small_net_epoch(torch):
    """One epoch of the small network without a cost pass: its cost per step."""
    net, X, Y, params = _small_problem()
    steps = -(-SMALL_SAMPLES // SMALL_BATCH)

    def check(history):
        assert np.isfinite(history["loss"]).all() and history["loss"][0] < 100, f"history {history}"

    group = Group(f"small-network training epoch {'-'.join(map(str, SMALL_SIZES))}, keep_prob {SMALL_KEEP_PROB}, "
                  f"Adam, batch {SMALL_BATCH}, {SMALL_SAMPLES} samples float32 ({steps} steps)",
                  work=SMALL_SAMPLES, metric="samples/s")
    group.impls.append(Impl("cydrop", "cydrop.MLP.fit(epochs=1): one compiled call per epoch",
                            lambda: net.fit(X, Y, epochs=1, batch_size=SMALL_BATCH, learning_rate=MLP_LR,
                                            progress=False), check))

    def torch_impl(torch):
        model = bl.torch_mlp_model(torch, params, SMALL_KEEP_PROB)
        optimizer = bl.torch_mlp_optimizer(torch, model, MLP_LR)
        x_t, y_t = torch.from_numpy(X), torch.from_numpy(Y)
        order_t = torch.from_numpy(np.random.default_rng(0).permutation(SMALL_SAMPLES))
        return Impl("torch", "nn.Sequential + MSELoss + optim.Adam, one epoch",
                    lambda: {"loss": [bl.torch_regression_epoch(torch, model, optimizer, x_t, y_t, order_t,
                                                                SMALL_BATCH)]}, check)
    _add_torch(group, torch, torch_impl)
    return group


def small_net_mc(torch):
    """MC dropout of the small network: SMALL_MC_SAMPLES passes over SMALL_MC_ROWS rows."""
    net, X, _, params = _small_problem()
    X = np.ascontiguousarray(X[:SMALL_MC_ROWS])

    def check(result):
        mean, std = (np.asarray(r) for r in result)
        assert mean.shape == std.shape == (SMALL_MC_ROWS, 1), f"shape {mean.shape}"
        assert np.isfinite(mean).all() and float(std.mean()) > 1e-4, "no spread: dropout was off"

    group = Group(f"MC dropout, {SMALL_MC_SAMPLES} passes over {SMALL_MC_ROWS} rows, "
                  f"{'-'.join(map(str, SMALL_SIZES))} keep_prob {SMALL_KEEP_PROB}",
                  work=SMALL_MC_SAMPLES * SMALL_MC_ROWS, metric="samples/s")
    group.impls.append(Impl("cydrop", f"net.predict_proba(X, mc_samples={SMALL_MC_SAMPLES}): one compiled call",
                            lambda: net.predict_proba(X, mc_samples=SMALL_MC_SAMPLES), check))

    def torch_impl(torch):
        model = bl.torch_mlp_model(torch, params, SMALL_KEEP_PROB)
        x_t = torch.from_numpy(X)
        return Impl("torch", "model.train(), the rows repeated 500x per batch under no_grad",
                    lambda: bl.torch_mc_large_batch(torch, model, x_t, SMALL_MC_SAMPLES, 500), check)
    _add_torch(group, torch, torch_impl)
    return group


def _check_torch_dropout(torch, x, p, n=8192):
    def check(result):
        y = result[0] if isinstance(result, tuple) else result
        xs, ys = x.detach().reshape(-1)[:n], y.detach().reshape(-1)[:n]
        kept = ys != 0
        torch.testing.assert_close(ys, torch.where(kept, xs / (1 - p), 0.0), rtol=1e-5, atol=0)
        assert abs(kept.float().mean().item() - (1 - p)) < 0.06, "kept fraction"
    return check


def torch_dropout(torch, shape, backward):
    """cydrop.torch.Dropout against nn.Dropout, p = 0.2, float32, module call included."""
    import cydrop.torch as ct

    gen = torch.Generator().manual_seed(_SEED)
    x = torch.randn(shape, generator=gen)
    g = torch.randn(shape, generator=gen)
    if backward:
        x.requires_grad_()
    check = _check_torch_dropout(torch, x, TORCH_P)
    name = "fwd+bwd" if backward else "forward"
    group = Group(f"torch Dropout {name} float32 {_dims(shape)} p {TORCH_P}",
                  work=(4 if backward else 2) * x.numel() * 4, metric="GB/s", elements=x.numel(),
                  in_torch=True)
    for impl, module, label in (("cydrop", ct.Dropout(TORCH_P), "cydrop.torch.Dropout"),
                                ("torch", torch.nn.Dropout(TORCH_P), "torch.nn.Dropout")):
        fn = (lambda m=module: bl.torch_fwd_bwd(m, x, g)) if backward else (lambda m=module: m(x))
        group.impls.append(Impl(impl, label + (" forward + backward(g)" if backward else ""), fn, check))
    if backward:
        def check_floor(result):
            assert torch.equal(result[1], g), "the trivial Function's gradient is not g"
        trivial = bl.torch_trivial_function(torch)
        group.impls.append(Impl("floor", "a trivial torch.autograd.Function (empty_like forward, "
                                "identity backward): autograd's per-call cost",
                                lambda: bl.torch_fwd_bwd(trivial, x, g), check_floor))
    return group


def _torch_demo(torch):
    X, y = _mlp_data(MLP_SAMPLES)
    return torch.from_numpy(X), torch.from_numpy(y), _initial_params()


def torch_epoch(torch, cydrop_kind):
    """One demo-network epoch in torch: cydrop's dropout (``cydrop_kind``:
    "replace" or "linear") against nn.Dropout; nn.Identity as the floor (the
    limit of any dropout), torch's C++ op ``x * 2.0`` (``op_floor``: one
    pass each way with autograd in C++, the least any dropout module costs)
    and a copying autograd Function (``copy_floor``: the least any eager
    module built on a Python autograd Function costs)."""
    x_t, y_t, params = _torch_demo(torch)

    def check(history):
        assert np.isfinite(history["loss"]).all(), f"history {history}"

    group = Group(f"torch epoch {'-'.join(map(str, MLP_SIZES))} p 0.5 hidden, Adam, batch {MLP_BATCH}, "
                  f"{MLP_SAMPLES} samples: {bl.TORCH_DEMO_KINDS[cydrop_kind]}", work=MLP_SAMPLES, metric="samples/s",
                  in_torch=True)
    for impl, kind in (("cydrop", cydrop_kind), ("floor", "identity"), ("op_floor", "scale"), ("copy_floor", "copy"),
                       ("torch", "nn")):
        torch.manual_seed(0)
        model = bl.torch_demo_model(torch, params, MLP_KEEP_PROB, kind)
        perm = torch.Generator().manual_seed(11)
        epochs = []

        def fit(model=model, perm=perm, epochs=epochs):
            optimizer = bl.torch_mlp_optimizer(torch, model, MLP_LR)
            epochs.append(1)
            return bl.torch_mlp_train(torch, model, optimizer, x_t, y_t, perm, epochs=1,
                                      batch_size=MLP_BATCH)[1]

        def note(model=model, epochs=epochs):
            # every call of fit trained the same model one more epoch (warm-up and checks included)
            with torch.no_grad():
                acc = (model.eval()(x_t).argmax(dim=1) == y_t).float().mean().item()
            return f"training accuracy {acc:.3f} after {len(epochs)} epochs"
        group.impls.append(Impl(impl, bl.TORCH_DEMO_KINDS[kind], fit, check, note))
    return group


def torch_mc(torch):
    """MC dropout, MC_SAMPLES passes over MC_ROWS rows under mc_dropout and no_grad."""
    import cydrop.torch as ct

    x_t, _, params = _torch_demo(torch)
    rows = x_t[:MC_ROWS]
    group = Group(f"torch MC dropout, {MC_SAMPLES} passes over {MC_ROWS} rows, demo network",
                  work=MC_SAMPLES * MC_ROWS, metric="samples/s", in_torch=True)

    def check(result):
        std, mean = result
        assert mean.shape == (MC_ROWS, MLP_SIZES[-1]) and float(std.mean()) > 1e-4

    for impl, kind in (("cydrop", "replace"), ("torch", "nn")):
        model = bl.torch_demo_model(torch, params, MLP_KEEP_PROB, kind).eval()

        def mc(model=model):
            with ct.mc_dropout(model), torch.no_grad():
                samples = torch.stack([torch.softmax(model(rows), dim=1) for _ in range(MC_SAMPLES)])
            return torch.std_mean(samples, dim=0, correction=0)
        group.impls.append(Impl(impl, f"mc_dropout(model), {bl.TORCH_DEMO_KINDS[kind]}", mc, check))
    return group


def torch_linear(torch, batch=256, n=1024):
    """DropoutLinear forward + backward against nn.Linear alone (the floor) and nn.Dropout + nn.Linear."""
    import cydrop.torch as ct

    gen = torch.Generator().manual_seed(_SEED)
    x = torch.randn(batch, n, generator=gen).requires_grad_()
    g = torch.randn(batch, n, generator=gen)
    group = Group(f"torch DropoutLinear fwd+bwd batch {batch}, {n}->{n}, p {TORCH_P}",
                  work=3 * 2 * batch * n * n, metric="GFLOP/s", in_torch=True)

    def check(result):
        out, dx = result
        assert out.shape == (batch, n) and torch.isfinite(dx).all()

    torch.manual_seed(0)
    for impl, model, label in (
            ("cydrop", ct.DropoutLinear(n, n, p=TORCH_P), "cydrop.torch.DropoutLinear"),
            ("floor", torch.nn.Linear(n, n), "nn.Linear alone (no dropout)"),
            ("torch", torch.nn.Sequential(torch.nn.Dropout(TORCH_P), torch.nn.Linear(n, n)),
             "nn.Dropout + nn.Linear")):
        group.impls.append(Impl(impl, label, lambda m=model: bl.torch_fwd_bwd(m, x, g), check))
    return group


def torch_builders(full, torch):
    """The torch group's ``(tag, build)`` pairs; none without torch."""
    if isinstance(torch, str):
        return []
    shapes = [(64, 784), (1024, 4096)] if full else [(1024, 4096)]
    builders = []
    for shape in shapes:
        for backward in (False, True):
            builders.append((f"torch-dropout-{'fwdbwd' if backward else 'forward'}-{_dims(shape)}",
                             lambda s=shape, b=backward: torch_dropout(torch, s, b)))
    builders += [("torch-epoch-replace", lambda: torch_epoch(torch, "replace")),
                 ("torch-epoch-linear", lambda: torch_epoch(torch, "linear")),
                 ("torch-mc", lambda: torch_mc(torch)),
                 ("torch-linear", lambda: torch_linear(torch))]
    return builders


def load_builders(torch):
    """The load groups (``cydrop bench --load``, cydrop.apps.bench.load): the
    calls issue 29 sets floors for, each beside PyTorch's and the floor."""
    f32 = np.float32
    builders = [
        ("load-dropout-forward-1024x4096", lambda: dropout_forward((1024, 4096), f32, 0.8, torch)),
        ("load-dropout-forward-100x512", lambda: dropout_forward((100, 512), f32, 0.8, torch)),
        ("load-dropout-backward-1024x4096", lambda: dropout_backward((1024, 4096), f32, 0.8, torch)),
        ("load-dense-256x1024x1024", lambda: dense_layer(256, 1024, 1024, f32, 0.8, torch)),
        ("load-mlp-epoch", lambda: mlp_epoch(torch)),
    ]
    if not isinstance(torch, str):
        builders.append(("load-torch-dropout-fwdbwd-1024x4096", lambda: torch_dropout(torch, (1024, 4096), True)))
    return builders


# ---------------------------------------------------------------- concrete dropout
# The concrete pass (cydrop.concrete_dropout, concrete_dropout_backward)
# beside x.copy(), the floor of an element-wise pass (one read, one write),
# and the formula in NumPy; cydrop.torch.ConcreteDropout forward + backward
# beside the reference PyTorch module under autograd. p = 0.1, temperature
# 0.1: the reference's start.
CONCRETE_P_LOGIT, CONCRETE_T = math.log(0.1 / 0.9), 0.1


def _check_concrete(x, n=8192):
    """A check that y = x * f with 0 <= f <= 1 / (1 - p) on the first n elements."""
    bound = 1 + math.exp(CONCRETE_P_LOGIT) + 1e-5

    def check(result):
        y = np.asarray(result[0] if isinstance(result, tuple) else result).reshape(-1)[:n].astype(np.float64)
        xs = x.reshape(-1)[:n].astype(np.float64)
        assert np.isfinite(y).all(), "non-finite output"
        assert (np.abs(y) <= np.abs(xs) * bound).all() and (y * xs >= 0).all(), \
            "y is not x times a factor in [0, 1 / (1 - p)]"
    return check


def concrete_forward(shape, dtype):
    x = _normal(shape, dtype, 0)
    gen, rng = cydrop.Generator(5), np.random.default_rng(6)
    group = Group(f"concrete dropout forward {np.dtype(dtype).name} {_dims(shape)} p 0.1 t 0.1",
                  work=2 * x.nbytes, metric="GB/s", elements=x.size)
    check = _check_concrete(x)
    group.impls += [
        Impl("cydrop", "cydrop.concrete_dropout(x, p_logit, seed=Generator)",
             lambda: cydrop.concrete_dropout(x, CONCRETE_P_LOGIT, temperature=CONCRETE_T, seed=gen), check),
        Impl("floor", "x.copy(): one read, one write", x.copy, lambda y: None),
        Impl("numpy", f"rng.random(dtype={np.dtype(dtype).name}), log, exp: the formula in NumPy",
             lambda: bl.numpy_concrete(x, CONCRETE_P_LOGIT, CONCRETE_T, rng), check),
    ]
    return group


def concrete_backward(shape, dtype):
    x, dy = _normal(shape, dtype, 0), _normal(shape, dtype, 1)
    _, state = cydrop.concrete_dropout(x, CONCRETE_P_LOGIT, temperature=CONCRETE_T, seed=cydrop.Generator(7))
    _, z = bl.numpy_concrete(x, CONCRETE_P_LOGIT, CONCRETE_T, np.random.default_rng(8))
    group = Group(f"concrete dropout backward {np.dtype(dtype).name} {_dims(shape)} p 0.1 t 0.1 (dx and dp_logit)",
                  work=3 * x.nbytes, metric="GB/s", elements=x.size)
    check = _check_concrete(dy)
    group.impls += [
        Impl("cydrop", "cydrop.concrete_dropout_backward(dy, x, state): the noise drawn again",
             lambda: cydrop.concrete_dropout_backward(dy, x, state), check),
        Impl("floor", "dy.copy(): one read, one write", dy.copy, lambda y: None),
        Impl("numpy", "the formula in NumPy from the kept z (4 bytes an element kept)",
             lambda: bl.numpy_concrete_backward(dy, x, z, CONCRETE_P_LOGIT, CONCRETE_T), check),
    ]
    return group


def concrete_torch(torch, shape):
    """cydrop.torch.ConcreteDropout against the reference module, forward and backward under autograd."""
    import cydrop.torch as ct

    gen = torch.Generator().manual_seed(_SEED)
    x = torch.randn(shape, generator=gen).requires_grad_()
    g = torch.randn(shape, generator=gen)
    xn = x.detach().numpy()
    group = Group(f"torch concrete dropout fwd+bwd float32 {_dims(shape)} p 0.1 t 0.1",
                  work=5 * x.numel() * 4, metric="GB/s", elements=x.numel(), in_torch=True)
    torch.manual_seed(0)
    module = ct.ConcreteDropout(p=0.1, temperature=CONCRETE_T)
    p_logit = torch.nn.Parameter(torch.tensor([CONCRETE_P_LOGIT]))   # the notebook's shape (1,)

    def fwd_bwd(forward, param):
        def run():
            x.grad = param.grad = None
            out = forward(x)
            out.backward(g)
            return out.detach().numpy(), x.grad, param.grad
        return run

    check = _check_concrete(xn)
    group.impls += [
        Impl("cydrop", "cydrop.torch.ConcreteDropout forward + backward(g)", fwd_bwd(module, module.p_logit), check),
        Impl("torch", "the reference module (rand_like, 4 logs, sigmoid, mul, div) forward + backward(g)",
             fwd_bwd(lambda t: bl.torch_reference_concrete(torch, t, p_logit, CONCRETE_T), p_logit), check),
    ]
    return group


def concrete_builders(full, torch):
    """The concrete group's ``(tag, build)`` pairs (the torch case only with torch)."""
    shapes = [(256, 1024), (1024, 4096)] if full else [(1024, 4096)]
    dtypes = [np.float32, np.float64] if full else [np.float32]
    builders = []
    for dtype in dtypes:
        for shape in shapes:
            name = f"{np.dtype(dtype).name}-{_dims(shape)}"
            builders.append((f"concrete-forward-{name}", lambda s=shape, d=dtype: concrete_forward(s, d)))
            builders.append((f"concrete-backward-{name}", lambda s=shape, d=dtype: concrete_backward(s, d)))
    if not isinstance(torch, str):
        builders += [(f"concrete-torch-fwdbwd-{_dims(shape)}", lambda s=shape: concrete_torch(torch, s))
                     for shape in shapes]
    return builders


def _add_torch(group, torch, make_impl):
    """Add the PyTorch case, or record why it is skipped (``torch`` is the module or a reason)."""
    if isinstance(torch, str):
        group.skipped["torch"] = torch
    else:
        group.impls.append(make_impl(torch))


def _dims(shape):
    return "x".join(map(str, shape))


def build_groups(full, torch):
    """The quick subset (under a minute) or the full grid: a list of ``(tag, build)``.

    ``tag`` names the group briefly (what ``--only`` matches); ``build()``
    makes the :class:`Group`, so that each group's arrays exist only while it
    runs. ``torch`` is the torch module, or the reason it is unavailable.
    """
    f32, f64 = np.float32, np.float64
    if full:
        shapes, dtypes = [(64, 784), (256, 1024), (1024, 4096)], [f32, f64]
        layers = [(64, 784, 512), (256, 1024, 1024), (1024, 4096, 4096)]
    else:
        shapes, dtypes = [(1024, 4096)], [f32]
        layers = [(256, 1024, 1024)]
    builders = []
    for dtype in dtypes:
        name = np.dtype(dtype).name
        for shape in shapes:
            builders.append((f"dropout-forward-{name}-{_dims(shape)}",
                             lambda s=shape, d=dtype: dropout_forward(s, d, 0.8, torch)))
            builders.append((f"dropout-backward-{name}-{_dims(shape)}",
                             lambda s=shape, d=dtype: dropout_backward(s, d, 0.8, torch)))
        for layer in layers:
            builders.append((f"dense-{name}-{_dims(layer)}",
                             lambda l=layer, d=dtype: dense_layer(*l, d, 0.8, torch)))
    builders += [("mlp-epoch", lambda: mlp_epoch(torch)), ("mlp-cost", mlp_cost),
                 ("mc-predict", lambda: mc_predict(torch)), ("small-net-epoch", lambda: small_net_epoch(torch)),
                 ("small-net-mc", lambda: small_net_mc(torch))]
    return builders + torch_builders(full, torch) + concrete_builders(full, torch)
