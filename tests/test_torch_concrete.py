"""cydrop.torch's concrete dropout: against the NumPy kernels at the
position a call draws (its key from torch's generator), torch's operator and
gradient checkers, central differences in float64, torch.compile, and its
refusals."""
import copy
import io
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import cydrop  # noqa: E402
import cydrop.torch as ct  # noqa: E402
from cydrop import _concrete  # noqa: E402
from cydrop.torch import _concrete_ops as ops  # noqa: E402
from cydrop.torch._keys import signed  # noqa: E402
from reference import key_from_seed  # noqa: E402

DTYPES = [torch.float32, torch.float64]
LOGIT_01 = math.log(0.1 / 0.9)


def data(shape, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g, dtype=torch.float64).to(dtype)


def next_position():
    """(key, block) of the next call without a seed (rank 0), read without
    advancing torch's generator: key_from_seed of torch.randint(0, 2**63 - 1, ())."""
    with torch.random.fork_rng(devices=[]):
        return key_from_seed(int(torch.randint(0, 2**63 - 1, (), dtype=torch.int64))), 0


def kernel_forward(x, p_logit, temperature, run, key, block):
    return torch.from_numpy(_concrete.forward(x.detach().numpy(), None, key, block, p_logit, temperature, run, 1))


# --- values -----------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_module_output_is_the_kernels_at_the_position_it_draws(dtype):
    torch.manual_seed(0)
    m = ct.ConcreteDropout(p=0.2)
    x = data((33, 70), dtype)
    key, block = next_position()
    y = m(x)
    assert y.dtype == dtype
    torch.testing.assert_close(y, kernel_forward(x, m.p_logit.item(), 0.1, 1, key, block), rtol=0, atol=0)
    assert not torch.equal(m(x), y)                  # the next call draws another key
    assert abs(m.p - 0.2) < 1e-7


@pytest.mark.parametrize("cls, shape, run", [
    (ct.ConcreteDropout1d, (4, 3, 10), 10), (ct.ConcreteDropout1d, (3, 10), 10),
    (ct.ConcreteDropout2d, (2, 5, 4, 6), 24), (ct.ConcreteDropout3d, (2, 3, 2, 2, 5), 20),
    (ct.ConcreteDropout3d, (3, 2, 2, 5), 20)])
def test_channel_variants_draw_one_value_per_channel(cls, shape, run):
    m = cls()
    assert m.temperature == 2 / 3
    x = data(shape, torch.float64)
    key, block = next_position()
    y = m(x)
    torch.testing.assert_close(y, kernel_forward(x, m.p_logit.item(), 2 / 3, run, key, block), rtol=0, atol=0)
    factor = (y / x).reshape(-1, run)
    torch.testing.assert_close(factor, factor[:, :1].expand_as(factor))   # constant over each channel


def test_channel_variants_refuse_other_ranks():
    with pytest.raises(ValueError, match="ConcreteDropout2d takes inputs of 4 dimensions"):
        ct.ConcreteDropout2d()(torch.ones(3, 4, 5))


@pytest.mark.parametrize("dtype", DTYPES)
def test_backward_is_the_kernels(dtype):
    torch.manual_seed(1)
    m = ct.ConcreteDropout(p=0.3, temperature=0.5)
    x = data((17, 40), dtype).requires_grad_()
    g = data((17, 40), dtype, seed=1)
    key, block = next_position()
    m(x).backward(g)
    dx, _, dp = _concrete.backward(g.numpy(), x.detach().numpy(), None, None, key, block, m.p_logit.item(), 0.5, 1,
                                   True, False, 1)
    torch.testing.assert_close(x.grad, torch.from_numpy(dx), rtol=0, atol=0)
    assert m.p_logit.grad.item() == pytest.approx(dp, rel=1e-6) and m.p_logit.grad.dtype == torch.float32


def test_frozen_p_logit_backward_gives_dx_without_saving_x():
    """With p_logit frozen, dx needs the position only: x is not saved."""
    m = ct.ConcreteDropout(p=0.4)
    m.p_logit.requires_grad_(False)
    x = data((9, 31)).requires_grad_()
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        y = m(x)
    assert saved == []
    y.backward(torch.ones_like(y))
    torch.testing.assert_close(x.grad, y.detach() / x.detach(), rtol=1e-6, atol=0)


def test_autograd_keeps_no_mask():
    """Between forward and backward: x (and the weight), which autograd
    holds anyway, and the position; nothing proportional to x is allocated."""
    torch.manual_seed(2)
    x = data((64, 128)).requires_grad_()
    for module, allowed in ((ct.ConcreteDropout(), {x.data_ptr()}),
                            (ct.ConcreteDropoutLinear(128, 16), {x.data_ptr()})):
        if isinstance(module, ct.ConcreteDropoutLinear):
            allowed.add(module.weight.data_ptr())
        saved = []
        with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
            out = module(x)
        assert saved and {t.data_ptr() for t in saved} <= allowed
        out.sum().backward()


def test_eval_is_the_identity_and_train_without_grad_draws():
    m = ct.ConcreteDropout()
    x = data((5, 8))
    assert m.eval()(x) is x
    m.train()
    with torch.no_grad():
        a, b = m(x), m(x)
    assert a.grad_fn is None and not torch.equal(a, b)
    lin = ct.ConcreteDropoutLinear(8, 3).eval()
    torch.testing.assert_close(lin(x), F.linear(x, lin.weight, lin.bias), rtol=0, atol=0)


