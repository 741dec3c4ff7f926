#!/usr/bin/env python3
"""Prints the README's table of the paper's claims from the exported sweeps.

Reads docs/reproduction/<preset>/report/claims.json (written by `curvlab
report`, copied by scripts/reproduce.sh) for each preset in the order of
reproduce.sh, and prints one markdown row per claim and scope: the statistic,
its value with the 95 % bootstrap interval, the verdict and the number of runs.
A preset without results yet is listed as not run; one whose sweep has not
finished (an export made with `reproduce.sh --partial`) is labelled with the
number of its runs that finished. Usage:

    scripts/claims_table.py [--root docs/reproduction]
"""
import argparse
import csv
import json
import pathlib

PRESETS = ["fig1", "appc2", "fig2", "fig3", "fig4", "fig5"]
FIGURE = {
    "fig1": "Fig. 1",
    "appc2": "App. C.2",
    "fig2": "Fig. 2",
    "fig3": "Fig. 3",
    "fig4": "Fig. 4",
    "fig5": "Fig. 5",
}


def cell(text):
    """A markdown table cell: a statistic such as |ρ(a, b)| − |ρ(a, c)| has pipes of its own."""
    return text.replace("|", "\\|")


def fmt(x):
    return "–" if x is None else f"{x:+.3f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default="docs/reproduction")
    a = ap.parse_args()
    root = pathlib.Path(a.root)
    print("| figure | claim | scope | statistic | value [95 % interval] | verdict | runs |")
    print("|---|---|---|---|---|---|---:|")
    for p in PRESETS:
        path = root / p / "report" / "claims.json"
        if not path.exists():
            print(f"| {FIGURE[p]} | (`{p}` not run yet at small scale) | | | | | |")
            continue
        planned = len(json.loads((root / p / "sweep.json").read_text())["runs"])
        with open(root / p / "report" / "runs.csv", newline="") as f:
            finished = sum(r["status"] == "finished" for r in csv.DictReader(f))
        figure = FIGURE[p]
        if finished < planned:
            figure += f", partial: {finished} of {planned} runs"
        for c in json.loads(path.read_text()):
            lo, hi = c["interval"] if c.get("interval") else (None, None)
            value = f"{fmt(c.get('value'))} [{fmt(lo)}, {fmt(hi)}]"
            stat = cell(c["statistic"].split(";")[0])
            print(
                f"| [{figure}]({root}/{p}/report/report.md) | {cell(c['claim'])} | {c['scope']} "
                f"| {stat} | {value} | **{c['verdict']}** | {c['n_runs']} |"
            )


if __name__ == "__main__":
    main()
