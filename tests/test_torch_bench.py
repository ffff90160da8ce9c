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


@pytest.mark.parametrize("kind, factor, python_node", [("copy", 1, True), ("scale", 2, False)])
def test_epoch_stand_ins_compute_what_they_claim(kind, factor, python_node):
    """copy_floor: a Python autograd Function copying both ways; op_floor:
    torch's own x * 2.0, its backward node in C++."""
    from cydrop.apps.bench import baselines as bl

    m = {"copy": bl.torch_copy_module, "scale": bl.torch_scale_module}[kind](torch)
    x = torch.randn(4, 5, requires_grad=True)
    g = torch.randn(4, 5)
    y = m(x)
    y.backward(g)
    assert isinstance(y.grad_fn, torch.autograd.function.BackwardCFunction) == python_node
    assert torch.equal(y, x * factor) and y.data_ptr() != x.data_ptr()   # new tensors, not views
    assert torch.equal(x.grad, g * factor) and x.grad.data_ptr() != g.data_ptr()