def test_mc_dropout_keeps_the_standalone_modules_drawing():
    """The standalone modules are torch dropout modules (_DropoutNd): under
    cydrop.torch.mc_dropout they stay in training mode and draw."""
    model = nn.Sequential(nn.Linear(4, 8), ct.ConcreteDropout(), nn.Linear(8, 1)).eval()
    x = data((3, 4))
    with ct.mc_dropout(model), torch.no_grad():
        assert model[1].training and not model[0].training
        assert not torch.equal(model(x), model(x))
    assert not model[1].training and torch.equal(model(x), model(x))


def test_same_seed_same_noise_and_thread_counts_do_not_matter(reset_threads):
    x = data((512, 300))
    results = []
    torch_threads = torch.get_num_threads()
    try:
        for n in (1, 2, 1):
            torch.set_num_threads(n)
            cydrop.set_num_threads(n)
            torch.manual_seed(5)
            m = ct.ConcreteDropout()
            xg = x.clone().requires_grad_()
            y = m(xg)
            y.backward(torch.ones_like(y))
            results.append((y, xg.grad, m.p_logit.grad))
    finally:
        torch.set_num_threads(torch_threads)
    for y, dx, dp in results[1:]:
        assert torch.equal(y, results[0][0]) and torch.equal(dx, results[0][1]) and torch.equal(dp, results[0][2])


def test_linear_is_linear_of_the_concrete_input():
    torch.manual_seed(3)
    lin = ct.ConcreteDropoutLinear(30, 7, p=0.25)
    x = data((2, 6, 30), torch.float32)
    key, block = next_position()
    out = lin(x)
    x_tilde = kernel_forward(x.reshape(-1, 30), lin.p_logit.item(), 0.1, 1, key, block)
    torch.testing.assert_close(out, F.linear(x_tilde, lin.weight, lin.bias).reshape(2, 6, 7), rtol=0, atol=0)
    assert isinstance(lin, nn.Linear) and lin.p_logit.dtype == lin.weight.dtype


def test_other_devices_and_dtypes_run_torch_operations():
    m = ct.ConcreteDropout()
    x = data((6, 10)).to(torch.bfloat16).requires_grad_()
    y = m(x)
    assert y.dtype == torch.bfloat16 and y.shape == x.shape
    y.float().sum().backward()
    assert m.p_logit.grad is not None and x.grad.dtype == torch.bfloat16


# --- gradients ---------------------------------------------------------------------


def _richardson(f, h):
    def central(step):
        return (f(step) - f(-step)) / (2 * step)
    return (4 * central(h / 2) - central(h)) / 3


def _relative_error(a, b):
    return abs(a - b) / max(abs(a), abs(b))


@pytest.mark.parametrize("noise_shape", [None, (6, 5, 1)])
def test_gradients_match_central_differences_in_float64(noise_shape):
    """Relative error below 1e-7 for p_logit and x, the noise fixed by an int seed."""
    x = data((6, 5, 7), torch.float64).requires_grad_()
    a = torch.tensor(-0.8, dtype=torch.float64, requires_grad=True)
    g = data((6, 5, 7), torch.float64, seed=4)

    def loss(x_, a_):
        return float((ct.concrete_dropout(x_, a_, 0.4, noise_shape=noise_shape, seed=17) * g).sum())
    (ct.concrete_dropout(x, a, 0.4, noise_shape=noise_shape, seed=17) * g).sum().backward()
    assert _relative_error(_richardson(lambda h: loss(x.detach(), a.detach() + h), 1e-3), a.grad.item()) < 1e-7
    for i in (0, 37, 209):
        def at(h):
            x2 = x.detach().clone()
            x2.view(-1)[i] += h
            return loss(x2, a.detach())
        assert _relative_error(_richardson(at, 1e-3), x.grad.view(-1)[i].item()) < 1e-7


def test_linear_gradients_match_central_differences_in_float64():
    """x, W, b and p_logit of the fused layer, its position fixed (torch's RNG state restored)."""
    torch.manual_seed(4)
    lin = ct.ConcreteDropoutLinear(12, 4, p=0.2, dtype=torch.float64)
    x = data((9, 12), torch.float64).requires_grad_()
    g = data((9, 4), torch.float64, seed=6)
    start = torch.get_rng_state()

    def loss():
        torch.set_rng_state(start)
        return (lin(x) * g).sum()
    loss().backward()
    params = [("x", x, 5), ("weight", lin.weight, 7), ("bias", lin.bias, 2), ("p_logit", lin.p_logit, 0)]
    for name, tensor, i in params:
        analytic = tensor.grad.view(-1)[i].item()

        def at(h):
            with torch.no_grad():
                old = tensor.view(-1)[i].item()
                tensor.view(-1)[i] = old + h
                value = loss().item()
                tensor.view(-1)[i] = old
            return value
        assert _relative_error(_richardson(at, 1e-3), analytic) < 1e-7, name


def test_gradcheck_float64():
    x = data((5, 13), torch.float64).requires_grad_()
    a = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t, p: ct.concrete_dropout(t, p, 0.5, seed=11), (x, a))
    assert torch.autograd.gradcheck(lambda t, p: ct.concrete_dropout(t, p, 2 / 3, noise_shape=(5, 1), seed=11),
                                    (x, a))
    position = torch.tensor([99, 4])
    assert torch.autograd.gradcheck(lambda t, p: ops.concrete_dropout_op(t, p, 0.5, position, 1)[0], (x, a))
    W = data((3, 13), torch.float64, seed=5).requires_grad_()
    b = data((3,), torch.float64, seed=6).requires_grad_()
    assert torch.autograd.gradcheck(lambda t, w, c, p: ops.concrete_dropout_linear_op(t, w, c, p, 0.5, position)[0],
                                    (x, W, b, a))


