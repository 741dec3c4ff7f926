#!/usr/bin/env python3
"""Peer benchmark for `curvlab bench`: the same workloads in PyTorch on the CPU.

Usage: python3 bench/peer_torch.py [--data DIR] [--json] [--repeats R]
                                   [--workloads mlp,cnn,resnet18_w8,...] [--threads T]

Everything is float32, eager PyTorch on the CPU with T intra-op threads (default: the
machine's CPUs, as curvlab uses), softmax cross-entropy averaged over the batch, ReLU. Inputs
are the first CIFAR-10 training records of --data in file order, normalised with curvlab's
per-channel mean and standard deviation. Workloads (bench/README.md describes each):

  mlp           MLP 3072-512-512-10, batch 256 (the first 256 images)
  cnn           conv3x3(3->16)-ReLU-maxpool-conv3x3(16->32)-ReLU-maxpool-linear(2048->10), batch 128
  resnet18_wN   torchvision's ResNet18 with the CIFAR stem, channels N*(1,2,4,8)
  vgg11bn_wN    torchvision's VGG11 with BatchNorm, channels scaled by N/64, one linear classifier

mlp/cnn, as bench/peer_jax.py: plain SGD step (lr 0.01) on the batch, each step consuming the
previous parameters; value and gradient; exact HVP by double backward; Lanczos (tol 1e-3, full
reorthogonalisation) cold at theta_50 (50 full-batch GD steps, lr 0.02) and warm at theta_51;
exact per-example softmax Jacobian spectral norms of the first 1000 images.

resnet18_wN/vgg11bn_wN, as `curvlab bench`: the minibatch step (batch 128 drawn from the first
500 images, SGD momentum 0.9, weight decay 5e-4, BatchNorm in train mode updating its running
statistics); the gradient and the exact HVP (double backward) of the mean loss over the 500
images with BatchNorm batch statistics (running statistics left untouched); Lanczos cold at
the point the timed steps reached and warm one step later; softmax Jacobian norms of the 500
images with BatchNorm running statistics (eval mode).

Times are the median of R runs after one warm-up run (as curvlab's); Lanczos runs once each.
Progress goes to stderr; results to stdout (a table, or one JSON object with --json).
"""

import argparse
import contextlib
import json
import os
import resource
import sys
import time

import statistics

import torch
import torch.nn as nn
import torch.nn.functional as F

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_DATA = os.path.normpath(os.path.join(REPO, "..", "shared", "data", "cifar10-5k"))

MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)
CLASSES = 10
RECORD = 1 + 3 * 32 * 32

SEED = 0  # parameter initialisation
LANCZOS_SEED = 1  # cold-start vector
HVP_V_SEED = 2  # direction of the timed HVP
SGD_LR = 0.01
GD_LR = 0.02
GD_STEPS = 50
MOMENTUM = 0.9
WEIGHT_DECAY = 5e-4
BATCH = 128
MEASURED = 500
LANCZOS_TOL = 1e-3
LANCZOS_MIN_STEPS = 2
LANCZOS_MAX_STEPS = 100

QUICK_KEYS = [
    "train_step_ms", "grad_ms", "hvp_ms", "hvp_grad_ratio", "lanczos_cold_hvps",
    "lanczos_cold_ms", "lanczos_warm_hvps", "lanczos_warm_ms", "sharpness",
    "jacobian_ms_per_1000", "jacobian_max", "peak_rss_mb", "wall_s",
]
EXPERIMENT_KEYS = [
    "params", "train_step_ms", "grad_ms", "hvp_ms", "hvp_grad_ratio", "lanczos_cold_hvps",
    "lanczos_cold_ms", "lanczos_warm_hvps", "lanczos_warm_ms", "sharpness",
    "jacobian_ms_per_500", "jacobian_max", "peak_rss_mb", "wall_s",
]


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# ---------------------------------------------------------------------------------------------
# data


