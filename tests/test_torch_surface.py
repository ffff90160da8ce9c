"""cydrop.torch's surface as torch.nn's: arguments checked on every call,
outputs laid out like the input, fallbacks for the tensors torch's ops take
and cydrop's kernels do not, replace_dropout on shared modules and hooks;
and the behaviours PyTorch's own dropout tests check (test/nn/test_dropout.py
in pytorch/pytorch), each restated here for cydrop's modules."""
import itertools
import warnings

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import cydrop  # noqa: E402
import cydrop.torch as ct  # noqa: E402
from cydrop.torch import functional as cf  # noqa: E402

MODULES = {
    "Dropout": (ct.Dropout, (8, 40)),
    "Dropout1d": (ct.Dropout1d, (4, 16, 10)),
    "Dropout2d": (ct.Dropout2d, (4, 16, 3, 3)),
    "Dropout3d": (ct.Dropout3d, (2, 16, 2, 3, 3)),
    "DropoutLinear": (lambda p=0.5, inplace=False: ct.DropoutLinear(40, 6, p=p), (8, 40)),
}
FUNCTIONS = [cf.dropout, cf.dropout1d, cf.dropout2d, cf.dropout3d]


# --- p, training, seed ---------------------------------------------------------------

@pytest.mark.parametrize("bad", [-1.0, 2.0, float("nan"), float("inf"), "0.5", None, torch.tensor([0.5])])
@pytest.mark.parametrize("name", list(MODULES))
def test_p_assigned_after_construction_is_checked_on_every_forward(name, bad):
    make, shape = MODULES[name]
    m = make(0.5)
    m.p = bad
    with pytest.raises(ValueError, match="probability p"):
        m(torch.ones(shape))


@pytest.mark.parametrize("name", list(MODULES))
def test_p_assigned_after_construction_takes_effect(name):
    make, shape = MODULES[name]
    m = make(0.5)
    x = torch.rand(shape) + 1.0
    m.p = 0.0
    kept = m(x)
    m.p = 1.0
    dropped = m(x)
    if name == "DropoutLinear":
        torch.testing.assert_close(kept, F.linear(x, m.weight, m.bias))
        torch.testing.assert_close(dropped, F.linear(torch.zeros_like(x), m.weight, m.bias))
    else:
        assert torch.equal(kept, x) and torch.equal(dropped, torch.zeros_like(x))


@pytest.mark.parametrize("name", list(MODULES))
def test_p_may_be_a_zero_dim_tensor_as_in_torch(name):
    make, shape = MODULES[name]
    m = make(torch.tensor(0.25))
    assert m.p == 0.25
    m.p = torch.tensor(0.75, dtype=torch.float64)
    torch.manual_seed(0)
    y = m(torch.ones(shape))
    if name != "DropoutLinear":
        assert set(y.unique().tolist()) <= {0.0, 4.0}
    assert torch.equal(cf.dropout(torch.ones(3), torch.tensor(0)), torch.ones(3))
    nn.Dropout(torch.tensor(0.25))(torch.ones(3))       # torch takes it too


@pytest.mark.parametrize("fn", FUNCTIONS)
@pytest.mark.parametrize("training", [None, 1, "yes"])
def test_training_must_be_a_bool_as_in_torch(fn, training):
    x = torch.ones(2, 3, 4, 4)
    with pytest.raises(TypeError):
        F.dropout(x, 0.5, training)
    with pytest.raises(TypeError, match="training"):
        fn(x, 0.5, training)


def test_a_bad_seed_names_the_types_it_may_have():
    for seed in ("x", 1.5, torch.tensor(1), True):
        with pytest.raises(TypeError, match=r"seed must be None, an int .* or a cydrop\.Generator"):
            cf.dropout(torch.ones(3), 0.5, seed=seed)
    with pytest.raises(ValueError, match="seed"):
        cf.dropout(torch.ones(3), 0.5, seed=-1)
    cf.dropout(torch.ones(3), 0.5, seed=cydrop.Generator(1))


def test_dropout_linear_on_a_zero_dim_input_gets_torchs_error():
    with pytest.raises(RuntimeError) as theirs:
        nn.Linear(3, 2)(torch.tensor(1.0))
    for training in (True, False):
        with pytest.raises(RuntimeError) as ours:
            ct.DropoutLinear(3, 2).train(training)(torch.tensor(1.0))
        assert str(ours.value) == str(theirs.value)
    assert "at least 1D" in str(theirs.value)


