#!/usr/bin/env python3
"""Run `curvlab bench --json` and the JAX peer (bench/peer_jax.py --json) one after
the other, and print a Markdown table of curvlab/JAX ratios.

  python3 bench/compare.py [--curvlab PATH] [--curvlab-json FILE] [--peer-json FILE]
                           [--repeats R] [--out FILE]

--curvlab-json / --peer-json reuse saved outputs instead of running that side.
Both raw objects and the ratios are written to bench/results.json (or --out).
"""

import argparse
import datetime
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
DEFAULT_DATA = os.path.normpath(os.path.join(REPO, "..", "shared", "data", "cifar10-5k"))

PER_WORKLOAD = [
    # (key, is a timing: ratio shown)
    ("train_step_ms", True),
    ("grad_ms", True),
    ("hvp_ms", True),
    ("hvp_grad_ratio", True),
    ("lanczos_cold_hvps", True),
    ("lanczos_cold_ms", True),
    ("lanczos_warm_hvps", True),
    ("lanczos_warm_ms", True),
    ("jacobian_ms_per_1000", True),
    ("sharpness", False),
    ("jacobian_max", False),
]
WORKLOADS = ["mlp", "cnn"]
GLOBAL_NUMERIC = [("peak_rss_mb", True)]
INFO_KEYS = ["backend", "threads", "data", "jax_version", "curvlab_version", "version"]


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def parse_json_object(text, what):
    """The JSON object printed on stdout: the whole text, else its last line that parses."""
    text = text.strip()
    try:
        obj = json.loads(text)
        if isinstance(obj, dict):
            return obj
    except json.JSONDecodeError:
        pass
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(obj, dict):
                return obj
    sys.exit(f"compare: no JSON object in the output of {what}")


def load_json_file(path, what):
    try:
        with open(path) as f:
            return parse_json_object(f.read(), f"{what} ({path})")
    except OSError as e:
        sys.exit(f"compare: cannot read {what} file {path}: {e}")


def run(cmd, what):
    log(f"compare: running {what}: {' '.join(cmd)}")
    p = subprocess.run(cmd, cwd=REPO, stdout=subprocess.PIPE, text=True)
    if p.returncode != 0:
        sys.exit(f"compare: {what} exited with status {p.returncode}")
    return parse_json_object(p.stdout, what)


def is_num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def fmt(v):
    if v is None:
        return "–"
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if v == 0:
            return "0"
        if abs(v) >= 100:
            return f"{v:.1f}"
        return f"{v:.4g}"
    return str(v)


def rows():
    out = []
    for w in WORKLOADS:
        for k, ratio in PER_WORKLOAD:
            out.append((f"{w}_{k}", ratio))
    out.extend(GLOBAL_NUMERIC)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--curvlab", default=os.path.join(REPO, "target", "release", "curvlab"),
                    help="curvlab binary (default <repo>/target/release/curvlab)")
    ap.add_argument("--curvlab-arg", action="append", default=[],
                    help="extra argument for `curvlab bench` (repeatable)")
    ap.add_argument("--curvlab-json", help="reuse this saved `curvlab bench --json` output")
    ap.add_argument("--peer-json", help="reuse this saved `peer_jax.py --json` output")
    ap.add_argument("--python", default=sys.executable,
                    help="Python running the peer (default: this one)")
    ap.add_argument("--repeats", type=int, default=5,
                    help="--repeats for both sides (default 5)")
    ap.add_argument("--data", default=DEFAULT_DATA,
                    help="CIFAR-10 directory for both sides (default <repo>/../shared/data/"
                         "cifar10-5k; curvlab bench would otherwise use Gaussian inputs)")
    ap.add_argument("--out", default=os.path.join(HERE, "results.json"),
                    help="where to write both objects and the ratios")
    args = ap.parse_args()

    curvlab_cmd = peer_cmd = None
    if args.repeats < 1:
        sys.exit("compare: --repeats must be >= 1")
    if args.curvlab_json:
        cl = load_json_file(args.curvlab_json, "curvlab")
    else:
        if not os.path.isfile(args.curvlab) or not os.access(args.curvlab, os.X_OK):
            print(f"compare: {args.curvlab} not found; build it first with "
                  f"`cargo build --release` (in {REPO}), or pass --curvlab PATH "
                  f"or --curvlab-json FILE", file=sys.stderr)
            return 1
        curvlab_cmd = [args.curvlab, "bench", "--json", "--data", args.data,
                       "--repeats", str(args.repeats), *args.curvlab_arg]
        cl = run(curvlab_cmd, "curvlab bench")

    # Sequential on purpose: the two benchmarks must never share the CPU.
    if args.peer_json:
        jx = load_json_file(args.peer_json, "peer")
    else:
        peer_cmd = [args.python, os.path.join(HERE, "peer_jax.py"), "--json",
                    "--data", args.data, "--repeats", str(args.repeats)]
        jx = run(peer_cmd, "JAX peer")

    ratios = {}
    lines = ["| quantity | curvlab | JAX | curvlab/JAX |", "|---|---:|---:|---:|"]
    for key, want_ratio in rows():
        a, b = cl.get(key), jx.get(key)
        r = None
        if want_ratio and is_num(a) and is_num(b) and b != 0:
            r = a / b
            ratios[key] = r
        lines.append(f"| {key} | {fmt(a)} | {fmt(b)} | {fmt(r) if want_ratio else ''} |")
    print("\n".join(lines))
    print()
    for k in INFO_KEYS:
        a, b = cl.get(k), jx.get(k)
        if a is not None or b is not None:
            print(f"- {k}: curvlab {fmt(a)}, JAX {fmt(b)}")
    print("\ncurvlab/JAX < 1 means curvlab is faster (or needs fewer HVPs / less memory); "
          "sharpness and jacobian_max are sanity values (different initial weights).")

    known = {k for k, _ in rows()} | set(INFO_KEYS)
    extra = sorted(set(cl) - known)
    if extra:
        log(f"compare: ignored curvlab keys: {', '.join(extra)}")

    result = {
        "generated": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "curvlab_command": curvlab_cmd if curvlab_cmd else f"from {args.curvlab_json}",
        "peer_command": peer_cmd if peer_cmd else f"from {args.peer_json}",
        "curvlab": cl,
        "jax": jx,
        "ratios_curvlab_over_jax": ratios,
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    log(f"compare: wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
