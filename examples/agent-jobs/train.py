# Tiny real PyTorch training job: a few steps of a linear model on random data. Resumes from
# $MLINFRA_CHECKPOINT_DIR/ckpt.pt when present and writes a checkpoint after every step.
import json, os, sys
import torch

ckpt_dir = os.environ["MLINFRA_CHECKPOINT_DIR"]
ckpt = os.path.join(ckpt_dir, "ckpt.pt")
steps = int(os.environ.get("STEPS", "20"))
torch.manual_seed(0)
x = torch.randn(256, 8)
w_true = torch.arange(8, dtype=torch.float32).unsqueeze(1)
y = x @ w_true + 0.01 * torch.randn(256, 1)
model = torch.nn.Linear(8, 1)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
start = 0
if os.path.exists(ckpt):
    state = torch.load(ckpt)
    model.load_state_dict(state["model"]); opt.load_state_dict(state["opt"]); start = state["step"]
    print(f"resumed from step {start}", flush=True)
loss = None
for step in range(start, steps):
    opt.zero_grad()
    loss = torch.nn.functional.mse_loss(model(x), y)
    loss.backward()
    opt.step()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step + 1}, ckpt)
    print(f"step {step + 1} loss {loss.item():.5f} attempt {os.environ.get('MLINFRA_ATTEMPT')}", flush=True)
    if os.environ.get("FAIL_AT") == str(step + 1) and os.environ.get("MLINFRA_ATTEMPT") == "1":
        print("simulated crash", file=sys.stderr, flush=True)
        sys.exit(1)
art = os.environ.get("MLINFRA_ARTIFACT_DIR")
if art:
    with open(os.path.join(art, "metrics.json"), "w") as f:
        json.dump({"loss": loss.item() if loss is not None else None, "steps": steps}, f)
    torch.save(model.state_dict(), os.path.join(art, "model.pt"))
