#!/usr/bin/env python3
"""Peer benchmark for `curvlab bench`: the same workloads in JAX on the CPU.

Usage: python3 bench/peer_jax.py [--data DIR] [--json] [--repeats R] [--workloads mlp,cnn]

Two workloads (float32, softmax cross-entropy averaged over the batch, ReLU):
  mlp  MLP 3072-512-512-10 on the first 256 CIFAR-10 training images,
  cnn  conv3x3(3->16,p1)-ReLU-maxpool2-conv3x3(16->32,p1)-ReLU-maxpool2-linear(2048->10)
       on the first 128 images (NCHW).
For each: SGD train step, value_and_grad, exact HVP (forward-over-reverse), Lanczos
(full reorthogonalisation, tol 1e-3) cold and warm at a mid-training point, and exact
per-example softmax input-output Jacobian spectral norms for 1000 examples.
bench/README.md describes every workload precisely.

Progress goes to stderr; results to stdout (a table, or one JSON object with --json).
"""

import argparse
import functools
import json
import os
import resource
import sys
import time

# numpy's BLAS only runs Lanczos' memory-bound vector operations; its threads would
# compete with XLA's thread pool for the same cores.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

import jax  # noqa: E402

jax.config.update("jax_platforms", "cpu")
jax.config.update("jax_enable_x64", False)

import jax.numpy as jnp  # noqa: E402
from jax.flatten_util import ravel_pytree  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_DATA = os.path.normpath(os.path.join(REPO, "..", "shared", "data", "cifar10-5k"))

MEAN = np.array([0.4914, 0.4822, 0.4465], dtype=np.float32)
STD = np.array([0.2470, 0.2435, 0.2616], dtype=np.float32)

SEED = 0  # parameter initialisation (numpy default_rng(SEED))
LANCZOS_SEED = 1  # cold-start vector (numpy default_rng(LANCZOS_SEED))
HVP_V_SEED = 2  # direction of the timed HVP (numpy default_rng(HVP_V_SEED))

SGD_LR = 0.01  # train_step_ms
GD_LR = 0.02  # mid-training point for Lanczos
GD_STEPS = 50
LANCZOS_TOL = 1e-3
LANCZOS_MIN_STEPS = 2
LANCZOS_MAX_STEPS = 100
JAC_EXAMPLES = 1000
JAC_CHUNK = 250

TIMING_KEYS = [
    "train_step_ms",
    "grad_ms",
    "hvp_ms",
    "hvp_grad_ratio",
    "lanczos_cold_hvps",
    "lanczos_cold_ms",
    "lanczos_warm_hvps",
    "lanczos_warm_ms",
    "sharpness",
    "jacobian_ms_per_1000",
    "jacobian_max",
]


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# ----------------------------------------------------------------------------- data


def load_cifar(data_dir, n):
    """First n records of data_batch_1.bin, normalised, as (x [n,3,32,32] f32, y [n] i32)."""
    path = os.path.join(data_dir, "data_batch_1.bin")
    if not os.path.isfile(path):
        sys.exit(f"peer_jax: {path} not found (use --data DIR)")
    raw = np.fromfile(path, dtype=np.uint8, count=n * 3073)
    if raw.size < n * 3073:
        sys.exit(f"peer_jax: {path} holds fewer than {n} records")
    rec = raw.reshape(n, 3073)
    y = rec[:, 0].astype(np.int32)
    u = rec[:, 1:].reshape(n, 3, 32, 32).astype(np.float32)
    x = (u / np.float32(255.0) - MEAN[None, :, None, None]) / STD[None, :, None, None]
    return x.astype(np.float32), y


# ----------------------------------------------------------------------------- models


def uniform(rng, shape, fan_in):
    b = 1.0 / np.sqrt(fan_in)
    return jnp.asarray(rng.uniform(-b, b, size=shape).astype(np.float32))


def init_mlp(rng, sizes=(3072, 512, 512, 10)):
    params = []
    for fin, fout in zip(sizes[:-1], sizes[1:]):
        params.append(uniform(rng, (fout, fin), fin))  # PyTorch layout [out, in]
        params.append(uniform(rng, (fout,), fin))
    return params


def mlp_logits(params, x):
    """x: [B, 3072] -> [B, 10]."""
    h = x
    n = len(params) // 2
    for i in range(n):
        w, b = params[2 * i], params[2 * i + 1]
        h = h @ w.T + b
        if i < n - 1:
            h = jax.nn.relu(h)
    return h


def init_cnn(rng):
    return [
        uniform(rng, (16, 3, 3, 3), 3 * 9),
        uniform(rng, (16,), 3 * 9),
        uniform(rng, (32, 16, 3, 3), 16 * 9),
        uniform(rng, (32,), 16 * 9),
        uniform(rng, (10, 32 * 8 * 8), 32 * 8 * 8),
        uniform(rng, (10,), 32 * 8 * 8),
    ]