def load_cifar10(data_dir, n):
    """CIFAR-10 training records of data_dir (data_batch_1..5.bin in order, or train.bin),
    normalised, as (x [N,3,32,32] f32, y [N] int64). n=None: all of them; otherwise a
    class-balanced subset of n (for each class the first n/C, +1 for the first n mod C classes,
    kept in file order: curvlab's --train-samples)."""
    names = [f"data_batch_{i}.bin" for i in range(1, 6)]
    files = [os.path.join(data_dir, f) for f in names if os.path.isfile(os.path.join(data_dir, f))]
    if not files:
        train = os.path.join(data_dir, "train.bin")
        if not os.path.isfile(train):
            sys.exit(f"peer_torch: no data_batch_*.bin or train.bin in {data_dir}")
        files = [train]
    raw = b"".join(open(f, "rb").read() for f in files)
    if len(raw) % RECORD:
        sys.exit(f"peer_torch: {files}: size is not a multiple of {RECORD}")
    rec = torch.frombuffer(bytearray(raw), dtype=torch.uint8).view(-1, RECORD)
    y = rec[:, 0].long()
    if n is not None and n < len(y):
        want = [n // CLASSES + (1 if k < n % CLASSES else 0) for k in range(CLASSES)]
        idx = []
        for i, label in enumerate(y.tolist()):
            if want[label] > 0:
                want[label] -= 1
                idx.append(i)
        if any(want):
            sys.exit(f"peer_torch: too few examples of some class for a balanced subset of {n}")
        rec, y = rec[idx], y[idx]
    x = rec[:, 1:].float().view(-1, 3, 32, 32) / 255.0
    x = (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    return x.contiguous(), y


def load_first(data_dir, n):
    """The first n training records in file order (what `curvlab bench --data` uses)."""
    x, y = load_cifar10(data_dir, None)
    if len(y) < n:
        sys.exit(f"peer_torch: {data_dir} holds {len(y)} training records, the benchmark needs {n}")
    return x[:n].contiguous(), y[:n].contiguous()


# ---------------------------------------------------------------------------------------------
# models


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        idn = x if self.downsample is None else self.downsample(x)
        return F.relu(out + idn)


class ResNet18(nn.Module):
    """torchvision's resnet18 with the CIFAR stem (conv1 3x3 stride 1, no max-pool), every
    channel count scaled by width/64 (curvlab's `--width`)."""

    def __init__(self, width=64, classes=CLASSES):
        super().__init__()
        c = [max(1, round(width * k)) for k in (1, 2, 4, 8)]
        self.conv1 = nn.Conv2d(3, c[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c[0])
        cin = c[0]
        for i, cout in enumerate(c):
            stride = 1 if i == 0 else 2
            layer = nn.Sequential(BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1))
            setattr(self, f"layer{i + 1}", layer)
            cin = cout
        self.fc = nn.Linear(cin, classes)
        for m in self.modules():  # torchvision's initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return self.fc(x)


VGG11_LAYERS = [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"]


class VGG11BN(nn.Module):
    """torchvision's vgg11_bn features (conv3x3 with bias, BatchNorm, ReLU; 2x2 max-pools),
    channels c*width/64 (at least 1), then one linear classifier on the flattened 1x1 map
    (curvlab's VGG11 at 32x32); torchvision's initialisation."""

    def __init__(self, width=64, classes=CLASSES):
        super().__init__()
        layers, c = [], 3
        for v in VGG11_LAYERS:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                co = max(1, v * width // 64)
                layers += [nn.Conv2d(c, co, 3, padding=1), nn.BatchNorm2d(co), nn.ReLU(inplace=True)]
                c = co
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(c, classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        return self.classifier(torch.flatten(self.features(x), 1))


class Mlp(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(3072, 512), nn.ReLU(),
                                 nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10))

    def forward(self, x):
        return self.net(x)


class Cnn(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2, 2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2, 2),
            nn.Flatten(), nn.Linear(2048, 10))

    def forward(self, x):
        return self.net(x)


def make_model(name):
    """The model of a workload name: mlp, cnn, resnet18_wN, vgg11bn_wN."""
    if name == "mlp":
        return Mlp()
    if name == "cnn":
        return Cnn()
    for prefix, cls in (("resnet18_w", ResNet18), ("vgg11bn_w", VGG11BN)):
        if name.startswith(prefix):
            w = name[len(prefix):]
            if w.isdigit() and int(w) >= 1:
                return cls(int(w))
    sys.exit(f"peer_torch: unknown workload {name!r} (mlp, cnn, resnet18_wN, vgg11bn_wN, all)")


ALL = ["mlp", "cnn", "resnet18_w8", "vgg11bn_w8", "resnet18_w16", "vgg11bn_w16"]


# ---------------------------------------------------------------------------------------------
# timing and the operations timed


def time_ms(fn, repeats, warmup=1):
    """Median wall time of fn() in ms after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t0) * 1e3)
    return float(statistics.median(ts))


def once_ms(fn):
    t0 = time.perf_counter()
    r = fn()
    return r, (time.perf_counter() - t0) * 1e3


@contextlib.contextmanager
def frozen_running_stats(model):
    """BatchNorm in train mode (batch statistics) that leaves the running statistics as they
    are (momentum 0: r <- 1*r + 0*batch), as curvlab's measurements do."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in bns]
    model.train()
    for m in bns:
        m.momentum = 0.0
    try:
        yield
    finally:
        for m, mo in zip(bns, saved):
            m.momentum = mo


def params_of(model):
    return [p for p in model.parameters() if p.requires_grad]


def gradient(model, x, y):
    params = params_of(model)
    loss = F.cross_entropy(model(x), y)
    g = torch.autograd.grad(loss, params)
    return loss.item(), g


def hvp(model, x, y, vs):
    """H v exactly: the gradient of <grad loss, v> (double backward)."""
    params = params_of(model)
    loss = F.cross_entropy(model(x), y)
    g = torch.autograd.grad(loss, params, create_graph=True)
    dot = sum((gi * vi).sum() for gi, vi in zip(g, vs))
    return torch.autograd.grad(dot, params)


def unflatten(v, params):
    out, at = [], 0
    for p in params:
        out.append(v[at:at + p.numel()].view_as(p))
        at += p.numel()
    return out


def lanczos_top(matvec, v0, tol=LANCZOS_TOL, min_steps=LANCZOS_MIN_STEPS,
                max_steps=LANCZOS_MAX_STEPS):
    """Largest algebraic eigenpair of a symmetric operator on flat float32 vectors.

    The basis is one preallocated [max_steps+1, P] float32 tensor; full reorthogonalisation by
    classical Gram-Schmidt twice; T in float64. Stops after step m (>= min_steps) once
    beta_m |s_m| <= tol |theta_1|, at max_steps, or at an invariant subspace.
    Returns (theta_1, unit Ritz vector, products, residual)."""
    n = v0.numel()
    Q = torch.empty(max_steps + 1, n, dtype=torch.float32)
    Q[0] = v0 / v0.norm()
    alphas, betas = [], []
    theta, s, res, m = 0.0, None, float("inf"), 0
    for j in range(max_steps):
        w = matvec(Q[j])
        m = j + 1
        a = float(torch.dot(Q[j], w))
        alphas.append(a)
        w = w - a * Q[j]
        if j > 0:
            w = w - betas[-1] * Q[j - 1]
        B = Q[: j + 1]
        for _ in range(2):
            w = w - B.t() @ (B @ w)
        b = float(w.norm())
        T = torch.diag(torch.tensor(alphas, dtype=torch.float64))
        if j > 0:
            off = torch.tensor(betas, dtype=torch.float64)
            T += torch.diag(off, 1) + torch.diag(off, -1)
        evals, evecs = torch.linalg.eigh(T)
        theta, s = float(evals[-1]), evecs[:, -1]
        res = b * abs(float(s[-1]))
        if m >= min_steps and res <= tol * abs(theta):
            break
        if b <= 1e-12 * max(abs(theta), 1e-30):
            break
        betas.append(b)
        Q[j + 1] = w / b
    yv = s.float() @ Q[:m]
    return theta, yv / yv.norm(), m, res


def jacobian_norms(model, x, chunk):
    """Exact per-example spectral norms of the softmax Jacobians d softmax(f(x_i))/dx_i
    (vmap of jacrev over chunks of `chunk` examples; C x C Gram matrices, eigvalsh)."""
    from torch.func import functional_call, jacrev, vmap

    model.eval()
    params = {k: v.detach() for k, v in model.named_parameters()}
    buffers = dict(model.named_buffers())

    def probs(xi):
        return torch.softmax(functional_call(model, (params, buffers), (xi[None],))[0], -1)

    out = []
    for i in range(0, x.shape[0], chunk):
        xc = x[i:i + chunk]
        J = vmap(jacrev(probs))(xc).reshape(xc.shape[0], CLASSES, -1)
        G = torch.einsum("bci,bdi->bcd", J, J).double()
        lam = torch.linalg.eigvalsh(G)[:, -1]
        out.append(torch.sqrt(torch.clamp(lam, min=0.0)))
    model.train()
    return torch.cat(out).detach()


def random_unit(n, seed):
    v = torch.randn(n, generator=torch.Generator().manual_seed(seed))
    return v / v.norm()


# ---------------------------------------------------------------------------------------------
# workloads


def quick_workload(name, x_all, y_all, batch, repeats, jac_chunk):
    """mlp / cnn: the JAX peer's workloads (see the module docs)."""
    torch.manual_seed(SEED)
    model = make_model(name)
    params = params_of(model)
    P = sum(p.numel() for p in params)
    xb, yb = x_all[:batch], y_all[:batch]
    out = {}
    log(f"[{name}] {P} parameters, batch {batch}")

    opt = torch.optim.SGD(params, lr=SGD_LR)
    start = [p.detach().clone() for p in params]

    def step():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(xb), yb)
        loss.backward()
        opt.step()
        loss.item()

    out["train_step_ms"] = time_ms(step, repeats)
    with torch.no_grad():  # back to the initial weights
        for p, s in zip(params, start):
            p.copy_(s)
    out["grad_ms"] = time_ms(lambda: gradient(model, xb, yb), repeats)
    v = unflatten(random_unit(P, HVP_V_SEED), params)
    out["hvp_ms"] = time_ms(lambda: hvp(model, xb, yb, v), repeats)
    out["hvp_grad_ratio"] = out["hvp_ms"] / out["grad_ms"]
    log(f"[{name}] step {out['train_step_ms']:.2f} ms, gradient {out['grad_ms']:.2f} ms, "
        f"HVP {out['hvp_ms']:.2f} ms")

    gd = torch.optim.SGD(params, lr=GD_LR)
    for _ in range(GD_STEPS):
        gd.zero_grad(set_to_none=True)
        F.cross_entropy(model(xb), yb).backward()
        gd.step()
    cold, warm = lanczos_pair(model, xb, yb, lambda: gd_step(model, gd, xb, yb))
    out.update(cold_warm_keys(cold, warm))

    def jac():
        out["_norms"] = jacobian_norms(model, x_all[:1000], jac_chunk)

    with torch.no_grad():  # the initial weights, as curvlab's Jacobians
        for p, s in zip(params, start):
            p.copy_(s)
    out["jacobian_ms_per_1000"] = time_ms(jac, min(repeats, 3))
    out["jacobian_max"] = float(out.pop("_norms").max())
    return out


def gd_step(model, opt, x, y):
    opt.zero_grad(set_to_none=True)
    F.cross_entropy(model(x), y).backward()
    opt.step()


def lanczos_pair(model, x, y, advance):
    """Lanczos cold at the current point, then `advance()` and Lanczos warm from the cold
    Ritz vector; BatchNorm batch statistics, running statistics untouched."""
    params = params_of(model)
    P = sum(p.numel() for p in params)

    def matvec(q):
        return torch.cat([h.reshape(-1) for h in hvp(model, x, y, unflatten(q, params))])

    with frozen_running_stats(model):
        cold, cold_ms = once_ms(lambda: lanczos_top(matvec, random_unit(P, LANCZOS_SEED)))
    advance()
    with frozen_running_stats(model):
        warm, warm_ms = once_ms(lambda: lanczos_top(matvec, cold[1]))
    return (cold, cold_ms), (warm, warm_ms)


def cold_warm_keys(cold, warm):
    (c, c_ms), (w, w_ms) = cold, warm
    return {
        "lanczos_cold_hvps": c[2], "lanczos_cold_ms": c_ms,
        "lanczos_warm_hvps": w[2], "lanczos_warm_ms": w_ms,
        "sharpness": c[0],
    }


def experiment_workload(name, x_all, y_all, repeats, jac_chunk):
    """resnet18_wN / vgg11bn_wN: curvlab's experiment workloads (see the module docs)."""
    torch.manual_seed(SEED)
    model = make_model(name)
    params = params_of(model)
    P = sum(p.numel() for p in params)
    x, y = x_all[:MEASURED], y_all[:MEASURED]
    out = {"params": P}
    log(f"[{name}] {P} parameters: train step (batch {BATCH}), gradient and HVP ({MEASURED})")

    opt = torch.optim.SGD(params, lr=SGD_LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)
    gen = torch.Generator().manual_seed(SEED)
    order = {"perm": torch.randperm(MEASURED, generator=gen), "at": 0}

    def draw():
        if order["at"] + BATCH > MEASURED:  # a new shuffled epoch
            order["perm"], order["at"] = torch.randperm(MEASURED, generator=gen), 0
        idx = order["perm"][order["at"]:order["at"] + BATCH]
        order["at"] += BATCH
        return idx

    def step():
        idx = draw()
        model.train()
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x[idx]), y[idx])
        loss.backward()
        opt.step()
        loss.item()

    out["train_step_ms"] = time_ms(step, repeats)
    with frozen_running_stats(model):
        out["grad_ms"] = time_ms(lambda: gradient(model, x, y), repeats)
        v = unflatten(random_unit(P, HVP_V_SEED), params)
        out["hvp_ms"] = time_ms(lambda: hvp(model, x, y, v), repeats)
    out["hvp_grad_ratio"] = out["hvp_ms"] / out["grad_ms"]
    log(f"[{name}] step {out['train_step_ms']:.1f} ms, gradient {out['grad_ms']:.1f} ms, "
        f"HVP {out['hvp_ms']:.1f} ms")

    cold, warm = lanczos_pair(model, x, y, step)
    out.update(cold_warm_keys(cold, warm))
    log(f"[{name}] Lanczos cold {out['lanczos_cold_hvps']} HVPs {out['lanczos_cold_ms']:.0f} ms, "
        f"warm {out['lanczos_warm_hvps']} HVPs {out['lanczos_warm_ms']:.0f} ms")

    def jac():
        out["_norms"] = jacobian_norms(model, x, jac_chunk)

    out["jacobian_ms_per_500"] = time_ms(jac, min(repeats, 3))
    out["jacobian_max"] = float(out.pop("_norms").max())
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=DEFAULT_DATA, help="CIFAR-10 binary directory")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--repeats", type=int, default=5, help="timed repeats (median)")
    ap.add_argument("--workloads", default="mlp,cnn",
                    help="comma-separated: mlp, cnn, resnet18_wN, vgg11bn_wN, or all")
    ap.add_argument("--threads", type=int, default=os.cpu_count(),
                    help="intra-op threads (default: the machine's CPUs, as curvlab)")
    ap.add_argument("--jac-chunk", type=int, default=100,
                    help="examples per vmapped Jacobian call (C*chunk rows, as curvlab's "
                         "measure.chunk = 1000)")
    args = ap.parse_args()
    if args.repeats < 1:
        sys.exit("peer_torch: --repeats must be >= 1")
    if args.threads < 1 or args.jac_chunk < 1:
        sys.exit("peer_torch: --threads and --jac-chunk must be >= 1")
    names = []
    for w in args.workloads.split(","):
        for n in (ALL if w.strip() == "all" else [w.strip()]):
            make_model(n)  # checks the name
            if n not in names:
                names.append(n)
    torch.set_num_threads(args.threads)
    log(f"torch {torch.__version__} on the CPU, {torch.get_num_threads()} threads, "
        f"data {args.data}")
    x, y = load_first(args.data, 1000)

    res = {}
    for name in names:
        t0 = time.perf_counter()
        if name in ("mlp", "cnn"):
            r = quick_workload(name, x, y, 256 if name == "mlp" else 128, args.repeats,
                               args.jac_chunk)
        else:
            r = experiment_workload(name, x, y, args.repeats, args.jac_chunk)
        r["peak_rss_mb"] = peak_rss_mb()  # the process's so far (ru_maxrss cannot be reset)
        r["wall_s"] = time.perf_counter() - t0
        res.update({f"{name}_{k}": v for k, v in r.items()})
    res["peak_rss_mb"] = peak_rss_mb()
    res["torch_version"] = torch.__version__
    res["threads"] = torch.get_num_threads()
    res["backend"] = "torch-cpu"
    res["workloads"] = names

    if args.json:
        print(json.dumps(res))
    else:
        print(f"PyTorch {res['torch_version']} CPU, {res['threads']} threads, "
              f"median of {args.repeats}")
        for k, v in res.items():
            print(f"{k:<36}{v:.4g}" if isinstance(v, float) else f"{k:<36}{v}")


if __name__ == "__main__":
    main()
