"""``cydrop demo``: dropout against overfitting on MNIST-1D.

Trains the same network on MNIST-1D (Greydanus 2020; generated offline by the
``mnist1d`` package, 4000 train / 1000 test) with and without dropout, and
reports train and test accuracy, the generalisation gap and the time. The
paper's MLP reaches 68% test accuracy.
"""
import os
import time

import numpy as np

from ..mlp import MLP
from ._options import check_output_path

HIDDEN = [512, 512]
DEFAULT_OUT = "cydrop-demo.png"
CHECK_ROWS = 1000  # the recipe needs a sample, not the whole set: it runs many full-batch passes


def _missing(exc):
    """The message for an ImportError met while importing what the demo needs:
    the package that is really missing (mnist1d imports matplotlib, so
    without matplotlib ``import mnist1d`` fails too)."""
    package = (exc.name or "mnist1d").split(".")[0]
    if package == "mnist1d":
        return 'the demo needs the mnist1d package: pip install "cydrop[demo]"'
    return f'the demo needs {package} (the MNIST-1D generator imports it): pip install "cydrop[demo]"'


def check_dependencies(plot):
    """Import what the demo needs, so that a missing package is named before
    any work begins (ImportError)."""
    try:
        import mnist1d.data  # noqa: F401
        if plot:
            import matplotlib  # noqa: F401
    except ImportError as exc:
        raise ImportError(_missing(exc)) from None


def output_path(path):
    """The file that ``--out path`` writes, checked (ValueError naming --out).

    A folder (existing, or written with a trailing slash) gets
    ``cydrop-demo.png`` inside it; a name without an extension gets ``.png``;
    any other extension must be a format matplotlib writes.
    """
    if os.path.isdir(path) or path.endswith(("/", os.sep)):
        path = os.path.join(path, DEFAULT_OUT)
    return check_output_path(path, "--out", plot=True)


def load_mnist1d(seed=42):
    """MNIST-1D as float32 arrays (x, y, x_test, y_test), made offline."""
    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError as exc:
        raise ImportError(_missing(exc)) from None
    args = get_dataset_args()
    args.seed = seed
    data = make_dataset(args)
    return (data["x"].astype(np.float32), data["y"], data["x_test"].astype(np.float32), data["y_test"])


def train_pair(keep_prob, epochs, seed, progress=True, batch_size=100, learning_rate=1e-3):
    """Train the dropout network and its no-dropout twin; return their results."""
    x, y, x_test, y_test = load_mnist1d()  # already on a unit scale: used as is
    results = {}
    for name, kp in (("no dropout", 1.0), (f"dropout {keep_prob}", keep_prob)):
        keep = [1.0] + [kp] * len(HIDDEN)
        net = MLP([x.shape[1], *HIDDEN, 10], keep_prob=keep, seed=seed)
        start = time.perf_counter()
        history = net.fit(x, y, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
                          validation_data=(x_test, y_test), track_cost=True, progress=progress)  # the curves
        elapsed = time.perf_counter() - start
        train_acc, test_acc = net.score(x, y), net.score(x_test, y_test)
        results[name] = dict(keep_prob=keep, train=train_acc, test=test_acc, gap=train_acc - test_acc,
                             seconds=elapsed, history=history)
    return results


def print_table(results):
    print(f"{'network':<16}{'keep_prob':>18}{'train acc':>11}{'test acc':>10}{'gap':>8}{'time s':>9}")
    for name, r in results.items():
        kp = ",".join(f"{p:g}" for p in r["keep_prob"])
        print(f"{name:<16}{kp:>18}{r['train']:>11.3f}{r['test']:>10.3f}{r['gap']:>8.3f}{r['seconds']:>9.1f}")


def plot(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for (name, r), color in zip(results.items(), ("tab:red", "tab:blue")):
        epochs = np.arange(1, len(r["history"]["train_score"]) + 1)
        ax.plot(epochs, r["history"]["train_score"], "--", color=color, label=f"{name}: train")
        ax.plot(epochs, r["history"]["val_score"], "-", color=color, label=f"{name}: test")
    ax.axhline(0.68, color="gray", lw=0.8, ls=":", label="published MLP, test (68%)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy")
    ax.set_title("MNIST-1D, 40-512-512-10 MLP (cydrop)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def check_network(keep_prob, seed, iterations):
    """MLP.check on the demo network (built with ``keep_prob`` on its hidden
    layers, which the check turns off) and the first CHECK_ROWS samples."""
    x, y, _, _ = load_mnist1d()
    net = MLP([x.shape[1], *HIDDEN, 10], keep_prob=[1.0] + [keep_prob] * len(HIDDEN), seed=seed)
    return net.check(x[:CHECK_ROWS], y[:CHECK_ROWS], iterations=iterations)


def plot_check(report, path):
    """J per iteration of a CheckReport."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(range(len(report.costs)), report.costs, "o-", ms=3)
    ax.set_xlabel("iteration of full-batch gradient descent")
    ax.set_ylabel("cost J (dropout off)")
    verdict = "falls on every iteration" if report.monotonic else "does NOT fall on every iteration"
    ax.set_title(f"J {verdict}; gradient check {report.gradient_error:.1e}", fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
