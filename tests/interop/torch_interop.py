#!/usr/bin/env python3
"""The PyTorch side of test_interop_torch (tests/test_interop.c --torch).

  torch_interop.py check DIR REPO

DIR holds what the C side wrote: c_weights.safetensors (a ResNet-8 trained a few SGD steps,
PyTorch state_dict names), c_weights.npz (the same tensors), io.safetensors (the batch "x"
and the C net's eval-mode "logits"). This script
 1. reads the safetensors files with its own reader (json + numpy, following the format:
    u64 little-endian header length, JSON header, raw little-endian data), refusing
    anything the specification forbids;
 2. loads the weights into REPO/bench/torch_train.py's ResNet(8) with load_state_dict(strict=True),
    runs x in eval mode and compares with the C logits (max |diff| <= 1e-4 max(1, max |logit|));
 3. checks the .npz with numpy.load: the same names, shapes, dtypes and bits;
 4. writes torch_weights.safetensors (a fresh ResNet(8), seed 123, two SGD steps on random
    data so the running statistics move; those as F64, the rest F32) and torch_logits.safetensors (its eval-mode
    logits on x) for the C side to import and compare.
Exit 77 when torch or numpy is not installed (ctest: skipped)."""
import json, os, struct, sys

try:
    import numpy as np
    import torch
except ImportError as e:
    print("skipped: %s for %s" % (e, sys.executable))
    sys.exit(77)

DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "I64": np.int64, "I32": np.int32}


def read_safetensors(path):
    with open(path, "rb") as f:
        buf = f.read()
    (n,) = struct.unpack("<Q", buf[:8])
    assert 8 + n <= len(buf), "header longer than the file"
    header = json.loads(buf[8:8 + n].decode("utf-8"))
    data = buf[8 + n:]
    header.pop("__metadata__", None)
    out, spans = {}, []
    for name, e in header.items():
        dt = np.dtype(DTYPES[e["dtype"]]).newbyteorder("<")
        b, end = e["data_offsets"]
        count = int(np.prod(e["shape"], dtype=np.int64)) if e["shape"] else 1
        assert end - b == count * dt.itemsize and end <= len(data), name
        spans.append((b, end))
        out[name] = np.frombuffer(data, dtype=dt, count=count, offset=b).reshape(e["shape"]).copy()
    spans.sort()
    pos = 0
    for b, end in spans:
        assert b == pos, "hole or overlap at %d" % b
        pos = end
    assert pos == len(data), "trailing bytes"
    return out


def write_safetensors(path, tensors):
    header, blobs, off = {}, [], 0
    for name, a in tensors.items():
        a = np.ascontiguousarray(a)
        code = {np.dtype(np.float32): "F32", np.dtype(np.float64): "F64", np.dtype(np.int64): "I64"}[a.dtype]
        raw = a.astype(a.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": code, "shape": list(a.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def compare(what, got, ref):
    d = float(np.max(np.abs(got - ref)))
    m = float(np.max(np.abs(ref)))
    print("%s: max |logit diff| %.3g, max |logit| %.3g, relative %.3g" % (what, d, m, d / max(m, 1e-30)))
    return m > 0 and d <= 1e-4 * m


def main():
    mode, d, repo = sys.argv[1], sys.argv[2], sys.argv[3]
    assert mode == "check"
    sys.path.insert(0, os.path.join(repo, "bench"))
    from torch_train import ResNet
    torch.set_num_threads(1)
    ok = True

    w = read_safetensors(os.path.join(d, "c_weights.safetensors"))
    io = read_safetensors(os.path.join(d, "io.safetensors"))
    net = ResNet(8)
    want = set(net.state_dict().keys())
    if set(w) != want:
        print("names differ: only in C:", sorted(set(w) - want), "only in PyTorch:", sorted(want - set(w)))
        return 1
    net.load_state_dict({k: torch.from_numpy(v) for k, v in w.items()}, strict=True)
    net.eval()
    x = torch.from_numpy(io["x"])
    with torch.no_grad():
        logits = net(x).numpy()
    ok &= compare("C -> PyTorch", logits, io["logits"])

    z = np.load(os.path.join(d, "c_weights.npz"))
    if sorted(z.files) != sorted(w):
        print("npz members differ:", sorted(set(z.files) ^ set(w)))
        return 1
    for k in z.files:
        a = z[k]
        if a.dtype != w[k].dtype or a.shape != w[k].shape or a.tobytes() != w[k].tobytes():
            print("npz member %s differs (%s %s vs %s %s)" % (k, a.dtype, a.shape, w[k].dtype, w[k].shape))
            ok = False
    print("npz: %d members, same bits as the safetensors file" % len(z.files))

    torch.manual_seed(123)
    t = ResNet(8)
    opt = torch.optim.SGD(t.parameters(), lr=0.05, momentum=0.9)
    for _ in range(2):
        xb = torch.randn(16, 3, 32, 32)
        yb = torch.randint(0, 10, (16,))
        opt.zero_grad()
        torch.nn.functional.cross_entropy(t(xb), yb).backward()
        opt.step()
    t.eval()
    with torch.no_grad():
        tl = t(x).numpy()
    # the running statistics as F64 (exactly the float32 values: the importer's conversion
    # path, with no rounding to blur the comparison)
    sd = {k: v.detach().numpy() for k, v in t.state_dict().items()}
    sd = {k: (v.astype(np.float64) if "running_" in k else v) for k, v in sd.items()}
    write_safetensors(os.path.join(d, "torch_weights.safetensors"), sd)
    write_safetensors(os.path.join(d, "torch_logits.safetensors"), {"logits": tl})
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
