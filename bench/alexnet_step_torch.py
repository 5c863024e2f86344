#!/usr/bin/python3
"""The AlexNet-sized training step in PyTorch: the twin of bench/bench_alexnet.c.

One step = zero_grad, forward, cross-entropy, backward, SGD step (momentum 0.9) on random data,
one thread: -net cifar is the AlexNet experiment's network (bench/alexnet_torch.py's alexnet(),
with batch norm and dropout, width 1, hidden 4096) on [64, 3, 32, 32]; -net imagenet is the
224x224 AlexNet (torchvision's layers) on [8, 3, 224, 224]. Prints the median ms per step over
blocks of steps after warm-up steps, in wall time and in the process's CPU time, then (-breakdown
N) the CPU time per op family over N more steps: forwards timed module by module, backwards
between the hooks on the gradients of consecutive activations (the gradient of a module's input
is ready when its backward has run).

    /usr/bin/python3 bench/alexnet_step_torch.py [-net cifar|imagenet] [-no-mkldnn] [-breakdown 3]
"""
import argparse
import os
import sys
import time

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from alexnet_torch import alexnet  # noqa: E402

FAMILIES = ("conv", "batch norm", "pooling", "relu/dropout", "linear", "loss", "other",
            "zero_grad", "optimizer")


def imagenet_alexnet(classes):
    layers, c_in = [], 3
    for c, k, s, p, pool in ((64, 11, 4, 2, 1), (192, 5, 1, 2, 1), (384, 3, 1, 1, 0),
                             (256, 3, 1, 1, 0), (256, 3, 1, 1, 1)):
        layers += [nn.Conv2d(c_in, c, k, stride=s, padding=p), nn.ReLU()]
        if pool:
            layers.append(nn.MaxPool2d(3, 2))
        c_in = c
    layers += [nn.AdaptiveAvgPool2d((6, 6)), nn.Flatten()]
    f = c_in * 36
    for _ in range(2):
        layers += [nn.Dropout(0.5), nn.Linear(f, 4096), nn.ReLU()]
        f = 4096
    layers.append(nn.Linear(f, classes))
    return nn.Sequential(*layers)


def family_of(module):
    name = type(module).__name__
    for needle, fam in (("Conv", "conv"), ("BatchNorm", "batch norm"), ("Pool", "pooling"),
                        ("ReLU", "relu/dropout"), ("Dropout", "relu/dropout"),
                        ("Linear", "linear")):
        if needle in name:
            return fam
    return "other"


def step(model, opt, loss_fn, x, y):
    opt.zero_grad()
    loss_fn(model(x), y).backward()
    opt.step()


def timed_step(model, opt, loss_fn, x, y):
    """One step with its pieces timed in process CPU time (seconds per family, fwd and bwd)."""
    fwd = dict.fromkeys(FAMILIES, 0.0)
    bwd = dict.fromkeys(FAMILIES, 0.0)
    clock = time.process_time
    c = clock()
    opt.zero_grad()
    fwd["zero_grad"] += clock() - c
    mods = list(model)
    acts = []   # acts[i] = output of mods[i]: its gradient is ready when mods[i + 1]'s bwd ran
    ready = [None] * len(mods)
    for i, m in enumerate(mods):
        c = clock()
        x = m(x)
        fwd[family_of(m)] += clock() - c
        acts.append(x)
    c = clock()
    loss = loss_fn(x, y)
    fwd["loss"] += clock() - c
    for i, a in enumerate(acts):
        a.register_hook(lambda g, i=i: ready.__setitem__(i, clock()))
    start = clock()
    loss.backward()
    end = clock()
    bwd["loss"] += ready[-1] - start
    for i, m in enumerate(mods):   # mods[i]'s backward: from its output's gradient to its input's
        t_in = ready[i - 1] if i > 0 else end
        bwd[family_of(m)] += t_in - ready[i]
    c = clock()
    opt.step()
    bwd["optimizer"] += clock() - c
    return fwd, bwd


def median(v):
    v = sorted(v)
    n = len(v)
    return v[n // 2] if n % 2 else 0.5 * (v[n // 2 - 1] + v[n // 2])


def main():
    p = argparse.ArgumentParser()
    p.add_argument("-net", choices=("cifar", "imagenet"), default="cifar")
    p.add_argument("-blocks", type=int, default=5)
    p.add_argument("-steps", type=int, default=2, help="steps per block")
    p.add_argument("-warmup", type=int, default=2)
    p.add_argument("-breakdown", type=int, default=0, help="steps timed per op family")
    p.add_argument("-no-mkldnn", action="store_true", help="convolutions without oneDNN")
    a = p.parse_args()
    a.blocks, a.steps = max(1, a.blocks), max(1, a.steps)
    torch.set_num_threads(1)
    torch.manual_seed(1)
    if a.no_mkldnn:
        torch.backends.mkldnn.enabled = False
    if a.net == "cifar":
        model, batch, side, classes = alexnet(3, 1.0, 4096, True, 0.5), 64, 32, 10
    else:
        model, batch, side, classes = imagenet_alexnet(1000), 8, 224, 1000
    opt = torch.optim.SGD(model.parameters(), lr=5e-3, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    x = torch.randn(batch, 3, side, side)
    y = torch.randint(0, classes, (batch,))
    for _ in range(a.warmup):
        step(model, opt, loss_fn, x, y)
    wall, cpu = [], []
    for _ in range(a.blocks):
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(a.steps):
            step(model, opt, loss_fn, x, y)
        wall.append((time.perf_counter() - t0) / a.steps * 1e3)
        cpu.append((time.process_time() - c0) / a.steps * 1e3)
    print(f"PyTorch {torch.__version__}, mkldnn {torch.backends.mkldnn.enabled}, "
          f"{torch.get_num_threads()} thread")
    print(f"torch step ms: {median(wall):.2f} (AlexNet {a.net}, batch {batch}, "
          f"{sum(q.numel() for q in model.parameters())} parameters, median of {a.blocks} "
          f"blocks of {a.steps} steps)")
    print(f"torch step cpu ms: {median(cpu):.2f} (process CPU time, same blocks)")
    if a.breakdown > 0:
        runs = [timed_step(model, opt, loss_fn, x, y) for _ in range(a.breakdown)]
        print(f"torch breakdown, ms of CPU time per step (median of {a.breakdown} steps): "
              "family, forward, backward, both")
        total = 0.0
        for f in FAMILIES:
            fw = median([r[0][f] for r in runs]) * 1e3
            bw = median([r[1][f] for r in runs]) * 1e3
            total += fw + bw
            print(f"torch family {f:13s} {fw:9.2f} {bw:9.2f} {fw + bw:9.2f}")
        print(f"torch family {'sum':13s} {'':9s} {'':9s} {total:9.2f}")


if __name__ == "__main__":
    main()
