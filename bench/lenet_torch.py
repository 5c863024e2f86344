#!/usr/bin/python3
"""LeNet-5 on Fashion-MNIST in PyTorch: the twin of examples/lenet.c, same protocol.

Fashion-MNIST from the IDX files (bench/q2_torch.py's reader: pixels / 255, validation = the last
10,000 training images), images [N, 1, 28, 28]; conv 5x5 pad 2 -> 6, ReLU, max pool 2, conv 5x5
-> 16, ReLU, max pool 2, flatten, 120, ReLU, 84, ReLU, 10; PyTorch's default initialisation;
Adam lr 1e-3, batch 64, a fresh shuffle per epoch; accuracy in eval mode under no_grad.

    /usr/bin/python3 bench/lenet_torch.py -epochs 10 -threads 1
    /usr/bin/python3 bench/lenet_torch.py -bench 200     # ms per training step (batch 64)
"""
import argparse
import os
import sys
import time

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from q2_torch import DEFAULT_DATA, load_data  # noqa: E402


def lenet5():
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))


def accuracy(model, x, y):
    model.eval()
    with torch.no_grad():
        hits = sum((model(x[i:i + 1000]).argmax(1) == y[i:i + 1000]).sum().item()
                   for i in range(0, len(x), 1000))
    model.train()
    return hits / len(x)


def bench(model, opt, xtr, ytr, steps, batch):
    """Median ms per step over blocks of 20 steps, after 20 warm-up steps: wall time and the
    process's CPU time (which the other jobs of a shared machine do not inflate)."""
    loss_fn = nn.CrossEntropyLoss()
    times, cpu_times = [], []
    g = torch.Generator().manual_seed(0)
    for block in range(steps // 20 + 1):
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(20):
            idx = torch.randint(0, len(xtr), (batch,), generator=g)
            opt.zero_grad()
            loss = loss_fn(model(xtr[idx]), ytr[idx])
            loss.backward()
            opt.step()
        if block:
            times.append((time.perf_counter() - t0) / 20 * 1e3)
            cpu_times.append((time.process_time() - c0) / 20 * 1e3)
    times.sort()
    cpu_times.sort()
    return times[len(times) // 2], cpu_times[len(cpu_times) // 2]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("-epochs", type=int, default=10)
    p.add_argument("-lr", type=float, default=1e-3)
    p.add_argument("-batch", type=int, default=64)
    p.add_argument("-seed", type=int, default=42)
    p.add_argument("-threads", type=int, default=1)
    p.add_argument("-data", default=os.environ.get("TG_DATA_DIR", DEFAULT_DATA))
    p.add_argument("-bench", type=int, default=0, help="time this many steps instead of training")
    p.add_argument("-no-mkldnn", action="store_true", help="convolutions without oneDNN")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    if a.no_mkldnn:
        torch.backends.mkldnn.enabled = False
    (xtr, ytr), (xva, yva), (xte, yte) = load_data(a.data)
    xtr, xva, xte = (t.reshape(-1, 1, 28, 28) for t in (xtr, xva, xte))
    model = lenet5()
    opt = torch.optim.Adam(model.parameters(), lr=a.lr)
    if a.bench:
        wall, cpu = bench(model, opt, xtr, ytr, a.bench, a.batch)
        print(f"torch step ms: {wall:.3f}")
        print(f"torch step cpu ms: {cpu:.3f}")
        return
    print(f"LeNet-5 (PyTorch {torch.__version__}), "
          f"{sum(p.numel() for p in model.parameters())} parameters, {len(xtr)} training images")
    loss_fn = nn.CrossEntropyLoss()
    for epoch in range(1, a.epochs + 1):
        t0, total = time.perf_counter(), 0.0
        perm = torch.randperm(len(xtr))
        for i in range(0, len(xtr), a.batch):
            idx = perm[i:i + a.batch]
            opt.zero_grad()
            loss = loss_fn(model(xtr[idx]), ytr[idx])
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        secs = time.perf_counter() - t0
        print(f"epoch {epoch}  train loss {total / len(xtr):.4f}  "
              f"val accuracy {accuracy(model, xva, yva):.4f}  ({secs:.1f} s)")
    print(f"test accuracy {accuracy(model, xte, yte):.4f}")


if __name__ == "__main__":
    main()
