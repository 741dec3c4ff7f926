#!/usr/bin/env python3
"""Run `curvlab bench` and its peers (bench/peer_torch.py, bench/peer_jax.py) alternately, one
workload per process, for several rounds, and print curvlab/PyTorch and curvlab/JAX ratios.

  python3 bench/compare.py [--workloads LIST] [--rounds N] [--repeats R] [--data DIR]
                           [--curvlab PATH] [--torch-python PATH] [--jax-python PATH]
                           [--out FILE] [--readme FILE] [--from-results FILE]

Each round runs every workload once with each tool, one process per (tool, workload), so each
process's peak resident memory is the workload's own; the tools' order alternates between
rounds so that a change in the machine's load hits all of them. A key's value is the median of
its per-round values (each itself a median of R repeats). The machine's load average is read
before every process and reported. Everything goes to bench/results.json (or --out);
--readme FILE rewrites the table between the `<!-- bench-table:start -->` and
`<!-- bench-table:end -->` lines of FILE from those results; --from-results FILE renders
(and with --readme writes) the tables of a saved results file without running anything.
"""

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
DEFAULT_DATA = os.path.normpath(os.path.join(REPO, "..", "shared", "data", "cifar10-5k"))
DEFAULT_WORKLOADS = "mlp,cnn,resnet18_w8,vgg11bn_w8,resnet18_w16,vgg11bn_w16"
JAX_WORKLOADS = {"mlp", "cnn"}
TOOLS = ["curvlab", "torch", "jax"]
TOOL_NAMES = {"curvlab": "curvlab", "torch": "PyTorch", "jax": "JAX"}
START, END = "<!-- bench-table:start -->", "<!-- bench-table:end -->"

# (key, shown as a ratio) per workload kind
QUICK_ROWS = [
    ("train_step_ms", True), ("grad_ms", True), ("hvp_ms", True), ("hvp_grad_ratio", True),
    ("lanczos_cold_hvps", True), ("lanczos_cold_ms", True), ("lanczos_warm_hvps", True),
    ("lanczos_warm_ms", True), ("jacobian_ms_per_1000", True), ("hutchpp_trace_ms", False),
    ("slq_density_ms", False), ("layer_sharpness_ms", False), ("fold_sharpness_ms", False),
    ("peak_rss_mb", True), ("sharpness", False), ("jacobian_max", False),
]
EXPERIMENT_ROWS = [
    ("params", False), ("train_step_ms", True), ("grad_ms", True), ("hvp_ms", True),
    ("hvp_grad_ratio", True), ("lanczos_cold_hvps", True), ("lanczos_cold_ms", True),
    ("lanczos_warm_hvps", True), ("lanczos_warm_ms", True), ("jacobian_ms_per_500", True),
    ("peak_rss_mb", True), ("sharpness", False), ("jacobian_max", False),
]
# the targets: (key, peer or None for curvlab's own value, bound)
TARGETS = [
    ("resnet18_w8_train_step_ms", "torch", 1.0),
    ("vgg11bn_w8_train_step_ms", "torch", 1.0),
    ("resnet18_w8_hvp_ms", "torch", 1.0),
    ("vgg11bn_w8_hvp_ms", "torch", 1.0),
    ("mlp_train_step_ms", "jax", 1.0),
    ("mlp_hvp_grad_ratio", None, 1.2),
    ("cnn_hvp_grad_ratio", None, 2.0),
    ("resnet18_w8_hvp_grad_ratio", None, 2.0),
    ("vgg11bn_w8_hvp_grad_ratio", None, 2.0),
]


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


def load1():
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


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
            return f"{v:.0f}"
        return f"{v:.3g}"
    return str(v)


def medians(objs):
    """Per key, the median of the numeric values over the rounds (else the first value)."""
    out = {}
    for k in sorted({k for o in objs for k in o}):
        vals = [o[k] for o in objs if k in o]
        nums = [v for v in vals if is_num(v)]
        if nums and len(nums) == len(vals):
            m = statistics.median(nums)
            out[k] = m
        else:
            out[k] = vals[0]
    return out


