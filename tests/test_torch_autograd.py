"""cydrop.torch under autograd's machinery: in-place writes that autograd
sees, DropoutLinear's second derivative, torch.func's transforms (grad,
jvp, vmap under each randomness), forward-mode AD and autocast."""
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402
import torch.autograd.forward_ad as fwAD  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import cydrop.torch as ct  # noqa: E402
from cydrop.torch import functional as cf  # noqa: E402
from reference import key_from_seed, reference_mask  # noqa: E402


def next_mask(shape, keep_prob):
    """The mask (True = kept) the next call without a seed draws over
    ``shape`` (rank 0), from torch's RNG state, which it leaves as it was."""
    with torch.random.fork_rng(devices=[]):
        key = key_from_seed(int(torch.randint(0, 2**63 - 1, (), dtype=torch.int64)))
    n = torch.Size(shape).numel()
    return torch.from_numpy(reference_mask(key, 0, n, keep_prob).reshape(shape))

INPLACE_CALLS = {
    "Dropout": (lambda x: ct.Dropout(0.5, inplace=True)(x), lambda x: nn.Dropout(0.5, inplace=True)(x), (4, 4)),
    "Dropout2d": (lambda x: ct.Dropout2d(0.5, inplace=True)(x), lambda x: nn.Dropout2d(0.5, inplace=True)(x),
                  (2, 4, 3, 3)),
    "functional.dropout": (lambda x: cf.dropout(x, 0.5, inplace=True), lambda x: F.dropout(x, 0.5, inplace=True),
                           (4, 4)),
    "functional.dropout3d": (lambda x: cf.dropout3d(x, 0.5, inplace=True),
                             lambda x: F.dropout3d(x, 0.5, inplace=True), (2, 4, 2, 3, 3)),
}


@pytest.mark.parametrize("name", list(INPLACE_CALLS))
@pytest.mark.parametrize("which", ["cydrop", "torch"])
def test_inplace_dropout_of_a_saved_tensor_makes_backward_refuse(name, which):
    """x is saved for w's gradient; dropping x out in place afterwards must
    make that backward fail, as torch's in-place ops do, not use the new x."""
    ours, theirs, shape = INPLACE_CALLS[name]
    w = torch.randn(shape, requires_grad=True)
    x = torch.randn(shape)
    z = x * w
    version = x._version
    (ours if which == "cydrop" else theirs)(x)
    assert x._version > version
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        z.sum().backward()


def test_inplace_dropout_of_an_inference_tensor():
    with torch.inference_mode():
        x = torch.ones(4, 64)
        y = ct.Dropout(0.5, inplace=True)(x)
    assert y is x and set(x.unique().tolist()) <= {0.0, 2.0}


# --- DropoutLinear: second derivatives ------------------------------------------------------

def _penalised(lin_or_ref, x, weight_grad_of):
    """loss = sum(out^2) + sum(g^2), g = d sum(out) / dx taken with
    create_graph (a gradient penalty), backpropagated; returns the
    gradients of x, the weight and the bias."""
    out = lin_or_ref(x)
    (g,) = torch.autograd.grad(out.sum(), x, create_graph=True)
    assert g.requires_grad
    (out.square().sum() + g.square().sum()).backward()
    return x.grad, *weight_grad_of()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dropout_linear_gradient_penalty_matches_f_linear_with_the_same_mask(dtype):
    torch.manual_seed(0)
    lin = ct.DropoutLinear(7, 3, p=0.4, dtype=dtype)
    W = lin.weight.detach().clone().requires_grad_()
    b = lin.bias.detach().clone().requires_grad_()
    x = torch.randn(6, 7, dtype=dtype)
    D = next_mask((6, 7), 0.6).to(dtype)
    ours = _penalised(lin, x.clone().requires_grad_(), lambda: (lin.weight.grad, lin.bias.grad))
    theirs = _penalised(lambda t: F.linear(t * D / 0.6, W, b), x.clone().requires_grad_(), lambda: (W.grad, b.grad))
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == torch.float32 else dict(rtol=1e-12, atol=1e-12)
    for a, c in zip(ours, theirs):
        torch.testing.assert_close(a, c, **tol)


