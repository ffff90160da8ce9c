"""cydrop.torch against NumPy references given the same mask, torch's own
modules, and torch's operator and gradient checkers."""
import copy
import math
import pickle
import sys
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import cydrop  # noqa: E402
import cydrop.torch as ct  # noqa: E402
from cydrop.torch import _ops  # noqa: E402
from cydrop.torch._keys import Drawn, signed  # noqa: E402
from cydrop.torch import functional as cf  # noqa: E402
from reference import key_from_seed, reference_dropout, reference_mask, reference_mask_for_seed  # noqa: E402

DTYPES = [torch.float32, torch.float64]


def data(shape, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g, dtype=torch.float64).to(dtype)


def next_key():
    """The key the next call without a seed draws (rank 0), read without
    advancing torch's generator: key_from_seed(s), s the next draw of
    ``torch.randint(0, 2**63 - 1, ())``."""
    with torch.random.fork_rng(devices=[]):
        s = int(torch.randint(0, 2**63 - 1, (), dtype=torch.int64))
    return key_from_seed(s)


def expected(x, mask, p):
    """reference_dropout on the NumPy side: x * (D * s), the mask broadcast."""
    xn = x.detach().numpy()
    return torch.from_numpy(reference_dropout(xn, np.broadcast_to(mask, xn.shape), 1.0 - p))