def ratios(a, b):
    return {k: a[k] / b[k] for k in a if k in b and is_num(a[k]) and is_num(b[k]) and b[k] != 0}


def render(res):
    """Markdown tables of a results object: per workload, then the targets."""
    med = res["median"]
    r_t, r_j = res["ratios_curvlab_over_torch"], res["ratios_curvlab_over_jax"]
    lines = []
    loads = [x["load1"] for x in res["runs"] if x.get("load1") is not None]
    done = 1 + max((x["round"] for x in res["runs"]), default=-1)
    rounds = (f"{res['rounds']} rounds" if res.get("complete", True)
              else f"incomplete, {done} of {res['rounds']} rounds started")
    lines.append(
        f"`bench/compare.py` run of {res['generated']}: {rounds}, each tool's "
        f"processes alternating, median of {res['repeats']} repeats per round and of the rounds; "
        f"{res.get('threads', '?')} threads; load average (1 min) "
        f"{min(loads):.2f}–{max(loads):.2f} during the run."
        if loads else f"`bench/compare.py` run of {res['generated']}."
    )
    versions = ", ".join(f"{TOOL_NAMES[t]} {v}" for t, v in res.get("versions", {}).items() if v)
    if versions:
        lines.append(f"Versions: {versions}.")
    lines.append("")
    lines.append("| workload | quantity | curvlab | PyTorch | JAX | curvlab/PyTorch | curvlab/JAX |")
    lines.append("|---|---|---:|---:|---:|---:|---:|")
    for w in res["workloads"]:
        rows = QUICK_ROWS if w in ("mlp", "cnn") else EXPERIMENT_ROWS
        for key, ratio in rows:
            k = f"{w}_{key}"
            vals = [med.get(t, {}).get(k) for t in TOOLS]
            if all(v is None for v in vals):
                continue
            rt = fmt(r_t.get(k)) if ratio and k in r_t else ""
            rj = fmt(r_j.get(k)) if ratio and k in r_j else ""
            lines.append(f"| {w} | {key} | " + " | ".join(fmt(v) for v in vals) + f" | {rt} | {rj} |")
    lines.append("")
    lines.append("| target | measured | bound | |")
    lines.append("|---|---:|---:|---|")
    for key, peer, bound in TARGETS:
        if peer is None:
            v = med.get("curvlab", {}).get(key)
            what = f"`{key}` (curvlab)"
        else:
            v = (r_t if peer == "torch" else r_j).get(key)
            what = f"`{key}` curvlab/{TOOL_NAMES[peer]}"
        if v is None:
            continue
        lines.append(f"| {what} | {v:.2f} | ≤ {bound} | {'met' if v <= bound else 'missed'} |")
    return "\n".join(lines)


def write_atomic(path, text):
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".compare-")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def update_readme(path, table):
    with open(path) as f:
        text = f.read()
    if START not in text or END not in text:
        sys.exit(f"compare: {path} has no {START} … {END} block to rewrite")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    write_atomic(path, f"{head}{START}\n{table}\n{END}{tail}")
    log(f"compare: rewrote the table in {path}")


