"""cydrop bench's torch group: present with torch, absent without, each
case passing its own result check."""
import pytest

torch = pytest.importorskip("torch")
from cydrop.apps.bench import cases  # noqa: E402


def test_torch_group_tags():
    quick = [tag for tag, _ in cases.build_groups(False, torch)]
    full = [tag for tag, _ in cases.build_groups(True, torch)]
    for tag in ("torch-dropout-forward-1024x4096", "torch-dropout-fwdbwd-1024x4096", "torch-epoch-replace",
                "torch-epoch-linear", "torch-mc", "torch-linear"):
        assert tag in quick and tag in full
    assert "torch-dropout-fwdbwd-64x784" in full
    assert not any(tag.startswith("torch") for tag, _ in cases.build_groups(True, "no torch"))


@pytest.mark.parametrize("builder", [
    lambda: cases.torch_dropout(torch, (64, 784), False),
    lambda: cases.torch_dropout(torch, (64, 784), True),
    lambda: cases.torch_linear(torch, batch=8, n=32),
    lambda: cases.torch_mc(torch),
])
def test_every_torch_case_passes_its_own_check(builder):
    group = builder()
    assert {impl.name for impl in group.impls} >= {"cydrop", "torch"}
    for impl in group.impls:
        impl.check(impl.fn())


def test_epoch_groups_carry_their_floors():
    for kind in ("replace", "linear"):
        names = [impl.name for impl in cases.torch_epoch(torch, kind).impls]
        assert names == ["cydrop", "floor", "op_floor", "copy_floor", "torch"]


def test_op_floor_is_a_product_with_autograd_in_cpp():
    from cydrop.apps.bench import baselines as bl

    m = bl.torch_scale_module(torch)
    x = torch.randn(4, 5, requires_grad=True)
    g = torch.randn(4, 5)
    y = m(x)
    y.backward(g)
    assert type(y.grad_fn).__name__ == "MulBackward0"      # torch's own node, no Python Function
    assert torch.equal(y, x * 2) and torch.equal(x.grad, g * 2)


def test_copy_floor_copies_forward_and_passes_the_gradient_back():
    from cydrop.apps.bench import baselines as bl

    m = bl.torch_copy_module(torch)
    x = torch.randn(4, 5, requires_grad=True)
    g = torch.randn(4, 5)
    y = m(x)
    y.backward(g)
    assert torch.equal(y, x) and y.data_ptr() != x.data_ptr()   # a copy, not a view
    assert torch.equal(x.grad, g) and x.grad.data_ptr() != g.data_ptr()