def test_not_twice_differentiable():
    x = data((4, 6), torch.float64).requires_grad_()
    a = torch.tensor(0.0, dtype=torch.float64, requires_grad=True)
    y = ct.concrete_dropout(x, a, seed=1)
    (gx,) = torch.autograd.grad(y.sum(), x, create_graph=True)
    with pytest.raises(RuntimeError):
        gx.sum().backward()


def test_gradient_penalty_refuses_rather_than_dropping_the_p_logit_term():
    # the incoming gradient (of y.sum()) needs no grad, but gx = (1 - z) / (1 - p)
    # depends on p_logit: its second derivative must be refused, not taken as 0
    x = data((4, 6), torch.float64).requires_grad_()
    a = torch.tensor(0.0, dtype=torch.float64, requires_grad=True)
    y = ct.concrete_dropout(x, a, seed=1)
    (gx,) = torch.autograd.grad(y.sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="not twice differentiable"):
        (y.sum() + gx.pow(2).sum()).backward()


def test_linear_gradient_penalty_refuses_rather_than_dropping_the_weight_and_p_logit_terms():
    layer = ct.ConcreteDropoutLinear(6, 3, dtype=torch.float64)
    x = data((4, 6), torch.float64).requires_grad_()
    out = layer(x)
    (gx,) = torch.autograd.grad(out.sum(), x, create_graph=True)   # (ones @ W) * (1 - z) / (1 - p)
    with pytest.raises(RuntimeError, match="not twice differentiable"):
        (out.sum() + gx.pow(2).sum()).backward()


def test_create_graph_without_a_second_derivative_gives_the_first():
    # the refusing node is met only by a second backward through the gradients
    x = data((4, 6), torch.float64).requires_grad_()
    a = torch.tensor(-1.0, dtype=torch.float64, requires_grad=True)
    y = ct.concrete_dropout(x, a, seed=1)
    gx, ga = torch.autograd.grad(y.sum(), (x, a), create_graph=True)
    gx0, ga0 = torch.autograd.grad(ct.concrete_dropout(x, a, seed=1).sum(), (x, a))
    assert torch.equal(gx.detach(), gx0) and torch.equal(ga.detach(), ga0)
    frozen = torch.tensor(-1.0, dtype=torch.float64)        # dx is then grad * a constant: nothing to refuse
    (gx,) = torch.autograd.grad(ct.concrete_dropout(x, frozen, seed=1).sum(), x, create_graph=True)
    assert not gx.requires_grad


# --- custom ops --------------------------------------------------------------------


@pytest.mark.parametrize("shape, run", [((6, 70), 1), ((4, 3, 5), 5), ((0, 3), 1)])
def test_opcheck(shape, run):
    x = data(shape).requires_grad_()
    a = torch.tensor(-1.0, requires_grad=True)
    position = torch.tensor([12345, 3])
    torch.library.opcheck(ops.concrete_dropout_op, (x, a, 0.1, position, run))
    for need_dx in (True, False):
        torch.library.opcheck(ops.concrete_dropout_backward_op,
                              (data(shape, seed=1), x.detach(), a.detach(), 0.1, position, run, need_dx))


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("need_dx", [True, False])
def test_opcheck_linear(bias, need_dx):
    x = data((6, 70)).requires_grad_(need_dx)
    weight = data((5, 70), seed=1).requires_grad_()
    b = data((5,), seed=2).requires_grad_() if bias else None
    a = torch.tensor(-2.0, requires_grad=True)
    position = torch.tensor([4321, 2])
    torch.library.opcheck(ops.concrete_dropout_linear_op, (x, weight, b, a, 0.1, position))
    torch.library.opcheck(ops.concrete_dropout_linear_backward_op,
                          (data((6, 5), seed=3), x.detach(), weight.detach(), a.detach(), 0.1, position, bias,
                           need_dx))


def test_eager_path_and_custom_ops_agree():
    torch.manual_seed(6)
    for module, op_call in (
            (ct.ConcreteDropout(p=0.3),
             lambda m, x, pos: ops.concrete_dropout_op(x, m.p_logit, m.temperature, pos, 1)[0]),
            (ct.ConcreteDropoutLinear(90, 6, p=0.3),
             lambda m, x, pos: ops.concrete_dropout_linear_op(x, m.weight, m.bias, m.p_logit, m.temperature, pos)[0])):
        x = data((7, 90)).requires_grad_()
        out_op = op_call(module, x, torch.tensor([signed(next_position()[0]), 0]))   # the eager call's next
        out_eager = module(x)
        assert torch.equal(out_op, out_eager)
        g = torch.ones_like(out_op)
        params = [x] + list(module.parameters())
        for a, b in zip(torch.autograd.grad(out_op, params, g), torch.autograd.grad(out_eager, params, g)):
            assert torch.equal(a, b)


