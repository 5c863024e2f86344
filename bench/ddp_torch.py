"""PyTorch DistributedDataParallel (gloo) on the two MLPs of examples/ddp_mlp.c, for
bench/bench_dist.sh. One process per rank, launched by that script with RANK, WORLD_SIZE,
MASTER_ADDR and MASTER_PORT set (torch.distributed's env:// initialisation).

The global batch is split across the ranks like ddp_mlp's (--batch is global). Rows come from a
fixed random pool of Fashion-MNIST-shaped data: step time does not depend on the values. Prints
"median step X ms" (rank 0's median over the timed steps, the first 3 steps left out).
"""
import argparse
import os
import time

import torch
import torch.distributed as dist
import torch.nn as nn

p = argparse.ArgumentParser()
p.add_argument("--model", choices=["gemm", "small"], default="gemm")
p.add_argument("--steps", type=int, default=30)
p.add_argument("--batch", type=int, default=None, help="global batch (256 gemm, 16 small)")
a = p.parse_args()
batch = a.batch or (256 if a.model == "gemm" else 16)

torch.set_num_threads(1)
torch.set_num_interop_threads(1)
torch.manual_seed(0)
world = int(os.environ.get("WORLD_SIZE", "1"))
rank = int(os.environ.get("RANK", "0"))
if world > 1:
    dist.init_process_group("gloo", init_method="env://", rank=rank, world_size=world)

if a.model == "gemm":
    model = nn.Sequential(nn.Linear(784, 1024), nn.ReLU(), nn.Linear(1024, 1024), nn.ReLU(),
                          nn.Linear(1024, 10))
    lr = 0.05
else:
    model = nn.Sequential(nn.Linear(784, 100), nn.ReLU(), nn.Dropout(0.3), nn.Linear(100, 10))
    lr = 0.01
if world > 1:
    model = nn.parallel.DistributedDataParallel(model)
opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
loss_fn = nn.CrossEntropyLoss()

pool_x = torch.rand(8192, 784)
pool_y = torch.randint(0, 10, (8192,))
lo, hi = rank * batch // world, (rank + 1) * batch // world
g = torch.Generator().manual_seed(1)
times = []
for step in range(a.steps):
    idx = torch.randint(0, 8192, (batch,), generator=g)[lo:hi]
    xb, yb = pool_x[idx], pool_y[idx]
    t0 = time.perf_counter()
    opt.zero_grad()
    loss = loss_fn(model(xb), yb)
    loss.backward()
    opt.step()
    if step >= 3:
        times.append(1e3 * (time.perf_counter() - t0))
times.sort()
if rank == 0:
    print(f"median step {times[len(times) // 2]:.3f} ms ({len(times)} steps, world {world})")
if world > 1:
    dist.destroy_process_group()