# --- values against the reference -----------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(64, 784), (3, 5, 7), (1,), (0, 4), (130,)])
def test_functional_seed_matches_reference(dtype, shape):
    x = data(shape, dtype)
    y = cf.dropout(x, 0.3, seed=7)
    mask = reference_mask_for_seed(7, shape, 0.7)
    assert y.dtype == dtype and y.shape == x.shape
    torch.testing.assert_close(y, expected(x, mask, 0.3), rtol=0, atol=0)
    # an int seed gives the same mask every call
    torch.testing.assert_close(cf.dropout(x, 0.3, seed=7), y, rtol=0, atol=0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_module_draws_a_key_from_torch_per_call_and_backward_uses_the_same_mask(dtype):
    torch.manual_seed(0)
    m = ct.Dropout(0.2)
    x = data((33, 129), dtype).requires_grad_()
    keys = []
    for step in range(2):
        keys.append(next_key())
        y = m(x)
        mask = reference_mask(keys[-1], 0, x.numel(), 0.8).reshape(x.shape)
        torch.testing.assert_close(y, expected(x, mask, 0.2), rtol=0, atol=0)
        g = data(x.shape, dtype, seed=1)
        x.grad = None
        y.backward(g)
        torch.testing.assert_close(x.grad, expected(g, mask, 0.2), rtol=0, atol=0)
    assert keys[0] != keys[1]


def test_generator_seed_advances_like_cydrop_dropout():
    x = data((10, 100))
    gen_a, gen_b = cydrop.Generator(3), cydrop.Generator(3)
    for _ in range(2):
        y = cf.dropout(x, 0.5, seed=gen_a)
        y_np, _ = cydrop.dropout(x.numpy(), 0.5, seed=gen_b)
        torch.testing.assert_close(y, torch.from_numpy(y_np), rtol=0, atol=0)


@pytest.mark.parametrize("cls, shape, noise", [
    (ct.Dropout1d, (4, 6, 50), (4, 6, 1)),
    (ct.Dropout1d, (6, 50), (6, 1)),                  # unbatched (C, L)
    (ct.Dropout2d, (4, 6, 5, 7), (4, 6, 1, 1)),
    (ct.Dropout3d, (2, 6, 3, 4, 5), (2, 6, 1, 1, 1)),
    (ct.Dropout3d, (6, 3, 4, 5), (6, 1, 1, 1)),       # unbatched (C, D, H, W)
])
@pytest.mark.parametrize("dtype", DTYPES)
def test_channel_dropout_matches_reference(cls, shape, noise, dtype):
    torch.manual_seed(1)
    m = cls(0.5)
    key = next_key()
    x = data(shape, dtype).requires_grad_()
    y = m(x)
    mask = reference_mask(key, 0, math.prod(noise), 0.5).reshape(noise)
    torch.testing.assert_close(y, expected(x, mask, 0.5), rtol=0, atol=0)
    g = data(shape, dtype, seed=2)
    y.backward(g)
    torch.testing.assert_close(x.grad, expected(g, mask, 0.5), rtol=0, atol=0)


def test_functional_channel_variants_match_modules():
    x = data((4, 6, 5, 7))
    y = cf.dropout2d(x, 0.4, seed=5)
    _, mask = cydrop.dropout(x.numpy(), 0.6, seed=5, noise_shape=(4, 6, 1, 1))
    torch.testing.assert_close(y, expected(x, mask.to_bool(), 0.4), rtol=0, atol=0)
    y1 = cf.dropout1d(x[0], 0.4, seed=5)
    _, mask = cydrop.dropout(x[0].numpy(), 0.6, seed=5, noise_shape=(6, 5, 1))
    torch.testing.assert_close(y1, expected(x[0], mask.to_bool(), 0.4), rtol=0, atol=0)
    y3 = cf.dropout3d(x, 0.4, seed=5)    # 4-D: unbatched (C, D, H, W)
    _, mask = cydrop.dropout(x.numpy(), 0.6, seed=5, noise_shape=(4, 1, 1, 1))
    torch.testing.assert_close(y3, expected(x, mask.to_bool(), 0.4), rtol=0, atol=0)


def test_non_contiguous_input_is_its_logical_tensor():
    x = data((20, 30)).t()
    y = cf.dropout(x, 0.5, seed=1)
    torch.testing.assert_close(y, cf.dropout(x.contiguous(), 0.5, seed=1), rtol=0, atol=0)


# --- identities, in place, modes ---------------------------------------------

def test_eval_p0_and_p1():
    x = data((8, 9))
    m = ct.Dropout(0.5).eval()
    assert m(x) is x
    assert ct.Dropout(0.0)(x) is x
    assert cf.dropout(x, 0.7, training=False) is x
    y = ct.Dropout(1.0)(x)
    assert torch.equal(y, torch.zeros_like(x))
    assert torch.equal(y, nn.Dropout(1.0)(x))


def test_inplace():
    x = data((16, 70))
    x0 = x.clone()
    y = cf.dropout(x, 0.5, inplace=True, seed=4)
    assert y is x
    torch.testing.assert_close(x, cf.dropout(x0, 0.5, seed=4), rtol=0, atol=0)
    # a leaf that requires grad: torch's error, as nn.Dropout(inplace=True) gives
    leaf = data((4, 4)).requires_grad_()
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        ct.Dropout(0.5, inplace=True)(leaf)
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        nn.Dropout(0.5, inplace=True)(leaf)
    # a non-leaf in place keeps the gradient right
    a = data((4, 64)).requires_grad_()
    h = a * 1.0
    out = cf.dropout(h, 0.5, inplace=True, seed=9)
    out.sum().backward()
    mask = reference_mask_for_seed(9, (4, 64), 0.5)
    torch.testing.assert_close(a.grad, torch.from_numpy(mask * 2.0).float(), rtol=0, atol=0)


# --- reproducibility -----------------------------------------------------------

def test_manual_seed_reproduces_and_successive_calls_draw_new_masks():
    x = data((32, 64))
    torch.manual_seed(123)
    a1, b1 = ct.Dropout(0.5), ct.Dropout(0.5)
    first = [a1(x), b1(x), a1(x)]
    torch.manual_seed(123)
    a2, b2 = ct.Dropout(0.5), ct.Dropout(0.5)
    assert all(torch.equal(y, y2) for y, y2 in zip(first, [a2(x), b2(x), a2(x)]))
    assert not torch.equal(first[0], first[1]) and not torch.equal(first[0], first[2])
    # the functional default draws its key from torch's generator the same way
    torch.manual_seed(5)
    y1 = cf.dropout(x, 0.5)
    torch.manual_seed(5)
    assert torch.equal(cf.dropout(x, 0.5), y1)
    torch.manual_seed(5)
    assert torch.equal(ct.Dropout(0.5)(x), y1)


def test_copies_and_pickles_of_a_module_draw_from_torchs_generator_too():
    x = data((16, 64))
    m = ct.Dropout(0.3)
    for twin in (copy.deepcopy(m), pickle.loads(pickle.dumps(m))):
        torch.manual_seed(8)
        mine = m(x)
        torch.manual_seed(8)
        assert torch.equal(twin(x), mine)


def test_masks_do_not_depend_on_thread_counts(reset_threads):
    x = data((1024, 1024))
    results = []
    torch_threads = torch.get_num_threads()
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            cydrop.set_num_threads(n)
            torch.manual_seed(0)
            results.append(ct.Dropout(0.3)(x))
    finally:
        torch.set_num_threads(torch_threads)
    assert torch.equal(results[0], results[1])


def test_shared_openmp_runtime_check_agrees_with_the_runtimes_behaviour(reset_threads):
    """The address comparison says "one runtime" exactly when torch's thread
    setting reaches cydrop's omp_get_max_threads(), the runtime's own state."""
    from cydrop import _openmp
    from cydrop.torch._threads import kernel_threads, shares_openmp_runtime

    if not _openmp.openmp_enabled():
        pytest.skip("a build without OpenMP")
    torch_threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = _openmp.omp_max_threads()
        torch.set_num_threads(3)
        three = _openmp.omp_max_threads()
        shared = (one, three) == (1, 3)
        assert shares_openmp_runtime() == shared
        # the default follows torch's thread count when shared, else the calling thread
        assert kernel_threads() == (3 if shared else 1)
        cydrop.set_num_threads(2)           # a user's setting caps it either way
        assert kernel_threads() == 2
    finally:
        torch.set_num_threads(torch_threads)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the torch wheel's libgomp is Linux's")
def test_linux_torch_wheel_shares_cydrops_openmp_runtime():
    """On Linux, torch's wheel and cydrop both link libgomp.so.1: one runtime
    (the thread policy of docs/user_guide/pytorch.rst rests on it)."""
    from cydrop import _openmp
    from cydrop.torch._threads import shares_openmp_runtime

    if not _openmp.openmp_enabled():
        pytest.skip("a build without OpenMP")
    assert shares_openmp_runtime()


# --- fallbacks to torch's ops -----------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("cls, torch_fn, shape", [
    (ct.Dropout, F.dropout, (8, 50)),
    (ct.Dropout2d, F.dropout2d, (2, 6, 3, 3)),
])
def test_half_precision_falls_back_to_torch(dtype, cls, torch_fn, shape):
    x = data(shape).to(dtype)
    m = cls(0.4)
    torch.manual_seed(0)
    y = m(x)
    torch.manual_seed(0)
    assert y.dtype == dtype
    assert torch.equal(y, torch_fn(x, 0.4, True, False))


