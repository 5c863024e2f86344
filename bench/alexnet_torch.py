#!/usr/bin/python3
"""The AlexNet experiment in PyTorch: the twin of examples/alexnet/, same protocol and flags.

Data: CIFAR-10 when -data holds data_batch_1.bin ... (binary version), else Fashion-MNIST
zero-padded to 32x32 (bench/q2_torch.py's IDX reader). Validation = the last 5,000 training
images, training = a seeded random -fraction (10%) of the rest, test = the test set; per-channel
normalisation with the training subset's mean and (population) std; training batches get a
random crop of the 4-padded image and a horizontal flip; batch 64. Network: conv 3x3 s2 -> 64,
[BN] ReLU, pool; 192 [BN] ReLU pool; 384 [BN] ReLU; 256 [BN] ReLU; 256 [BN] ReLU pool;
adaptive avg pool 2x2; [dropout] hidden ReLU [dropout] hidden ReLU 10 (channels x -width).
Runs: {BN+dropout, plain} x {SGD momentum 0.9, Adam} x {5e-5, 5e-3}, every run from the same
initial weights. Writes curves_torch.csv and report_torch.md into -out.

    /usr/bin/python3 bench/alexnet_torch.py -epochs 3 -width 0.5 -hidden 1024 -out out/alexnet
"""
import argparse
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from q2_torch import DEFAULT_DATA, find, read_idx  # noqa: E402


def cifar(d):
    def load(names):
        raw = np.concatenate([np.fromfile(os.path.join(d, n), dtype=np.uint8) for n in names])
        rec = raw.reshape(-1, 3073)
        x = torch.from_numpy(rec[:, 1:].astype(np.float32) / 255.0).reshape(-1, 3, 32, 32)
        return x, torch.from_numpy(rec[:, 0].astype(np.int64))
    return load([f"data_batch_{i}.bin" for i in range(1, 6)]), load(["test_batch.bin"])