def test_compiled_training_fullgraph_matches_eager_and_learns_p():
    torch._dynamo.reset()
    torch.manual_seed(0)

    def make():
        hidden, out = nn.Linear(32, 32), ct.ConcreteDropoutLinear(32, 1)
        return nn.Sequential(ct.ConcreteDropoutLinear(8, 32), nn.ReLU(), ct.ConcreteDropout(layer=hidden), hidden,
                             nn.ReLU(), out)
    net, twin = make(), make()
    twin.load_state_dict(net.state_dict())
    compiled = torch.compile(net, fullgraph=True)
    x = torch.randn(64, 8)
    y = x[:, :1] * 2 + 0.1 * torch.randn(64, 1)
    opt_c = torch.optim.Adam(net.parameters(), lr=1e-2)
    opt_e = torch.optim.Adam(twin.parameters(), lr=1e-2)
    wr, dr = cydrop.concrete_regularizer_weights(1e-2, 64)
    losses = []
    for step in range(30):
        for model, module, opt in ((compiled, net, opt_c), (twin, twin, opt_e)):
            torch.manual_seed(100 + step)           # the same RNG state: the same noise
            loss = F.mse_loss(model(x), y) + ct.concrete_regularizer(module, weight_regularizer=wr,
                                                                     dropout_regularizer=dr)
            opt.zero_grad()
            loss.backward()
            opt.step()
        losses.append(loss.item())
        if step < 3:
            for a, b in zip(net.parameters(), twin.parameters()):
                torch.testing.assert_close(a, b)
    assert losses[-1] < losses[0] / 2
    assert abs(net[0].p - 0.1) > 1e-3 and abs(net[2].p - 0.1) > 1e-3     # p moved


# --- the regulariser ---------------------------------------------------------------


def test_regularizer_matches_the_numpy_one():
    torch.manual_seed(7)
    lin = ct.ConcreteDropoutLinear(6, 3, p=0.35, dtype=torch.float64)
    r = lin.regularizer(weight_regularizer=1e-2, dropout_regularizer=0.5)
    value, dp, dW = cydrop.concrete_regularizer(lin.p_logit.item(), lin.weight.detach().numpy().T.copy(),
                                                weight_regularizer=1e-2, dropout_regularizer=0.5)
    assert r.item() == pytest.approx(value, rel=1e-12)
    r.backward()
    assert lin.p_logit.grad.item() == pytest.approx(dp, rel=1e-10)
    torch.testing.assert_close(lin.weight.grad, torch.from_numpy(dW.T.copy()))
    assert lin.bias.grad is None                 # biases are not in the p-dependent term


def test_model_regularizer_sums_the_modules():
    conv = nn.Conv2d(3, 4, 3)
    linear = nn.Linear(10, 2)
    drop2d, drop = ct.ConcreteDropout2d(layer=conv), ct.ConcreteDropout(p=0.3, layer=linear)
    fused = ct.ConcreteDropoutLinear(2, 1)
    model = nn.ModuleList([drop2d, conv, drop, linear, fused])
    kw = dict(weight_regularizer=1e-3, dropout_regularizer=1e-2)
    total = ct.concrete_regularizer(model, **kw)
    parts = [drop2d.regularizer(**kw), drop.regularizer(**kw), fused.regularizer(**kw)]
    torch.testing.assert_close(total, sum(parts))
    # K: in_channels for the channel variant, in_features element-wise
    p = drop2d.p
    entropy = p * math.log(p) + (1 - p) * math.log(1 - p)
    expected = 1e-3 * conv.weight.detach().pow(2).sum().item() / (1 - p) + 1e-2 * 3 * entropy
    assert parts[0].item() == pytest.approx(expected, rel=1e-5)
    # the layers are referenced, not registered twice: each parameter once in state_dict
    assert len(model.state_dict()) == 9 and not any("layer" in k for k in model.state_dict())


@pytest.mark.parametrize("value, error", [("1e-3", TypeError), (None, TypeError), (True, TypeError),
                                          (-1.0, ValueError), (math.inf, ValueError), (math.nan, ValueError)])
def test_regularizer_weights_are_checked_as_the_numpy_functions_check_them(value, error):
    model = nn.ModuleList([ct.ConcreteDropoutLinear(3, 2)])
    for name in ("weight_regularizer", "dropout_regularizer"):
        kw = {**dict(weight_regularizer=1e-3, dropout_regularizer=1e-2), name: value}
        with pytest.raises(error, match=name):
            ct.concrete_regularizer(model, **kw)
        with pytest.raises(error, match=name):
            model[0].regularizer(**kw)


def test_regularizer_weights_may_be_0d_tensors():
    model = nn.ModuleList([ct.ConcreteDropoutLinear(3, 2)])
    kw = dict(weight_regularizer=1e-3, dropout_regularizer=1e-2)
    expected = ct.concrete_regularizer(model, **kw)
    got = ct.concrete_regularizer(model, **{k: torch.tensor(v) for k, v in kw.items()})
    assert got.item() == expected.item()


def test_model_regularizer_sums_in_the_widest_dtype_of_its_modules():
    """A float32 module listed first used to cast a float64 module's term to float32."""
    small = ct.ConcreteDropoutLinear(3, 2)
    wide = ct.ConcreteDropoutLinear(2, 1).double()
    with torch.no_grad():
        wide.weight.fill_(1 + 2**-40)   # a square that float32 rounds to 1
    kw = dict(weight_regularizer=1.0, dropout_regularizer=0.0)
    total = ct.concrete_regularizer(nn.ModuleList([small, wide]), **kw)
    assert total.dtype == torch.float64
    expected = small.regularizer(**kw).double() + wide.regularizer(**kw)
    assert total.item() == expected.item()