def test_functional_and_linear_fall_back_for_bfloat16():
    x = data((8, 16)).to(torch.bfloat16)
    torch.manual_seed(1)
    y = cf.dropout(x, 0.3)
    torch.manual_seed(1)
    assert torch.equal(y, F.dropout(x, 0.3))
    lin = ct.DropoutLinear(16, 4, p=0.3, dtype=torch.bfloat16)
    torch.manual_seed(2)
    out = lin(x)
    torch.manual_seed(2)
    assert torch.equal(out, F.linear(F.dropout(x, 0.3), lin.weight, lin.bias))


def test_other_ranks_go_to_torch():
    with pytest.raises(RuntimeError, match="dropout1d: Expected 2D or 3D input"):
        ct.Dropout1d(0.5)(data((2, 3, 4, 5)))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        y = ct.Dropout2d(0.5)(data((3, 4, 5)))   # torch: treated as (N, C, L), with a warning
    assert y.shape == (3, 4, 5)
    assert any("dropout2d" in str(w.message) for w in caught)


def test_integer_input_gets_torchs_error():
    with pytest.raises(RuntimeError) as ours:
        ct.Dropout(0.5)(torch.ones(4, dtype=torch.int64))
    with pytest.raises(RuntimeError) as theirs:
        nn.Dropout(0.5)(torch.ones(4, dtype=torch.int64))
    assert str(ours.value) == str(theirs.value)


