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
