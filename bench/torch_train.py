#!/usr/bin/env python3
"""The PyTorch side of bench_train: the same CIFAR ResNet (He et al. 2016; conv3x3 without
bias, BN, 1x1-projection shortcuts conv+BN where the shape changes, global average pool,
linear 64k->10) or the same airbench net (examples/common/airbench.h), channels-first
float32, trained with SGD momentum on random data.
Prints 'TORCH params=<n> img_s=<median> ms=<median ms/iter>'."""
import argparse, statistics, time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x), inplace=True)


class ResNet(nn.Module):
    def __init__(self, depth, width=1.0, classes=10):
        super().__init__()
        n = (depth - 2) // 6
        w = [max(1, round(16 * (2 ** i) * width)) for i in range(3)]
        self.conv1 = nn.Conv2d(3, w[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(w[0])
        layers, cin = [], w[0]
        for s in range(3):
            for b in range(n):
                layers.append(Block(cin, w[s], 2 if (s > 0 and b == 0) else 1))
                cin = w[s]
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)), inplace=True)
        x = self.layers(x)
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.fc(x)


class Airbench(nn.Module):
    """examples/common/airbench.h: stem conv 3x3 24 + BN + ReLU; three blocks of conv 3x3,
    max pool 2, BN + ReLU, conv 3x3, BN + ReLU at widths 64k, 256k, 256k; global average
    pool; linear without bias. Convolutions without bias."""

    def __init__(self, width=0.5, classes=10):
        super().__init__()
        w = [round(64 * width), round(256 * width), round(256 * width)]
        layers, cin = [nn.Conv2d(3, 24, 3, 1, 1, bias=False), nn.BatchNorm2d(24), nn.ReLU(inplace=True)], 24
        for c in w:
            layers += [nn.Conv2d(cin, c, 3, 1, 1, bias=False), nn.MaxPool2d(2), nn.BatchNorm2d(c), nn.ReLU(inplace=True),
                       nn.Conv2d(c, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True)]
            cin = c
        self.body = nn.Sequential(*layers)
        self.fc = nn.Linear(cin, classes, bias=False)

    def forward(self, x):
        return self.fc(F.adaptive_avg_pool2d(self.body(x), 1).flatten(1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", default="resnet20")
    ap.add_argument("--width", type=float, default=None)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    if a.arch == "airbench":
        net = Airbench(0.5 if a.width is None else a.width)
    else:
        net = ResNet(int(a.arch.replace("resnet", "")), 1.0 if a.width is None else a.width)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(a.batch, 3, 32, 32)
    y = torch.randint(0, 10, (a.batch,))
    times = []
    for it in range(a.warmup + a.iters):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=False)
        loss = F.cross_entropy(net(x), y)
        loss.backward()
        opt.step()
        t = time.perf_counter() - t0
        if it >= a.warmup:
            times.append(t)
    med = statistics.median(times)
    params = sum(p.numel() for p in net.parameters())
    print("TORCH params=%d img_s=%.1f ms=%.2f loss=%.4f" % (params, a.batch / med, 1e3 * med, loss.item()))


if __name__ == "__main__":
    main()
