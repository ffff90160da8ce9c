"""
The input layer keeps near 1.0
==============================

Dropout on a hidden layer removes units the network learnt; dropout on the
input layer removes *data*. Srivastava et al. (2014) keep about 0.8 of the
input pixels of an image, where neighbouring pixels say nearly the same
thing, and 0.5 of the hidden units. A signal of 40 samples has little to
spare: this example keeps the hidden layers at 0.5 and sweeps the keep
probability of the input features down from 1.0.
"""

# %%
# What input dropout does to a signal
# -----------------------------------
# One MNIST-1D training signal, with the keep probability of the input layer
# at 1.0, 0.8 and 0.5 (the same draw of random bits each time, so the kept
# samples at 0.5 are a subset of those at 0.8). The kept samples are scaled
# by ``1 / keep_prob``: the signal's mean is unchanged, its shape is not.
# sphinx_gallery_thumbnail_number = 2
import os

import matplotlib.pyplot as plt
import numpy as np
from mnist1d.data import get_dataset_args, make_dataset

import cydrop

QUICK = os.environ.get("CYDROP_GALLERY_QUICK", "") not in ("", "0")
N_TRAIN, HIDDEN, EPOCHS = (1000, 128, 40) if QUICK else (4000, 512, 200)

args = get_dataset_args()
args.seed = 42
data = make_dataset(args)
X, y = data["x"][:N_TRAIN].astype(np.float32), data["y"][:N_TRAIN]
X_test, y_test = data["x_test"].astype(np.float32), data["y_test"]

signal = X[:1]
fig, ax = plt.subplots(figsize=(9, 3))
for keep, color in ((1.0, "k"), (0.8, "C0"), (0.5, "C1")):
    dropped, _ = cydrop.dropout(signal, keep, seed=3)
    ax.plot(dropped[0], ".-" if keep < 1 else "-", color=color, lw=1, label=f"input keep_prob {keep}")
ax.set(xlabel="sample of the signal", ylabel="value", title=f"one MNIST-1D signal (digit {y[0]})")
ax.legend(fontsize=8)
ax.grid(alpha=0.3)
fig.tight_layout()
plt.show()

# %%
# Sweeping the input keep_prob
# ----------------------------
# The hidden layers keep 0.5 throughout; only ``keep_prob[0]`` changes.
input_keeps = [1.0, 0.9, 0.7, 0.5] if QUICK else [1.0, 0.95, 0.9, 0.8, 0.7, 0.6, 0.5]
train_acc, test_acc = [], []
for keep in input_keeps:
    net = cydrop.MLP([40, HIDDEN, HIDDEN, 10], keep_prob=[keep, 0.5, 0.5], seed=0)
    net.fit(X, y, epochs=EPOCHS, batch_size=100, learning_rate=1e-3, progress=False)
    train_acc.append(net.score(X, y))
    test_acc.append(net.score(X_test, y_test))
    print(f"input keep_prob {keep:.2f}: train {train_acc[-1]:.3f}, test {test_acc[-1]:.3f}")

# %%
# Reading the figure
# ------------------
# Test accuracy is highest with the input layer at or near 1.0 and falls
# steadily as more of each signal is removed, training accuracy with it:
# here dropout is no longer regularising what the network learnt, it is
# destroying what the network is given. The rule the lecture gives,
# a keep_prob at or near 1.0 for the input layer and lower ones for the wide
# hidden layers that overfit, is built into :class:`cydrop.MLP`: a single
# float ``keep_prob=0.5`` applies to the hidden layers only, ``[1.0, 0.5, 0.5]``
# here.
fig, ax = plt.subplots(figsize=(7, 4.2))
ax.plot(input_keeps, train_acc, "o--", color="C3", label="training accuracy")
ax.plot(input_keeps, test_acc, "o-", color="C0", label="test accuracy")
ax.invert_xaxis()
ax.set(xlabel="keep_prob of the input layer (hidden layers keep 0.5)", ylabel="accuracy",
       title=f"MNIST-1D, 40-{HIDDEN}-{HIDDEN}-10, {EPOCHS} epochs")
ax.legend()
ax.grid(alpha=0.3)
fig.tight_layout()
plt.show()
