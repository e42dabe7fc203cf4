"""Step 2: trains one candidate model on CPU (a few seconds) and records its validation AUC.

  train.py --candidate a --lr 0.05 --hidden 0     (hidden 0: logistic regression; > 0: a 2-layer MLP)

Reads $MLINFRA_RUN_DIR/data/{train,val}.csv (featurize.py), writes model/<candidate>.pt and merges
{"val_auc_<candidate>": auc} into metrics.json.
"""
import argparse
import csv
import os
import time

import torch

from _runfiles import merge_metrics, params, run_dir

ap = argparse.ArgumentParser()
ap.add_argument("--candidate", required=True)
ap.add_argument("--lr", type=float, default=0.05)
ap.add_argument("--hidden", type=int, default=0)
ap.add_argument("--epochs", type=int, default=300)
a = ap.parse_args()
torch.set_num_threads(1)
torch.manual_seed(int(params().get("seed", 0)))


def load(name):
    with open(os.path.join(run_dir(), "data", f"{name}.csv")) as f:
        rows = list(csv.reader(f))[1:]
    t = torch.tensor([[float(v) for v in r] for r in rows])
    return t[:, :-1], t[:, -1]


def auc(scores, labels):
    """Area under the ROC curve: the probability that a random positive outranks a random negative."""
    order = torch.argsort(scores)
    ranks = torch.empty_like(scores)
    ranks[order] = torch.arange(1, len(scores) + 1, dtype=scores.dtype)
    pos = labels == 1
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


x, y = load("train")
xv, yv = load("val")
dims = x.shape[1]
if a.hidden > 0:
    model = torch.nn.Sequential(torch.nn.Linear(dims, a.hidden), torch.nn.ReLU(), torch.nn.Linear(a.hidden, 1))
else:
    model = torch.nn.Linear(dims, 1)
opt = torch.optim.Adam(model.parameters(), lr=a.lr)
loss_fn = torch.nn.BCEWithLogitsLoss()
t0 = time.time()
for epoch in range(a.epochs):
    opt.zero_grad()
    loss = loss_fn(model(x).squeeze(1), y)
    loss.backward()
    opt.step()
model.eval()
with torch.no_grad():
    val_auc = auc(model(xv).squeeze(1), yv)
os.makedirs(os.path.join(run_dir(), "model"), exist_ok=True)
torch.save({"state_dict": model.state_dict(), "hidden": a.hidden, "dims": dims, "lr": a.lr},
           os.path.join(run_dir(), "model", f"{a.candidate}.pt"))
merge_metrics({f"val_auc_{a.candidate}": round(val_auc, 6), f"train_loss_{a.candidate}": round(float(loss), 6)})
print(f"train {a.candidate}: hidden={a.hidden} lr={a.lr} epochs={a.epochs} loss={float(loss):.4f} val_auc={val_auc:.4f} "
      f"({time.time() - t0:.2f}s, attempt {os.environ.get('MLINFRA_ATTEMPT')})", flush=True)
