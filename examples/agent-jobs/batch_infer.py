# Tiny real batch inference: scores each JSON line of $MLINFRA_INPUT with a fixed linear model and
# writes one JSON line per input line to $MLINFRA_OUTPUT.
import json, os
import torch

torch.manual_seed(42)
model = torch.nn.Linear(4, 1)
marker_dir = os.environ.get("MARKER_DIR")
if marker_dir:
    open(os.path.join(marker_dir, f"{os.environ['MLINFRA_SHARD_INDEX']}.{os.getpid()}"), "w").close()
rows = [json.loads(l) for l in open(os.environ["MLINFRA_INPUT"]) if l.strip()]
with torch.no_grad():
    scores = model(torch.tensor([r["x"] for r in rows], dtype=torch.float32)).squeeze(1).tolist()
with open(os.environ["MLINFRA_OUTPUT"], "w") as out:
    for r, s in zip(rows, scores):
        out.write(json.dumps({"id": r["id"], "score": s}) + "\n")
print(f"scored {len(rows)} rows of {os.environ['MLINFRA_SHARD_KEY']} on CUDA_VISIBLE_DEVICES=[{os.environ['CUDA_VISIBLE_DEVICES']}]", flush=True)
