"""PyTorch eager reference for `pn-host bench`: milliseconds per training step of the same
workloads (teacher-student student, LeNet-300-100, LeNet-5, ResNet-20 with batch norm), the same
protocol (synthetic batch, Adam lr 1e-3, blocks of 200 steps divided by the model's slowness,
6 rounds, the first discarded, best block counts), for each of the strategies asked for, as
the pn plugins of the same name do them: `baseline` (plain), `full_persistent` (a Gaussian
persistence penalty λ·exp(−‖θ − θ*‖² / 2σ²) over all parameters), `sam` (ρ = 0.05: gradient,
ascent to θ + ε, second forward and backward there), `lookahead` (k = 5, α = 0.5) and `ema`
(decay 0.99).

    python3 -m venv .venv && .venv/bin/pip install torch
    .venv/bin/python bench/pytorch_reference.py [--only resnet] [--threads N] [--device cuda]
        [--strategies baseline,sam,lookahead,ema]

`pn-host bench --pytorch PYTHON` runs this file with `--serve`, which times blocks on request
(see `serve`), so that pn's and PyTorch's blocks alternate in one invocation.
"""

import argparse
import sys
import time

import torch
from torch import nn
import torch.nn.functional as F


class Student(nn.Module):
    """f(x) = Σ relu(w_iᵀx), no biases: the teacher-student student."""

    def __init__(self, d=10, k=10):
        super().__init__()
        self.layer0 = nn.Linear(d, k, bias=False)

    def forward(self, x):
        return F.relu(self.layer0(x)).sum(dim=1, keepdim=True)


def lenet300():
    return nn.Sequential(nn.Linear(784, 300), nn.ReLU(), nn.Linear(300, 100), nn.ReLU(),
                         nn.Linear(100, 10))


def lenet5():
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                          nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + (x if self.shortcut is None else self.shortcut(x)))


class Resnet20(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(16)
        blocks, cin = [], 16
        for cout, stride in [(16, 1), (32, 2), (64, 2)]:
            for i in range(3):
                blocks.append(Block(cin, cout, stride if i == 0 else 1))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        x = self.blocks(F.relu(self.bn(self.stem(x))))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


CASES = [
    ("teacher-student mlp (d=k=10, batch 200)", Student, (10,), 0, 200, 1),
    ("lenet-300-100 mlp (28x28, batch 64)", lenet300, (784,), 10, 64, 1),
    ("lenet-5 conv (28x28, batch 64)", lenet5, (1, 28, 28), 10, 64, 10),
    ("resnet-20 (3x32x32, batch 128)", Resnet20, (3, 32, 32), 10, 128, 100),
]


def stepper(make, shape, classes, batch, strategy, device):
    torch.manual_seed(0)
    model = make().to(device)
    params = list(model.parameters())
    opt = torch.optim.Adam(params, lr=1e-3)
    x = torch.randn(batch, *shape, device=device)
    y = (torch.randint(0, classes, (batch,), device=device) if classes
         else torch.randn(batch, 1, device=device))
    anchor = torch.cat([p.detach().flatten() for p in params]) + 0.01
    lam, two_sigma2, rho, k, alpha, decay = 1.0, 2.0, 0.05, 5, 0.5, 0.99
    slow = [p.detach().clone() for p in params]
    average = [p.detach().clone() for p in params]
    count = [0]

    def task_loss():
        out = model(x)
        return F.cross_entropy(out, y) if classes else F.mse_loss(out, y)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = task_loss()
        if strategy == "full_persistent":
            theta = torch.cat([p.flatten() for p in params])
            loss = loss + lam * torch.exp(-((theta - anchor) ** 2).sum() / two_sigma2)
        loss.backward()
        if strategy == "sam":
            with torch.no_grad():
                grads = [p.grad for p in params]
                norm = torch.norm(torch.stack([g.norm() for g in grads])) + 1e-12
                eps = [g * (rho / norm) for g in grads]
                torch._foreach_add_(params, eps)
            opt.zero_grad(set_to_none=True)
            task_loss().backward()
            with torch.no_grad():
                torch._foreach_sub_(params, eps)
        opt.step()
        count[0] += 1
        with torch.no_grad():
            if strategy == "lookahead" and count[0] % k == 0:
                torch._foreach_lerp_(slow, params, alpha)
                torch._foreach_copy_(params, slow)
            if strategy == "ema":
                torch._foreach_lerp_(average, params, 1 - decay)

    return step

def measure(steppers, steps, device):
    best = [float("inf")] * len(steppers)
    for round_ in range(6):
        for i, step in enumerate(steppers):
            start = time.perf_counter()
            for _ in range(steps):
                step()
            if device.type == "cuda":
                torch.cuda.synchronize()
            ms = (time.perf_counter() - start) * 1000 / steps
            if round_ > 0:
                best[i] = min(best[i], ms)
    return best


def serve(device):
    """Answers requests on stdin, one per line, tab-separated: `setup CASE STRATEGY` builds a
    stepper and answers `ok INDEX`; `time INDEX STEPS` takes STEPS steps and answers the
    milliseconds they took; an error answers `error MESSAGE`. Stops at the end of input."""
    cases = {case[0]: case for case in CASES}
    steppers = []
    print(f"ready torch {torch.__version__}, {torch.get_num_threads()} threads", flush=True)
    for line in sys.stdin:
        request = line.rstrip("\n").split("\t")
        try:
            if request[0] == "setup" and len(request) == 3:
                _, make, shape, classes, batch, _ = cases[request[1]]
                steppers.append(stepper(make, shape, classes, batch, request[2], device))
                answer = f"ok {len(steppers) - 1}"
            elif request[0] == "time" and len(request) == 3:
                step, steps = steppers[int(request[1])], int(request[2])
                start = time.perf_counter()
                for _ in range(steps):
                    step()
                if device.type == "cuda":
                    torch.cuda.synchronize()
                answer = f"{(time.perf_counter() - start) * 1000}"
            else:
                answer = f"error unknown request {request!r}"
        except Exception as e:  # reported to pn-host, which stops with it
            answer = f"error {type(e).__name__}: {e}".replace("\n", " ")
        print(answer, flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="only workloads whose name contains this")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda[:N]")
    parser.add_argument("--strategies", default="baseline,full_persistent",
                        help="comma-separated: baseline, full_persistent, sam, lookahead, ema")
    parser.add_argument("--serve", action="store_true",
                        help="time blocks on request from pn-host bench --pytorch")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.serve:
        return serve(device)
    strategies = args.strategies.split(",")
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {where}")
    print(f"{'workload (ms/step)':<44}" + "".join(f"{s:>16}" for s in strategies))
    for name, make, shape, classes, batch, slowness in CASES:
        if args.only and args.only not in name:
            continue
        ms = measure(
            [stepper(make, shape, classes, batch, s, device) for s in strategies],
            max(1, args.steps // slowness),
            device,
        )
        print(f"{name:<44}" + "".join(f"{m:>16.4f}" for m in ms))


if __name__ == "__main__":
    main()