# --- bad input ----------------------------------------------------------------------

@pytest.mark.parametrize("p", [-0.1, 1.5, float("nan"), float("inf"), "0.5", None, True])
def test_bad_p_is_a_value_error_naming_p(p):
    for make in (ct.Dropout, ct.Dropout1d, ct.Dropout2d, ct.Dropout3d,
                 lambda p: ct.DropoutLinear(3, 2, p=p)):
        with pytest.raises(ValueError, match="probability p"):
            make(p)
    with pytest.raises(ValueError, match="probability p"):
        cf.dropout(torch.ones(3), p)
    with pytest.raises(ValueError, match="probability p"):
        cf.dropout2d(torch.ones(1, 2, 3, 3), p)


def test_bad_seed_and_position():
    with pytest.raises(TypeError, match="seed"):
        cf.dropout(torch.ones(3), 0.5, seed="x")
    with pytest.raises(ValueError, match="position"):
        _ops.dropout_op(torch.ones(3), 0.5, torch.tensor([1, -1]), [])
    with pytest.raises(ValueError, match="position"):
        _ops.dropout_op(torch.ones(3), 0.5, torch.tensor([1.0, 0.0]), [])
    with pytest.raises(ValueError, match="mask_shape"):
        _ops.dropout_op(torch.ones(3, 4), 0.5, torch.tensor([1, 0]), [3, 2])


# --- operator and gradient checks -----------------------------------------------------

@pytest.mark.parametrize("shape, noise, layout", [
    ((6, 70), [], None), ((4, 3, 5), [4, 3, 1], None), ((0, 3), [], None),
    ((70, 6), [], (1, 0)), ((2, 3, 4, 5), [2, 3, 1, 1], (0, 2, 3, 1)),    # laid out as x.permute(layout)
])
def test_opcheck(shape, noise, layout):
    def make(seed):
        if layout is None:
            return data(shape, seed=seed).requires_grad_()
        inverse = tuple(layout.index(i) for i in range(len(layout)))
        return data(shape, seed=seed).permute(layout).contiguous().permute(inverse).requires_grad_()
    x = make(0)
    position = torch.tensor([12345, 3])
    torch.library.opcheck(_ops.dropout_op, (x, 0.7, position, noise))
    y, words = _ops.dropout_op(x, 0.7, position, noise)
    assert y.numel() == 0 or y.stride() == torch.empty_like(x).stride()
    torch.library.opcheck(_ops.apply_mask_op, (make(1), words, 0.7, noise))
    torch.library.opcheck(_ops.draw_position_op, (x, torch.zeros((), dtype=torch.int64)),
                          test_utils=("test_schema", "test_faketensor"))


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("need_dx", [True, False])
def test_opcheck_dropout_linear(bias, need_dx):
    x = data((6, 70)).requires_grad_(need_dx)
    weight = data((5, 70), seed=1).requires_grad_()
    b = data((5,), seed=2).requires_grad_() if bias else None
    position = torch.tensor([4321, 2])
    torch.library.opcheck(_ops.dropout_linear_op, (x, weight, b, 0.7, position))
    _, words = _ops.dropout_linear_op(x, weight, b, 0.7, position)
    torch.library.opcheck(_ops.dropout_linear_backward_op,
                          (data((6, 5), seed=3), x.detach(), weight.detach(), words, 0.7, bias, need_dx))


