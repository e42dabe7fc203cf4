"""Step 1: writes a small synthetic binary-classification dataset to $MLINFRA_RUN_DIR/data/{train,val}.csv.

Standard library only. Rows: 8 features, then the label; the label depends non-linearly on the
features, so a hidden layer helps. Seeded from MLINFRA_PARAMS["seed"] (default 0).
"""
import csv
import math
import os
import random

from _runfiles import merge_metrics, params, run_dir

p = params()
rng = random.Random(int(p.get("seed", 0)))
n_train, n_val, dims = int(p.get("rows", 800)), 400, 8
w = [rng.uniform(-1, 1) for _ in range(dims)]


def row():
    x = [rng.gauss(0, 1) for _ in range(dims)]
    z = sum(a * b for a, b in zip(w, x)) + 1.5 * x[0] * x[1] - 0.5
    y = 1 if rng.random() < 1 / (1 + math.exp(-2 * z)) else 0
    return x + [y]


out = os.path.join(run_dir(), "data")
os.makedirs(out, exist_ok=True)
for name, n in (("train", n_train), ("val", n_val)):
    with open(os.path.join(out, f"{name}.csv"), "w", newline="") as f:
        wr = csv.writer(f)
        wr.writerow([f"x{i}" for i in range(dims)] + ["y"])
        for _ in range(n):
            r = row()
            wr.writerow([f"{v:.5f}" for v in r[:-1]] + [r[-1]])
merge_metrics({"rows_train": n_train, "rows_val": n_val})
print(f"featurize: wrote {n_train} train and {n_val} val rows to {out} (data version {os.environ.get('MLINFRA_DATA_VERSION') or '-'})", flush=True)
