"""Step 3: picks the candidate with the best val_auc_<candidate>, copies its model to model/model.pt,
writes model/best.json and merges {"val_auc": best} into metrics.json (what deployIfBetter compares).

  compare.py a b
"""
import json
import os
import shutil
import sys

from _runfiles import merge_metrics, read_metrics, run_dir

candidates = sys.argv[1:]
if not candidates:
    sys.exit("usage: compare.py CANDIDATE...")
metrics = read_metrics()
missing = [c for c in candidates if f"val_auc_{c}" not in metrics]
if missing:
    sys.exit(f"compare: no val_auc_<c> in metrics.json for {missing}")
best = max(candidates, key=lambda c: metrics[f"val_auc_{c}"])
model_dir = os.path.join(run_dir(), "model")
shutil.copyfile(os.path.join(model_dir, f"{best}.pt"), os.path.join(model_dir, "model.pt"))
with open(os.path.join(model_dir, "best.json"), "w") as f:
    json.dump({"candidate": best, "val_auc": metrics[f"val_auc_{best}"], "candidates": {c: metrics[f"val_auc_{c}"] for c in candidates}}, f, indent=2)
merge_metrics({"val_auc": metrics[f"val_auc_{best}"]})
print(f"compare: best {best} val_auc={metrics[f'val_auc_{best}']:.4f} of {', '.join(candidates)}", flush=True)
