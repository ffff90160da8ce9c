"""The baselines cydrop is measured against, one body each.

Used by ``cydrop bench`` and by the pytest-benchmark suite in ``benchmarks/``,
so both time exactly the same code. Three families:

NumPy, the course way
    The deeplearning.ai course's dropout: ``D = np.random.rand(*A.shape) <
    keep_prob; A = A * D / keep_prob`` (global RNG, float64 uniforms, a bool
    mask), backprop and Adam written by hand with NumPy operations.
NumPy, a modern Generator
    The same with ``rng.random(shape, dtype=x.dtype) < keep_prob``: uniforms
    drawn directly in the array's dtype (float32 halves the random bytes).
PyTorch CPU
    ``torch.ops.aten.native_dropout`` (what ``F.dropout`` calls),
    ``nn.Dropout`` + ``nn.Linear`` under autograd, and the same MLP with
    ``torch.optim.Adam``. Callers pass the ``torch`` module in, so importing
    this file never imports PyTorch.

Arrays are ``(batch, features)`` as in cydrop (the course's column layout
transposed: ``Z = A @ W + b`` for ``Z = np.dot(W, A) + b``). Weights are
``W (n_in, n_out)``, ``b (n_out,)``, as ``cydrop.MLP`` stores them.
"""
import numpy as np

from ... import optim

# the defaults of cydrop and torch alike
ADAM = dict(beta1=optim.ADAM_BETA1, beta2=optim.ADAM_BETA2, eps=optim.ADAM_EPS)


def import_torch():
    """``(torch, None)``, or ``(None, reason)`` when PyTorch cannot be imported."""
    try:
        import torch
    except ImportError as exc:
        return None, f"PyTorch baseline skipped: torch is not importable ({exc}); pip install torch"
    return torch, None


# ---------------------------------------------------------------- dropout


def numpy_course_dropout(x, keep_prob):
    """``(A, D)``: the course's forward dropout with NumPy's global RNG."""
    D = np.random.rand(*x.shape) < keep_prob
    A = x * D / keep_prob
    return A, D


def numpy_rng_dropout(x, keep_prob, rng):
    """``(A, D)``: uniforms in x's dtype from a ``np.random.Generator``."""
    D = rng.random(x.shape, dtype=x.dtype) < keep_prob
    A = x * D / keep_prob
    return A, D


def numpy_dropout_backward(dy, D, keep_prob):
    """The course's backward dropout: ``dy * D / keep_prob`` with a bool ``D``."""
    return dy * D / keep_prob


def torch_dropout(torch, t, keep_prob):
    """``(y, mask)`` from ``native_dropout``: F.dropout's kernel, mask kept for backward."""
    return torch.ops.aten.native_dropout(t, 1.0 - keep_prob, True)


def torch_dropout_backward(torch, g, mask, keep_prob):
    return torch.ops.aten.native_dropout_backward(g, mask, 1.0 / keep_prob)


# ---------------------------------------------------------------- one dense layer


def gemms(x, W, g):
    """The three GEMMs of a dense layer's forward and backward: the floor of every layer case."""
    return x @ W, x.T @ g, g @ W.T


def numpy_layer(x, W, b, g, keep_prob, rng=None):
    """``relu((x * D / keep_prob) @ W + b)`` forward and backward: ``(a, dx, dW, db, D)``.

    ``rng=None`` draws D the course's way (``np.random.rand``); a
    ``np.random.Generator`` draws uniforms in x's dtype.
    """
    D = np.random.rand(*x.shape) < keep_prob if rng is None else rng.random(x.shape, dtype=x.dtype) < keep_prob
    xt = x * D / keep_prob
    z = xt @ W + b
    a = np.maximum(z, 0)
    dz = g * (z > 0)
    dW = xt.T @ dz
    db = dz.sum(0)
    dx = (dz @ W.T) * D / keep_prob
    return a, dx, dW, db, D