def test_a_copy_of_the_model_keeps_the_layer_link():
    linear = nn.Linear(3, 2)
    model = nn.Sequential(ct.ConcreteDropout(layer=linear), linear)
    twin = copy.deepcopy(model)
    assert twin[0].layer is twin[1] and twin[0].layer is not linear
    buffer = io.BytesIO()
    torch.save(model, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    assert loaded[0].layer is loaded[1]


def test_model_regularizer_refuses_a_module_without_layer():
    model = nn.Sequential(ct.ConcreteDropout(), nn.Linear(4, 2))
    with pytest.raises(ValueError, match="has no layer"):
        ct.concrete_regularizer(model, weight_regularizer=1.0, dropout_regularizer=1.0)
    r = model[0].regularizer(model[1].weight, weight_regularizer=1.0, dropout_regularizer=1.0)
    assert r.requires_grad
    with pytest.raises(ValueError, match="n_inputs"):
        model[0].regularizer(weight_regularizer=1.0, dropout_regularizer=1.0)
    assert ct.ConcreteDropout(n_inputs=5).regularizer(weight_regularizer=1.0, dropout_regularizer=1.0).item() < 0


# --- bad input ---------------------------------------------------------------------


@pytest.mark.parametrize("call, error, match", [
    (lambda: ct.ConcreteDropout(p=0.0), ValueError, "p"),
    (lambda: ct.ConcreteDropout(p=1.0), ValueError, "p"),
    (lambda: ct.ConcreteDropout(p=float("nan")), ValueError, "p"),
    (lambda: ct.ConcreteDropout(temperature=0.0), ValueError, "temperature"),
    (lambda: ct.ConcreteDropout2d(temperature=float("inf")), ValueError, "temperature"),
    (lambda: ct.ConcreteDropout(layer="linear"), TypeError, "layer"),
    (lambda: ct.ConcreteDropout(n_inputs=0), ValueError, "n_inputs"),
    (lambda: ct.ConcreteDropoutLinear(3, 2, p=1.5), ValueError, "p"),
    (lambda: ct.ConcreteDropoutLinear(3, 2, temperature=-1.0), ValueError, "temperature"),
    (lambda: ct.concrete_dropout(torch.ones(3), 0.5), TypeError, "p_logit"),
    (lambda: ct.concrete_dropout(torch.ones(3), torch.zeros(2)), TypeError, "p_logit"),
    (lambda: ct.concrete_dropout(torch.ones(3, 4), torch.zeros(()), noise_shape=(1, 4)), ValueError, "noise_shape"),
    (lambda: ct.concrete_dropout(torch.ones(3), torch.zeros(()), temperature=0.0), ValueError, "temperature"),
    (lambda: ct.concrete_dropout(torch.ones(3), torch.tensor(1e3)), ValueError, "p_logit"),
    (lambda: ct.concrete_dropout(torch.ones(3, 4), torch.zeros(()), noise_shape=3), TypeError, "noise_shape"),
    (lambda: ct.concrete_dropout(np.ones(3), torch.zeros(())), TypeError, "input"),
    (lambda: ct.concrete_dropout(np.ones((2, 3)), torch.zeros(()), noise_shape=(2, 1)), TypeError, "input"),
    (lambda: ct.ConcreteDropout()(np.ones(3)), TypeError, "input"),
    (lambda: ct.ConcreteDropout().eval()(np.ones(3)), TypeError, "input"),   # as nn.Dropout in eval mode
    (lambda: ct.ConcreteDropout2d()(np.ones((2, 3, 4, 4))), TypeError, "input"),
    (lambda: ct.ConcreteDropoutLinear(3, 2)(np.ones((2, 3))), TypeError, "input"),
    (lambda: ct.concrete_regularizer(nn.Linear(2, 2), weight_regularizer=-1.0, dropout_regularizer=0.0),
     ValueError, "weight_regularizer"),
    (lambda: ct.concrete_regularizer("model", weight_regularizer=1.0, dropout_regularizer=0.0),
     TypeError, "model"),
])
def test_bad_arguments_named(call, error, match):
    with pytest.raises(error, match=match):
        call()


@pytest.mark.parametrize("grad_enabled", [True, False])
@pytest.mark.parametrize("call", [
    lambda x, seed: ct.concrete_dropout(x, torch.tensor(100.0, requires_grad=torch.is_grad_enabled()), seed=seed),
    lambda x, seed: ct.concrete_dropout(x, torch.zeros((), requires_grad=torch.is_grad_enabled()), 1e-40, seed=seed),
])
def test_a_refused_call_draws_nothing(call, grad_enabled):
    """p_logit or a temperature out of float32's range is refused before the
    noise's position is drawn: torch's generator and a cydrop.Generator are
    where they were (as for cydrop.concrete_dropout)."""
    x = data((3, 4))
    for seed in (None, cydrop.Generator(1)):
        start, state = torch.get_rng_state(), None if seed is None else seed.state
        with torch.set_grad_enabled(grad_enabled), pytest.raises(ValueError, match="too"):
            call(x, seed)
        assert torch.equal(torch.get_rng_state(), start)
        assert seed is None or seed.state == state


@pytest.mark.parametrize("grad_enabled", [True, False])
def test_a_refused_linear_call_draws_nothing(grad_enabled):
    layer = ct.ConcreteDropoutLinear(4, 2)
    with torch.no_grad():
        layer.p_logit.fill_(100.0)
    start = torch.get_rng_state()
    with torch.set_grad_enabled(grad_enabled), pytest.raises(ValueError, match="p_logit"):
        layer(data((3, 4)))
    assert torch.equal(torch.get_rng_state(), start)


def test_mc_dropout_samples_every_concrete_module():
    """mc_dropout puts ConcreteDropout (a _DropoutNd) and ConcreteDropoutLinear
    (an nn.Linear) in training mode: two passes differ; eval mode after."""
    torch.manual_seed(0)
    model = nn.Sequential(ct.ConcreteDropoutLinear(6, 8, p=0.3), nn.ReLU(), ct.ConcreteDropout(p=0.3),
                          nn.Linear(8, 2))
    model.eval()
    x = torch.randn(16, 6)
    assert torch.equal(model(x), model(x))
    with torch.no_grad(), ct.mc_dropout(model):
        assert model[0].training and model[2].training and not model[3].training
        assert not torch.equal(model(x), model(x))
    assert not any(m.training for m in model.modules())


# --- as torch's dropout and nn.Linear behave ---------------------------------------


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.bool])
def test_integer_and_bool_inputs_are_refused_like_torch_dropout(dtype):
    """torch's dropout refuses them (its product is float); a truncated
    product would be a silently wrong result."""
    x = torch.ones((4, 8), dtype=dtype)
    with pytest.raises(RuntimeError):
        F.dropout(x, 0.3)
    calls = [lambda: ct.ConcreteDropout(0.3)(x), lambda: ct.ConcreteDropout1d()(x),
             lambda: ct.concrete_dropout(x, torch.tensor(-1.0)), lambda: ct.ConcreteDropoutLinear(8, 2)(x)]
    for call in calls:
        with pytest.raises(TypeError, match="input must be a floating-point tensor"):
            call()


