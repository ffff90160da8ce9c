"""
Uncertainty with Monte Carlo dropout
====================================

Keep dropout on at test time, run the network T times, and the spread of
the T predictions measures what the network does not know (Gal & Ghahramani
2016): dropout training is approximate inference in a Bayesian neural
network, and each pass is a draw from the approximate posterior.

This example runs Gal & Ghahramani's protocol on one split of the yacht
hydrodynamics dataset (shipped with cydrop, with the other three datasets
of their table): choose the dropout rate and the model precision tau on
validation rows, train on all training rows, predict the test rows with T
Monte Carlo passes, and check the predictive intervals.
"""

# %%
# The data: split 0 of yacht
# --------------------------
# 308 hulls, six features, the residuary resistance as the target, and the 20
# fixed train/test splits of Hernández-Lobato & Adams (2015). As in the
# published protocol, the last 20% of the training rows validate, and features
# and target are standardised on the rows a network trains on.
import os

import matplotlib.pyplot as plt
import numpy as np
from scipy.stats import norm

import cydrop
from cydrop.uncertainty import predictive_log_likelihood, weight_decay_from_tau

# The published settings: 4000 epochs, T = 10,000 passes. The network is small
# (50 hidden units) and each epoch one compiled call, so this example runs the
# whole grid in seconds and needs no quick mode for CI.
EPOCHS, T = 4000, 10_000

folder = os.path.join(os.path.dirname(cydrop.__file__), "apps", "data", "uci", "yacht")


def read(name):
    return np.loadtxt(os.path.join(folder, name))


data = read("data.txt")
features, target = read("index_features.txt").astype(int), int(read("index_target.txt"))
X, y = data[:, features], data[:, target]
train, test = read("index_train_0.txt").astype(int), read("index_test_0.txt").astype(int)
dropout_rates, taus = read("dropout_rates.txt"), read("tau_values.txt")
print(f"{len(train)} training rows, {len(test)} test rows; grid: dropout rates {dropout_rates}, taus {taus}")


def train_network(rows, dropout_rate, tau, seed):
    """A features-50-1 ReLU network with dropout on its inputs and before its output,
    trained as in the published protocol; returns a function giving MC samples."""
    mean_x, std_x = X[rows].mean(axis=0), X[rows].std(axis=0)
    mean_y, std_y = y[rows].mean(), y[rows].std()
    keep = 1.0 - dropout_rate
    net = cydrop.MLP([X.shape[1], 50, 1], keep_prob=[keep, keep], output="linear", seed=seed,
                     init="glorot_uniform")
    l2 = weight_decay_from_tau(tau, keep, len(rows), batch_size=128)   # tau is a weight decay
    net.fit((X[rows] - mean_x) / std_x, (y[rows] - mean_y) / std_y, epochs=EPOCHS, batch_size=128,
            learning_rate=1e-3, l2=l2, progress=False)

    def mc_samples(other_rows):
        _, _, samples = net.predict_proba((X[other_rows] - mean_x) / std_x, mc_samples=T, return_samples=True)
        return samples[:, :, 0] * std_y + mean_y     # (T, rows), on the target's scale
    return mc_samples


# %%
# Choosing dropout and tau on validation rows
# -------------------------------------------
# tau is the model precision: the inverse of the observation noise's
# variance. It enters twice: as a weight decay while training, and in the
# predictive distribution, a mixture of T Gaussians of variance ``1 / tau``
# around the T passes. Each (dropout rate, tau) is scored by the
# log-likelihood of the validation targets under that distribution
# (:func:`cydrop.uncertainty.predictive_log_likelihood`).
n_fit = int(0.8 * len(train))
fit_rows, val_rows = train[:n_fit], train[n_fit:]
scores, validation_samples = {}, {}
for rate in dropout_rates:
    for tau in taus:
        samples = train_network(fit_rows, rate, tau, seed=0)(val_rows)
        validation_samples[rate, tau] = samples
        scores[rate, tau] = predictive_log_likelihood(y[val_rows], samples, tau)