def torch_layer_model(torch, W, b, keep_prob):
    """``(model, (weight, bias))``: Dropout -> Linear -> ReLU in train mode, set to W and b."""
    tdtype = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}[W.dtype]
    linear = torch.nn.Linear(*W.shape, dtype=tdtype)
    with torch.no_grad():  # Linear stores W as (n_out, n_in)
        linear.weight.copy_(torch.from_numpy(np.ascontiguousarray(W.T)))
        linear.bias.copy_(torch.from_numpy(b.copy()))
    model = torch.nn.Sequential(torch.nn.Dropout(p=1 - keep_prob), linear, torch.nn.ReLU()).train()
    return model, (linear.weight, linear.bias)


def torch_layer(torch, model, params, x_t, g_t):
    """Forward and backward of ``model``: ``(out, dx, dW.T, db)``.

    ``torch.autograd.grad(out, ..., grad_outputs=g)`` is the gradient of
    ``(out * g).sum()`` without timing an extra multiply and reduction that
    no other case does.
    """
    x_t = x_t.detach().requires_grad_()  # a fresh leaf each call: no grads accumulate
    out = model(x_t)
    dx, dW_t, db = torch.autograd.grad(out, (x_t, *params), grad_outputs=g_t)
    return out, dx, dW_t, db


# ---------------------------------------------------------------- an MLP, the course way