# --- nested tensors ---------------------------------------------------------------------

def _nested():
    g = torch.Generator().manual_seed(0)
    return torch.nested.nested_tensor([torch.randn(2, 3, generator=g), torch.randn(4, 3, generator=g)])


@pytest.mark.filterwarnings("ignore:The PyTorch API of nested tensors is in prototype stage")
@pytest.mark.parametrize("ours, theirs", [
    (lambda x: ct.Dropout(0.4)(x), lambda x: nn.Dropout(0.4)(x)),
    (lambda x: cf.dropout(x, 0.4), lambda x: F.dropout(x, 0.4)),
])
def test_nested_tensors_go_to_torchs_dropout(ours, theirs):
    x = _nested()
    torch.manual_seed(3)
    a = ours(x)
    torch.manual_seed(3)
    b = theirs(x)
    assert a.is_nested
    for u, v in zip(a.unbind(), b.unbind()):
        assert torch.equal(u, v)


@pytest.mark.filterwarnings("ignore:The PyTorch API of nested tensors is in prototype stage")
def test_dropout_linear_takes_nested_tensors_as_nn_linear_does():
    torch.manual_seed(0)
    lin = ct.DropoutLinear(3, 2, p=0.4)
    x = _nested()
    torch.manual_seed(3)
    a = lin(x)
    torch.manual_seed(3)
    b = F.linear(F.dropout(x, 0.4), lin.weight, lin.bias)
    for u, v in zip(a.unbind(), b.unbind()):
        assert torch.equal(u, v)
    for u, v in zip(lin.eval()(x).unbind(), F.linear(x, lin.weight, lin.bias).unbind()):
        assert torch.equal(u, v)


# --- layouts ---------------------------------------------------------------------------------

def _inverse(perm):
    return tuple(perm.index(i) for i in range(len(perm)))


@pytest.mark.parametrize("perm", list(itertools.permutations(range(4))))
def test_output_and_gradient_are_laid_out_like_a_permuted_or_sliced_input(perm):
    """For an input that is a permutation of a contiguous tensor, sliced or
    not, out.permute(perm) is contiguous, as torch's dropout gives; the mask
    is the one of the same logical input made contiguous."""
    base = torch.randn(3, 4, 5, 6)
    for shift in [(0, 0), (1, 0), (0, 1), (1, 1)]:
        x = base.permute(perm).contiguous().permute(_inverse(perm))[shift[0]:, shift[1]:]
        y = cf.dropout(x, 0.4, seed=2)
        assert y.permute(perm).is_contiguous()
        assert torch.equal(y, cf.dropout(x.contiguous(), 0.4, seed=2))
        leaf = x.detach().clone(memory_format=torch.preserve_format).requires_grad_()
        out = cf.dropout(leaf, 0.4, seed=2)
        out.backward(torch.ones_like(out))   # a gradient laid out like out
        assert leaf.grad.permute(perm).is_contiguous()
        assert torch.equal(leaf.grad, (y != 0) / 0.6)


@pytest.mark.parametrize("name", ["Dropout", "Dropout2d"])
def test_channels_last_input_gives_channels_last_output_and_gradient(name):
    make = {"Dropout": ct.Dropout, "Dropout2d": ct.Dropout2d}[name]
    x = torch.rand(4, 6, 5, 5).contiguous(memory_format=torch.channels_last).requires_grad_()
    torch.manual_seed(0)
    y = make(0.3)(x)
    torch.manual_seed(0)
    y_contiguous = make(0.3)(x.detach().contiguous())
    assert y.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(y, y_contiguous)                  # the same logical mask
    y.backward(torch.ones_like(y))
    assert x.grad.is_contiguous(memory_format=torch.channels_last)
    # in place, and a sliced channels_last input (dense strides in its order)
    z = x.detach().clone()
    assert make(0.3, inplace=True)(z) is z and z.is_contiguous(memory_format=torch.channels_last)
    sliced = torch.ones(2, 3, 3, 6).contiguous(memory_format=torch.channels_last)[..., ::2]
    assert make(1e-10)(sliced).is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("make, shape, perm", [
    (ct.Dropout1d, (4, 6, 9), (0, 2, 1)),              # (N, L, C) in memory
    (ct.Dropout2d, (4, 6, 5, 3), (0, 2, 3, 1)),        # channels_last
    (ct.Dropout2d, (4, 6, 5, 3), (1, 0, 2, 3)),        # C before N in memory: the mask's order differs
    (ct.Dropout3d, (2, 6, 3, 4, 5), (0, 2, 3, 4, 1)),  # channels_last_3d
    (ct.Dropout3d, (6, 3, 4, 5), (1, 2, 3, 0)),        # unbatched, channels last
])
def test_channel_dropout_of_any_layout_draws_the_mask_of_the_contiguous_input(make, shape, perm):
    inverse = _inverse(perm)
    x = torch.rand(shape).permute(perm).contiguous().permute(inverse).requires_grad_()
    torch.manual_seed(4)
    y = make(0.5)(x)
    torch.manual_seed(4)
    y_contiguous = make(0.5)(x.detach().contiguous())
    assert torch.equal(y, y_contiguous) and y.permute(perm).is_contiguous()
    g = torch.rand(shape).permute(perm).contiguous().permute(inverse)
    y.backward(g)
    assert torch.equal(x.grad, torch.where(y_contiguous != 0, g / 0.5, 0.0))
    assert x.grad.permute(perm).is_contiguous()