best_rate, best_tau = max(scores, key=scores.get)
print(f"best on the validation rows: dropout rate {best_rate}, tau {best_tau} "
      f"(log-likelihood {scores[best_rate, best_tau]:.3f})")

# %%
# The published grid has three taus. ``cydrop uci --extended`` also fits tau
# on the validation rows, over a fine grid a decade either side: the
# precision that best describes the validation errors of the chosen network.
fine = np.geomspace(taus.min() / 10, taus.max() * 10, 61)
fitted_tau = max(fine, key=lambda t: predictive_log_likelihood(y[val_rows], validation_samples[best_rate, best_tau], t))
print(f"tau fitted on the validation rows: {fitted_tau:.2f}")

# %%
# Test predictions with T Monte Carlo passes
# ------------------------------------------
samples = train_network(train, best_rate, best_tau, seed=1)(test)
mean = samples.mean(axis=0)
std = np.sqrt(samples.var(axis=0) + 1.0 / best_tau)   # the passes' spread plus the noise 1 / tau
rmse = np.sqrt(np.mean((y[test] - mean) ** 2))
ll = predictive_log_likelihood(y[test], samples, best_tau)
ll_fitted = predictive_log_likelihood(y[test], samples, fitted_tau)
print(f"split 0, {T} passes: MC RMSE {rmse:.3f}, test log-likelihood {ll:.3f} with the grid's tau, "
      f"{ll_fitted:.3f} with the fitted tau")

# %%
# Reading the figure
# ------------------
# On the left, the test hulls sorted by predicted resistance, with the
# predictive mean and a band of two standard deviations: where the
# resistance is large (the fastest hulls, few in the training rows) the
# passes disagree and the band widens; where it is small they agree. A
# network trained without dropout gives one number per hull and no band.
#
# On the right, calibration: for each nominal level q, the fraction of test
# targets inside the central q-interval of the predictive Gaussian. A
# calibrated model lies on the diagonal; above it the intervals are too wide
# (under-confident), below it too narrow. With the grid's tau the curve lies
# far above the diagonal: the noise ``1 / tau`` of the largest tau the grid
# offers is still larger than the errors on the many slow hulls, so their
# intervals are too wide. With tau fitted on the validation rows the curve
# moves toward the diagonal (still above it: the intervals remain on the
# wide side) and the test log-likelihood rises; over all
# 20 splits that is the gain of the ``--extended`` column on the
# :doc:`Uncertainty page </user_guide/mc_dropout>`. With 31 test hulls the
# curves move in steps of 1/31.
levels = np.linspace(0.05, 0.95, 19)


def coverage(tau):
    std = np.sqrt(samples.var(axis=0) + 1.0 / tau)
    return [np.mean(np.abs(y[test] - mean) <= norm.ppf(0.5 + q / 2) * std) for q in levels]


fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [1.6, 1]})
order = np.argsort(mean)
rows = np.arange(len(test))
ax1.fill_between(rows, (mean - 2 * std)[order], (mean + 2 * std)[order], color="C0", alpha=0.25,
                 label="mean ± 2 std")
ax1.plot(rows, mean[order], color="C0", label="predictive mean")
ax1.plot(rows, y[test][order], "k.", label="test target")
ax1.set(xlabel="test hulls, by predicted resistance", ylabel="residuary resistance",
        title=f"yacht, split 0: MC dropout, T = {T} (dropout {best_rate}, tau {best_tau})")
ax1.legend()
ax1.grid(alpha=0.3)
ax2.plot([0, 1], [0, 1], "k--", lw=1, label="calibrated")
ax2.plot(levels, coverage(best_tau), "o-", color="C0", label=f"tau {best_tau:g} (the grid's)")
ax2.plot(levels, coverage(fitted_tau), "s-", color="C2", label=f"tau {fitted_tau:.2f} (fitted)")
ax2.set(xlabel="nominal level of the central interval", ylabel="fraction of test targets inside",
        title="calibration", xlim=(0, 1), ylim=(0, 1))
ax2.legend()
ax2.grid(alpha=0.3)
fig.tight_layout()
plt.show()
