"""
Choosing keep_prob by cross-validation
======================================

keep_prob is a hyperparameter like the learning rate or the L2 penalty:
too high and the network overfits, too low and it cannot fit at all. Choose
it the way scikit-learn chooses any hyperparameter, by cross-validation.
:class:`cydrop.sklearn.DropoutMLPClassifier` is a scikit-learn estimator
(``MLPClassifier``'s parameter names, plus ``keep_prob``), so
``GridSearchCV`` runs the search; ``cydrop search`` is the same search as a
command.

One thing must be right for the comparison to be fair: **every candidate
trains until it has converged**. Dropout nets need more epochs than plain
ones; a fixed short budget stops them early and ranks them as worse than
they are. So each fit holds out 10% of its training fold and stops when the
loss on it (dropout off) has not fallen for 10 epochs, keeping its best
weights.
"""

# %%
# The search
# ----------
import os

import matplotlib.pyplot as plt
import numpy as np
from mnist1d.data import get_dataset_args, make_dataset
from sklearn.model_selection import GridSearchCV, StratifiedKFold

from cydrop.sklearn import DropoutMLPClassifier

QUICK = os.environ.get("CYDROP_GALLERY_QUICK", "") not in ("", "0")
N_TRAIN, HIDDEN, MAX_EPOCHS = (1200, 64, 300) if QUICK else (4000, 256, 400)

args = get_dataset_args()
args.seed = 42
data = make_dataset(args)
X, y = data["x"][:N_TRAIN].astype(np.float32), data["y"][:N_TRAIN]
X_test, y_test = data["x_test"].astype(np.float32), data["y_test"]


def best_epoch(estimator, X, y):
    """A scorer that reports the epoch whose weights a fit kept (its lowest held-out loss)."""
    losses = estimator.validation_losses_
    return losses.index(min(losses)) + 1


clf = DropoutMLPClassifier(hidden_layer_sizes=(HIDDEN, HIDDEN), batch_size=100, alpha=0.0,
                           max_iter=MAX_EPOCHS, early_stopping=True, n_iter_no_change=10, tol=0.0,
                           random_state=0)
keep_probs = [1.0, 0.8, 0.6, 0.4] if QUICK else [1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3]
search = GridSearchCV(clf, {"keep_prob": keep_probs}, cv=StratifiedKFold(3, shuffle=True, random_state=0),
                      scoring={"accuracy": "accuracy", "best_epoch": best_epoch}, refit="accuracy",
                      n_jobs=2)
search.fit(X, y)

results = search.cv_results_
for keep, mean, std, epochs in zip(keep_probs, results["mean_test_accuracy"], results["std_test_accuracy"],
                                   results["mean_test_best_epoch"]):
    print(f"keep_prob {keep:.1f}: CV accuracy {mean:.3f} ± {std:.3f}, best epoch {epochs:.0f}")
print(f"best: {search.best_params_}, test accuracy {search.score(X_test, y_test):.3f} "
      "(refitted on all the training rows)")

# %%
# Reading the figure
# ------------------
# The error bars are the standard deviation of the accuracy over the three
# folds. The curve rises from keep_prob 1.0 (no dropout) to a plateau and
# falls again when too few units are left; candidates whose bars overlap are
# not distinguishable with this much data, and the best of them is chosen
# only by a small margin. The grey bars count the epochs each candidate
# trained before its held-out loss stopped improving: the lower the
# keep_prob, the longer a network needs, which is why a fixed budget would
# have been unfair to the dropout candidates.
fig, ax = plt.subplots(figsize=(8, 4.5))
ax2 = ax.twinx()
ax2.bar(keep_probs, results["mean_test_best_epoch"], width=0.04, color="0.85", zorder=0)
ax2.set_ylabel("epochs to converge (grey bars)")
ax.set_zorder(ax2.get_zorder() + 1)
ax.patch.set_visible(False)
ax.errorbar(keep_probs, results["mean_test_accuracy"], yerr=results["std_test_accuracy"], fmt="o-",
            capsize=4, color="C0")
best = search.best_params_["keep_prob"]
ax.axvline(best, color="C2", ls=":", label=f"chosen: keep_prob {best}")
ax.invert_xaxis()
ax.set(xlabel="keep_prob of the hidden layers (inputs keep 1.0)", ylabel="mean CV accuracy ± std over 3 folds",
       title=f"GridSearchCV on MNIST-1D, 40-{HIDDEN}-{HIDDEN}-10, {N_TRAIN} training rows")
ax.legend(loc="lower left")
ax.grid(alpha=0.3)
fig.tight_layout()
plt.show()
