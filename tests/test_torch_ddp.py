"""cydrop.torch under DistributedDataParallel: gloo, 2 processes on
127.0.0.1, started here with torch.multiprocessing and a bounded timeout."""
import os
import socket

import pytest

torch = pytest.importorskip("torch")
import torch.distributed as dist  # noqa: E402
import torch.multiprocessing as mp  # noqa: E402

WORLD = 2
TIMEOUT_S = 120


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _train(rank, port, out_path):
    """One rank: one DDP step (the rank enters the key of each call's mask);
    then the same again from the same seed (the rerun); save masks and
    gradients of both runs. The model is built before init_process_group:
    the rank is read when the masks are drawn, not when modules are built."""
    import datetime

    from torch import nn
    from torch.nn.parallel import DistributedDataParallel

    import cydrop.torch as ct

    def build():
        torch.manual_seed(0)     # the same seed on every rank, and for the rerun
        return nn.Sequential(nn.Linear(8, 32), nn.ReLU(), ct.Dropout(0.5), ct.DropoutLinear(32, 4, p=0.25))

    models = [build(), build()]
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=WORLD, timeout=datetime.timedelta(seconds=60))
    try:
        runs = []
        for model in models:
            torch.manual_seed(1)     # the same RNG state on every rank, and for the rerun
            masks = []
            model[2].register_forward_hook(lambda m, inp, out: masks.append(out.detach() != 0))
            ddp = DistributedDataParallel(model)
            x = torch.ones(16, 8)    # the same batch on every rank: only the masks differ
            loss = ddp(x).square().sum()
            loss.backward()
            runs.append({"mask": masks[0], "loss": loss.detach(),
                         "grads": {name: p.grad.clone() for name, p in model.named_parameters()}})
            # The DDP wrapper goes while the process group is still registered: the
            # wrapper's reducer, freed with the GIL held, would otherwise drop the
            # group's last reference, and the group's destructor joins gloo's worker
            # threads, one of which may need the GIL to free a finished work: a hang
            # at exit (one run in five here; py-spy showed the two threads waiting
            # on each other).
            del ddp
        torch.save(runs, out_path)
        dist.barrier()
    finally:
        dist.destroy_process_group()


def _run(tmp_path):
    port = _free_port()
    ctx = mp.get_context("spawn")
    paths = [tmp_path / f"rank{r}.pt" for r in range(WORLD)]
    procs = [ctx.Process(target=_train, args=(r, port, str(paths[r]))) for r in range(WORLD)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(TIMEOUT_S)
    alive = [p for p in procs if p.is_alive()]
    for p in alive:
        p.terminate()
        p.join(10)
    assert not alive, f"DDP ranks still running after {TIMEOUT_S} s"
    assert all(p.exitcode == 0 for p in procs), [p.exitcode for p in procs]
    return [torch.load(path) for path in paths]


@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="no gloo backend")
def test_ddp_ranks_draw_their_own_masks_reproducibly(tmp_path):
    (r0, r0_again), (r1, r1_again) = _run(tmp_path)
    first, again = (r0, r1), (r0_again, r1_again)
    # the same RNG state on both ranks, the rank mixed into each key: different masks and local losses
    assert not torch.equal(r0["mask"], r1["mask"])
    assert not torch.equal(r0["loss"], r1["loss"])
    # gradients all-reduced: equal on both ranks although their masks differ
    for name in r0["grads"]:
        torch.testing.assert_close(r0["grads"][name], r1["grads"][name])
    # the same seed reproduces every rank's masks and gradients
    for a, b in zip(first, again):
        assert torch.equal(a["mask"], b["mask"])
        for name in a["grads"]:
            assert torch.equal(a["grads"][name], b["grads"][name])
