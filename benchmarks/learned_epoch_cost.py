"""What learning keep_prob costs an epoch of the demo network, beside a fixed keep_prob.

Three networks of the demo's shape (40-512-512-10, ReLU, batch 100, Adam
with ``cydrop.apps.demo.LEARN_FIT``'s learning rate and max-norm) train on
MNIST-1D in one process, interleaved: every round trains each for
``--epochs`` epochs, in an order that turns from round to round.

- ``learn every layer``: ``keep_prob="learn"`` with ``demo.LEARN_NETWORK``'s
  settings, the network of ``cydrop demo`` and of issue 27's MNIST-1D floor;
- ``learn the hidden layers``: ``[1.0, "learn", "learn"]``, the input
  features kept whole (what the input layer's learned rate costs: its
  concrete passes, and the GEMM of the gradient of its input, which only
  its p_logit needs);
- ``fixed``: ``[1.0, 0.5, 0.5]``, the Bernoulli mask of the demo's dropout
  network.

It prints, per network, the median and range over the rounds (the first
left out: first touches, route trials) of the time per epoch, and its
median ratio to the fixed network's epoch of the same round.

    python benchmarks/learned_epoch_cost.py --rounds 8

A benchmark, not a test: it asserts nothing.
"""
import argparse
import statistics
import time

NETWORKS = {"learn every layer": "learn", "learn the hidden layers": [1.0, "learn", "learn"],
            "fixed": [1.0, 0.5, 0.5]}


def main(argv=None):
    import cydrop
    from cydrop.apps import demo

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=8, help="rounds, the first not counted (default 8)")
    parser.add_argument("--epochs", type=int, default=5, help="epochs of each network per round (default 5)")
    args = parser.parse_args(argv)
    if args.rounds < 2 or args.epochs < 1:
        parser.error("--rounds must be >= 2 and --epochs >= 1")
    x, y, _, _ = demo.load_mnist1d()
    nets = {name: cydrop.MLP([40, *demo.HIDDEN, 10], keep_prob=kp, seed=0,
                             **(demo.LEARN_NETWORK if "learn" in name else {}))
            for name, kp in NETWORKS.items()}
    per_epoch = {name: [] for name in nets}
    names = list(nets)
    for r in range(args.rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            start = time.perf_counter()
            nets[name].fit(x, y, epochs=args.epochs, batch_size=100, progress=False, **demo.LEARN_FIT)
            per_epoch[name].append((time.perf_counter() - start) / args.epochs)
    fixed = per_epoch["fixed"][1:]
    print(f"ms per epoch over rounds 2-{args.rounds} of {args.epochs} epochs each, on {cydrop.get_num_threads()} "
          "thread(s): median [range]; ratio to the fixed network's epoch of the same round: median [range]")
    for name, times in per_epoch.items():
        times = times[1:]
        ratios = [t / f for t, f in zip(times, fixed)]
        print(f"{name:24s} {1e3 * statistics.median(times):7.1f} [{1e3 * min(times):.1f}-{1e3 * max(times):.1f}]"
              f"   {statistics.median(ratios):.3f} [{min(ratios):.3f}-{max(ratios):.3f}]")
    return 0


if __name__ == "__main__":
    main()
