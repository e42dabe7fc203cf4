# A real CUDA out-of-memory: allocate 16 GiB blocks until the allocator refuses (no managed memory).
import torch
blocks = []
while True:
    blocks.append(torch.empty(16 << 30, dtype=torch.uint8, device="cuda"))
    print(f"allocated {len(blocks) * 16} GiB", flush=True)
