"""
PyTorch: replace_dropout and mc_dropout
=======================================

:mod:`cydrop.torch` brings cydrop's masks to PyTorch CPU training:
:func:`cydrop.torch.replace_dropout` swaps every ``nn.Dropout`` of a model for
cydrop's, keeping ``p`` and leaving the weights alone, and
:func:`cydrop.torch.mc_dropout` turns dropout back on at inference for Monte
Carlo dropout. Note that PyTorch's ``p`` is the probability of *dropping* a
unit: ``keep_prob = 1 - p``.

This example swaps the dropout of a small MNIST-1D classifier, trains it and
its untouched twin from the same initial weights, and then asks the trained
model how sure it is of each test digit.
"""

# %%
# Before and after
# ----------------
import copy
import os

import matplotlib.pyplot as plt
import numpy as np
import torch
from mnist1d.data import get_dataset_args, make_dataset
from torch import nn

import cydrop.torch as ct

QUICK = os.environ.get("CYDROP_GALLERY_QUICK", "") not in ("", "0")
N_TRAIN, HIDDEN, EPOCHS = (1000, 128, 8) if QUICK else (4000, 512, 40)

torch.manual_seed(0)
model = nn.Sequential(nn.Linear(40, HIDDEN), nn.ReLU(), nn.Dropout(0.5),
                      nn.Linear(HIDDEN, HIDDEN), nn.ReLU(), nn.Dropout(0.5), nn.Linear(HIDDEN, 10))
twin = copy.deepcopy(model)          # torch's own dropout, the same initial weights


def dropout_modules(net):
    return [f"{name}: {type(m).__module__}.{type(m).__name__}(p={m.p})" for name, m in net.named_children()
            if isinstance(m, nn.Dropout)]


print("before:", *dropout_modules(model), sep="\n  ")
ct.replace_dropout(model)
print("after:", *dropout_modules(model), sep="\n  ")
print("still an nn.Dropout (isinstance):", isinstance(model[2], nn.Dropout))
print("state_dict unchanged:", all(torch.equal(a, b) for a, b in zip(model.state_dict().values(),
                                                                      twin.state_dict().values())))

# %%
# The training loop does not change
# ---------------------------------
# Both models train with the same loop, the same batches and Adam. Their masks
# differ (cydrop draws its own), so their curves are not identical, but they
# should be alike: the swap changes how the masks are made, not what dropout
# does.
args = get_dataset_args()
args.seed = 42
data = make_dataset(args)
X = torch.tensor(data["x"][:N_TRAIN], dtype=torch.float32)
y = torch.tensor(data["y"][:N_TRAIN])
X_test = torch.tensor(data["x_test"], dtype=torch.float32)
y_test = torch.tensor(data["y_test"])


def train(net, epochs, seed=0):
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    order = torch.Generator().manual_seed(seed)
    accuracy = []
    for _ in range(epochs):
        net.train()
        for batch in torch.randperm(len(X), generator=order).split(100):
            optimizer.zero_grad()
            nn.functional.cross_entropy(net(X[batch]), y[batch]).backward()
            optimizer.step()
        net.eval()
        with torch.no_grad():
            accuracy.append((net(X_test).argmax(1) == y_test).float().mean().item())
    return accuracy


curves = {"nn.Dropout": train(twin, EPOCHS), "cydrop (replace_dropout)": train(model, EPOCHS)}
for name, accuracy in curves.items():
    print(f"{name}: test accuracy after {EPOCHS} epochs {accuracy[-1]:.3f}")

# %%
# Monte Carlo dropout at inference
# --------------------------------
# Inside ``with ct.mc_dropout(model)`` every dropout module is in training
# mode and everything else in eval mode (BatchNorm would keep its running
# statistics); the flags are restored when the block ends. Twenty passes give
# twenty predictive distributions per test digit; their mean is the MC
# prediction and its entropy measures how unsure the model is.
with ct.mc_dropout(model), torch.no_grad():
    probs = torch.stack([model(X_test).softmax(1) for _ in range(20)])   # (passes, rows, classes)
mean = probs.mean(0)
entropy = -(mean * mean.clamp_min(1e-12).log()).sum(1).numpy()
correct = (mean.argmax(1) == y_test).numpy()
print(f"MC dropout accuracy {correct.mean():.3f}; mean entropy {entropy[correct].mean():.2f} on the digits "
      f"it gets right, {entropy[~correct].mean():.2f} on those it gets wrong")

# %%
# Reading the figure
# ------------------
# On the left, test accuracy per epoch of the two models, evaluated with
# dropout off: the curves track each other, so the swap left training as it
# was. On the right, the entropy of the MC-dropout prediction for the test
# digits the model classifies correctly and for those it gets wrong: the
# mistakes sit at higher entropy. That is what makes MC dropout useful: the
# model's doubt is largest where it is most often wrong, so a threshold on
# the entropy flags the predictions to check.
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
for (name, accuracy), color in zip(curves.items(), ("C1", "C0")):
    ax1.plot(range(1, EPOCHS + 1), accuracy, color=color, label=name)
ax1.set(xlabel="epoch", ylabel="test accuracy (dropout off)", title="the same model, two dropout modules")
ax1.legend()
ax1.grid(alpha=0.3)
bins = np.linspace(0, np.log(10), 30)
ax2.hist(entropy[correct], bins=bins, alpha=0.6, color="C2", density=True, label="classified correctly")
ax2.hist(entropy[~correct], bins=bins, alpha=0.6, color="C3", density=True, label="classified wrongly")
ax2.set(xlabel="entropy of the MC-dropout prediction (nats)", ylabel="density",
        title="MC dropout, 20 passes: doubt where it errs")
ax2.legend()
ax2.grid(alpha=0.3)
fig.tight_layout()
plt.show()
