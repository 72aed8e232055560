#!/usr/bin/env python3
"""ctest interop_train_cifar10_torch: weights cross between train_cifar10 and PyTorch 1.13.

  trained_torch.py TRAIN_CIFAR10 RESNET_IO REPO DIR

 1. train_cifar10 trains a ResNet-20 (built-in data, one epoch) and exports it (--export);
    this script reads the file by the safetensors specification (u64 header length, JSON
    header, raw little-endian data) with torch.frombuffer, loads it into bench/torch_train.py's
    ResNet(20) with load_state_dict(strict=True), and compares its eval-mode logits on 1,000
    images with the C net's (resnet_io logits): max |diff| <= 1e-4 max(1, max |logit|).
 2. A ResNet(20) initialised in PyTorch (seed 5) is written as safetensors; its training-mode
    loss on a batch of 64 (the first step's loss) must equal the C net's after importing
    the file (resnet_io loss) within 1e-5 relative; and train_cifar10 --init-weights takes the
    file and trains from it.
Exit 77 (ctest: skipped) when torch or numpy is missing."""
import json
import os
import struct
import subprocess
import sys

try:
    import numpy as np
    import torch
except ImportError as e:
    print("skipped: %s for %s" % (e, sys.executable))
    sys.exit(77)

DTYPES = {"F32": torch.float32, "F64": torch.float64, "I64": torch.int64}


def read_safetensors(path):
    buf = open(path, "rb").read()
    (n,) = struct.unpack("<Q", buf[:8])
    header = json.loads(buf[8:8 + n])
    data = buf[8 + n:]
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        b, end = e["data_offsets"]
        t = torch.frombuffer(bytearray(data[b:end]), dtype=DTYPES[e["dtype"]])
        out[name] = t.reshape(e["shape"])
    return out


def write_safetensors(path, tensors):
    header, blobs, off = {}, [], 0
    for name, t in tensors.items():
        a = t.detach().contiguous().numpy()
        code = {np.dtype(np.float32): "F32", np.dtype(np.int64): "I64"}[a.dtype]
        raw = a.tobytes()
        header[name] = {"dtype": code, "shape": list(a.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def run(cmd):
    print("$", " ".join(cmd), flush=True)
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    print(p.stdout[-3000:], flush=True)
    if p.returncode != 0:
        sys.exit("FAIL: exit %d" % p.returncode)
    return p.stdout


def main():
    train, resnet_io, repo, d = sys.argv[1:5]
    os.makedirs(d, exist_ok=True)
    sys.path.insert(0, os.path.join(repo, "bench"))
    from torch_train import ResNet
    torch.set_num_threads(1)
    common = ["--arch", "resnet20", "--synthetic-size", "1280", "--val-split", "256", "--batch", "64",
              "--threads", "2", "--seed", "3"]

    exported = os.path.join(d, "r20.safetensors")
    run([train] + common + ["--epochs", "1", "--export", exported])
    net = ResNet(20)
    net.load_state_dict(read_safetensors(exported), strict=True)
    net.eval()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1000, 3, 32, 32, generator=g)
    write_safetensors(os.path.join(d, "x.safetensors"), {"x": x})
    out = os.path.join(d, "c_logits.safetensors")
    run([resnet_io, "logits", "20", exported, os.path.join(d, "x.safetensors"), out + ":1000"])
    ours = read_safetensors(out)["logits"]
    with torch.no_grad():
        theirs = net(x)
    diff, top = (theirs - ours).abs().max().item(), theirs.abs().max().item()
    print("train_cifar10 -> PyTorch, 1000 images: max |logit diff| %.3g, max |logit| %.3g" % (diff, top))
    if not diff <= 1e-4 * max(1.0, top):
        sys.exit("FAIL: the exported ResNet-20 gives other logits in PyTorch")

    torch.manual_seed(5)
    t = ResNet(20)
    init = os.path.join(d, "torch_init.safetensors")
    write_safetensors(init, t.state_dict())
    xb = torch.randn(64, 3, 32, 32, generator=g)
    yb = torch.randint(0, 10, (64,), generator=g)
    write_safetensors(os.path.join(d, "batch.safetensors"), {"x": xb, "y": yb.float()})
    t.train()
    with torch.no_grad():
        loss_t = torch.nn.functional.cross_entropy(t(xb), yb).item()
    line = run([resnet_io, "loss", "20", init, os.path.join(d, "batch.safetensors"), "64"])
    loss_c = float(line.split()[-1])
    print("PyTorch-initialised ResNet-20, first-step loss: PyTorch %.7f, C %.7f" % (loss_t, loss_c))
    if not abs(loss_t - loss_c) <= 1e-5 * max(1.0, abs(loss_t)):
        sys.exit("FAIL: the imported weights give another first-step loss")
    run([train] + common + ["--epochs", "1", "--max-steps", "2", "--init-weights", init])
    print("ok: weights cross between train_cifar10 and PyTorch both ways")
    return 0


if __name__ == "__main__":
    sys.exit(main())