def test_dropout_linear_op_agrees_with_the_eager_path():
    torch.manual_seed(2)
    lin = ct.DropoutLinear(70, 5, p=0.3)
    x = data((6, 70)).requires_grad_()
    position = torch.tensor([signed(next_key()), 0])       # the key the eager call draws next
    out_op, _ = _ops.dropout_linear_op(x, lin.weight, lin.bias, 0.7, position)
    out_eager = lin(x)
    assert torch.equal(out_op, out_eager)
    g = data((6, 5), seed=3)
    grads_op = torch.autograd.grad(out_op, (x, lin.weight, lin.bias), g)
    grads_eager = torch.autograd.grad(out_eager, (x, lin.weight, lin.bias), g)
    for a, b in zip(grads_op, grads_eager):
        assert torch.equal(a, b)


def test_gradcheck_float64():
    x = data((5, 13), torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(lambda t: cf.dropout(t, 0.3, seed=11), (x,))
    assert torch.autograd.gradgradcheck(lambda t: cf.dropout(t, 0.3, seed=11), (x,))
    position = torch.tensor([99, 0])
    assert torch.autograd.gradcheck(lambda t: _ops.dropout_op(t, 0.6, position, [5, 1])[0], (x,))
    assert torch.autograd.gradgradcheck(lambda t: _ops.dropout_op(t, 0.6, position, [5, 1])[0], (x,))
    lin = ct.DropoutLinear(13, 3, p=0.25, dtype=torch.float64)

    def replayed(t):
        torch.manual_seed(0)     # the same mask on every evaluation
        return lin(t)
    assert torch.autograd.gradcheck(replayed, (x,))
    W, b = data((3, 13), torch.float64, seed=5).requires_grad_(), data((3,), torch.float64, seed=6).requires_grad_()
    assert torch.autograd.gradcheck(lambda t, w, c: _ops.dropout_linear_op(t, w, c, 0.75, position)[0], (x, W, b))


def test_eager_path_and_custom_op_agree():
    x = data((7, 90)).requires_grad_()
    position = torch.tensor([777, 5])
    y_op, words = _ops.dropout_op(x, 0.65, position, [])
    y_eager, _ = cf._eager.apply(cf._eager.DropoutFunction, x, 0.65, [], Drawn(777, 5))
    assert torch.equal(y_op, y_eager)
    g = data((7, 90), seed=3)
    (gx_op,) = torch.autograd.grad(y_op, x, g)
    (gx_eager,) = torch.autograd.grad(y_eager, x, g)
    assert torch.equal(gx_op, gx_eager)
    assert words.dtype == torch.int64 and words.numel() == math.ceil(7 * 90 / 64)


@pytest.mark.parametrize("fn, shape", [(cf.dropout, (1,)), (cf.dropout, (1, 1)), (cf.dropout2d, (1, 1, 1, 1))])
@pytest.mark.parametrize("seed", range(4))
def test_inplace_dropout_of_a_negative_view_writes_its_values(fn, shape, seed):
    """The imaginary part of a conjugate is a float tensor whose memory holds
    the negated values (torch's negative bit), contiguous when it has one
    element: in place, the result lands in it, as with torch's functions."""
    z = torch.complex(torch.zeros(shape), torch.full(shape, 3.0))
    view = torch.conj(z).imag
    assert view.is_neg() and view.is_contiguous() and view.dtype == torch.float32
    expected = fn(view.clone(), 0.5, seed=seed)      # -6 kept, 0 dropped
    assert fn(view, 0.5, inplace=True, seed=seed) is view
    torch.testing.assert_close(view, expected, rtol=0, atol=0)
    torch.testing.assert_close(z.imag, -expected, rtol=0, atol=0)


def test_kernel_wrappers_write_in_place_only_into_their_contiguous_input():
    from cydrop.torch import _kernels
    words = np.full(2, 0x5555555555555555, dtype=np.uint64)        # every other element kept
    g = data((8, 12))
    expected = g * torch.tensor([2.0, 0.0]).repeat(48).reshape(8, 12)
    assert _kernels.apply_mask(g, words, 0.5, [], out=g) is g
    torch.testing.assert_close(g, expected, rtol=0, atol=0)
    strided = data((12, 8)).t()
    with pytest.raises(ValueError, match="in place"):
        _kernels.apply_mask(strided, words, 0.5, [], out=strided)
    with pytest.raises(ValueError, match="in place"):
        _kernels.apply_mask(g, words, 0.5, [], out=g.clone())
    with pytest.raises(ValueError, match="in place"):     # the forward wrapper, the same rule
        _kernels.dropout_forward(strided, 0.5, [], Drawn(1, 0), out=strided)


# --- DropoutLinear ------------------------------------------------------------------

def test_dropout_linear_is_an_nn_linear():
    torch.manual_seed(4)
    ref = nn.Linear(20, 7)
    torch.manual_seed(4)
    lin = ct.DropoutLinear(20, 7, p=0.5)
    assert isinstance(lin, nn.Linear)
    assert torch.equal(lin.weight, ref.weight) and torch.equal(lin.bias, ref.bias)   # same init
    assert lin.state_dict().keys() == ref.state_dict().keys()
    other = nn.Linear(20, 7)
    lin.load_state_dict(other.state_dict())
    ref.load_state_dict(lin.state_dict())
    assert torch.equal(ref.weight, other.weight)
    x = data((3, 20))
    assert torch.equal(lin.eval()(x), other(x))
    assert "p=0.5" in repr(lin)
    assert ct.DropoutLinear(3, 2, bias=False).bias is None


def test_dropout_linear_values_and_grads_with_leading_dims():
    torch.manual_seed(0)
    lin = ct.DropoutLinear(10, 4, p=0.3, dtype=torch.float64)
    key = next_key()
    x = data((2, 3, 10), torch.float64).requires_grad_()
    out = lin(x)
    assert out.shape == (2, 3, 4)
    mask = reference_mask(key, 0, x.numel(), 0.7).reshape(x.shape)
    x_tilde = expected(x, mask, 0.3)
    torch.testing.assert_close(out, x_tilde @ lin.weight.detach().T + lin.bias.detach())
    g = data((2, 3, 4), torch.float64, seed=1)
    out.backward(g)
    torch.testing.assert_close(lin.weight.grad, g.reshape(-1, 4).T @ x_tilde.reshape(-1, 10))
    torch.testing.assert_close(lin.bias.grad, g.reshape(-1, 4).sum(0))
    torch.testing.assert_close(x.grad, expected(g @ lin.weight.detach(), mask, 0.3))



def _linear_reference(lin, x, g, p):
    """out, dx, dW, db of DropoutLinear from NumPy, given the reference mask
    of its next call (the key read from torch's generator without advancing it)."""
    mask = reference_mask(next_key(), 0, x.numel(), 1.0 - p).reshape(x.shape)
    x_tilde = reference_dropout(x.detach().numpy().astype(np.float64), mask, 1.0 - p)
    W = lin.weight.detach().numpy().astype(np.float64)
    b = 0.0 if lin.bias is None else lin.bias.detach().numpy().astype(np.float64)
    g64 = g.numpy().astype(np.float64)
    dx = reference_dropout(g64 @ W, mask, 1.0 - p)
    return x_tilde @ W.T + b, dx, g64.T @ x_tilde, g64.sum(0)


# (batch, in, out): a mask whose last word is partial, and a larger layer
@pytest.mark.parametrize("shape", [(7, 33, 5), (64, 256, 300)], ids=["small", "large"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bias", [True, False])
def test_dropout_linear_matches_numpy(shape, dtype, bias):
    batch, n_in, n_out = shape
    torch.manual_seed(3)
    lin = ct.DropoutLinear(n_in, n_out, bias=bias, p=0.4, dtype=dtype)
    x = data((batch, n_in), dtype).requires_grad_()
    g = data((batch, n_out), dtype, seed=2)
    ref_out, ref_dx, ref_dW, ref_db = _linear_reference(lin, x, g, 0.4)
    out = lin(x)
    out.backward(g)
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == torch.float32 else dict(rtol=1e-10, atol=1e-10)
    assert out.dtype == x.grad.dtype == lin.weight.grad.dtype == dtype
    np.testing.assert_allclose(out.detach().numpy(), ref_out, **tol)
    np.testing.assert_allclose(x.grad.numpy(), ref_dx, **tol)
    np.testing.assert_allclose(lin.weight.grad.numpy(), ref_dW, **tol)
    if bias:
        np.testing.assert_allclose(lin.bias.grad.numpy(), ref_db, **tol)


def test_dropout_linear_saves_the_weight_and_input_and_a_packed_mask_only():
    torch.manual_seed(0)
    lin = ct.DropoutLinear(100, 20, p=0.5)
    x = data((30, 100)).requires_grad_()
    out = lin(x)
    node = out.grad_fn
    saved = node.saved_tensors
    assert [t.data_ptr() for t in saved] == [x.data_ptr(), lin.weight.data_ptr()]   # no copies
    words = node.words                      # the packed mask, and nothing of the masked input
    assert words.dtype == np.uint64 and words.size == math.ceil(30 * 100 / 64)
    kept = [v for v in vars(node).values() if isinstance(v, (np.ndarray, torch.Tensor))]
    assert len(kept) == 1 and kept[0] is words


def test_dropout_linear_refuses_a_weight_changed_before_backward():
    lin = ct.DropoutLinear(8, 4, p=0.5)
    out = lin(data((3, 8)).requires_grad_())
    with torch.no_grad():
        lin.weight.mul_(2.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        out.sum().backward()


def test_dropout_linear_without_input_grad_and_under_no_grad():
    torch.manual_seed(1)
    lin = ct.DropoutLinear(12, 6, p=0.3, dtype=torch.float64)
    x = data((5, 12), torch.float64)            # a first layer: no dx
    g = data((5, 6), torch.float64, seed=4)
    ref_out, _, ref_dW, ref_db = _linear_reference(lin, x, g, 0.3)
    state = torch.get_rng_state()
    out = lin(x)
    out.backward(g)
    np.testing.assert_allclose(lin.weight.grad.numpy(), ref_dW, rtol=1e-10)
    np.testing.assert_allclose(lin.bias.grad.numpy(), ref_db, rtol=1e-10)
    torch.set_rng_state(state)
    with torch.no_grad():
        inferred = lin(x)
    assert inferred.grad_fn is None
    assert torch.equal(inferred, out.detach())


def test_dropout_linear_frozen_parameters_get_no_gradient():
    torch.manual_seed(2)
    lin = ct.DropoutLinear(12, 6, p=0.3, dtype=torch.float64)
    x = data((5, 12), torch.float64).requires_grad_()
    g = data((5, 6), torch.float64, seed=4)
    ref_out, ref_dx, _, _ = _linear_reference(lin, x.detach(), g, 0.3)   # reads torch's RNG state only
    lin.weight.requires_grad_(False)
    lin.bias.requires_grad_(False)
    out = lin(x)
    out.backward(g)
    assert lin.weight.grad is None and lin.bias.grad is None
    np.testing.assert_allclose(out.detach().numpy(), ref_out, rtol=1e-10)
    np.testing.assert_allclose(x.grad.numpy(), ref_dx, rtol=1e-10)


def test_dropout_linear_dtype_mix_gets_torchs_error():
    lin = ct.DropoutLinear(4, 3, dtype=torch.float64)
    with pytest.raises(RuntimeError) as ours:
        lin(torch.ones(2, 4))
    with pytest.raises(RuntimeError) as theirs:
        nn.Linear(4, 3, dtype=torch.float64)(torch.ones(2, 4))
    assert str(ours.value) == str(theirs.value)

# --- replace_dropout and mc_dropout ------------------------------------------------

def make_net():
    return nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.3),
                         nn.Sequential(nn.Linear(8, 8), nn.Dropout(0.2, inplace=True), nn.AlphaDropout(0.1)),
                         nn.Linear(8, 2))


def test_replace_dropout():
    net = make_net()
    net.eval()
    state = {k: v.clone() for k, v in net.state_dict().items()}
    out = ct.replace_dropout(net)
    assert out is net
    assert type(net[3]) is ct.Dropout and net[3].p == 0.3 and not net[3].training
    assert type(net[4][1]) is ct.Dropout and net[4][1].inplace
    assert type(net[4][2]) is nn.AlphaDropout
    assert net.state_dict().keys() == state.keys()
    assert ct.replace_dropout(net) is net     # idempotent
    assert type(ct.replace_dropout(nn.Dropout2d(0.1))) is ct.Dropout2d
    with pytest.raises(TypeError, match="model"):
        ct.replace_dropout("net")


def test_mc_dropout_keeps_batchnorm_in_eval():
    torch.manual_seed(0)
    net = ct.replace_dropout(make_net())
    net[4].append(nn.Dropout(0.5))          # torch's own dropout is switched on too
    net.train()
    net(torch.randn(16, 6))                  # some running statistics
    net[1].training = True
    stats = (net[1].running_mean.clone(), net[1].running_var.clone(), int(net[1].num_batches_tracked))
    x = torch.randn(5, 6)
    with ct.mc_dropout(net), torch.no_grad():
        assert not net[1].training and net[3].training and net[4][3].training
        samples = torch.stack([net(x) for _ in range(10)])
    assert net.training and net[1].training          # restored
    assert samples.std(0).sum() > 0                   # the passes differ
    assert torch.equal(net[1].running_mean, stats[0]) and torch.equal(net[1].running_var, stats[1])
    assert int(net[1].num_batches_tracked) == stats[2]
    with pytest.raises(KeyError), ct.mc_dropout(net):
        raise KeyError
    assert net[1].training


# --- torch.compile ----------------------------------------------------------------

def test_compiled_training_fullgraph_matches_eager():
    torch._dynamo.reset()
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), ct.Dropout(0.5), ct.DropoutLinear(16, 4, p=0.25))
    twin = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), ct.Dropout(0.5), ct.DropoutLinear(16, 4, p=0.25))
    twin.load_state_dict(net.state_dict())
    compiled = torch.compile(net, fullgraph=True)
    x, target = torch.randn(32, 8), torch.randint(0, 4, (32,))
    opt_c = torch.optim.SGD(net.parameters(), lr=0.1)
    opt_e = torch.optim.SGD(twin.parameters(), lr=0.1)
    masks = {"compiled": [], "eager": []}
    for name, model in (("compiled", net), ("eager", twin)):
        model[2].register_forward_hook(lambda m, inp, out, name=name: masks[name].append(out.detach() != 0))
    for step in range(3):
        for name, model, opt in (("compiled", compiled, opt_c), ("eager", twin, opt_e)):
            torch.manual_seed(100 + step)      # the same RNG state: the same masks
            loss = F.cross_entropy(model(x), target)
            opt.zero_grad()
            loss.backward()
            opt.step()
        torch.testing.assert_close(net[0].weight, twin[0].weight)
        torch.testing.assert_close(net[3].weight, twin[3].weight)
    assert len(masks["compiled"]) == len(masks["eager"]) == 3
    assert all(torch.equal(a, b) for a, b in zip(masks["compiled"], masks["eager"]))


def test_compiled_functional_dropout_with_an_int_seed_matches_eager():
    torch._dynamo.reset()
    x = data((6, 50)).requires_grad_()
    compiled = torch.compile(lambda t: cf.dropout(t, p=0.3, seed=1234), fullgraph=True)
    y_c, y_e = compiled(x), cf.dropout(x, p=0.3, seed=1234)
    assert torch.equal(y_c, y_e)
    g = data((6, 50), seed=9)
    assert torch.equal(torch.autograd.grad(y_c, x, g)[0], torch.autograd.grad(y_e, x, g)[0])
    other = torch.compile(lambda t: cf.dropout(t, p=0.3, seed=99), fullgraph=True)(x)
    assert torch.equal(other, cf.dropout(x, p=0.3, seed=99)) and not torch.equal(other, y_c)
