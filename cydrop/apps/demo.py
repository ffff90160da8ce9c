"""``cydrop demo``: dropout against overfitting on MNIST-1D.

Trains the same network on MNIST-1D (Greydanus 2020; generated offline by the
``mnist1d`` package, 4000 train / 1000 test) without dropout, with a fixed
keep_prob, and with every layer's keep_prob learned (Concrete dropout), and
reports train and test accuracy, the generalisation gap and the time. The
paper's MLP reaches 68% test accuracy. The learned keep probabilities are
checked against the lecture's rule of thumb (:func:`rule_of_thumb`).
"""
import os
import time

import numpy as np

from .._validation import check_keep_prob, check_real
from ..mlp import MLP
from ._options import check_output_path

HIDDEN = [512, 512]
DEFAULT_OUT = "cydrop-demo.png"
CHECK_ROWS = 1000  # the recipe needs a sample, not the whole set: it runs many full-batch passes

# The network that learns its keep_prob. Its settings were chosen on a
# validation split of the training rows (the first 3200 to train, the last
# 800 to score, never the test rows) by `python benchmarks/learn_vs_search.py
# --tune`, its result in benchmarks/results/search/learn-tuning.json: the
# fewest epochs within one standard error of the best validation accuracy.
# Every layer starts at 0.5 and its rate rises to what the data supports.
# MLP's own defaults (a start at 0.9, lengthscale 0.01, learning rate 1e-3)
# scored lowest of the candidates. benchmarks/learn_vs_search.py measures
# this fit against `cydrop search`.
LEARN_NAME = "learned keep_prob"
LEARN_NETWORK = dict(init_keep_prob=0.5, temperature=0.1, lengthscale=1.0)
LEARN_FIT = dict(learning_rate=5e-3, max_norm=3.0)
LEARN_EPOCHS = 40

# The lecture's rule of thumb, made a test (rule_of_thumb): the input layer
# keeps at least RULE_INPUT_KEEP, and every hidden layer (all of the demo's
# are large, 512 units) keeps at least RULE_MARGIN less than the input.
RULE_INPUT_KEEP = 0.9
RULE_MARGIN = 0.02


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


def learned_network(seed):
    """The demo network with every layer's keep_prob learned (LEARN_NETWORK's settings)."""
    return MLP([40, *HIDDEN, 10], keep_prob="learn", seed=seed, **LEARN_NETWORK)


def _train(net, data, epochs, batch_size, progress, **fit):
    x, y, x_test, y_test = data
    start = time.perf_counter()
    history = net.fit(x, y, epochs=epochs, batch_size=batch_size, validation_data=(x_test, y_test),
                      track_cost=True, progress=progress, **fit)  # the curves
    elapsed = time.perf_counter() - start
    train_acc, test_acc = net.score(x, y), net.score(x_test, y_test)
    return dict(train=train_acc, test=test_acc, gap=train_acc - test_acc, seconds=elapsed, epochs=epochs,
                history=history)


def train_networks(keep_prob, epochs, seed, progress=True, learn_epochs=LEARN_EPOCHS, batch_size=100,
                   learning_rate=1e-3):
    """Train the demo network without dropout, with ``keep_prob`` on its
    hidden layers, and (unless ``learn_epochs`` is 0) learning every
    layer's keep_prob for ``learn_epochs`` epochs; return their results by
    name (the learned network's ``keep_prob`` is what it learned)."""
    data = load_mnist1d()  # already on a unit scale: used as is
    results = {}
    for name, kp in (("no dropout", 1.0), (f"dropout {keep_prob}", keep_prob)):
        keep = [1.0] + [kp] * len(HIDDEN)
        net = MLP([data[0].shape[1], *HIDDEN, 10], keep_prob=keep, seed=seed)
        results[name] = dict(keep_prob=keep, **_train(net, data, epochs, batch_size, progress,
                                                     learning_rate=learning_rate))
    if learn_epochs:
        net = learned_network(seed)
        result = _train(net, data, learn_epochs, batch_size, progress, **LEARN_FIT)
        results[LEARN_NAME] = dict(keep_prob=list(net.keep_prob_), **result)
    return results