def test_dropout_linear_gradgradcheck_in_x_weight_and_bias():
    torch.manual_seed(0)
    lin = ct.DropoutLinear(6, 3, p=0.3, dtype=torch.float64)
    x = torch.randn(4, 6, dtype=torch.float64, requires_grad=True)
    params = (lin.weight.detach().clone().requires_grad_(), lin.bias.detach().clone().requires_grad_())

    def replayed(t, weight, bias):
        torch.manual_seed(5)       # the same mask on every evaluation
        return torch.func.functional_call(lin, {"weight": weight, "bias": bias}, (t,))

    assert torch.autograd.gradcheck(replayed, (x, *params))
    assert torch.autograd.gradgradcheck(replayed, (x, *params))


# --- torch.func and forward-mode AD -----------------------------------------------------------

FUNCS = {
    "functional.dropout": (lambda t: cf.dropout(t, 0.3), (5, 8)),
    "Dropout2d": (lambda t: ct.Dropout2d(0.3)(t), (2, 4, 3, 3)),
}


@pytest.mark.parametrize("name", list(FUNCS))
def test_torch_func_grad_equals_autograd_from_the_same_rng_state(name):
    fn, shape = FUNCS[name]
    x = torch.randn(shape)
    torch.manual_seed(2)
    by_func = torch.func.grad(lambda t: fn(t).square().sum())(x)
    leaf = x.clone().requires_grad_()
    torch.manual_seed(2)
    fn(leaf).square().sum().backward()
    torch.testing.assert_close(by_func, leaf.grad, rtol=0, atol=0)


def test_torch_func_grad_through_dropout_linear():
    torch.manual_seed(0)
    lin = ct.DropoutLinear(8, 3, p=0.3)
    x = torch.randn(5, 8)
    params = {k: v.detach() for k, v in lin.named_parameters()}
    torch.manual_seed(2)
    by_func = torch.func.grad(lambda p, t: torch.func.functional_call(lin, p, (t,)).square().sum())(params, x)
    torch.manual_seed(2)
    lin(x).square().sum().backward()
    torch.testing.assert_close(by_func["weight"], lin.weight.grad)
    torch.testing.assert_close(by_func["bias"], lin.bias.grad)


def test_jvp_and_forward_ad_apply_the_mask_to_the_tangent():
    x, tangent = torch.randn(4, 6), torch.randn(4, 6)
    torch.manual_seed(0)
    kept = next_mask((4, 6), 0.5)
    out, out_tangent = torch.func.jvp(lambda t: cf.dropout(t, 0.5), (x,), (tangent,))
    assert torch.equal(out, x * kept * 2.0) and torch.equal(out_tangent, tangent * kept * 2.0)
    torch.manual_seed(0)
    with fwAD.dual_level():
        primal, dual_tangent = fwAD.unpack_dual(ct.Dropout(0.5)(fwAD.make_dual(x, tangent)))
    assert torch.equal(primal, out) and torch.equal(dual_tangent, out_tangent)
    # forward over reverse (a Hessian-vector product) and the Jacobian, by rows (jacrev)
    f = lambda t: cf.dropout(t, 0.5).square().sum()    # noqa: E731
    torch.manual_seed(0)
    _, hvp = torch.func.jvp(torch.func.grad(f), (x[0],), (tangent[0],))
    torch.manual_seed(0)
    J = torch.func.jacrev(lambda t: cf.dropout(t, 0.5))(x[0])
    torch.manual_seed(0)
    scaled = cf.dropout(torch.ones(6), 0.5)       # D / keep_prob
    assert torch.equal(hvp, 2 * scaled * scaled * tangent[0])
    assert torch.equal(J, torch.diag(scaled))


