"""PyTorch side of bench/vs_pytorch.sh: the same train step and eval pass as
`cargo bench --bench train_step`, on the same shapes (batch 128, 3x32x32, 10 classes).

Prints one CSV line per model: name,train_ms,eval_ms. Models follow the reference demo
(model_wideresnet.py / model_mlp.py): pre-activation WRN-28-1 and a bias-free MLP-512.
"""
import argparse
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.equal = cin == cout
        self.short = None if self.equal else nn.Conv2d(cin, cout, 1, stride, 0, bias=False)

    def forward(self, x):
        if not self.equal:
            x = F.relu(self.bn1(x))
            out = self.conv1(x)
        else:
            out = self.conv1(F.relu(self.bn1(x)))
        out = self.conv2(F.relu(self.bn2(out)))
        return (x if self.equal else self.short(x)) + out


class WideResNet(nn.Module):
    def __init__(self, depth=28, k=1, classes=10):
        super().__init__()
        n = (depth - 4) // 6
        w = [16, 16 * k, 32 * k, 64 * k]
        self.conv1 = nn.Conv2d(3, w[0], 3, 1, 1, bias=False)
        blocks = []
        for g in range(3):
            for i in range(n):
                blocks.append(BasicBlock(w[g] if i == 0 else w[g + 1], w[g + 1], (1 if g == 0 else 2) if i == 0 else 1))
        self.blocks = nn.Sequential(*blocks)
        self.bn = nn.BatchNorm2d(w[3])
        self.fc = nn.Linear(w[3], classes)

    def forward(self, x):
        x = F.relu(self.bn(self.blocks(self.conv1(x))))
        return self.fc(F.avg_pool2d(x, 8).flatten(1))


def mlp():
    return nn.Sequential(nn.Flatten(), nn.Linear(3072, 512, bias=False), nn.ReLU(), nn.Linear(512, 10, bias=False))


def timed(fn, steps, sync=lambda: None):
    """Median milliseconds per call over `steps` calls after 2 warm-up calls (the median, as in
    `cargo bench --bench train_step`, because these shared machines are noisy). `sync` waits for
    the device (a CUDA GPU runs asynchronously)."""
    for _ in range(2):
        fn()
    sync()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2] * 1e3


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--device", default="cpu", help="cpu, or cuda for bench/vs_pytorch_gpu.sh")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.backends.cudnn.benchmark = True
    sync = torch.cuda.synchronize if a.device.startswith("cuda") else (lambda: None)
    torch.manual_seed(0)
    x = torch.randn(a.batch_size, 3, 32, 32).to(a.device)
    y = torch.randint(0, 10, (a.batch_size,)).to(a.device)
    for name, model in [("WRN-28-1", WideResNet().to(a.device)), ("MLP-512", mlp().to(a.device))]:
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)

        def train():
            model.train()
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()

        def evaluate():
            model.eval()
            with torch.no_grad():
                model(x).argmax(1)

        print(f"{name},{timed(train, a.steps, sync):.2f},{timed(evaluate, a.steps, sync):.2f}", flush=True)


if __name__ == "__main__":
    main()
