# A small real training job on the GPU: an MLP on synthetic data, bf16 autocast, a checkpoint per
# 100 steps in $MLINFRA_CHECKPOINT_DIR, resumed from there when present. Fails if loss does not drop.
import json, os, sys, time
import torch
assert torch.cuda.is_available(), "no CUDA device visible"
dev = torch.device("cuda")
torch.manual_seed(0)
x = torch.randn(65536, 256, device=dev)
w = torch.randn(256, 1, device=dev)
y = torch.sin(x @ w) + 0.01 * torch.randn(65536, 1, device=dev)
model = torch.nn.Sequential(torch.nn.Linear(256, 1024), torch.nn.GELU(), torch.nn.Linear(1024, 1024), torch.nn.GELU(), torch.nn.Linear(1024, 1)).to(dev)
opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
ckpt = os.path.join(os.environ.get("MLINFRA_CHECKPOINT_DIR", "/tmp"), "ckpt.pt")
start = 0
if os.path.exists(ckpt):
    s = torch.load(ckpt, map_location=dev)
    model.load_state_dict(s["model"]); opt.load_state_dict(s["opt"]); start = s["step"]
    print(f"resumed from step {start}", flush=True)
steps = int(os.environ.get("STEPS", "600"))
first = last = None
t0 = time.time()
for step in range(start, steps):
    idx = torch.randint(0, x.shape[0], (4096,), device=dev)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss = torch.nn.functional.mse_loss(model(x[idx]).float(), y[idx])
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    if first is None:
        first = loss.item()
    if (step + 1) % 100 == 0:
        last = loss.item()
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step + 1}, ckpt)
        print(f"step {step + 1} loss {last:.5f}", flush=True)
torch.cuda.synchronize()
out = {"first_loss": first, "last_loss": last, "steps": steps - start, "seconds": round(time.time() - t0, 2),
       "max_mem_MiB": torch.cuda.max_memory_allocated() // 2**20, "device": torch.cuda.get_device_name(0)}
print(json.dumps(out), flush=True)
sys.exit(0 if last is not None and first is not None and last < first * 0.5 else 3)
