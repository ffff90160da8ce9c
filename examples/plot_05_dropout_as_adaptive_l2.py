"""
Dropout spreads the weights, like an adaptive L2 penalty
========================================================

The lecture's intuition: a unit whose inputs may vanish at random cannot put
all its weight on one of them, so it spreads its weight over many, which
shrinks the squared norm of its weights, as an L2 penalty would. For a
linear model this is exact: Wager, Wang & Liang (2013) showed that dropout
on the inputs of least squares equals, in expectation, an L2 penalty whose
strength adapts to each feature,

``lambda_j = (1 - keep_prob) / keep_prob * sum_i x_ij^2``

(:func:`cydrop.dropout_l2_equivalent`). This example measures the intuition
on the MNIST-1D network, then checks the exact statement on a linear model
trained with dropout.
"""

# %%
# Part 1: how evenly each unit spreads its incoming weight
# ---------------------------------------------------------
# Two networks from the same initial weights, trained alike, one without
# dropout and one keeping half of each hidden layer's units. For every unit
# we take the largest share of its incoming weight that any one input holds,
# ``max_i |w_ij| / sum_i |w_ij|``: 1 means the unit listens to one input only,
# ``1 / n_in`` means it weighs all inputs alike.
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

nets = {}
for name, keep_prob in (("no dropout", [1.0, 1.0, 1.0]), ("dropout 0.5", [1.0, 0.5, 0.5])):
    nets[name] = cydrop.MLP([40, HIDDEN, HIDDEN, 10], keep_prob=keep_prob, seed=0)
    nets[name].fit(X, y, epochs=EPOCHS, batch_size=100, learning_rate=1e-3, progress=False)


def largest_share(W):
    """Per unit (column of W, shape (n_in, n_out)): the largest share of |w| held by one input."""
    A = np.abs(W)
    return A.max(axis=0) / A.sum(axis=0)


layer_names = [f"layer {i + 1}\n{W.shape[0]} -> {W.shape[1]}" for i, W in enumerate(nets["no dropout"].weights)]
for i in range(3):
    plain, dropped = nets["no dropout"].weights[i], nets["dropout 0.5"].weights[i]
    kept = nets["dropout 0.5"].keep_prob[i]
    print(f"layer {i + 1} (its input keeps {kept}): median largest share "
          f"{np.median(largest_share(plain)):.4f} -> {np.median(largest_share(dropped)):.4f}, "
          f"||W||^2 {np.sum(plain ** 2):.1f} -> {np.sum(dropped ** 2):.1f}")

# %%
# Reading the figure: on the left, the distribution of the largest share over
# the units of each layer (boxes: the middle half of the units); on the
# right, each layer's squared norm. Dropout acts on the *inputs* of layers 2
# and 3 (the outputs of the hidden layers); layer 1 reads the input
# features, which keep 1.0.
#
# - **The output layer spreads its weight.** Its ten units read the last
#   hidden layer through dropout, and with dropout their largest shares are
#   smaller: no output unit can stake much on one hidden unit that may
#   vanish. That is the intuition, visible where the layer is narrow and its
#   inputs are dropped.
# - **The norms do not shrink.** In this network the squared norms of the
#   layers whose inputs are dropped grow with dropout. The analogy with an
#   L2 penalty is exact for one linear layer (part 2); in a deep network
#   dropout penalises relying on particular inputs, not large weights as
#   such. That is why Srivastava et al. (2014) pair dropout with a max-norm
#   constraint on each unit's incoming weights (``max_norm`` of
#   :meth:`cydrop.MLP.fit`), which lets them train with large learning rates
#   without the weights growing without bound.
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
positions = np.arange(3)
for offset, (name, color) in zip((-0.18, 0.18), (("no dropout", "C3"), ("dropout 0.5", "C0"))):
    shares = [largest_share(W) for W in nets[name].weights]
    parts = ax1.boxplot(shares, positions=positions + offset, widths=0.3, showfliers=False, patch_artist=True)
    for box in parts["boxes"]:
        box.set(facecolor=color, alpha=0.5)
    ax2.bar(positions + offset, [np.sum(W ** 2) for W in nets[name].weights], width=0.36, color=color,
            alpha=0.8, label=name)