@pytest.mark.parametrize("name", list(FUNCS))
def test_vmap_without_randomness_raises_torchs_error(name):
    fn, shape = FUNCS[name]
    xs = torch.randn(3, *shape)
    with pytest.raises(RuntimeError) as theirs:
        torch.func.vmap(lambda t: F.dropout(t, 0.3))(xs)
    with pytest.raises(RuntimeError) as ours:
        torch.func.vmap(fn)(xs)
    assert str(ours.value) == str(theirs.value)
    with pytest.raises(RuntimeError) as captured:     # an input vmap does not batch
        torch.func.vmap(lambda _: fn(xs[0]))(xs)
    assert str(captured.value) == str(theirs.value)


def test_vmap_without_randomness_refuses_a_seeded_call_too():
    xs = torch.randn(3, 5, 8)
    with pytest.raises(RuntimeError, match="randomness error mode"):
        torch.func.vmap(lambda t: cf.dropout(t, 0.3, seed=1))(xs)
    same = torch.func.vmap(lambda t: cf.dropout(t, 0.3, seed=1), randomness="same")(xs)
    torch.testing.assert_close(same, xs * (cf.dropout(torch.ones(5, 8), 0.3, seed=1)))


def _same_zeros(y):
    return all(torch.equal(y[0] == 0, row == 0) for row in y[1:])


@pytest.mark.parametrize("name", list(FUNCS))
def test_vmap_randomness_same_shares_one_mask_and_different_draws_one_per_sample(name):
    fn, shape = FUNCS[name]
    xs = torch.rand(6, *shape) + 1.0          # no zeros: the zeros are the mask's
    same = torch.func.vmap(fn, randomness="same")(xs)
    different = torch.func.vmap(fn, randomness="different")(xs)
    assert _same_zeros(same) and not _same_zeros(different)
    for y in (same, different):
        torch.testing.assert_close(y, torch.where(y != 0, xs / 0.7, 0.0))
    # an input vmap does not batch: "same" gives one mask, "different" one per sample
    x = xs[0]
    assert _same_zeros(torch.func.vmap(lambda _: fn(x), randomness="same")(xs))
    assert not _same_zeros(torch.func.vmap(lambda _: fn(x), randomness="different")(xs))


@pytest.mark.parametrize("randomness", ["same", "different"])
@pytest.mark.parametrize("name", list(FUNCS))
def test_per_sample_gradients_under_vmap_use_each_samples_own_mask(name, randomness):
    fn, shape = FUNCS[name]
    xs = torch.rand(5, *shape) + 1.0

    def loss(t):
        y = fn(t)
        return y.sum(), y

    grads, ys = torch.func.vmap(torch.func.grad(loss, has_aux=True), randomness=randomness)(xs)
    assert torch.equal(grads, (ys != 0) / 0.7)
    assert _same_zeros(ys) == (randomness == "same")
    nested, ys = torch.func.vmap(torch.func.vmap(torch.func.grad(loss, has_aux=True), randomness=randomness),
                                 randomness=randomness)(xs.reshape(5, 1, *shape).expand(5, 2, *shape))
    assert torch.equal(nested, (ys != 0) / 0.7)


# --- autocast ----------------------------------------------------------------------------------------

def test_dropout_linear_trains_under_bfloat16_autocast():
    torch.manual_seed(0)
    lin = ct.DropoutLinear(16, 4, p=0.25)
    ref = nn.Linear(16, 4)
    ref.load_state_dict(lin.state_dict())
    x = torch.randn(8, 16, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_()
    mask = next_mask((8, 16), 0.75)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = lin(x)
        out_ref = ref(x_ref * mask / 0.75)
    assert out.dtype == out_ref.dtype == torch.bfloat16
    assert torch.equal(out, out_ref)
    out.float().square().sum().backward()
    out_ref.float().square().sum().backward()
    assert lin.weight.grad.dtype == torch.float32 and x.grad.dtype == torch.float32
    torch.testing.assert_close(lin.weight.grad, ref.weight.grad)
    torch.testing.assert_close(x.grad, x_ref.grad)
