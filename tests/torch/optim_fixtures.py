"""Prints the torch.optim.RMSprop and torch.optim.Adagrad fixtures of tests/test_optim.c.

    /usr/bin/python3 tests/torch/optim_fixtures.py   (Debian's python3-torch 1.13; not a build
                                                       dependency: its output is in the test)

Three steps on the parameter P0 with the gradients G1, G2, G3 of the test, in float64 and float32;
prints the parameter after each step as C initialisers."""
import torch

P0 = [0.5, -1.25, 2.0]
GS = [[0.3, -0.7, 1.5], [-0.2, 0.4, 0.9], [0.05, 0.6, -1.1]]

CASES = [
    ("rmsprop_default", torch.optim.RMSprop, dict(lr=0.01)),
    ("rmsprop_all", torch.optim.RMSprop,
     dict(lr=0.01, alpha=0.9, eps=1e-3, weight_decay=0.1, momentum=0.8, centered=True)),
    ("rmsprop_momentum", torch.optim.RMSprop, dict(lr=0.05, momentum=0.5)),
    ("rmsprop_centered", torch.optim.RMSprop, dict(lr=0.02, centered=True, weight_decay=0.05)),
    ("adagrad_default", torch.optim.Adagrad, dict(lr=0.1)),
    ("adagrad_all", torch.optim.Adagrad,
     dict(lr=0.1, lr_decay=0.05, weight_decay=0.1, initial_accumulator_value=0.3, eps=1e-6)),
]


def run(cls, kw, dtype):
    p = torch.tensor(P0, dtype=dtype, requires_grad=True)
    opt = cls([p], **kw)
    out = []
    for g in GS:
        p.grad = torch.tensor(g, dtype=dtype)
        opt.step()
        out.append(p.detach().tolist())
    return out


print("/* torch %s */" % torch.__version__)
for name, cls, kw in CASES:
    for dtype, tag, fmt in ((torch.float64, "f64", "%.17g"), (torch.float32, "f32", "%.9g")):
        steps = run(cls, kw, dtype)
        rows = ", ".join("{" + ", ".join(fmt % v for v in s) + "}" for s in steps)
        print("static const double TORCH_%s_%s[3][N] = {%s};" % (name.upper(), tag.upper(), rows))