def _softmax(Z):
    e = np.exp(Z - Z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def numpy_mlp_forward(X, params, keep_prob, train):
    """The course's forward_propagation_with_dropout for any depth.

    ``params`` is ``[W0, b0, W1, b1, ...]``; ``keep_prob[i]`` applies to the
    output of hidden layer i (entry 0, the input features, is not used: the
    course keeps every input). ReLU hidden layers, softmax output. Returns
    ``(P, cache)`` with ``cache = [(A, D), ...]`` per hidden layer.
    """
    A, cache = X, []
    n_layers = len(params) // 2
    for i in range(n_layers - 1):
        A = np.maximum(A @ params[2 * i] + params[2 * i + 1], 0)
        D = None
        if train and keep_prob[i + 1] < 1:
            D = np.random.rand(*A.shape) < keep_prob[i + 1]
            A = A * D / keep_prob[i + 1]
        cache.append((A, D))
    return _softmax(A @ params[-2] + params[-1]), cache


def numpy_mlp_cost(P, Y):
    """Mean softmax cross-entropy of probabilities P against one-hot Y."""
    return -float(np.sum(Y * np.log(np.maximum(P, np.finfo(P.dtype).tiny)), dtype=np.float64)) / P.shape[0]


def numpy_mlp_backward(X, Y, P, params, cache, keep_prob):
    """The course's backward_propagation_with_dropout: grads in params' order."""
    grads = [None] * len(params)
    dZ = (P - Y) / X.shape[0]
    for i in range(len(params) // 2 - 1, -1, -1):
        A_in = cache[i - 1][0] if i > 0 else X
        grads[2 * i], grads[2 * i + 1] = A_in.T @ dZ, dZ.sum(axis=0)
        if i == 0:
            break
        dA = dZ @ params[2 * i].T
        A, D = cache[i - 1]
        if D is not None:
            dA = dA * D / keep_prob[i]
        dZ = dA * (A > 0)
    return grads


def numpy_adam(params, grads, v, s, t, learning_rate):
    """The course's update_parameters_with_adam; returns the new parameters."""
    beta1, beta2, eps = ADAM["beta1"], ADAM["beta2"], ADAM["eps"]
    new = []
    for k, (p, g) in enumerate(zip(params, grads)):
        v[k] = beta1 * v[k] + (1 - beta1) * g
        v_corrected = v[k] / (1 - beta1 ** t)
        s[k] = beta2 * s[k] + (1 - beta2) * np.power(g, 2)
        s_corrected = s[k] / (1 - beta2 ** t)
        new.append(p - learning_rate * v_corrected / (np.sqrt(s_corrected) + eps))
    return new


def numpy_mlp_train(X, y, params, keep_prob, *, epochs, batch_size, learning_rate):
    """Mini-batch Adam for ``epochs``; returns ``(params, history)`` like ``MLP.fit``.

    The history has, per epoch, the mean training loss over the batches
    (dropout on): the same work ``cydrop.MLP.fit`` does by default, with no
    evaluation pass over the training set.
    """
    m, n_classes = X.shape[0], params[-1].shape[0]
    Y = np.zeros((m, n_classes), dtype=X.dtype)
    Y[np.arange(m), y] = 1
    v = [np.zeros_like(p) for p in params]
    s = [np.zeros_like(p) for p in params]
    t = 0
    history = {"loss": []}
    for _ in range(epochs):
        permutation = np.random.permutation(m)  # the course's random_mini_batches
        shuffled_X, shuffled_Y = X[permutation], Y[permutation]
        total = 0.0
        for start in range(0, m, batch_size):
            Xb, Yb = shuffled_X[start:start + batch_size], shuffled_Y[start:start + batch_size]
            P, cache = numpy_mlp_forward(Xb, params, keep_prob, train=True)
            total += numpy_mlp_cost(P, Yb) * Xb.shape[0]
            grads = numpy_mlp_backward(Xb, Yb, P, params, cache, keep_prob)
            t += 1
            params = numpy_adam(params, grads, v, s, t, learning_rate)
        history["loss"].append(total / m)
    return params, history


def mlp_epoch_gemms(X, params, batch_size):
    """The GEMMs of one training epoch of an MLP, and nothing else: its floor.

    Per batch: the forward GEMM of every layer, the dW GEMM of every layer
    and the dx GEMM of every layer but the first (no evaluation pass: see
    :func:`mlp_cost_gemms`). Random stand-ins replace the gradients: GEMM
    time does not depend on the values.
    """
    Ws = params[0::2]
    for start in range(0, X.shape[0], batch_size):
        A = [X[start:start + batch_size]]
        for W in Ws:
            A.append(A[-1] @ W)
        dZ = A[-1]
        for i in range(len(Ws) - 1, -1, -1):
            dW = A[i].T @ dZ
            if i > 0:
                dZ = dZ @ Ws[i].T
    return A[-1], dW


def mlp_cost_gemms(X, params):
    """The forward GEMMs on all rows: the floor of one evaluation of J with dropout off."""
    A = X
    for W in params[0::2]:
        A = A @ W
    return A


def numpy_mlp_mc(X, params, keep_prob, mc_samples):
    """``mc_samples`` course forward passes with dropout on: (mean, std) of the outputs."""
    samples = np.stack([numpy_mlp_forward(X, params, keep_prob, train=True)[0] for _ in range(mc_samples)])
    return samples.mean(axis=0), samples.std(axis=0)


# ---------------------------------------------------------------- the same MLP in PyTorch


def torch_mlp_model(torch, params, keep_prob):
    """``nn.Sequential(Linear, ReLU, Dropout, ..., Linear)`` in train mode, set to ``params``."""
    nn = torch.nn
    n_layers = len(params) // 2
    layers = []
    for i in range(n_layers):
        W, b = params[2 * i], params[2 * i + 1]
        linear = nn.Linear(*W.shape)
        with torch.no_grad():  # Linear stores W as (n_out, n_in)
            linear.weight.copy_(torch.from_numpy(np.ascontiguousarray(W.T)))
            linear.bias.copy_(torch.from_numpy(b.copy()))
        layers.append(linear)
        if i < n_layers - 1:
            layers.append(nn.ReLU())
            if keep_prob[i + 1] < 1:
                layers.append(nn.Dropout(p=1 - keep_prob[i + 1]))
    return nn.Sequential(*layers).train()


def torch_mlp_params(model):
    """The model's parameters as ``[W0, b0, ...]`` NumPy arrays in cydrop's layout."""
    out = []
    for layer in model:
        if hasattr(layer, "weight"):
            out += [layer.weight.detach().numpy().T, layer.bias.detach().numpy()]
    return out


def torch_mlp_optimizer(torch, model, learning_rate):
    return torch.optim.Adam(model.parameters(), lr=learning_rate, betas=(ADAM["beta1"], ADAM["beta2"]),
                            eps=ADAM["eps"])


def torch_mlp_train(torch, model, optimizer, x_t, y_t, perm_gen, *, epochs, batch_size):
    """Mini-batch training, no evaluation pass; returns ``(model, history)`` like ``MLP.fit``."""
    loss_fn = torch.nn.CrossEntropyLoss()
    n = x_t.shape[0]
    history = {"loss": []}
    model.train()
    for _ in range(epochs):
        model.train()
        order = torch.randperm(n, generator=perm_gen)
        total = 0.0
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            xb, yb = x_t[idx], y_t[idx]
            optimizer.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
        history["loss"].append(total / n)
    return model, history


def torch_mlp_mc(torch, model, x_t, mc_samples):
    """``model.train()`` and ``mc_samples`` passes under no_grad: (mean, std) of the softmax."""
    model.train()
    with torch.no_grad():
        samples = torch.stack([torch.softmax(model(x_t), dim=1) for _ in range(mc_samples)])
        std, mean = torch.std_mean(samples, dim=0, correction=0)
    return mean, std


# ---------------------------------------------------------------- cydrop.torch beside torch.nn

# The ways the demo network's dropout is done in torch (torch_demo_model's ``kind``):
TORCH_DEMO_KINDS = {
    "nn": "nn.Dropout",
    "replace": "replace_dropout(model): cydrop.torch.Dropout",
    "linear": "cydrop.torch.DropoutLinear for the Linear after each dropout",
    "identity": "nn.Identity in nn.Dropout's place (no dropout: the limit)",
    "copy": "a copying autograd Function in nn.Dropout's place (x.clone() forward, grad.clone() backward): "
            "the least an eager module with a Python autograd Function costs",
    "scale": "x * 2.0 in nn.Dropout's place: a C++ autograd op with the copying Function's traffic",
}


def torch_copy_module(torch):
    """A new nn.Module whose forward goes through a torch.autograd.Function
    that copies its input (forward) and its gradient (backward) with torch's
    own clone: one pass each way plus autograd's per-call work, what any
    eager dropout module written as a Python autograd Function pays at
    least, whatever its kernels."""
    if "copy" not in _TRIVIAL:
        class Copy(torch.autograd.Function):
            @staticmethod
            def forward(ctx, x):
                return x.clone()

            @staticmethod
            def backward(ctx, grad):
                return grad.clone()

        class CopyModule(torch.nn.Module):
            def forward(self, x):
                return Copy.apply(x)

        _TRIVIAL["copy"] = CopyModule
    return _TRIVIAL["copy"]()


def torch_scale_module(torch):
    """A new nn.Module computing x * 2.0: torch's own C++ mul, forward and backward."""
    if "scale" not in _TRIVIAL:
        class Scale(torch.nn.Module):
            def forward(self, x):
                return x * 2.0

        _TRIVIAL["scale"] = Scale
    return _TRIVIAL["scale"]()


def torch_demo_model(torch, params, keep_prob, kind):
    """The demo network in torch, set to ``params``, its dropout done the ``kind`` way."""
    import cydrop.torch as ct

    model = torch_mlp_model(torch, params, keep_prob)
    if kind == "replace":
        return ct.replace_dropout(model)
    if kind in ("identity", "copy", "scale"):
        stand_in = {"identity": torch.nn.Identity, "copy": lambda: torch_copy_module(torch),
                    "scale": lambda: torch_scale_module(torch)}[kind]
        return torch.nn.Sequential(*[stand_in() if isinstance(m, torch.nn.Dropout) else m
                                     for m in model]).train()
    if kind == "linear":
        layers, pending_p = [], None
        for m in model:
            if isinstance(m, torch.nn.Dropout):
                pending_p = m.p
                continue
            if isinstance(m, torch.nn.Linear) and pending_p is not None:
                fused = ct.DropoutLinear(m.in_features, m.out_features, p=pending_p)
                fused.load_state_dict(m.state_dict())
                m, pending_p = fused, None
            layers.append(m)
        return torch.nn.Sequential(*layers).train()
    return model


def torch_fwd_bwd(module, x_t, g_t):
    """``module(x)`` and its backward with ``g``: (output, x.grad)."""
    x_t.grad = None
    out = module(x_t)
    out.backward(g_t)
    return out, x_t.grad


def torch_regression_epoch(torch, model, optimizer, x_t, y_t, order, batch_size):
    """One epoch of squared-error training in the given row order; returns the
    mean loss on cydrop's scale (half the mean square)."""
    loss_fn = torch.nn.MSELoss()
    model.train()
    total = 0.0
    for start in range(0, x_t.shape[0], batch_size):
        idx = order[start:start + batch_size]
        optimizer.zero_grad()
        loss = loss_fn(model(x_t[idx]), y_t[idx])
        loss.backward()
        optimizer.step()
        total += 0.5 * loss.item() * len(idx)
    return total / x_t.shape[0]


def torch_mc_large_batch(torch, model, x_t, mc_samples, repeat):
    """MC dropout as large batches: the rows repeated ``repeat`` times per
    forward pass under no_grad; (mean, std) of the outputs as NumPy arrays."""
    model.train()
    n = x_t.shape[0]
    x_big = x_t.repeat(repeat, 1)
    total = torch.zeros(n, model[-1].out_features, dtype=torch.float64)
    total_sq = torch.zeros_like(total)
    done = 0
    with torch.no_grad():
        while done < mc_samples:
            k = min(repeat, mc_samples - done)
            out = model(x_big[:k * n]).double().reshape(k, n, -1)
            total += out.sum(dim=0)
            total_sq += (out * out).sum(dim=0)
            done += k
    mean = total / mc_samples
    return mean.numpy(), (total_sq / mc_samples - mean * mean).clamp(min=0).sqrt().numpy()


_TRIVIAL = {}


def torch_trivial_function(torch):
    """The floor of an eager autograd Function: ``f(x)`` through a
    ``torch.autograd.Function`` whose forward returns ``torch.empty_like(x)``
    and whose backward returns the gradient unchanged, so that a forward and
    backward round trip through it costs autograd's per-call work alone."""
    if "fn" not in _TRIVIAL:
        class Trivial(torch.autograd.Function):
            @staticmethod
            def forward(ctx, x):
                return torch.empty_like(x)

            @staticmethod
            def backward(ctx, grad):
                return grad

        _TRIVIAL["fn"] = Trivial.apply
    return _TRIVIAL["fn"]


# ---------------------------------------------------------------- concrete dropout


def numpy_concrete(x, p_logit, temperature, rng):
    """``(y, z)``: concrete dropout by its formula in NumPy, u from ``rng.random``
    in x's dtype: ``z = sigmoid((p_logit + log u - log(1 - u)) / t)``,
    ``y = x (1 - z) / (1 - p)``; z is what a backward pass needs kept."""
    u = rng.random(x.shape, dtype=x.dtype)
    with np.errstate(divide="ignore", over="ignore"):   # u = 0: log u = -inf; exp overflows: z = 0
        logistic = np.log(u) - np.log1p(-u)
        z = 1 / (1 + np.exp(-(p_logit + logistic) / temperature))
    keep = 1 / (1 + np.exp(p_logit))
    return x * ((1 - z) / x.dtype.type(keep)), z


def numpy_concrete_backward(dy, x, z, p_logit, temperature):
    """``(dx, dp_logit)`` of :func:`numpy_concrete` given its kept z:
    ``dx = dy (1 - z) / (1 - p)``, ``dp_logit = sum dy y (p - z / t)``."""
    keep = 1 / (1 + np.exp(p_logit))
    factor = (1 - z) / dy.dtype.type(keep)
    y = x * factor
    return dy * factor, float(np.sum(dy * y * ((1 - keep) - z / temperature), dtype=np.float64))


def torch_reference_concrete(torch, x, p_logit, temperature=0.1):
    """The reference PyTorch module's concrete dropout (yaringal/ConcreteDropout,
    concrete-dropout-pytorch.ipynb, ``ConcreteDropout._concrete_dropout``):
    ``torch.rand_like``, four logs with eps = 1e-7, a sigmoid, a multiply and a
    divide, recorded by autograd."""
    eps = 1e-7
    p = torch.sigmoid(p_logit)
    unif_noise = torch.rand_like(x)
    drop_prob = (torch.log(p + eps) - torch.log(1 - p + eps)
                 + torch.log(unif_noise + eps) - torch.log(1 - unif_noise + eps))
    drop_prob = torch.sigmoid(drop_prob / temperature)
    random_tensor = 1 - drop_prob
    retain_prob = 1 - p
    x = torch.mul(x, random_tensor)
    x /= retain_prob
    return x
