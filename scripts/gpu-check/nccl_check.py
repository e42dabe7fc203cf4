# One rank of a torch.distributed NCCL job (launched by torch.distributed.run): all-reduce of the
# ranks' (rank + 1) must equal the sum over the world; every rank prints what it saw.
import json, os
import torch
import torch.distributed as dist
rank = int(os.environ["RANK"]); world = int(os.environ["WORLD_SIZE"]); local = int(os.environ["LOCAL_RANK"])
n = torch.cuda.device_count()
torch.cuda.set_device(local % n)
dist.init_process_group("nccl")
t = torch.full((1024,), float(rank + 1), device="cuda")
dist.all_reduce(t)
want = world * (world + 1) / 2
print(json.dumps({"rank": rank, "world": world, "device": local % n, "visible": os.environ.get("CUDA_VISIBLE_DEVICES"),
                  "sum": t[0].item(), "ok": bool(torch.all(t == want).item()), "nccl": ".".join(map(str, torch.cuda.nccl.version()))}), flush=True)
dist.destroy_process_group()