def _conv(h, w, b):
    out = jax.lax.conv_general_dilated(
        h, w, window_strides=(1, 1), padding=((1, 1), (1, 1)),
        dimension_numbers=("NCHW", "OIHW", "NCHW"))
    return out + b[None, :, None, None]


def _maxpool2(h):
    return jax.lax.reduce_window(h, -jnp.inf, jax.lax.max,
                                 window_dimensions=(1, 1, 2, 2),
                                 window_strides=(1, 1, 2, 2), padding="VALID")


def cnn_logits(params, x):
    """x: [B, 3, 32, 32] -> [B, 10]."""
    w1, b1, w2, b2, w3, b3 = params
    h = _maxpool2(jax.nn.relu(_conv(x, w1, b1)))  # [B,16,16,16]
    h = _maxpool2(jax.nn.relu(_conv(h, w2, b2)))  # [B,32,8,8]
    h = h.reshape(h.shape[0], -1)  # (c,h,w) flatten
    return h @ w3.T + b3


def cross_entropy(logits, y):
    lp = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.mean(jnp.take_along_axis(lp, y[:, None], axis=1))


# ----------------------------------------------------------------------------- timing


def block(t):
    return jax.tree_util.tree_map(lambda a: a.block_until_ready(), t)


def time_ms(fn, repeats, warmup=2):
    """Median wall time of fn() in ms after `warmup` untimed calls; fn must block."""
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(ts))


# ----------------------------------------------------------------------------- Lanczos


def lanczos_top(matvec, v0, tol=LANCZOS_TOL, min_steps=LANCZOS_MIN_STEPS,
                max_steps=LANCZOS_MAX_STEPS):
    """Largest algebraic eigenpair of a symmetric operator.

    Full reorthogonalisation (classical Gram-Schmidt against the whole basis,
    applied twice) in float64.
    Stops after step m (>= min_steps) once beta_m * |s_m| <= tol * |theta_1|, where
    (theta_1, s) is the top eigenpair of T_m, or at max_steps, or on breakdown.
    Returns (theta_1, unit Ritz vector, number of operator products, residual).
    """
    n = v0.size
    Q = np.empty((max_steps + 1, n), dtype=np.float64)  # rows: orthonormal basis
    q = np.asarray(v0, dtype=np.float64)
    Q[0] = q / np.linalg.norm(q)
    alphas, betas = [], []
    theta, s, res = 0.0, None, np.inf
    m = 0
    for j in range(max_steps):
        w = np.asarray(matvec(Q[j]), dtype=np.float64)
        m = j + 1
        a = float(Q[j] @ w)
        alphas.append(a)
        w -= a * Q[j]
        if j > 0:
            w -= betas[-1] * Q[j - 1]
        B = Q[: j + 1]
        for _ in range(2):  # full reorthogonalisation (classical Gram-Schmidt, twice)
            w -= B.T @ (B @ w)
        b = float(np.linalg.norm(w))
        T = np.diag(alphas)
        if j > 0:
            T += np.diag(betas, 1) + np.diag(betas, -1)
        evals, evecs = np.linalg.eigh(T)
        theta, s = float(evals[-1]), evecs[:, -1]
        res = b * abs(float(s[-1]))
        if m >= min_steps and res <= tol * abs(theta):
            break
        if b <= 1e-12 * max(abs(theta), 1e-30):  # invariant subspace: exact
            break
        betas.append(b)
        Q[j + 1] = w / b
    y = s @ Q[:m]
    y /= np.linalg.norm(y)
    return theta, y, m, res


# ----------------------------------------------------------------------------- workloads


