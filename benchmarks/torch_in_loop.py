"""What cydrop.torch costs inside a training loop: a diagnostic, not a benchmark (it prints, asserts nothing).

Run: ``python benchmarks/torch_in_loop.py [--epochs N]``. Three parts:

1. Steps side by side. The demo network is built once per way of doing its
   dropout (``baselines.TORCH_DEMO_KINDS``: nn.Dropout, replace_dropout,
   DropoutLinear, and the floors nn.Identity, a copying autograd Function
   and the C++ op ``x * 2.0``). For each batch, every variant takes one
   training step, in a shuffled order, and the forward, backward and
   optimizer parts of each step are timed. Pairing the variants step by
   step lets a slow spell of the shared machine fall on all of them alike,
   so the differences against nn.Identity (what each way of dropping out
   adds to a step) are steadier than epoch times taken apart.
2. The kernel wrappers of ``cydrop.torch._kernels`` timed at each call
   within ``replace_dropout`` epochs, then in a loop of their own on a
   tensor of the same shape.
3. Single calls (an empty Python call, ``tensor.numpy()``,
   ``torch.from_numpy``, the draw of a call's key from torch's generator,
   the forward kernel wrapper) timed once right after
   each step's ``backward()`` in the nn.Identity network's training, one
   kind of call per step, then in a loop of their own: why the wrappers
   cost more in part 2's loop than alone, and why cydrop.torch keeps the
   Python calls per step few.
"""
import argparse
import time
import timeit

import numpy as np
import torch

import cydrop.torch._kernels as K
from cydrop.torch._keys import Drawn, call_key
from cydrop.apps.bench import baselines as bl
from cydrop.apps.bench.cases import MLP_BATCH, MLP_KEEP_PROB, MLP_LR, _torch_demo

KINDS = list(bl.TORCH_DEMO_KINDS)
PARTS = ("forward", "backward", "optimizer", "step")


def steps_side_by_side(epochs):
    """Per variant, the per-step times of each part (ns), paired step by step."""
    x_t, y_t, params = _torch_demo(torch)
    variants = {}
    for kind in KINDS:
        torch.manual_seed(0)
        model = bl.torch_demo_model(torch, params, MLP_KEEP_PROB, kind)
        variants[kind] = model, bl.torch_mlp_optimizer(torch, model, MLP_LR)
    loss_fn = torch.nn.CrossEntropyLoss()
    times = {kind: {part: [] for part in PARTS} for kind in KINDS}
    batches, shuffle = torch.Generator().manual_seed(11), np.random.default_rng(1)
    clock = time.perf_counter_ns
    for epoch in range(epochs + 1):   # the first epoch warms up, untimed
        order = torch.randperm(x_t.shape[0], generator=batches)
        for start in range(0, x_t.shape[0], MLP_BATCH):
            idx = order[start:start + MLP_BATCH]
            xb, yb = x_t[idx], y_t[idx]
            for kind in shuffle.permutation(KINDS):
                model, optimizer = variants[kind]
                t0 = clock()
                optimizer.zero_grad()
                loss = loss_fn(model(xb), yb)
                t1 = clock()
                loss.backward()
                t2 = clock()
                optimizer.step()
                loss.item()
                t3 = clock()
                if epoch:
                    for part, ns in zip(PARTS, (t1 - t0, t2 - t1, t3 - t2, t3 - t0)):
                        times[kind][part].append(ns)
    return times


def report_steps(times):
    base, nn = np.asarray(times["identity"]["step"]), np.asarray(times["nn"]["step"])
    print(f"Steps side by side, {len(base)} steps each (us; in brackets the median difference from nn.Identity):")
    for kind in KINDS:
        cells = []
        for part in PARTS:
            t = np.asarray(times[kind][part])
            cells.append(f"{part} {np.median(t) / 1e3:6.0f} ({np.median(t - np.asarray(times['identity'][part])) / 1e3:+5.0f})")
        ratio = np.median(nn / np.asarray(times[kind]["step"]))
        print(f"  {kind:8s} " + "  ".join(cells) + f"   nn.Dropout / this, per step: {ratio:.3f}")
    for kind in KINDS:
        print(f"  {kind:8s} {bl.TORCH_DEMO_KINDS[kind]}")


