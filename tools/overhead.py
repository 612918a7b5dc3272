"""Per-op overhead, ndiv vs torch eager, same process, same shapes (median of repeats).

python tools/overhead.py  -> a markdown table (torch time / ndiv time; > 1 means ndiv is faster).
"""
import os
import statistics
import sys
import timeit

import numpy as np

os.environ.setdefault("OMP_NUM_THREADS", "2")
import ndiv  # noqa: E402


def bench(fn, number=None, repeat=15):
    fn()
    if number is None:  # enough calls for ~20 ms per measurement
        t = timeit.timeit(fn, number=3) / 3
        number = max(1, int(0.02 / max(t, 1e-7)))
    return statistics.median(timeit.repeat(fn, number=number, repeat=repeat)) / number


def cases_ndiv():
    rng = np.random.default_rng(0)
    a = ndiv.tensor(rng.standard_normal((64, 64), dtype=np.float32), requires_grad=True)
    b = ndiv.tensor(rng.standard_normal((64, 64), dtype=np.float32), requires_grad=True)
    x = ndiv.tensor(rng.standard_normal((32, 128), dtype=np.float32), requires_grad=True)
    w = ndiv.tensor(rng.standard_normal((128, 128), dtype=np.float32), requires_grad=True)
    g = np.ones((64, 64), np.float32)

    def add():
        a.grad = b.grad = None
        (a + b).backward(g)

    def relu():
        a.grad = None
        a.relu().backward(g)

    def sum_():
        a.grad = None
        a.sum().backward()

    def mm():
        x.grad = w.grad = None
        (x @ w).sum().backward()

    return {"add [64x64]": add, "relu [64x64]": relu, "sum [64x64]": sum_, "matmul [32x128]@[128x128] +sum": mm}


def cases_torch(torch):
    torch.manual_seed(0)
    a = torch.randn(64, 64, requires_grad=True)
    b = torch.randn(64, 64, requires_grad=True)
    x = torch.randn(32, 128, requires_grad=True)
    w = torch.randn(128, 128, requires_grad=True)
    g = torch.ones(64, 64)

    def add():
        a.grad = b.grad = None
        (a + b).backward(g)

    def relu():
        a.grad = None
        a.relu().backward(g)

    def sum_():
        a.grad = None
        a.sum().backward()

    def mm():
        x.grad = w.grad = None
        (x @ w).sum().backward()

    return {"add [64x64]": add, "relu [64x64]": relu, "sum [64x64]": sum_, "matmul [32x128]@[128x128] +sum": mm}


def mlp_ndiv():
    rng = np.random.default_rng(0)
    shapes = [(24, 512), (512, 512), (512, 12)]
    ws = [ndiv.tensor(rng.standard_normal(s, dtype=np.float32) * 0.05, requires_grad=True) for s in shapes]
    bs = [ndiv.zeros(s[1], requires_grad=True) for s in shapes]
    X = ndiv.tensor(rng.standard_normal((32, 24), dtype=np.float32))
    Y = ndiv.tensor(rng.standard_normal((32, 12), dtype=np.float32))
    params = ws + bs

    def step():
        for p in params:
            p.grad = None
        h = (X @ ws[0] + bs[0]).relu()
        h = (h @ ws[1] + bs[1]).relu()
        out = h @ ws[2] + bs[2]
        loss = ((out - Y) ** 2).mean()
        loss.backward()
        for p in params:
            p.data -= 1e-3 * p.grad
    return step


def mlp_torch(torch):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(24, 512), torch.nn.ReLU(), torch.nn.Linear(512, 512), torch.nn.ReLU(), torch.nn.Linear(512, 12))
    opt = torch.optim.SGD(net.parameters(), lr=1e-3)
    X, Y = torch.randn(32, 24), torch.randn(32, 12)

    def step():
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(net(X), Y)
        loss.backward()
        opt.step()
    return step


def main():
    try:
        import torch
        torch.set_num_threads(2)
    except ImportError:
        torch = None
    rows = []
    nd = cases_ndiv()
    nd["MLP step (32x24 -> 512 -> 512 -> 12, SGD)"] = mlp_ndiv()
    th = {}
    if torch is not None:
        th = cases_torch(torch)
        th["MLP step (32x24 -> 512 -> 512 -> 12, SGD)"] = mlp_torch(torch)
    print("| case | ndiv us | torch us | torch/ndiv |\n|---|---|---|---|")
    for name, fn in nd.items():
        if name not in th:
            print(f"| {name} | {bench(fn) * 1e6:.1f} | - | - |")
            continue
        # interleave the two so that load on a shared machine slows both alike
        t_n, t_t = [], []
        for _ in range(15):
            t_n.append(bench(fn, repeat=1))
            t_t.append(bench(th[name], repeat=1))
        t_n, t_t = statistics.median(t_n) * 1e6, statistics.median(t_t) * 1e6
        print(f"| {name} | {t_n:.1f} | {t_t:.1f} | {t_t / t_n:.2f} |")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