def test_linear_under_autocast_is_concrete_dropout_then_linear():
    """As nn.Linear and DropoutLinear: bfloat16 output, a backward that runs,
    and the relaxed mask and p_logit's gradient of concrete dropout followed
    by F.linear (autocast casts F.linear's arguments, not the dropout's)."""
    torch.manual_seed(0)
    lin = ct.ConcreteDropoutLinear(16, 4, p=0.2)
    x = data((8, 16))
    start = torch.get_rng_state()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = lin(x)
    out.float().sum().backward()
    assert out.dtype == torch.bfloat16
    a = lin.p_logit.detach().clone().requires_grad_()
    torch.set_rng_state(start)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        expected = F.linear(ct.concrete_dropout(x, a), lin.weight.detach(), lin.bias.detach())
    expected.float().sum().backward()
    assert torch.equal(out, expected)
    torch.testing.assert_close(lin.p_logit.grad, a.grad)


@pytest.mark.parametrize("module, make", [
    (ct.ConcreteDropout2d, lambda: data((2, 3, 4, 5), torch.float64).to(memory_format=torch.channels_last)),
    (ct.ConcreteDropout, lambda: data((2, 3, 4, 5), torch.float64).to(memory_format=torch.channels_last)),
    (ct.ConcreteDropout, lambda: data((5, 4), torch.float64).t())])
def test_outputs_and_gradients_are_laid_out_like_their_input(module, make):
    """As torch's element-wise ops and cydrop's dropout (``_kernels.like``):
    the values of the contiguous input's, the strides of torch.empty_like."""
    m = module(p=0.3)
    x = make().requires_grad_()
    torch.manual_seed(1)
    y = m(x)
    torch.manual_seed(1)
    y_contiguous = m(x.detach().contiguous())
    assert y.stride() == torch.empty_like(x).stride() and torch.equal(y, y_contiguous)
    for p_grad in (True, False):
        m.p_logit.requires_grad_(p_grad)
        y = m(x)
        g = torch.ones_like(y)
        (dx,) = torch.autograd.grad(y, x, g)
        assert dx.stride() == g.stride()
    m.p_logit.requires_grad_(True)
    with torch.no_grad():
        assert m(x).stride() == torch.empty_like(x).stride()


def test_custom_op_output_is_laid_out_like_its_input():
    """The fake kernel (what torch.compile plans with) and the real one agree
    on the layout of a channels_last input (opcheck compares them)."""
    x = data((2, 3, 4, 5)).to(memory_format=torch.channels_last).requires_grad_()
    a = torch.tensor(-1.0, requires_grad=True)
    position = torch.tensor([12345, 3])
    y, _ = ops.concrete_dropout_op(x, a, 0.1, position, 20)
    assert y.is_contiguous(memory_format=torch.channels_last)
    torch.library.opcheck(ops.concrete_dropout_op, (x, a, 0.1, position, 20))
    g = torch.ones_like(y)
    torch.library.opcheck(ops.concrete_dropout_backward_op, (g, x.detach(), a.detach(), 0.1, position, 20, True))


@pytest.mark.parametrize("training", [None, "yes", 1])
def test_training_must_be_a_bool(training):
    """As functional.dropout: None would silently mean eval mode."""
    with pytest.raises(TypeError, match="training"):
        ct.concrete_dropout(torch.ones(3, 3), torch.tensor(0.0), training=training)


