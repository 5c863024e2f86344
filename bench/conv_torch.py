#!/usr/bin/python3
"""The layers of bench/bench_conv.c in PyTorch (Debian's python3-torch), one thread, float32:
forward and backward (input, weight and bias gradients; no input gradient for a first layer)
GFLOP/s, medians of REPS samples after a
warm-up in thread CPU time (as bench_conv.c: the machine is shared), with oneDNN (PyTorch's default convolution on CPU) and without (its im2col + BLAS path).
    /usr/bin/python3 bench/conv_torch.py [-quick]
Run it right after build/bench/bench_conv: the machine is shared, compare one run's ratios."""
import statistics
import sys
import time

import torch
import torch.nn.functional as F

torch.set_num_threads(1)
REPS = 3 if "-quick" in sys.argv else 7

# network, label, batch, C, H, W, O, kernel, stride, padding (as bench/bench_conv.c)
LAYERS = [
    ("LeNet-5", "conv1 1->6 5x5 p2 @28", 64, 1, 28, 28, 6, 5, 1, 2),
    ("LeNet-5", "conv2 6->16 5x5 @14", 64, 6, 14, 14, 16, 5, 1, 0),
    ("AlexNet", "conv1 3->64 11x11 s4 p2 @224", 8, 3, 224, 224, 64, 11, 4, 2),
    ("AlexNet", "conv2 64->192 5x5 p2 @27", 8, 64, 27, 27, 192, 5, 1, 2),
    ("AlexNet", "conv3 192->384 3x3 p1 @13", 8, 192, 13, 13, 384, 3, 1, 1),
    ("AlexNet", "conv4 384->256 3x3 p1 @13", 8, 384, 13, 13, 256, 3, 1, 1),
    ("AlexNet", "conv5 256->256 3x3 p1 @13", 8, 256, 13, 13, 256, 3, 1, 1),
    ("CIFAR AlexNet", "conv1 3->64 3x3 p1 @32", 64, 3, 32, 32, 64, 3, 1, 1),
    ("CIFAR AlexNet", "conv2 64->192 3x3 p1 @16", 64, 64, 16, 16, 192, 3, 1, 1),
    ("CIFAR AlexNet", "conv3 192->384 3x3 p1 @8", 64, 192, 8, 8, 384, 3, 1, 1),
    ("CIFAR AlexNet", "conv4 384->256 3x3 p1 @8", 64, 384, 8, 8, 256, 3, 1, 1),
    ("CIFAR AlexNet", "conv5 256->256 3x3 p1 @8", 64, 256, 8, 8, 256, 3, 1, 1),
]


def time_layer(n, c, h, w, o, k, s, p, first):
    x = torch.randn(n, c, h, w, requires_grad=not first)
    wt = (torch.randn(o, c, k, k) * 0.1).requires_grad_()
    b = torch.zeros(o, requires_grad=True)
    g = torch.randn_like(F.conv2d(x, wt, b, stride=s, padding=p))
    tf, tb = [], []
    for r in range(REPS + 1):
        x.grad = wt.grad = b.grad = None  # fresh gradients, as after zero_grad(set_to_none)
        t0 = time.thread_time()
        y = F.conv2d(x, wt, b, stride=s, padding=p)
        t1 = time.thread_time()
        y.backward(g)
        t2 = time.thread_time()
        if r:
            tf.append(t1 - t0), tb.append(t2 - t1)
    return statistics.median(tf), statistics.median(tb)


def main():
    print("PyTorch %s, %d thread, oneDNN %s" % (torch.__version__, torch.get_num_threads(),
                                               torch.backends.mkldnn.is_available()))
    print("%-14s %-30s %9s %9s %9s %9s | %9s %9s  (no oneDNN)" %
          ("network", "layer (batch)", "fwd ms", "GFLOP/s", "bwd ms", "GFLOP/s", "fwd GF/s",
           "bwd GF/s"))
    for net, label, n, c, h, w, o, k, s, p in LAYERS:
        oh, ow = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
        flop = 2.0 * n * o * oh * ow * c * k * k
        first = label.startswith("conv1")  # no input gradient: its input is data
        bflop = flop if first else 2 * flop
        with torch.backends.mkldnn.flags(enabled=True):
            f1, b1 = time_layer(n, c, h, w, o, k, s, p, first)
        with torch.backends.mkldnn.flags(enabled=False):
            f2, b2 = time_layer(n, c, h, w, o, k, s, p, first)
        print("%-14s %-30s %9.2f %9.1f %9.2f %9.1f | %9.1f %9.1f" %
              (net, "%s (%d)" % (label, n), f1 * 1e3, flop / f1 * 1e-9, b1 * 1e3,
               bflop / b1 * 1e-9, flop / f2 * 1e-9, bflop / b2 * 1e-9))


main()