def timed(fn, slot, acc):
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        out = fn(*args, **kwargs)
        acc[slot] = acc.get(slot, 0.0) + time.perf_counter() - start
        acc[slot + " calls"] = acc.get(slot + " calls", 0) + 1
        return out
    return wrapper


def kernel_calls(epochs):
    x_t, y_t, params = _torch_demo(torch)
    torch.manual_seed(0)
    model = bl.torch_demo_model(torch, params, MLP_KEEP_PROB, "replace")
    optimizer = bl.torch_mlp_optimizer(torch, model, MLP_LR)
    order = torch.Generator().manual_seed(11)
    forward, apply_mask = K.dropout_forward, K.apply_mask
    print("Kernel wrappers within replace_dropout epochs:")
    for epoch in range(epochs):
        acc = {}
        K.dropout_forward, K.apply_mask = timed(forward, "forward", acc), timed(apply_mask, "backward", acc)
        try:
            start = time.perf_counter()
            bl.torch_mlp_train(torch, model, optimizer, x_t, y_t, order, epochs=1, batch_size=MLP_BATCH)
            seconds = time.perf_counter() - start
        finally:
            K.dropout_forward, K.apply_mask = forward, apply_mask
        print(f"  in the loop, epoch {epoch} ({seconds * 1e3:.1f} ms): forward "
              f"{acc['forward'] / acc['forward calls'] * 1e6:.1f} us, "
              f"backward {acc['backward'] / acc['backward calls'] * 1e6:.1f} us a call")
    x = torch.randn(MLP_BATCH, 512)
    y, words = forward(x, 0.5, [], Drawn(1, 0))
    for name, fn in (("forward", lambda: forward(x, 0.5, [], Drawn(1, 0))),
                     ("backward", lambda: apply_mask(x, words, 0.5, []))):
        best = min(timeit.repeat(fn, number=1000, repeat=5)) / 1000
        print(f"  alone: {name} {best * 1e6:.1f} us a call ({MLP_BATCH}x512)")


def single_calls(epochs):
    """Prints the median time of each call timed once right after a step's backward(), and alone."""
    x = torch.randn(MLP_BATCH, 512)
    x_np = x.numpy()
    calls = {
        "empty Python call": lambda: None,
        "tensor.numpy()": x.numpy,
        "torch.from_numpy(array)": lambda: torch.from_numpy(x_np),
        "key from torch's generator": call_key,
        "kernel wrapper, forward": lambda: K.dropout_forward(x, 0.5, [], Drawn(1, 0)),
    }
    x_t, y_t, params = _torch_demo(torch)
    torch.manual_seed(0)
    model = bl.torch_demo_model(torch, params, MLP_KEEP_PROB, "identity")
    optimizer = bl.torch_mlp_optimizer(torch, model, MLP_LR)
    loss_fn = torch.nn.CrossEntropyLoss()
    batches, clock, names = torch.Generator().manual_seed(11), time.perf_counter_ns, list(calls)
    after = {name: [] for name in names}
    step = 0
    for _ in range(epochs):
        order = torch.randperm(x_t.shape[0], generator=batches)
        for start in range(0, x_t.shape[0], MLP_BATCH):
            idx = order[start:start + MLP_BATCH]
            optimizer.zero_grad()
            loss_fn(model(x_t[idx]), y_t[idx]).backward()
            name = names[step % len(names)]   # one kind of call a step, in turn
            t0 = clock()
            calls[name]()
            after[name].append(clock() - t0)
            optimizer.step()
            step += 1
    print(f"Single calls right after backward() ({epochs} epochs of the nn.Identity network; median), "
          "and in a loop of their own (the best of five loops of 1000):")
    for name in names:
        alone = min(timeit.repeat(calls[name], number=1000, repeat=5)) / 1000 * 1e9
        print(f"  {name:26s} after backward() {np.median(after[name]) / 1e3:6.1f} us   alone {alone / 1e3:6.2f} us")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=8, help="timed epochs of the side-by-side steps (default 8)")
    args = parser.parse_args()
    report_steps(steps_side_by_side(args.epochs))
    kernel_calls(4)
    single_calls(args.epochs)


if __name__ == "__main__":
    main()
