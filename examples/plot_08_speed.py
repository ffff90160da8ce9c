"""
Speed: cydrop beside NumPy and PyTorch
======================================

Dropout should cost next to nothing beside the matrix products it sits
between. This example runs ``cydrop bench`` while the documentation builds,
on whatever machine builds it, and draws its figure from the JSON the
command writes: every case beside the NumPy code of the course
(``np.random.rand(...) < keep_prob``, multiply, divide), NumPy with a
float32 ``np.random.Generator``, PyTorch CPU, and the physical floor (a copy
of the array for dropout, the bare matrix products for a layer).

The figures below are one short run on the build machine: the
:doc:`Performance page </user_guide/performance>` shows the recorded full
runs with their commands, and ``cydrop bench --full`` measures your machine.
"""

# %%
# Running the benchmark
# ---------------------
# Each ``cydrop bench --only TAG`` runs the groups whose tag contains TAG;
# the cases of a group are timed in interleaved rounds, so a slow spell of a
# shared machine falls on all of them alike, and the ratios are taken within
# the run.
import json
import os
import subprocess
import sys
import tempfile

import matplotlib.pyplot as plt
import numpy as np

QUICK = os.environ.get("CYDROP_GALLERY_QUICK", "") not in ("", "0")
TAGS = (["dropout-forward", "dense", "mc-predict"] if QUICK else
        ["dropout-forward", "dropout-backward", "dense", "mlp-epoch", "mc-predict", "small-net-mc", "torch-mc"])
ROUNDS = 5 if QUICK else 15

groups, machine = [], None
with tempfile.TemporaryDirectory() as folder:
    for tag in TAGS:
        path = os.path.join(folder, f"{tag}.json")
        command = ["cydrop", "bench", "--only", tag, "--rounds", str(ROUNDS), "--json", f"{tag}.json"]
        print("$", " ".join(command))
        subprocess.run([sys.executable, "-m", *command], cwd=folder, check=True, stdout=subprocess.DEVNULL)
        with open(path) as f:
            result = json.load(f)
        machine = result["machine"]
        groups += result["groups"]

blas = ", ".join(f"{b['internal_api']} {b['version']} ({b['num_threads']} threads)" for b in machine["blas"])
print(f"\n{machine['cpu']}, {machine['logical_cpus']} logical CPUs; cydrop {machine['cydrop']} on "
      f"{machine['cydrop_threads']} threads; NumPy {machine['numpy']} ({blas}); torch {machine['torch']}")
for group in groups:
    cydrop_row = next(row for row in group["rows"] if row["impl"] == "cydrop")
    others = ", ".join(f"{row['impl']} {row['ratio']:.2f}x" for row in group["rows"]
                       if row["impl"] != "cydrop" and row["ratio"] is not None)
    print(f"{group['name']}: cydrop {cydrop_row['median_s'] * 1e3:.3g} ms; {others}")

# %%
# Reading the figure
# ------------------
# Each bar is a baseline's median time divided by cydrop's, measured in the
# same run: right of 1, cydrop is faster. This is one short run on whatever
# machine built these pages, and a busy machine moves the figures (the floor's
# most, as memory bandwidth is shared): the recorded runs on the
# :doc:`Performance page </user_guide/performance>` are the ones to quote. The grey diamond is the floor:
# a ratio below 1 for it says how close cydrop comes to the least the
# operation can cost (0.9 means cydrop takes 1.1 times the floor).
#
# - **Dropout forward**: drawing the mask is the NumPy code's cost (a float64
#   random number per element, then a comparison, a multiplication and a
#   division); cydrop draws bits from a counter-based generator and applies
#   them in the same pass, so it runs near the speed of copying the array.
# - **Dense layer**: three matrix products dominate; cydrop's fused layer
#   adds its mask and bias passes to them and stays close to the bare
#   products, where the NumPy layer makes extra passes and PyTorch builds an
#   autograd graph.
# - **MC prediction**: T stochastic passes over the same rows, all in one
#   compiled call.
impls = [("numpy_course", "NumPy, the course's code", "C1"), ("numpy_rng", "NumPy, float32 Generator", "C8"),
         ("torch", "PyTorch CPU", "C3")]
fig, ax = plt.subplots(figsize=(10, 0.9 * len(groups) + 1.5))
rows = np.arange(len(groups))[::-1]
for k, (impl, label, color) in enumerate(impls):
    ratios = [next((r["ratio"] for r in g["rows"] if r["impl"] == impl and r["ratio"] is not None), np.nan)
              for g in groups]
    ax.barh(rows + (1 - k) * 0.26, np.array(ratios) - 1, left=1, height=0.26, color=color, label=label)
floors = [next((r["ratio"] for r in g["rows"] if r["impl"] == "floor" and r["ratio"] is not None), np.nan)
          for g in groups]
ax.plot(floors, rows, "D", color="0.4", label="floor (copy / bare GEMMs)")
ax.axvline(1, color="k", lw=1)
ax.set_xscale("log")
ax.set_yticks(rows, [g["name"].replace(", keep_prob", "\nkeep_prob") for g in groups], fontsize=8)
ax.set_xlabel("time / cydrop's time, same run (right of 1: cydrop is faster)")
ax.set_title(f"cydrop bench on the docs build machine: {machine['cpu']}, {machine['logical_cpus']} CPUs",
             fontsize=10)
ax.legend(fontsize=8, loc="lower right")
ax.grid(alpha=0.3, axis="x")
fig.tight_layout()
plt.show()