def fashion(d):
    def load(images, labels):
        x = torch.from_numpy(read_idx(find(d, images)).astype(np.float32) / 255.0)
        x = nn.functional.pad(x.reshape(-1, 1, 28, 28), (2, 2, 2, 2))
        return x, torch.from_numpy(read_idx(find(d, labels)).astype(np.int64))
    return (load("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
            load("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"))


def load_data(a):
    d = a.data or os.environ.get("TG_DATA_DIR", DEFAULT_DATA)
    is_cifar = os.path.exists(os.path.join(d, "data_batch_1.bin"))
    (x, y), test = cifar(d) if is_cifar else fashion(d)
    n = len(x) - 5000
    val = (x[n:], y[n:])
    g = torch.Generator().manual_seed(a.seed)
    keep = torch.randperm(n, generator=g)[:max(1, round(n * a.fraction))].sort().values
    train = (x[keep], y[keep])
    if a.fast:
        val, test = (val[0][:500], val[1][:500]), (test[0][:500], test[1][:500])
    mean = train[0].mean(dim=(0, 2, 3), keepdim=True)
    std = train[0].std(dim=(0, 2, 3), keepdim=True, unbiased=False)
    norm = [((t[0] - mean) / std, t[1]) for t in (train, val, test)]
    return norm, "CIFAR-10" if is_cifar else "Fashion-MNIST (zero-padded to 32x32)"


def alexnet(channels, width, hidden, bn_dropout, p):
    layers, c_in = [], channels
    for i, (c, pool) in enumerate(zip((64, 192, 384, 256, 256), (1, 1, 0, 0, 1))):
        c = max(1, round(c * width))
        layers.append(nn.Conv2d(c_in, c, 3, stride=2 if i == 0 else 1, padding=1))
        if bn_dropout:
            layers.append(nn.BatchNorm2d(c))
        layers.append(nn.ReLU())
        if pool:
            layers.append(nn.MaxPool2d(2))
        c_in = c
    layers += [nn.AdaptiveAvgPool2d((2, 2)), nn.Flatten()]
    f = c_in * 4
    for _ in range(2):
        if bn_dropout:
            layers.append(nn.Dropout(p))
        layers += [nn.Linear(f, hidden), nn.ReLU()]
        f = hidden
    layers.append(nn.Linear(f, 10))
    return nn.Sequential(*layers)


def augment(x, g):
    """Random crop of the 4-padded image (a shift in [-4, 4]^2) and a horizontal flip."""
    n, _, h, w = x.shape
    padded = nn.functional.pad(x, (4, 4, 4, 4))
    out = torch.empty_like(x)
    shifts = torch.randint(0, 9, (n, 2), generator=g)
    flips = torch.randint(0, 2, (n,), generator=g)
    for i in range(n):
        dy, dx = shifts[i].tolist()
        img = padded[i, :, dy:dy + h, dx:dx + w]
        out[i] = img.flip(-1) if flips[i] else img
    return out


def accuracy(model, x, y):
    model.eval()
    with torch.no_grad():
        hits = sum((model(x[i:i + 500]).argmax(1) == y[i:i + 500]).sum().item()
                   for i in range(0, len(x), 500))
    model.train()
    return hits / len(x)


def run(a, data, channels, opt_name, lr, bn):
    torch.manual_seed(a.seed)
    model = alexnet(channels, a.width, a.hidden, bn, a.dropout)
    opt = (torch.optim.SGD(model.parameters(), lr=lr, momentum=a.momentum) if opt_name == "sgd"
           else torch.optim.Adam(model.parameters(), lr=lr))
    (xtr, ytr), (xva, yva), (xte, yte) = data
    g = torch.Generator().manual_seed(a.seed)
    loss_fn = nn.CrossEntropyLoss()
    label = f"{'Adam' if opt_name == 'adam' else 'SGD'} {lr:.0e}, {'BN+dropout' if bn else 'plain'}"
    losses, accs, t0 = [], [], time.perf_counter()
    for epoch in range(a.epochs):
        perm, total, batches = torch.randperm(len(xtr), generator=g), 0.0, 0
        for i in range(0, len(xtr), a.batch):
            idx = perm[i:i + a.batch]
            x = xtr[idx] if a.no_augment else augment(xtr[idx], g)
            opt.zero_grad()
            loss = loss_fn(model(x), ytr[idx])
            loss.backward()
            opt.step()
            total, batches = total + loss.item(), batches + 1
        losses.append(total / batches)
        accs.append(accuracy(model, xva, yva))
        print(f"  {label:28s} epoch {epoch + 1:2d}  train loss {losses[-1]:8.4f}  "
              f"val accuracy {accs[-1]:.4f}  ({time.perf_counter() - t0:.0f} s)", flush=True)
    return dict(label=label, opt=opt_name, lr=lr, bn=bn, losses=losses, accs=accs,
                test=accuracy(model, xte, yte), secs=time.perf_counter() - t0)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("-data", default=None)
    p.add_argument("-out", default="out/alexnet")
    p.add_argument("-epochs", type=int, default=20)
    p.add_argument("-batch", type=int, default=64)
    p.add_argument("-fraction", type=float, default=0.1)
    p.add_argument("-width", type=float, default=1.0)
    p.add_argument("-hidden", type=int, default=4096)
    p.add_argument("-dropout", type=float, default=0.5)
    p.add_argument("-momentum", type=float, default=0.9)
    p.add_argument("-seed", type=int, default=42)
    p.add_argument("-threads", type=int, default=1)
    p.add_argument("-no_augment", action="store_true")
    p.add_argument("-fast", action="store_true")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    data, name = load_data(a)
    channels = data[0][0].shape[1]
    print(f"AlexNet experiment (PyTorch {torch.__version__}) on {name}: "
          f"{len(data[0][0])} training, {len(data[1][0])} validation, {len(data[2][0])} test")
    results = [run(a, data, channels, o, lr, bn)
               for bn in (True, False) for o in ("sgd", "adam") for lr in (5e-5, 5e-3)]
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "curves_torch.csv"), "w") as f:
        f.write("run,optimizer,lr,bn_dropout,epoch,train_loss,val_accuracy\n")
        for r in results:
            for e, (l, acc) in enumerate(zip(r["losses"], r["accs"])):
                f.write(f"\"{r['label']}\",{r['opt']},{r['lr']:g},{int(r['bn'])},{e + 1},"
                        f"{l:.8g},{acc:.6f}\n")
    lines = ["| run | final training loss | best validation accuracy (epoch) | final validation "
             "accuracy | test accuracy | time (s) |", "|---|---|---|---|---|---|"]
    for r in results:
        b = max(range(len(r["accs"])), key=lambda e: r["accs"][e])
        last = r["losses"][-1]
        lines.append(f"| {r['label']} | {'' if math.isfinite(last) else 'diverged: '}{last:.4f} | "
                     f"{r['accs'][b]:.4f} ({b + 1}) | {r['accs'][-1]:.4f} | {r['test']:.4f} | "
                     f"{r['secs']:.0f} |")
    with open(os.path.join(a.out, "report_torch.md"), "w") as f:
        f.write(f"# AlexNet experiment, PyTorch {torch.__version__}, {name}\n\n")
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