# --- replace_dropout ---------------------------------------------------------------------------

def test_replace_dropout_keeps_a_module_registered_twice_one_object():
    linear, shared = nn.Linear(4, 4), nn.Dropout(0.3)
    model = nn.Sequential(linear, shared, linear, shared)
    other = nn.Sequential(nn.Linear(4, 4), shared)       # shared with another parent too
    outer = nn.ModuleDict({"a": model, "b": other})
    ct.replace_dropout(outer)
    assert type(model[1]) is ct.Dropout and model[1] is model[3] is other[1]
    assert model[1].p == 0.3


def test_replace_dropout_carries_hooks_over():
    calls = []
    old = nn.Dropout(0.5)
    model = nn.Sequential(nn.Linear(3, 3), old)
    old.register_forward_pre_hook(lambda m, args: calls.append(("pre", type(m))))
    handle = old.register_forward_hook(lambda m, args, out: calls.append(("post", type(m))))
    old.register_forward_hook(lambda m, args, kwargs, out: calls.append(("kwargs", type(m))), with_kwargs=True)
    ct.replace_dropout(model)
    model(torch.ones(2, 3))
    assert calls == [("pre", ct.Dropout), ("post", ct.Dropout), ("kwargs", ct.Dropout)]
    handle.remove()                                     # the user's handle still removes its hook
    calls.clear()
    model(torch.ones(2, 3))
    assert calls == [("pre", ct.Dropout), ("kwargs", ct.Dropout)]
    lone = nn.Dropout(0.5)
    lone.register_forward_hook(lambda m, args, out: calls.append("lone"))
    ct.replace_dropout(lone)(torch.ones(2))
    assert calls[-1] == "lone"


# --- what PyTorch's test/nn/test_dropout.py checks ---------------------------------------------

@pytest.mark.parametrize("make", [ct.Dropout, ct.Dropout1d, ct.Dropout2d, ct.Dropout3d])
@pytest.mark.parametrize("p", [-0.1, 1.1])
def test_p_outside_0_1_is_refused_when_built(make, p):
    with pytest.raises(ValueError):
        make(p)


@pytest.mark.parametrize("name, memory_format", [
    ("Dropout", torch.contiguous_format), ("Dropout1d", torch.contiguous_format),
    ("Dropout2d", torch.contiguous_format), ("Dropout2d", torch.channels_last), ("Dropout3d", torch.contiguous_format),
])
def test_output_and_gradient_means_are_kept_and_eval_is_the_identity(name, memory_format):
    """Input filled with 1 - p: the output's mean and the gradient's stay
    near 1 - p (one mask bit per element or per channel, over 1000
    channels); inplace on a non-leaf too; in eval mode the input passes
    unchanged."""
    make = {"Dropout": ct.Dropout, "Dropout1d": ct.Dropout1d, "Dropout2d": ct.Dropout2d,
            "Dropout3d": ct.Dropout3d}[name]
    shape = {"Dropout": (1000,), "Dropout1d": (100, 10, 7), "Dropout2d": (1000, 2, 3, 3),
             "Dropout3d": (1000, 2, 2, 3, 3)}[name]
    torch.manual_seed(0)        # statistical bounds: fixed masks, no flaky run
    p = 0.2
    x = torch.full(shape, 1 - p)
    for inplace in (False, True):
        leaf = x.clone(memory_format=memory_format).requires_grad_()
        out = make(p, inplace)(leaf + 0 if inplace else leaf)
        assert out.is_contiguous(memory_format=memory_format)
        assert abs(out.mean().item() - (1 - p)) < 0.05
        out.backward(x)
        assert leaf.grad.is_contiguous(memory_format=memory_format)
        assert abs(leaf.grad.mean().item() - (1 - p)) < 0.05
    for inplace in (True, False):
        assert torch.equal(make(p, inplace).eval()(x), torch.full(shape, 1 - p))
    assert f"p={p}" in repr(make(p))


