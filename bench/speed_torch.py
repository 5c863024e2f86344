#!/usr/bin/python3
"""PyTorch twin of bench/bench_speed.c: the same models, data shapes and loops, one thread
(the GEMM-bound MLP also on two), printed as RESULT key=value lines for bench/compare_speed.sh.

    /usr/bin/python3 bench/speed_torch.py [-quick]

  table1_epoch_s   784-100-10 MLP, ReLU, dropout 0.3, batch 16, SGD lr 0.01, cross-entropy:
                   seconds per 50,000-example epoch of random data, each batch gathered by index
                   from a fresh permutation (x[idx]: the fastest loop measured in
                   bench/q2_torch.py's notes), zero_grad / forward / loss / backward / step
  logreg_us        nn.Linear(784, 10) at batch 1, same loop: microseconds per step
  gemm_1t_ms       784-1024-1024-10 MLP, ReLU, batch 256, SGD: ms per step on one thread
  gemm_2t_ms       the same with torch.set_num_threads(2) (wall time)

One-thread figures are timed in the thread's CPU time (time.thread_time), as bench_speed times
them; two-thread ones in wall time. Medians of the repetitions.
Torch calls the system libblas.so.3 (BLIS here): run it with the BLIS kernels the CPU supports
(compare_speed.sh sets BLIS_ARCH_TYPE with bench/blis_arch.sh and says which).
"""
import statistics
import sys
import time

import torch
import torch.nn as nn

REPS = 3 if "-quick" in sys.argv else 5


def sgd_loop(model, opt, loss_fn, batches):
    for xb, yb in batches:
        opt.zero_grad()
        loss = loss_fn(model(xb), yb)
        loss.backward()
        opt.step()
    return loss


def table1_epoch():
    torch.manual_seed(1)
    n, batch = 50000, 16
    x = torch.rand(n, 784)
    y = torch.randint(0, 10, (n,))
    model = nn.Sequential(nn.Linear(784, 100), nn.ReLU(), nn.Dropout(0.3), nn.Linear(100, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    loss_fn = nn.CrossEntropyLoss()

    def epoch():
        perm = torch.randperm(n)
        for i in range(0, n, batch):
            idx = perm[i:i + batch]
            opt.zero_grad()
            loss = loss_fn(model(x[idx]), y[idx])
            loss.backward()
            opt.step()

    epoch()  # warm-up
    times = []
    for _ in range(REPS):
        t0 = time.thread_time()
        epoch()
        times.append(time.thread_time() - t0)
    return statistics.median(times)


def logreg_step_us():
    torch.manual_seed(2)
    model = nn.Linear(784, 10)
    opt = torch.optim.SGD(model.parameters(), lr=0.001)
    loss_fn = nn.CrossEntropyLoss()
    x, y = torch.rand(1, 784), torch.tensor([3])
    steps = 5000
    sgd_loop(model, opt, loss_fn, [(x, y)] * 200)
    times = []
    for _ in range(REPS):
        t0 = time.thread_time()
        sgd_loop(model, opt, loss_fn, [(x, y)] * steps)
        times.append((time.thread_time() - t0) / steps * 1e6)
    return statistics.median(times)


def gemm_mlp_ms(threads):
    torch.set_num_threads(threads)
    clock = time.thread_time if threads == 1 else time.perf_counter
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(784, 1024), nn.ReLU(), nn.Linear(1024, 1024), nn.ReLU(),
                          nn.Linear(1024, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    loss_fn = nn.CrossEntropyLoss()
    x, y = torch.rand(256, 784), torch.randint(0, 10, (256,))
    steps = 10
    sgd_loop(model, opt, loss_fn, [(x, y)] * 3)
    times = []
    for _ in range(REPS):
        t0 = clock()
        sgd_loop(model, opt, loss_fn, [(x, y)] * steps)
        times.append((clock() - t0) / steps * 1e3)
    torch.set_num_threads(1)
    return statistics.median(times)


def main():
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread", flush=True)
    print(f"RESULT table1_epoch_s={table1_epoch():.4f}", flush=True)
    print(f"RESULT logreg_us={logreg_step_us():.3f}", flush=True)
    print(f"RESULT gemm_1t_ms={gemm_mlp_ms(1):.3f}", flush=True)
    print(f"RESULT gemm_2t_ms={gemm_mlp_ms(2):.3f}", flush=True)


if __name__ == "__main__":
    main()
