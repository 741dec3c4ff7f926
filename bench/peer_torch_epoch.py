#!/usr/bin/env python3
"""PyTorch peer for bench/device.sh: a ResNet18 CIFAR-10 epoch and its sharpness estimate.

Usage: python3 bench/peer_torch_epoch.py [--data DIR] [--width W] [--train-samples N]
                                   [--measure-samples M] [--chunk C] [--device cuda|cpu]

Mirrors `curvlab run --model resnet18 --activation relu --loss ce --lr 0.1 --momentum 0.9
--batch-size 128 --epochs 1 --measure-every STEPS --samples M` (float32):

  1. sharpness at the initial weights (untimed for the comparison: it is curvlab's step-0 row,
     and it warms up both programs' kernels),
  2. one SGD epoch, timed: ceil(N/128) steps of SGD (lr 0.1, momentum 0.9, no weight decay) over
     a seeded shuffle of the N training examples, BatchNorm in train mode,
  3. sharpness at the end of the epoch, timed: the top eigenvalue of the Hessian of the
     train-mode mean cross-entropy over the first M training examples, BatchNorm batch
     statistics over consecutive chunks of C examples (curvlab's `measure.chunk`, default 1000),
     by Lanczos with full reorthogonalisation until the Ritz residual is <= 1e-3 * |theta|
     (at least 2, at most 100 steps), warm-started from the step-1 Ritz vector as curvlab's
     runs are. Each Hessian-vector product is exact (double backward,
     torch.autograd.grad(create_graph=True)); BatchNorm running statistics are saved before
     and restored after the measurement, so they never drift.

The model is torchvision's resnet18 with the CIFAR stem (conv1 3x3 stride 1 padding 1 no bias,
no max-pool, 10 classes) written out here with torchvision's parameter names, and `--width`
scaling every channel count by width/64 as curvlab's `--width` does (64 = 11,173,962
parameters); initialisation is torchvision's (Kaiming-normal fan-out convs, BatchNorm 1/0, `fc`
PyTorch's default). The weights are not curvlab's (different generators), so sharpness values
agree in size, not digit for digit.

Data: CIFAR-10 binary files (data_batch_1..5.bin, or train.bin) in --data, a class-balanced
subset of N examples as curvlab's --train-samples takes it (for each class the first N/10 in
file order, kept in file order); pixels x = (u/255 - m_c)/s_c with curvlab's m and s.

Progress goes to stderr; one JSON object goes to stdout.
"""

import argparse
import json
import math
import os
import sys
import time

import torch
import torch.nn.functional as F

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_DATA = os.path.normpath(os.path.join(REPO, "..", "shared", "data", "cifar10-5k"))

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peer_torch import CLASSES, ResNet18, load_cifar10  # noqa: E402  (shared with the bench peer)

LR = 0.1
MOMENTUM = 0.9
BATCH = 128
LANCZOS_TOL = 1e-3
LANCZOS_MIN_STEPS = 2
LANCZOS_MAX_STEPS = 100


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# timing helpers


def sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


# ---------------------------------------------------------------------------------------------
# sharpness: Lanczos on exact HVPs of the train-mode loss


class Hessian:
    """v -> H v for the mean loss over xs (BatchNorm batch statistics per chunk)."""

    def __init__(self, model, xs, ys, chunk):
        self.model = model
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.n = len(ys)
        self.chunks = [
            (xs[i : i + chunk], ys[i : i + chunk]) for i in range(0, self.n, chunk)
        ]
        self.count = 0

    def unflatten(self, v):
        out, at = [], 0
        for p in self.params:
            out.append(v[at : at + p.numel()].view_as(p))
            at += p.numel()
        return out

    def __call__(self, v):
        vs = self.unflatten(v)
        hv = torch.zeros_like(v)
        for x, y in self.chunks:
            # sum over the chunk / n: the chunks' terms add up to the mean over all n
            loss = F.cross_entropy(self.model(x), y, reduction="sum") / self.n
            g = torch.autograd.grad(loss, self.params, create_graph=True)
            dot = sum((gi * vi).sum() for gi, vi in zip(g, vs))
            hvs = torch.autograd.grad(dot, self.params)
            hv += torch.cat([h.reshape(-1) for h in hvs])
        self.count += 1
        return hv