def run_workload(name, logits_fn, params, x_batch, y_batch, x_jac, repeats, jac_chunk):
    out = {}
    xb, yb = jnp.asarray(x_batch), jnp.asarray(y_batch)

    def loss(p, x, y):
        return cross_entropy(logits_fn(p, x), y)

    vg = jax.jit(jax.value_and_grad(loss))

    # the whole step is one jitted function; the parameters' buffers are donated (updated in
    # place) and each timed step consumes the previous step's parameters, as a training loop does
    @functools.partial(jax.jit, donate_argnums=(0,))
    def sgd_step(p, x, y):
        l, g = jax.value_and_grad(loss)(p, x, y)
        return jax.tree_util.tree_map(lambda a, b: a - SGD_LR * b, p, g), l

    @jax.jit
    def gd_step(p, x, y):
        l, g = jax.value_and_grad(loss)(p, x, y)
        return jax.tree_util.tree_map(lambda a, b: a - GD_LR * b, p, g), l

    @jax.jit
    def hvp(p, v, x, y):
        return jax.jvp(lambda q: jax.grad(loss)(q, x, y), (p,), (v,))[1]

    flat0, unravel = ravel_pytree(params)
    nparams = flat0.size
    log(f"[{name}] {nparams} parameters, batch {x_batch.shape[0]}; "
        f"peak RSS so far {peak_rss_mb():.0f} MB")

    rng = np.random.default_rng(HVP_V_SEED)
    vflat = rng.standard_normal(nparams).astype(np.float32)
    vflat /= np.linalg.norm(vflat)
    v = unravel(jnp.asarray(vflat))

    # 1. train step: chained steps from a copy of the initial parameters (the copy's buffers
    # are donated to the first step)
    chain = {"p": jax.tree_util.tree_map(jnp.copy, params)}

    def train_step():
        chain["p"], l = sgd_step(chain["p"], xb, yb)
        block((chain["p"], l))

    t0 = time.perf_counter()
    train_step()
    log(f"[{name}] compile train_step {time.perf_counter() - t0:.2f}s")
    out["train_step_ms"] = time_ms(train_step, repeats)
    del chain
    log(f"[{name}] train_step_ms {out['train_step_ms']:.3f}")

    # 2. value_and_grad
    out["grad_ms"] = time_ms(lambda: block(vg(params, xb, yb)), repeats)
    log(f"[{name}] grad_ms {out['grad_ms']:.3f}")

    # 3. HVP
    t0 = time.perf_counter()
    block(hvp(params, v, xb, yb))
    log(f"[{name}] compile hvp {time.perf_counter() - t0:.2f}s")
    out["hvp_ms"] = time_ms(lambda: block(hvp(params, v, xb, yb)), repeats)
    out["hvp_grad_ratio"] = out["hvp_ms"] / out["grad_ms"]
    log(f"[{name}] hvp_ms {out['hvp_ms']:.3f} (ratio {out['hvp_grad_ratio']:.2f})")

    # 5. Lanczos at a mid-training point
    p = params
    for k in range(GD_STEPS):
        p, l = gd_step(p, xb, yb)
    block(p)
    log(f"[{name}] after {GD_STEPS} GD steps (lr {GD_LR}): loss {float(l):.4f}")

    # Lanczos operator: split the float64 vector into the parameter shapes on the host,
    # call the same jitted pytree HVP, concatenate on the host. (Raveling inside the jitted
    # function instead makes XLA CPU much slower, up to 5x on the mlp.)
    shapes = [a.shape for a in jax.tree_util.tree_leaves(params)]
    treedef = jax.tree_util.tree_structure(params)
    offsets = np.cumsum([0] + [int(np.prod(sh)) for sh in shapes])

    def make_matvec(pt):
        def mv(q64):
            q32 = np.asarray(q64, dtype=np.float32)
            leaves = [jnp.asarray(q32[offsets[i]:offsets[i + 1]].reshape(sh))
                      for i, sh in enumerate(shapes)]
            hv = hvp(pt, jax.tree_util.tree_unflatten(treedef, leaves), xb, yb)
            return np.concatenate([np.asarray(a, dtype=np.float64).ravel()
                                   for a in jax.tree_util.tree_leaves(hv)])
        return mv

    mv_mid = make_matvec(p)
    mv_mid(np.asarray(flat0, dtype=np.float64))  # same shapes: already compiled
    v0 = np.random.default_rng(LANCZOS_SEED).standard_normal(nparams)
    v0 /= np.linalg.norm(v0)

    cold = {}

    def run_cold():
        cold["r"] = lanczos_top(mv_mid, v0)

    out["lanczos_cold_ms"] = time_ms(run_cold, repeats, warmup=0)
    theta, y_top, m_cold, res = cold["r"]
    out["lanczos_cold_hvps"] = m_cold
    out["sharpness"] = theta
    log(f"[{name}] lanczos cold: {m_cold} HVPs, {out['lanczos_cold_ms']:.1f} ms, "
        f"sharpness {theta:.4f} (relative residual {res / abs(theta):.2e})")

    p2, _ = gd_step(p, xb, yb)
    block(p2)
    mv_next = make_matvec(p2)
    warm = {}

    def run_warm():
        warm["r"] = lanczos_top(mv_next, y_top)

    out["lanczos_warm_ms"] = time_ms(run_warm, repeats, warmup=0)
    theta2, _, m_warm, res2 = warm["r"]
    out["lanczos_warm_hvps"] = m_warm
    log(f"[{name}] lanczos warm: {m_warm} HVPs, {out['lanczos_warm_ms']:.1f} ms, "
        f"sharpness after one more step {theta2:.4f} "
        f"(relative residual {res2 / abs(theta2):.2e}); peak RSS so far {peak_rss_mb():.0f} MB")

    # 6. per-example softmax Jacobian spectral norms, at the initial parameters
    in_shape = x_jac.shape[1:]

    def probs_single(pp, xi):
        return jax.nn.softmax(logits_fn(pp, xi[None])[0])

    @jax.jit
    def jac_norms(pp, xc):
        J = jax.vmap(jax.jacrev(probs_single, argnums=1), in_axes=(None, 0))(pp, xc)
        J = J.reshape(xc.shape[0], J.shape[1], -1)  # [B, 10, 3072]
        G = jnp.einsum("bci,bdi->bcd", J, J)
        lam = jnp.linalg.eigvalsh(G)[:, -1]
        return jnp.sqrt(jnp.maximum(lam, 0.0))

    xj = jnp.asarray(x_jac)
    chunks = [xj[i:i + jac_chunk] for i in range(0, xj.shape[0], jac_chunk)]
    t0 = time.perf_counter()
    block(jac_norms(params, chunks[0]))
    log(f"[{name}] compile jacobian {time.perf_counter() - t0:.2f}s  (input {in_shape})")
    jres = {}

    def run_jac():
        norms = [jac_norms(params, c) for c in chunks]
        jres["n"] = np.concatenate([np.asarray(block(n)) for n in norms])

    out["jacobian_ms_per_1000"] = time_ms(run_jac, repeats, warmup=1) * 1000.0 / xj.shape[0]
    out["jacobian_max"] = float(jres["n"].max())
    log(f"[{name}] jacobian {out['jacobian_ms_per_1000']:.1f} ms/1000, "
        f"max {out['jacobian_max']:.4f}; peak RSS so far {peak_rss_mb():.0f} MB")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=DEFAULT_DATA, help="CIFAR-10 binary directory")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--repeats", type=int, default=5, help="timed repeats (median)")
    ap.add_argument("--jac-chunk", type=int, default=JAC_CHUNK,
                    help="examples per vmapped Jacobian call (memory vs speed)")
    ap.add_argument("--workloads", default="mlp,cnn",
                    help="comma-separated: mlp, cnn (the JAX peer has no others)")
    args = ap.parse_args()
    if args.repeats < 1:
        sys.exit("peer_jax: --repeats must be >= 1")
    names = []
    for w in args.workloads.split(","):
        w = w.strip()
        if w not in ("mlp", "cnn"):
            sys.exit(f"peer_jax: unknown workload {w!r} (mlp, cnn)")
        if w not in names:
            names.append(w)
    if args.jac_chunk < 1:
        sys.exit("peer_jax: --jac-chunk must be >= 1")

    log(f"jax {jax.__version__} on {jax.devices()[0].platform}, {os.cpu_count()} CPUs, "
        f"data {args.data}")
    x, y = load_cifar(args.data, JAC_EXAMPLES)
    rng = np.random.default_rng(SEED)
    mlp_params = init_mlp(rng)
    cnn_params = init_cnn(rng)

    res = {}
    xf = x.reshape(x.shape[0], -1)
    for name in names:
        t0 = time.perf_counter()
        if name == "mlp":
            r = run_workload("mlp", mlp_logits, mlp_params, xf[:256], y[:256], xf, args.repeats,
                             args.jac_chunk)
        else:
            r = run_workload("cnn", cnn_logits, cnn_params, x[:128], y[:128], x, args.repeats,
                             args.jac_chunk)
        res.update({f"{name}_{k}": r[k] for k in TIMING_KEYS})
        # the process's peak so far (ru_maxrss cannot be reset): one workload per process
        # (bench/compare.py) gives the workload's own
        res[f"{name}_peak_rss_mb"] = peak_rss_mb()
        res[f"{name}_wall_s"] = time.perf_counter() - t0
    res["peak_rss_mb"] = peak_rss_mb()
    res["jax_version"] = jax.__version__
    res["threads"] = os.cpu_count()
    res["backend"] = "jax-cpu"

    if args.json:
        print(json.dumps(res))
    else:
        print(f"JAX {res['jax_version']} CPU, {res['threads']} threads, "
              f"median of {args.repeats}")
        print(f"{'quantity':<24}" + "".join(f"{n:>14}" for n in names))
        for k in TIMING_KEYS:
            vals = [res[f"{n}_{k}"] for n in names]
            print(f"{k:<24}" + "".join(
                f"{v:>14.4g}" if isinstance(v, float) else f"{v!s:>14}" for v in vals))
        print(f"{'peak_rss_mb':<24}{res['peak_rss_mb']:>14.1f}")


if __name__ == "__main__":
    main()