def test_channel_variant_rank_error_names_the_ranks_it_takes():
    with pytest.raises(ValueError) as info:
        ct.ConcreteDropout2d()(torch.randn(3, 4, 4))
    assert "4 dimensions (N, C, H, W), got 3" in str(info.value) and " or " not in str(info.value)
    with pytest.raises(ValueError, match=r"3 dimensions \(N, C, L\) or 2 \(C, L\), got 4"):
        ct.ConcreteDropout1d()(torch.randn(3, 4, 4, 4))


@pytest.mark.parametrize("kwargs, name", [
    (dict(p="0.1"), "p"), (dict(p=None), "p"), (dict(p=True), "p"), (dict(temperature="0.1"), "temperature"),
    (dict(temperature=[0.1]), "temperature")])
def test_arguments_of_a_wrong_type_are_type_errors(kwargs, name):
    with pytest.raises(TypeError, match=name):
        ct.ConcreteDropout(**kwargs)
    with pytest.raises(TypeError, match=name):
        ct.ConcreteDropoutLinear(3, 2, **kwargs)


def test_a_0d_tensor_p_or_temperature_is_its_number():
    """As torch.nn's dropout modules (and cydrop's) take a 0-d tensor p."""
    m = ct.ConcreteDropout(p=torch.tensor(0.25), temperature=torch.tensor(0.5))
    assert m.temperature == 0.5 and type(m.temperature) is float and m.p == pytest.approx(0.25)
    assert ct.concrete_dropout(torch.ones(3), torch.tensor(0.0), temperature=torch.tensor(0.5), seed=1).shape == (3,)
    with pytest.raises(TypeError, match="temperature"):
        ct.ConcreteDropout(temperature=torch.tensor([0.5]))


@pytest.mark.parametrize("p", [1e-300, 1e-50, 1 - 1e-12])
def test_p_the_parameter_dtype_rounds_to_0_or_1_is_refused(p):
    """p_logit in float32 (the default dtype) cannot hold it: ``p`` would
    report 0.0 or 1.0, outside (0, 1)."""
    with pytest.raises(ValueError, match="p "):
        ct.ConcreteDropout(p=p)
    with pytest.raises(ValueError, match="p "):
        ct.ConcreteDropoutLinear(3, 2, p=p)
    assert 0.0 < ct.ConcreteDropoutLinear(3, 2, p=1e-50, dtype=torch.float64).p < 1e-49


# --- torch.func's transforms and forward-mode AD -------------------------------------


def _loss_with_seed(noise_shape=None):
    g = data((6, 5, 7), torch.float64, seed=4)
    return lambda x, a: (ct.concrete_dropout(x, a, 0.4, noise_shape=noise_shape, seed=17) * g).sum()


@pytest.mark.parametrize("noise_shape", [None, (6, 5, 1)])
def test_torch_func_grad_and_jvp_equal_eager_autograd(noise_shape):
    """The same noise (an int seed), the gradients of the eager kernels; the
    forward-mode derivative is their transpose: <J t, 1> = <t, grad>."""
    loss = _loss_with_seed(noise_shape)
    x = data((6, 5, 7), torch.float64).requires_grad_()
    a = torch.tensor(-0.8, dtype=torch.float64, requires_grad=True)
    loss(x, a).backward()
    gx, ga = torch.func.grad(loss, argnums=(0, 1))(x.detach(), a.detach())
    torch.testing.assert_close(gx, x.grad, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ga, a.grad, rtol=1e-12, atol=1e-12)
    tx, ta = data((6, 5, 7), torch.float64, seed=9), torch.tensor(0.3, dtype=torch.float64)
    value, tangent = torch.func.jvp(loss, (x.detach(), a.detach()), (tx, ta))
    assert value.item() == pytest.approx(loss(x, a).item(), rel=1e-12)
    assert tangent.item() == pytest.approx((tx * x.grad).sum().item() + ta.item() * a.grad.item(), rel=1e-10)
    import torch.autograd.forward_ad as fwAD
    with fwAD.dual_level():
        out = fwAD.unpack_dual(loss(fwAD.make_dual(x.detach(), tx), fwAD.make_dual(a.detach(), ta))).tangent
    assert out.item() == pytest.approx(tangent.item(), rel=1e-12)


def test_modules_under_torch_func_draw_the_noise_eager_calls_draw():
    """From the same RNG state, a module under torch.func.grad relaxes the
    mask an eager call relaxes: the same gradients, the fused layer's too."""
    x = data((9, 12), torch.float64)
    for module in (ct.ConcreteDropout(p=0.3), ct.ConcreteDropoutLinear(12, 4, p=0.2, dtype=torch.float64)):
        module.double()
        params = {k: v.detach() for k, v in module.named_parameters()}
        torch.manual_seed(3)
        grads = torch.func.grad(lambda p: torch.func.functional_call(module, p, (x,)).pow(2).sum())(params)
        torch.manual_seed(3)
        module(x).pow(2).sum().backward()
        for name, parameter in module.named_parameters():
            torch.testing.assert_close(grads[name], parameter.grad, rtol=1e-10, atol=1e-12)


