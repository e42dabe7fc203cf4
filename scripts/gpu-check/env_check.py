# What a GPU job sees: the slot the agent gave it and the device behind it.
import json, os
import torch
ok = torch.cuda.is_available()
print(json.dumps({
    "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES"),
    "MLINFRA_GPUS": os.environ.get("MLINFRA_GPUS"),
    "cuda_available": ok,
    "device_count": torch.cuda.device_count() if ok else 0,
    "device_name": torch.cuda.get_device_name(0) if ok else None,
    "capability": list(torch.cuda.get_device_capability(0)) if ok else None,
    "torch": torch.__version__,
}), flush=True)