def summarise(runs, workloads, args, complete):
    """The results object of the processes run so far."""
    med = {}
    for tool in TOOLS:
        objs_by_round = {}
        for x in runs:
            if x["tool"] == tool:
                # one object per round: that round's workloads' keys together
                objs_by_round.setdefault(x["round"], {}).update(
                    {k: v for k, v in x["result"].items()
                     if k.startswith(tuple(f"{w}_" for w in workloads))})
        if objs_by_round:
            med[tool] = medians(list(objs_by_round.values()))
    first = {t: next((x["result"] for x in runs if x["tool"] == t), {}) for t in TOOLS}
    return {
        "generated": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "workloads": workloads,
        "rounds": args.rounds,
        "repeats": args.repeats,
        "data": args.data,
        "threads": first["curvlab"].get("threads"),
        "versions": {"torch": first["torch"].get("torch_version"),
                     "jax": first["jax"].get("jax_version")},
        "median": med,
        "ratios_curvlab_over_torch": ratios(med.get("curvlab", {}), med.get("torch", {})),
        "ratios_curvlab_over_jax": ratios(med.get("curvlab", {}), med.get("jax", {})),
        "runs": runs,
        "complete": complete,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--curvlab", default=os.path.join(REPO, "target", "release", "curvlab"),
                    help="curvlab binary (default <repo>/target/release/curvlab)")
    ap.add_argument("--torch-python", default=sys.executable,
                    help="Python with torch for bench/peer_torch.py ('' skips it)")
    ap.add_argument("--jax-python", default=sys.executable,
                    help="Python with jax for bench/peer_jax.py ('' skips it)")
    ap.add_argument("--workloads", default=DEFAULT_WORKLOADS,
                    help=f"comma-separated (default {DEFAULT_WORKLOADS})")
    ap.add_argument("--rounds", type=int, default=2, help="rounds (default 2)")
    ap.add_argument("--repeats", type=int, default=3, help="--repeats for every tool (default 3)")
    ap.add_argument("--data", default=DEFAULT_DATA,
                    help="CIFAR-10 directory for every tool (default <repo>/../shared/data/cifar10-5k)")
    ap.add_argument("--out", default=os.path.join(HERE, "results.json"),
                    help="where to write the results (default bench/results.json)")
    ap.add_argument("--readme", help="rewrite the bench-table block of this Markdown file")
    ap.add_argument("--from-results", help="render a saved results file instead of running")
    args = ap.parse_args()

    if args.from_results:
        with open(args.from_results) as f:
            res = json.load(f)
        table = render(res)
        print(table)
        if args.readme:
            update_readme(args.readme, table)
        return 0

    if args.rounds < 1 or args.repeats < 1:
        sys.exit("compare: --rounds and --repeats must be >= 1")
    if not (os.path.isfile(args.curvlab) and os.access(args.curvlab, os.X_OK)):
        sys.exit(f"compare: {args.curvlab} not found; build it with `cargo build --release` "
                 f"(in {REPO}) or pass --curvlab PATH")
    workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    common = ["--json", "--data", args.data, "--repeats", str(args.repeats)]

    def command(tool, w):
        if tool == "curvlab":
            return [args.curvlab, "bench", *common, "--workloads", w]
        if tool == "torch" and args.torch_python:
            return [args.torch_python, os.path.join(HERE, "peer_torch.py"), *common, "--workloads", w]
        if tool == "jax" and args.jax_python and w in JAX_WORKLOADS:
            return [args.jax_python, os.path.join(HERE, "peer_jax.py"), *common, "--workloads", w]
        return None

    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    runs = []  # every process: tool, workload, round, load, the object
    for rnd in range(args.rounds):
        order = TOOLS if rnd % 2 == 0 else list(reversed(TOOLS))
        for w in workloads:
            for tool in order:
                cmd = command(tool, w)
                if cmd is None:
                    continue
                load = load1()
                obj = run(cmd, f"{tool} {w} (round {rnd + 1}/{args.rounds}, load {load})")
                runs.append({"tool": tool, "workload": w, "round": rnd, "load1": load,
                             "command": cmd, "result": obj})
                # an interrupted run keeps what it measured ("complete": false)
                write_atomic(args.out, json.dumps(
                    summarise(runs, workloads, args, complete=False), indent=2) + "\n")

    res = summarise(runs, workloads, args, complete=True)
    table = render(res)
    print(table)
    print("\ncurvlab/peer < 1: curvlab is faster (or needs fewer HVPs / less memory); sharpness, "
          "jacobian_max and params are sanity values (different initial weights).")
    write_atomic(args.out, json.dumps(res, indent=2) + "\n")
    log(f"compare: wrote {args.out}")
    if args.readme:
        update_readme(args.readme, table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