def rule_of_thumb(keep_prob, input_keep=RULE_INPUT_KEEP, margin=RULE_MARGIN):
    """Whether per-layer keep probabilities follow the lecture's rule of thumb.

    The rule: the input layer keeps near 1.0 and large hidden layers keep
    less. As a test: ``keep_prob[0] >= input_keep`` and, for every hidden
    layer i, ``keep_prob[i] <= keep_prob[0] - margin`` (the margin keeps a
    difference of round-off size from counting).

    Parameters
    ----------
    keep_prob : sequence of float, length >= 2
        One keep probability per dense layer, the input layer first (as
        :attr:`cydrop.MLP.keep_prob_`).
    input_keep : float, default RULE_INPUT_KEEP (0.9)
        The least keep probability of the input layer that counts as near 1.0.
    margin : float >= 0, default RULE_MARGIN (0.02)
        How much less than the input layer every hidden layer must keep.

    Returns
    -------
    holds : bool
    statement : str
        One sentence saying whether the rule holds, with the values that
        decide it.

    Raises
    ------
    ValueError
        ``keep_prob`` has fewer than 2 entries, or an entry outside (0, 1];
        ``input_keep`` outside (0, 1]; ``margin`` outside [0, 1].
    TypeError
        An entry, ``input_keep`` or ``margin`` is not a real number.

    Examples
    --------
    >>> rule_of_thumb([0.99, 0.84, 0.88])[0]
    True
    >>> holds, statement = rule_of_thumb([0.99, 0.995, 0.88])
    >>> holds, statement.split(": ")[-1]
    (False, 'hidden layer 1 keeps 0.995, more than 0.99 - 0.02')
    """
    keep = [check_keep_prob(p, f"keep_prob[{i}]") for i, p in enumerate(keep_prob)]
    if len(keep) < 2:
        raise ValueError(f"keep_prob needs the input layer and at least one hidden layer, got {len(keep)} value(s)")
    input_keep = check_keep_prob(input_keep, "input_keep")
    margin = check_real(margin, "margin", 0.0, 1.0, low_open=False, high_open=False)
    rule = f"input >= {input_keep:g}, every hidden layer at least {margin:g} below it"
    first, hidden = keep[0], keep[1:]
    reasons = [] if first >= input_keep else [f"the input layer keeps {first:.3g}, less than {input_keep:g}"]
    reasons += [f"hidden layer {i} keeps {p:.3g}, more than {first:.3g} - {margin:g}"
                for i, p in enumerate(hidden, 1) if p > first - margin]
    if reasons:
        return False, (f"the learned keep_prob do not reproduce the lecture's rule of thumb ({rule}): "
                       + "; ".join(reasons))
    return True, (f"the learned keep_prob reproduce the lecture's rule of thumb ({rule}): the input layer "
                  f"keeps {first:.3g}, the hidden layers {', '.join(f'{p:.3g}' for p in hidden)}")


def _format_keep_prob(keep_prob):
    # two decimals at most: a learned value's further digits are noise of the run
    return ",".join(f"{round(p, 2):g}" for p in keep_prob)


def _layer_names():
    return ["input"] + [f"hidden {i} ({n} units)" for i, n in enumerate(HIDDEN, 1)]


def print_table(results):
    """The table of :func:`train_networks`'s results, then the learned
    keep_prob per layer and :func:`rule_of_thumb`'s statement on them."""
    print(f"{'network':<19}{'keep_prob':>16}{'epochs':>8}{'train acc':>11}{'test acc':>10}{'gap':>8}{'time s':>9}")
    for name, r in results.items():
        print(f"{name:<19}{_format_keep_prob(r['keep_prob']):>16}{r['epochs']:>8}{r['train']:>11.3f}"
              f"{r['test']:>10.3f}{r['gap']:>8.3f}{r['seconds']:>9.1f}")
    if LEARN_NAME in results:
        keep = results[LEARN_NAME]["keep_prob"]
        per_layer = ", ".join(f"{layer} {p:.3f}" for layer, p in zip(_layer_names(), keep))
        print(f"\nlearned keep_prob per layer (from {LEARN_NETWORK['init_keep_prob']:g}): {per_layer}")
        print(rule_of_thumb(keep)[1])


def plot(results, path):
    """Train and test accuracy per epoch of each network; beside them, the
    learned network's keep_prob per layer per epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    learned = results.get(LEARN_NAME)
    fig, axes = plt.subplots(1, 2 if learned else 1, figsize=(12 if learned else 7, 4.5), squeeze=False)
    ax = axes[0, 0]
    for (name, r), color in zip(results.items(), ("tab:red", "tab:blue", "tab:green")):
        epochs = np.arange(1, len(r["history"]["train_score"]) + 1)
        ax.plot(epochs, r["history"]["train_score"], "--", color=color, label=f"{name}: train")
        ax.plot(epochs, r["history"]["val_score"], "-", color=color, label=f"{name}: test")
    ax.axhline(0.68, color="gray", lw=0.8, ls=":", label="published MLP, test (68%)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy")
    ax.set_title("MNIST-1D, 40-512-512-10 MLP (cydrop)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    if learned:
        ax = axes[0, 1]
        trajectory = np.asarray(learned["history"]["keep_prob"])
        epochs = np.arange(1, len(trajectory) + 1)
        for i, label in enumerate(_layer_names()):
            ax.plot(epochs, trajectory[:, i], label=label)
        ax.set_xlabel("epoch")
        ax.set_ylabel("learned keep_prob")
        ax.set_title(f"learned keep_prob per layer (from {LEARN_NETWORK['init_keep_prob']:g})")
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
