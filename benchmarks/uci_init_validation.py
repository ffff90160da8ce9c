"""Which initial weights fit the UCI networks better, judged on validation rows only.

For splits 0-3 of a shipped dataset: the last 20% of the split's training
rows validate (as in the protocol), the network (features-50-1, dropout
0.005, tau 0.75 for the weight decay, Adam, batch 128, 4000 epochs) trains
on the rest from He normal (cydrop.MLP's "auto") and from Glorot uniform
weights (Keras's default, the published networks'), and prints the MC RMSE
(1000 passes) on the validation rows. The test rows are never read.

    python benchmarks/uci_init_validation.py energy    # also concrete, yacht
"""
import os
import sys

import numpy as np

import cydrop
from cydrop.apps.uci import load_dataset, SHIPPED_DIR
from cydrop.uncertainty import weight_decay_from_tau
name = sys.argv[1]
ds = load_dataset(os.path.join(SHIPPED_DIR, name), 20)
X, y = ds["X"], ds["y"]
out = {"he": [], "glorot": []}
for k in range(4):
    train, _ = ds["splits"][k]
    n_fit = int(0.8 * len(train)); fr, vr = train[:n_fit], train[n_fit:]
    Xt, yt = X[fr], y[fr]
    mx, sx = Xt.mean(0), Xt.std(0); sx[sx == 0] = 1
    my, sy = yt.mean(), yt.std()
    for init in ("he", "glorot"):
        net = cydrop.MLP([X.shape[1], 50, 1], keep_prob=[0.995, 0.995], output="linear", seed=k)
        if init == "glorot":
            # as MLP(init="glorot_uniform") draws them, from another stream
            rng = np.random.default_rng(100 + k)
            for W in net.weights:
                lim = np.sqrt(6 / (W.shape[0] + W.shape[1]))
                W[...] = rng.uniform(-lim, lim, W.shape)
        net.fit((Xt - mx) / sx, (yt - my) / sy, epochs=4000, batch_size=128,
                l2=weight_decay_from_tau(0.75, 0.995, len(fr), 128), progress=False)
        mean, _ = net.predict_proba((X[vr] - mx) / sx, mc_samples=1000)
        out[init].append(float(np.sqrt(np.mean((mean[:, 0] * sy + my - y[vr]) ** 2))))
        print(name, k, init, round(out[init][-1], 4), flush=True)
print({k: round(float(np.mean(v)), 4) for k, v in out.items()})
