#!/usr/bin/env python3
"""Looks at why a claim fails or is inconclusive: the same trend, on other quantities.

For each exported sweep under docs/reproduction/<preset>/ this copies the sweep
(configs, metrics, summaries: no weights) to a temporary directory, replaces
the claims in its sweep.json with diagnostic ones — the preset's own swept
setting against quantities curvlab records beside the claimed one (the logit
Jacobian beside the softmax one, train and test loss, the accuracy gap, peak
against final values), or for Fig. 5 the comparison with other targets and
Jacobian norms — and runs `curvlab report` on the copy, so every number comes
from curvlab's own statistics: Spearman's ρ stratified by the other swept
settings (or |ρ(target, better)| − |ρ(target, worse)| per group and pooled),
95 % percentile bootstrap over runs within strata, 2000 resamples, seed 0.
These are post-hoc diagnostics, not claims: they are printed as a markdown
table of ρ and its interval, without a verdict. Usage:

    scripts/claim_diagnostics.py [--bin target/release/curvlab] [--root docs/reproduction] [PRESET...]
"""
import argparse
import json
import pathlib
import shutil
import subprocess
import sys
import tempfile

from claims_table import cell

# preset -> (setting, [(quantity, at)]); the setting is the preset's trend axis.
TRENDS = {
    "fig1": ("loss.label_smoothing", [
        ("sharpness", "final"), ("jac_softmax_max", "final"), ("jac_logit_max", "peak"),
        ("train_loss_kl", "final"), ("gen_gap", "final"),
    ]),
    "appc2": ("data.input_scale", [
        ("sharpness", "final"), ("jac_logit_max", "peak"), ("train_loss", "final"),
    ]),
    "fig2": ("optim.weight_decay", [
        ("sharpness", "peak"), ("jac_logit_max", "final"), ("jac_logit_mean", "final"),
        ("jac_softmax_mean", "final"), ("train_loss", "final"), ("acc_gap", "final"),
    ]),
    "fig3": ("optim.lr", [
        ("sharpness", "peak"), ("jac_softmax_max", "peak"), ("jac_logit_max", "final"),
        ("jac_logit_mean", "final"), ("train_loss", "final"), ("test_loss", "final"),
        ("acc_gap", "final"),
    ]),
    "fig4": ("optim.batch_size", [
        ("sharpness", "peak"), ("jac_softmax_max", "peak"), ("jac_logit_max", "final"),
        ("jac_logit_mean", "final"), ("train_loss", "final"), ("test_loss", "final"),
        ("acc_gap", "final"),
    ]),
}

# preset -> [(target, better, worse)]: |ρ(target, better)| − |ρ(target, worse)|,
# per group and pooled, final values.
COMPARISONS = {
    "fig5": [
        ("gen_gap", "jac_logit_max", "sharpness"),
        ("gen_gap", "jac_softmax_mean", "sharpness"),
        ("acc_gap", "jac_softmax_max", "sharpness"),
        ("acc_gap", "jac_logit_max", "sharpness"),
    ],
}


def claims_for(preset):
    if preset in TRENDS:
        setting, quantities = TRENDS[preset]
        return [
            {"kind": "trend", "claim": f"ρ({setting}, {at} {q})", "setting": setting,
             "quantity": q, "at": at, "expect": "decreasing"}
            for q, at in quantities
        ]
    return [
        {"kind": "comparison", "claim": f"|ρ({t}, {b})| − |ρ({t}, {w})|", "target": t,
         "better": b, "worse": w, "at": "final"}
        for t, b, w in COMPARISONS[preset]
    ]


def diagnose(binary, src, preset):
    with tempfile.TemporaryDirectory(prefix=f"curvlab-diag-{preset}-") as tmp:
        work = pathlib.Path(tmp) / preset
        shutil.copytree(src, work, ignore=shutil.ignore_patterns("report"))
        sweep = json.loads((work / "sweep.json").read_text())
        sweep["claims"] = claims_for(preset)
        (work / "sweep.json").write_text(json.dumps(sweep))
        out = work / "report"
        subprocess.run([binary, "report", str(work), "--out", str(out)], check=True,
                       stdout=subprocess.DEVNULL)
        return json.loads((out / "claims.json").read_text())


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", default="target/release/curvlab")
    ap.add_argument("--root", default="docs/reproduction")
    ap.add_argument("presets", nargs="*")
    a = ap.parse_args()
    root = pathlib.Path(a.root)
    presets = a.presets or [
        p for p in [*TRENDS, *COMPARISONS] if (root / p / "sweep.json").exists()
    ]
    print("| figure | statistic | scope | value [95 % interval] | runs |")
    print("|---|---|---|---|---:|")
    nan = float("nan")
    for p in presets:
        if p not in TRENDS and p not in COMPARISONS:
            sys.exit(f"claim_diagnostics.py: no diagnostics for preset {p!r}")
        for c in diagnose(a.bin, root / p, p):
            lo, hi = c["interval"] or (nan, nan)
            v = nan if c["value"] is None else c["value"]
            print(f"| `{p}` | {cell(c['claim'])} | {c['scope']} "
                  f"| {v:+.3f} [{lo:+.3f}, {hi:+.3f}] | {c['n_runs']} |")


if __name__ == "__main__":
    main()