def lanczos_top(op, start, tol=LANCZOS_TOL, min_steps=LANCZOS_MIN_STEPS, max_steps=LANCZOS_MAX_STEPS):
    """Top eigenvalue of op by Lanczos with full reorthogonalisation (two Gram-Schmidt passes).

    The basis lives on op's device in float32; the tridiagonal matrix in float64 on the CPU.
    Stops when beta_m |s_m| <= tol |theta| (the Ritz pair's residual). Returns
    (theta, residual, ritz vector, steps).
    """
    q = start / start.norm()
    Q = [q]
    alphas, betas = [], []
    theta, resid, s = float("nan"), float("inf"), None
    for m in range(1, max_steps + 1):
        w = op(Q[-1])
        a = torch.dot(w, Q[-1]).item()
        alphas.append(a)
        basis = torch.stack(Q)  # [m, p]
        for _ in range(2):
            w = w - basis.t() @ (basis @ w)
        b = w.norm().item()
        T = torch.diag(torch.tensor(alphas, dtype=torch.float64))
        if betas:
            off = torch.tensor(betas, dtype=torch.float64)
            T += torch.diag(off, 1) + torch.diag(off, -1)
        evals, evecs = torch.linalg.eigh(T)
        theta = evals[-1].item()
        s = evecs[:, -1]
        resid = b * abs(s[-1].item())
        if m >= min_steps and resid <= tol * abs(theta):
            break
        if b == 0.0:
            break
        betas.append(b)
        Q.append(w / b)
    basis = torch.stack(Q[: len(s)])
    ritz = basis.t() @ s.to(basis.dtype).to(basis.device)
    return theta, resid, ritz, len(alphas)


def bn_buffers(model):
    return {k: v.clone() for k, v in model.state_dict().items() if "running" in k or "num_batches" in k}


def sharpness(model, xs, ys, chunk, start, dev):
    saved = bn_buffers(model)
    model.train()
    op = Hessian(model, xs, ys, chunk)
    sync(dev)
    t = time.perf_counter()
    theta, resid, ritz, steps = lanczos_top(op, start)
    sync(dev)
    wall = time.perf_counter() - t
    model.load_state_dict(saved, strict=False)  # running statistics exactly as before
    return {"sharpness": theta, "residual": resid, "hvps": op.count, "seconds": wall}, ritz


# ---------------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=DEFAULT_DATA)
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--train-samples", type=int, default=None, help="default: all")
    ap.add_argument("--measure-samples", type=int, default=1000)
    ap.add_argument("--chunk", type=int, default=1000)
    ap.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    dev = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    torch.manual_seed(args.seed)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
        # float32 means float32: no TF32 tensor-core rounding in convs or matmuls
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False

    x, y = load_cifar10(args.data, args.train_samples)
    n = len(y)
    m = min(args.measure_samples, n)
    x, y = x.to(dev), y.to(dev)
    xm, ym = x[:m], y[:m]
    model = ResNet18(args.width).to(dev)
    params = sum(p.numel() for p in model.parameters())
    steps = math.ceil(n / BATCH)
    log(f"peer_torch: torch {torch.__version__} on {dev}, ResNet18 width {args.width} "
        f"({params:,} parameters), {n} training examples ({steps} steps), {m} measured")

    gen = torch.Generator().manual_seed(args.seed + 1)
    start = torch.randn(params, generator=gen).to(dev)
    init, ritz = sharpness(model, xm, ym, args.chunk, start, dev)
    log(f"peer_torch: sharpness at init {init['sharpness']:.4f} ({init['hvps']} HVPs, "
        f"{init['seconds']:.2f} s)")

    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    order = torch.randperm(n, generator=gen).to(dev)
    model.train()
    sync(dev)
    t = time.perf_counter()
    for i in range(steps):
        idx = order[i * BATCH : (i + 1) * BATCH]
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    last_loss = loss.item()  # synchronises
    sync(dev)
    epoch_s = time.perf_counter() - t
    log(f"peer_torch: epoch {epoch_s:.2f} s, last batch loss {last_loss:.4f}")

    end, _ = sharpness(model, xm, ym, args.chunk, ritz, dev)
    log(f"peer_torch: sharpness after the epoch {end['sharpness']:.4f} ({end['hvps']} HVPs, "
        f"{end['seconds']:.2f} s)")

    out = {
        "program": "pytorch",
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
        "width": args.width,
        "params": params,
        "train_samples": n,
        "steps": steps,
        "measure_samples": m,
        "chunk": args.chunk,
        "epoch_s": epoch_s,
        "last_batch_loss": last_loss,
        "sharpness_init": init["sharpness"],
        "hvps_init": init["hvps"],
        "sharpness_init_s": init["seconds"],
        "sharpness": end["sharpness"],
        "sharpness_residual": end["residual"],
        "hvps": end["hvps"],
        "sharpness_s": end["seconds"],
        "hvp_ms": 1000.0 * end["seconds"] / end["hvps"],
    }
    if dev.type == "cuda":
        out["peak_gpu_mem_gb"] = torch.cuda.max_memory_allocated(dev) / 1e9
    print(json.dumps(out))


if __name__ == "__main__":
    main()
