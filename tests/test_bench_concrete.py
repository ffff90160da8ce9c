"""cydrop bench's concrete dropout groups: each case checks its own result,
and the groups are there to select."""
import numpy as np
import pytest

from cydrop.apps.bench import cases


def test_concrete_groups_are_built_and_selected_by_their_tag():
    quick = [tag for tag, _ in cases.build_groups(False, "no torch")]
    full = [tag for tag, _ in cases.build_groups(True, "no torch")]
    assert {"concrete-forward-float32-1024x4096", "concrete-backward-float32-1024x4096"} <= set(quick)
    assert {"concrete-forward-float64-256x1024", "concrete-backward-float64-1024x4096"} <= set(full)
    assert not any("concrete-torch" in tag for tag in full)       # not without torch


@pytest.mark.parametrize("builder", [
    lambda: cases.concrete_forward((64, 300), np.float32),
    lambda: cases.concrete_backward((64, 300), np.float64),
])
def test_every_concrete_implementation_passes_its_own_check(builder):
    group = builder()
    assert [impl.name for impl in group.impls] == ["cydrop", "floor", "numpy"]
    for impl in group.impls:
        impl.check(impl.fn())


def test_the_concrete_checks_catch_a_wrong_scale():
    group = cases.concrete_forward((64, 300), np.float32)
    y, _ = group.impls[0].fn()
    with pytest.raises(AssertionError, match="factor"):
        group.impls[0].check((y * 2, None))


def test_torch_concrete_group_runs_both_modules():
    torch = pytest.importorskip("torch")
    group = cases.concrete_torch(torch, (32, 200))
    assert [impl.name for impl in group.impls] == ["cydrop", "torch"]
    for impl in group.impls:
        result = impl.fn()
        impl.check(result)
        assert result[2] is not None and result[2].numel() in (0, 1)     # the p_logit gradient