ax1.set_yscale("log")
ax1.set_xticks(positions, layer_names)
ax1.set(ylabel="largest share of a unit's |w| held by one input", title="how evenly units spread their weight")
ax1.grid(alpha=0.3)
ax2.set_xticks(positions, layer_names)
ax2.set_yscale("log")
ax2.set(ylabel="||W||^2 (log scale)", title="squared norm of each layer's weights")
ax2.legend()
ax2.grid(alpha=0.3)
fig.tight_layout()
plt.show()

# %%
# Part 2: the exact statement, on a linear model
# ----------------------------------------------
# Least squares on six features of different scales. Feature 2 is a near
# copy of feature 1, so plain least squares can lean on their *difference*;
# features 2 and 5 play no part in the target. A :class:`cydrop.MLP` without
# hidden layers and with ``output="linear"`` is least squares (with a bias);
# ``keep_prob=[0.5]`` puts dropout on its inputs. Trained by SGD, its weights
# keep moving with the masks, so we average them over the last epochs
# (Polyak averaging) to estimate the point they move around.
rng = np.random.default_rng(0)
n, scales = 500, np.array([0.5, 1.0, 1.0, 2.0, 4.0, 4.0])
Xl = rng.standard_normal((n, 6)) * scales
Xl[:, 2] = Xl[:, 1] + 0.05 * rng.standard_normal(n)
yl = Xl @ np.array([1.0, 0.8, 0.0, -0.5, 0.3, 0.0]) + 0.5 * rng.standard_normal(n)
keep = 0.5

linear = cydrop.MLP([6, 1], keep_prob=[keep], output="linear", dtype="float64", seed=0)
linear.fit(Xl, yl, epochs=300, batch_size=50, optimizer="sgd", learning_rate=0.002, progress=False)
averaged = np.zeros(6)
for _ in range(400):
    linear.fit(Xl, yl, epochs=1, batch_size=50, optimizer="sgd", learning_rate=0.002, progress=False)
    averaged += linear.weights[0][:, 0] / 400


def ridge(penalties):
    """Least squares with an unpenalised bias and the given per-feature L2 penalties."""
    X1 = np.hstack([Xl, np.ones((n, 1))])
    return np.linalg.solve(X1.T @ X1 + np.diag(np.r_[penalties, 0.0]), X1.T @ yl)[:6]


lam = cydrop.dropout_l2_equivalent(Xl, keep)
solutions = {
    "least squares": ridge(np.zeros(6)),
    "L2, one penalty for all (the mean lambda)": ridge(np.full(6, lam.mean())),
    "Wager et al.: L2 with dropout_l2_equivalent": ridge(lam),
    "trained with input dropout (averaged)": averaged,
}
np.set_printoptions(precision=3, suppress=True)
print("lambda_j:", lam)
for name, w in solutions.items():
    print(f"{name:>45}: {w}")

# %%
# Reading the figure: the dropout-trained weights (dark blue) sit on the
# Wager solution (light blue) for every feature, and differ from least
# squares (grey). Two things to see:
#
# - **The penalty adapts to the scale.** One L2 penalty for all features
#   (orange) shrinks the small-scale feature 0 hardest and barely touches the
#   large-scale features 4 and 5; dropout's penalty grows with each
#   feature's ``sum_i x_ij^2``, so every feature is shrunk by about the same
#   factor (here keep_prob: a half), whatever its units.
# - **Redundant inputs share the weight.** Least squares puts a large weight
#   on feature 1 and a negative one on its near copy, feature 2. With
#   dropout, either may vanish, so the model spreads the weight evenly over
#   the two: the lecture's intuition, exactly.
fig, ax = plt.subplots(figsize=(10, 4.2))
width = 0.2
for k, ((name, w), color) in enumerate(zip(solutions.items(), ("0.6", "C1", "C9", "C0"))):
    ax.bar(np.arange(6) + (k - 1.5) * width, w, width=width, color=color, label=name)
ax.axhline(0, color="k", lw=0.8)
ax.set_xticks(range(6), [f"feature {j}\nscale {s:g}" for j, s in enumerate(scales)])
ax.set(ylabel="weight", title=f"least squares with input dropout, keep_prob {keep}")
ax.legend(fontsize=8)
ax.grid(alpha=0.3, axis="y")
fig.tight_layout()
plt.show()
