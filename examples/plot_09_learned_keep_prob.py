"""
Learning keep_prob during training
==================================

Searching keep_prob trains every candidate to convergence on every fold
(:ref:`sphx_glr_auto_examples_plot_04_choosing_keep_prob.py`). Concrete
dropout (Gal, Hron & Kendall 2017) learns it instead: each layer's drop
probability is a parameter, trained by gradient descent with the weights
through a relaxed (continuous) version of the dropout mask, and a prior
added to the cost keeps it from collapsing to 0.

This example trains the MNIST-1D network of ``cydrop search``
(40-256-256-10, ReLU, Adam) once with ``keep_prob="learn"`` and follows the
learned keep probability of each layer epoch by epoch, for three
training-set sizes.
"""

# %%
# One training per size
# ---------------------
# ``keep_prob="learn"`` learns the keep probability of every dense layer's
# input: the 40 input features, and the outputs of the two hidden layers.
# Each starts at ``init_keep_prob=0.9`` (the reference code's drop
# probability 0.1). The prior's two terms are divided by N, the rows the
# network trains on, so the same network learns other rates from other
# amounts of data. The history of :meth:`cydrop.MLP.fit` records every
# layer's keep probability after every epoch.
#
# ``CYDROP_GALLERY_QUICK=1`` (set when CI builds the docs) shrinks the data,
# the network and the epochs so that the example runs in seconds; the
# published figure comes from the full settings.
import os

import matplotlib.pyplot as plt
import numpy as np
from mnist1d.data import get_dataset_args, make_dataset

import cydrop

QUICK = os.environ.get("CYDROP_GALLERY_QUICK", "") not in ("", "0")
SIZES, HIDDEN, EPOCHS = ((250, 500, 1000), 64, 150) if QUICK else ((1000, 2000, 4000), 256, 1000)

args = get_dataset_args()
args.seed = 42
data = make_dataset(args)
X, y = data["x"].astype(np.float32), data["y"]
X_test, y_test = data["x_test"].astype(np.float32), data["y_test"]

curves = {}
for n in SIZES:
    net = cydrop.MLP([40, HIDDEN, HIDDEN, 10], keep_prob="learn", seed=0)
    history = net.fit(X[:n], y[:n], epochs=EPOCHS, batch_size=100, learning_rate=1e-3, progress=False)
    curves[n] = np.array(history["keep_prob"])          # (epochs, layers)
    learned = ", ".join(f"{kp:.3f}" for kp in net.keep_prob_)
    print(f"N = {n}: learned keep_prob (input, hidden 1, hidden 2) = {learned}; "
          f"test accuracy {net.score(X_test, y_test):.3f}")

# %%
# Reading the figure
# ------------------
# One panel per training-set size, one line per layer. Two forces set each
# rate. The data term is fitted better with less noise, so it pulls every
# rate toward 0 (keep_prob toward 1). The prior's entropy term rewards a
# drop probability near 1/2, in proportion to the layer's input width K (40
# for the features, 256 for each hidden layer); its weight term, a weight
# decay scaled by ``1 / keep_prob``, rewards keeping. The prior weighs 1/N.
#
# The input features' keep probability climbs toward 1: their entropy term
# is the smallest. The hidden layers first rise with it; then, as the network
# comes to fit its training rows and the data term's pull weakens, they
# fall, more and more slowly. The second hidden layer, whose outputs feed
# the classifier, keeps the least. The fewer the rows, the lower the hidden
# layers settle, as the prior weighs more. That is the lecture's rule of
# thumb (inputs keep nearly all, large hidden layers keep less), learned
# rather than searched, and the reason the prior must know N. The rates
# move slowly compared with the weights: give a learned network the epochs
# its rates need to level off.
layers = ["input features", "hidden layer 1", "hidden layer 2"]
fig, axes = plt.subplots(1, len(SIZES), figsize=(12, 4), sharey=True)
epochs = np.arange(1, EPOCHS + 1)
for ax, n in zip(axes, SIZES):
    for layer, name in enumerate(layers):
        ax.plot(epochs, curves[n][:, layer], color=f"C{layer}", label=name)
    ax.axhline(0.9, color="0.6", ls=":", lw=1, label="init_keep_prob")
    ax.set(xlabel="epoch", title=f"N = {n} training rows")
    ax.grid(alpha=0.3)
axes[0].set_ylabel("learned keep_prob")
axes[0].legend(loc="lower left")
fig.suptitle(f"MNIST-1D, 40-{HIDDEN}-{HIDDEN}-10, keep_prob learned (Concrete dropout)")
fig.tight_layout()
plt.show()
