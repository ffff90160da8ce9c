"""
J is not well defined while dropout is on
=========================================

The course's debugging habit: plot the cost J against the iterations and
check that it falls on every one. With dropout on, that check means nothing:
every iteration trains another randomly thinned network, so the loss it
reports is a random variable, and it jumps even when the weights improve.
The recipe is to turn dropout off (keep_prob = 1), check that J falls on
every iteration and that the gradients are right, then turn dropout back on.

This example shows why on the same weights, then runs the recipe with
:meth:`cydrop.MLP.check`.
"""

# %%
# The loss under dropout and J, at the same weights
# -------------------------------------------------
# Full-batch gradient descent on MNIST-1D with hidden keep_prob 0.5: every
# step uses all the training rows, so the only randomness left is the
# dropout mask. Before each step we measure, at the current weights:
#
# - J, the cost with dropout off (:meth:`cydrop.MLP.cost`);
# - the loss under dropout for ten different masks: ten Monte Carlo passes
#   (``predict_proba(X, mc_samples=10, return_samples=True)``, dropout on
#   as in training), each scored with the cross-entropy.
#
# Then the step itself (:meth:`cydrop.MLP.partial_fit` with
# ``batch_size=None``: one step on the whole set) reports the loss it
# computed under its own mask.
import os

import matplotlib.pyplot as plt
import numpy as np
from mnist1d.data import get_dataset_args, make_dataset

import cydrop

QUICK = os.environ.get("CYDROP_GALLERY_QUICK", "") not in ("", "0")
N_TRAIN, HIDDEN, STEPS = (1000, 128, 40) if QUICK else (4000, 512, 120)
LEARNING_RATE = 0.05

args = get_dataset_args()
args.seed = 42
data = make_dataset(args)
X, y = data["x"][:N_TRAIN].astype(np.float32), data["y"][:N_TRAIN]


def losses_under_dropout(net, masks):
    """The cross-entropy of the training set under `masks` different dropout masks."""
    _, _, passes = net.predict_proba(X, mc_samples=masks, return_samples=True)
    return -np.log(passes[:, np.arange(len(y)), y].clip(1e-12)).mean(axis=1)


net = cydrop.MLP([40, HIDDEN, HIDDEN, 10], keep_prob=[1.0, 0.5, 0.5], seed=0)
J, band, step_loss = [], [], []
for step in range(STEPS):
    J.append(net.cost(X, y))
    band.append(losses_under_dropout(net, 10))
    step_loss.append(net.partial_fit(X, y, optimizer="sgd", learning_rate=LEARNING_RATE))
band = np.array(band)
print(f"at the last weights: J = {J[-1]:.3f}; ten masks give losses from {band[-1].min():.3f} "
      f"to {band[-1].max():.3f}")
print(f"the loss each step reported rose on {sum(b > a for a, b in zip(step_loss, step_loss[1:]))} "
      f"of {STEPS - 1} steps, J on {sum(b > a for a, b in zip(J, J[1:]))}")

# %%
# The recipe: dropout off, J falls on every iteration, gradients checked
# ----------------------------------------------------------------------
# :meth:`cydrop.MLP.check` runs it on a float64 copy of the network with
# dropout off (the network and its keep_prob are left as they are):
# ``iterations`` steps of full-batch gradient descent, J before each step and
# after the last, whether J fell every time, and a gradient check against
# central differences (below 1e-7 means backprop is right).
fresh = cydrop.MLP([40, HIDDEN, HIDDEN, 10], keep_prob=[1.0, 0.5, 0.5], seed=0)
report = fresh.check(X[:1000], y[:1000], iterations=50, learning_rate=LEARNING_RATE)
print(report)

# %%
# What to look at
# ---------------
# On the left, at every step, the grey band spans the losses of ten masks at
# the same weights, and the grey line is the loss the step itself reported:
# it lands anywhere in the band, so its ups and downs say as much about the
# mask as about the weights. The blue line is J of the same weights: one
# number per weights, the curve to read. A stopping rule that watched the
# grey line would stop at random; cydrop's stopping rules (``early_stopping``
# of :meth:`cydrop.MLP.fit`, ``n_iter_no_change`` of the scikit-learn
# estimators) only ever read a cost measured with dropout off. The band lies
# above J: a thinned network fits worse than the whole one.
#
# On the right, the recipe's J per iteration with dropout off: it must fall
# on every iteration. If it does not while the gradient check passes, the
# learning rate is too large (``print(report)`` says so and names the
# iterations); if the gradient check fails, backprop is wrong and no
# learning rate will help.
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
steps = np.arange(STEPS)
ax1.fill_between(steps, band.min(axis=1), band.max(axis=1), color="0.85", label="ten masks, same weights")
ax1.plot(steps, step_loss, color="0.45", lw=1, label="the loss each step reported")
ax1.plot(steps, J, color="C0", lw=2, label="J, dropout off, same weights")
ax1.set(xlabel="iteration (full-batch gradient descent)", ylabel="cross-entropy",
        title="training with dropout on")
ax1.legend()
ax1.grid(alpha=0.3)
ax2.plot(report.costs, "o-", ms=3, color="C2")
verdict = "falls on every iteration" if report.monotonic else "does NOT fall on every iteration"
ax2.set(xlabel="iteration", ylabel="J (dropout off)",
        title=f"net.check: J {verdict}\ngradient check {report.gradient_error:.1e}")
ax2.grid(alpha=0.3)
fig.tight_layout()
plt.show()