def test_vmap_follows_its_randomness_argument():
    """"error" raises torch's message; "different" draws one noise per
    sample (with a seed: the batch's eager pass), "same" one for the batch;
    per-sample gradients of p_logit add up to the batch's."""
    x = data((4, 10), torch.float64)
    a = torch.tensor(-1.0, dtype=torch.float64)
    for source in (None, 5):
        with pytest.raises(RuntimeError, match="randomness"):
            torch.func.vmap(lambda r: ct.concrete_dropout(r, a, seed=source))(x)
    different = torch.func.vmap(lambda r: ct.concrete_dropout(r, a, seed=5), randomness="different")(x)
    # to rounding (1e-16 beside outputs of order 1): the transforms compute the formula in torch's ops
    torch.testing.assert_close(different, ct.concrete_dropout(x, a, seed=5), rtol=1e-12, atol=1e-12)
    same = torch.func.vmap(lambda r: ct.concrete_dropout(r, a, seed=5), randomness="same")(x)
    torch.testing.assert_close(same, torch.stack([ct.concrete_dropout(r, a, seed=5) for r in x]), rtol=1e-12,
                               atol=1e-12)
    unseeded = torch.func.vmap(lambda r: ct.concrete_dropout(torch.ones(10, dtype=torch.float64), a),
                               randomness="different")(x)
    assert not torch.equal(unseeded[0], unseeded[1])
    per_sample = torch.func.vmap(torch.func.grad(lambda r, b: ct.concrete_dropout(r, b, seed=5).sum(), argnums=1),
                                 in_dims=(0, None), randomness="different")(x, a)
    a_eager = a.clone().requires_grad_()
    ct.concrete_dropout(x, a_eager, seed=5).sum().backward()
    torch.testing.assert_close(per_sample.sum(), a_eager.grad, rtol=1e-10, atol=1e-12)


# --- torch.compile with dynamic shapes -----------------------------------------------


def test_an_int_seed_is_a_constant_of_the_graph_whatever_the_shape():
    """The automatic-dynamic recompile on a second shape makes the size
    symbolic: an int seed's position does not depend on it."""
    torch._dynamo.reset()
    a = torch.tensor(-1.0)
    concrete = torch.compile(lambda x: ct.concrete_dropout(x, a, seed=3), fullgraph=True)
    bernoulli = torch.compile(lambda x: ct.functional.dropout(x, 0.3, seed=3), fullgraph=True)
    for n in (5, 7, 9):
        x = data((n, 4))
        assert torch.equal(concrete(x), ct.concrete_dropout(x, a, seed=3))
        assert torch.equal(bernoulli(x), ct.functional.dropout(x, 0.3, seed=3))


def test_compiled_with_dynamic_true_matches_eager():
    """dynamic=True traces the temperature as a symbolic float; its check
    takes one."""
    torch._dynamo.reset()
    a = torch.tensor(-1.0, requires_grad=True)
    compiled = torch.compile(lambda x: ct.concrete_dropout(x, a), fullgraph=True, dynamic=True)
    for n in (5, 7):
        x = data((n, 4))
        torch.manual_seed(n)
        y = compiled(x)
        torch.manual_seed(n)
        assert torch.equal(y, ct.concrete_dropout(x, a))
    y.sum().backward()
    assert a.grad is not None


def test_transforms_refuse_the_p_logit_the_kernels_refuse():
    """As an eager call: 1 / (1 - p) overflows (torch's operations would give NaN)."""
    x = torch.ones(3, dtype=torch.float64)
    with pytest.raises(ValueError, match="p_logit"):
        ct.concrete_dropout(x, torch.tensor(1e3, dtype=torch.float64), seed=1)
    with pytest.raises(ValueError, match="p_logit"):
        torch.func.grad(lambda a: ct.concrete_dropout(x, a, seed=1).sum())(torch.tensor(1e3, dtype=torch.float64))
    with pytest.raises(ValueError, match="p_logit"):
        torch.func.vmap(lambda a: ct.concrete_dropout(x, a, seed=1), randomness="different")(
            torch.tensor([0.0, 1e3], dtype=torch.float64))


def test_torch_operations_keep_the_factor_finite_where_1_minus_p_underflows():
    """At p_logit 20, 1 - sigmoid(20) is 0 in float32: the factor is
    sigmoid(-(a + noise) / t) * (1 + exp(a)), as the kernels compute it, and
    equals the issue's (1 - z) / (1 - p) evaluated in float64."""
    from cydrop.torch.concrete import _torch_concrete
    a, t = 20.0, 0.1
    logistic = torch.linspace(-a - 5 * t, -a + 5 * t, 11, dtype=torch.float32)
    got = _torch_concrete(torch.ones(11), torch.tensor(a), t, 1, logistic).numpy()
    L = logistic.numpy().astype(np.float64)
    z = 1 / (1 + np.exp(-(a + L) / t))
    expected = (1 - z) / (1 - 1 / (1 + np.exp(-a)))
    np.testing.assert_allclose(got, expected, rtol=1e-5)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_refuses_the_p_logit_the_kernels_refuse_and_stays_finite_below(dtype):
    x = data((6, 10)).to(dtype)
    with pytest.raises(ValueError, match="p_logit"):
        ct.concrete_dropout(x, torch.tensor(100.0), seed=1)
    assert torch.isfinite(ct.concrete_dropout(x, torch.tensor(50.0), seed=1)).all()


def test_transformed_calls_stay_finite_where_1_minus_p_underflows():
    x = data((6, 10))
    eager = ct.concrete_dropout(x, torch.tensor(20.0), seed=1)
    vmapped = torch.func.vmap(lambda a: ct.concrete_dropout(x, a, seed=1), randomness="same")(torch.tensor([20.0]))
    assert torch.isfinite(vmapped).all()
    torch.testing.assert_close(vmapped[0], eager)
