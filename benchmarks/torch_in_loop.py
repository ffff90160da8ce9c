"""What cydrop.torch.Dropout's kernel calls cost inside a training loop, beside the same calls alone.

Run: ``python benchmarks/torch_in_loop.py``. Trains the demo network
(``replace_dropout``, as the ``torch-epoch`` benchmark group does) for a few
epochs with the two kernel wrappers of ``cydrop.torch._kernels`` timed at
each call, then times the same wrappers in a loop of their own on a tensor
of the same shape. A diagnostic, not a benchmark: it prints, asserts nothing.
"""
import time
import timeit

import torch

import cydrop.torch._kernels as K
from cydrop.apps.bench import baselines as bl
from cydrop.apps.bench.cases import MLP_BATCH, MLP_KEEP_PROB, MLP_LR, _torch_demo

EPOCHS = 4


def timed(fn, slot, acc):
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        out = fn(*args, **kwargs)
        acc[slot] = acc.get(slot, 0.0) + time.perf_counter() - start
        acc[slot + " calls"] = acc.get(slot + " calls", 0) + 1
        return out
    return wrapper


def main():
    x_t, y_t, params = _torch_demo(torch)
    torch.manual_seed(0)
    model = bl.torch_demo_model(torch, params, MLP_KEEP_PROB, "replace")
    optimizer = bl.torch_mlp_optimizer(torch, model, MLP_LR)
    order = torch.Generator().manual_seed(11)
    forward, apply_mask = K.dropout_forward, K.apply_mask
    for epoch in range(EPOCHS):
        acc = {}
        K.dropout_forward, K.apply_mask = timed(forward, "forward", acc), timed(apply_mask, "backward", acc)
        try:
            start = time.perf_counter()
            bl.torch_mlp_train(torch, model, optimizer, x_t, y_t, order, epochs=1, batch_size=MLP_BATCH)
            seconds = time.perf_counter() - start
        finally:
            K.dropout_forward, K.apply_mask = forward, apply_mask
        print(f"in the loop, epoch {epoch} ({seconds * 1e3:.1f} ms): forward {acc['forward'] / acc['forward calls'] * 1e6:.1f} us, "
              f"backward {acc['backward'] / acc['backward calls'] * 1e6:.1f} us a call")
    x = torch.randn(MLP_BATCH, 512)
    y, words = forward(x, 0.5, 1, 0, [])
    for name, fn in (("forward", lambda: forward(x, 0.5, 1, 0, [])),
                     ("backward", lambda: apply_mask(x, words, 0.5, []))):
        best = min(timeit.repeat(fn, number=1000, repeat=5)) / 1000
        print(f"alone: {name} {best * 1e6:.1f} us a call ({MLP_BATCH}x512)")


if __name__ == "__main__":
    main()