@pytest.mark.parametrize("make", [ct.Dropout, ct.Dropout2d, ct.Dropout3d])
@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_a_discontiguous_input_keeps_its_values_at_p_0_and_near_0(make, memory_format):
    for p in (0.0, 1e-10):
        x = torch.empty(2, 3, 3, 6, memory_format=memory_format)[..., ::2]
        x.copy_(torch.ones(2, 3, 3, 3))
        out = make(p)(x)
        if p:
            assert out.is_contiguous(memory_format=memory_format)
        assert torch.equal(out, x)


@pytest.mark.parametrize("p", [0.3, 0.5, 0.7])
def test_permuted_inputs_keep_their_mean_and_are_changed(p):
    """All 24 layouts of a (2, 3, 4, 5) tensor of ones: the output laid out
    alike, changed, its mean near 1 (over the 24 x 120 elements: binomial
    sd 0.03 at p = 0.7); at p = 1e-10 the input's values."""
    torch.manual_seed(0)
    x = torch.ones(2, 3, 4, 5)
    means = []
    for perm in itertools.permutations(range(4)):
        permuted = x.permute(perm).contiguous().permute(_inverse(perm))
        out = ct.Dropout(p)(permuted)
        assert out.permute(perm).is_contiguous()
        assert not torch.equal(out, permuted)
        means.append(out.mean().item())
        assert torch.equal(ct.Dropout(1e-10)(permuted), permuted)
    assert abs(sum(means) / len(means) - 1.0) < 0.15


@pytest.mark.parametrize("make, shape", [
    (ct.Dropout1d, (10, 4, 2)), (ct.Dropout2d, (10, 4, 2, 2)), (ct.Dropout3d, (10, 4, 2, 2, 2)),
])
@pytest.mark.parametrize("inplace", [False, True])
def test_channel_dropout_zeroes_whole_channels(make, shape, inplace):
    torch.manual_seed(0)
    out = make(0.5, inplace)(torch.ones(shape))
    per_channel = out.flatten(2).count_nonzero(dim=2)
    channel_size = out[0, 0].numel()
    assert ((per_channel == 0) | (per_channel == channel_size)).all()
    assert (per_channel == 0).any() and (per_channel == channel_size).any()


def test_channel_dropout_ranks_raise_and_warn_as_torch():
    with pytest.raises(RuntimeError, match="Expected 2D or 3D input, but received a 4D input"):
        ct.Dropout1d(0.5)(torch.rand(1, 2, 2, 2))
    with pytest.raises(RuntimeError, match="Expected 2D or 3D input, but received a 1D input"):
        ct.Dropout1d(0.5)(torch.rand(2))
    for make, shape, message in [
        (ct.Dropout2d, (1, 2, 2, 2, 2), "Received a 5-D input to dropout2d"),
        (ct.Dropout2d, (1, 2), "Received a 2-D input to dropout2d"),
        (ct.Dropout2d, (1, 2, 2), "assuming that channel-wise 1D dropout behavior is desired"),
        (ct.Dropout3d, (1, 2, 2, 2, 2, 2), "Received a 6-D input to dropout3d"),
        (ct.Dropout3d, (1, 2, 2), "Received a 3-D input to dropout3d"),
    ]:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            make(0.5)(torch.rand(shape))
        assert any(message in str(w.message) for w in caught), message


def test_bfloat16_input_goes_to_torch_and_keeps_its_mean():
    torch.manual_seed(0)
    x = torch.full((1000,), 0.8, dtype=torch.bfloat16)
    leaf = x.clone().requires_grad_()
    out = ct.Dropout(0.2)(leaf)
    assert out.dtype == torch.bfloat16 and abs(out.float().mean().item() - 0.8) < 0.05
    out.backward(x)
    assert abs(leaf.grad.float().mean().item() - 0.8) < 0.05


def test_an_empty_input_gives_an_empty_output():
    x = torch.tensor([])
    assert cf.dropout(x).shape == x.shape and ct.Dropout()(x).shape == x.shape
