"""Which initial weights fit the UCI networks better, judged on validation rows only.

For splits 0-3 of a shipped dataset: the last 20% of the split's training
rows validate (as in the protocol), and the protocol's own training
(cydrop.apps.uci_protocol: features and target standardised on the fit rows, a
features-50-1 network with dropout 0.005, weight decay from tau 0.75, Adam,
batch 128, 4000 epochs) runs once from He normal weights (cydrop.MLP's
"auto") and once from Glorot uniform (Keras's default, the published
networks'). It prints the MC RMSE (1000 passes) on the validation rows. The
test rows are never read.

    python benchmarks/uci_init_validation.py energy    # also concrete, yacht
"""
import os
import sys

import numpy as np

from cydrop.apps.uci import SHIPPED_DIR, load_dataset
from cydrop.apps.uci_protocol import config, train_and_sample

name = sys.argv[1]
ds = load_dataset(os.path.join(SHIPPED_DIR, name), 20)
X, y = ds["X"], ds["y"]
out = {"auto": [], "glorot_uniform": []}
for k in range(4):
    train, _ = ds["splits"][k]
    n_fit = int(0.8 * len(train))
    fit_rows, val_rows = train[:n_fit], train[n_fit:]
    for init in out:
        cfg = config([0.005], [0.75], epochs=4000, mc_samples=1000, n_hidden=50, init=init)
        samples, _ = train_and_sample(X[fit_rows], y[fit_rows], X[val_rows], 0.005, 0.75, 4000, cfg, seed=k)
        out[init].append(float(np.sqrt(np.mean((samples.mean(axis=0) - y[val_rows]) ** 2))))
        print(name, k, init, round(out[init][-1], 4), flush=True)
print({init: round(float(np.mean(v)), 4) for init, v in out.items()})
