//! The report's figures of the spectrum extras (`docs/measurements.md`
//! "Spectrum extras"), each written only when some run of the group measured
//! what it shows:
//!
//! - `spectrum[-GROUP]`: through training, one line per setting, mean over
//!   its seeds: the Hessian trace with error bars; λ_max of the whole subset
//!   beside the fold mean with the folds' spread; the Ansatz factors (the
//!   Gauss–Newton share along u, the cost curvature, eq. 3's residual).
//! - `layers[-GROUP]`: per setting, λ_max of each layer's Hessian block
//!   (solid) and Gauss–Newton block (dashed), and the top eigenvector's mass
//!   per layer, through training (mean over seeds).
//! - `density[-GROUP]`: per setting, the spectral density of its first
//!   seed's run at chosen steps (default: the first, middle and last measured).
//!
//! Error bars. Trace: the estimator's standard error, `trace_se` for one
//! run; for the mean of n runs, sqrt(Σ se_i²)/n (independent estimates).
//! Folds: the standard deviation over the K folds (root mean square over the
//! seeds): how much λ_max moves with the examples measured, not an error of
//! the mean.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Result;
use curvlab::record::ByName;
use serde::Deserialize;

use super::figures::{Figure, Layout, Line, Marker, Panel, XAxis, DARK, PALETTE};
use super::{runs_of, short, stats, Outcome, Row, RunData, Sweep};
use crate::manifest::ManifestGroup;

/// The per-layer objects of a metrics row, read in the file's (θ) order.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct LayerFields {
    #[serde(default)]
    pub layer_sharpness: Option<ByName>,
    #[serde(default)]
    pub gn_layer_sharpness: Option<ByName>,
    #[serde(default)]
    pub top_eigvec_layer_mass: Option<ByName>,
}

/// Settings drawn in the per-setting figures (layers, density).
const MAX_SETTINGS: usize = 4;
/// Blocks drawn per panel of the layers figure (the largest by final λ_max).
const MAX_BLOCKS: usize = 10;
/// Densities per panel when no steps are chosen.
const DENSITY_CURVES: usize = 3;
/// The density's log axis stops this far below its peak.
const DENSITY_FLOOR: f64 = 1e-7;

/// What the caller chooses about these figures.
#[derive(Clone, Debug, Default)]
pub struct SpectrumOptions {
    /// Steps at which to draw the density (the nearest measured); default:
    /// the first, middle and last measured.
    pub density_at: Option<Vec<u64>>,
}

/// One setting of a group: its label and its runs that have rows.
struct Setting<'a> {
    label: String,
    runs: Vec<&'a RunData>,
}

fn settings<'a>(s: &'a Sweep, g: &ManifestGroup) -> Vec<Setting<'a>> {
    let runs: Vec<&RunData> = runs_of(s, g)
        .into_iter()
        .filter(|r| matches!(r.outcome, Outcome::Finished | Outcome::Diverged))
        .filter(|r| !r.rows.is_empty())
        .collect();
    let mut out: Vec<(Vec<usize>, Setting)> = Vec::new();
    for r in runs {
        let lv: Vec<usize> = r.run.settings.iter().map(|x| x.level).collect();
        match out.iter_mut().find(|(l, _)| *l == lv) {
            Some((_, st)) => st.runs.push(r),
            None => {
                let label = r
                    .run
                    .settings
                    .iter()
                    .map(short)
                    .collect::<Vec<_>>()
                    .join(", ");
                out.push((
                    lv,
                    Setting {
                        label: if label.is_empty() {
                            "all runs".into()
                        } else {
                            label
                        },
                        runs: vec![r],
                    },
                ));
            }
        }
    }
    out.into_iter().map(|(_, s)| s).collect()
}

/// The x of a row: epoch for minibatch runs, else step (as the time series).
#[derive(Clone, Copy)]
struct Time {
    by_epoch: bool,
}

impl Time {
    fn key(self, r: &Row) -> i64 {
        if self.by_epoch {
            (r.epoch * 1e6).round() as i64
        } else {
            r.step as i64
        }
    }
    fn value(self, k: i64) -> f64 {
        if self.by_epoch {
            k as f64 / 1e6
        } else {
            k as f64
        }
    }
    fn desc(self) -> &'static str {
        if self.by_epoch {
            "epoch"
        } else {
            "step"
        }
    }
}

/// The values of `f` over the runs at each x, in x order.
fn gather(
    runs: &[&RunData],
    t: Time,
    f: &dyn Fn(&Row) -> Option<f64>,
) -> BTreeMap<i64, Vec<(f64, usize)>> {
    let mut acc: BTreeMap<i64, Vec<(f64, usize)>> = BTreeMap::new();
    for (i, r) in runs.iter().enumerate() {
        for row in &r.rows {
            if let Some(v) = f(row).filter(|v| v.is_finite()) {
                acc.entry(t.key(row)).or_default().push((v, i));
            }
        }
    }
    acc
}

/// Mean over the runs at each x.
fn mean_line(
    runs: &[&RunData],
    t: Time,
    f: &dyn Fn(&Row) -> Option<f64>,
) -> Vec<(f64, f64, Option<f64>)> {
    gather(runs, t, f)
        .into_iter()
        .filter_map(|(k, v)| {
            let xs: Vec<f64> = v.iter().map(|p| p.0).collect();
            stats::mean_sd(&xs).map(|(m, _)| (t.value(k), m, None))
        })
        .collect()
}

/// Mean of `value` over the runs at each x, with an error bar combined from
/// each run's `error` by `combine` (given the errors of the n runs there).
fn mean_with_error(
    runs: &[&RunData],
    t: Time,
    value: &str,
    error: &str,
    combine: fn(&[f64]) -> f64,
) -> Vec<(f64, f64, Option<f64>)> {
    let both = |r: &Row| Some((r.get(value)?, r.get(error)?));
    let mut acc: BTreeMap<i64, Vec<(f64, f64)>> = BTreeMap::new();
    for r in runs {
        for row in &r.rows {
            if let Some(p) = both(row) {
                acc.entry(t.key(row)).or_default().push(p);
            }
        }
    }
    acc.into_iter()
        .map(|(k, v)| {
            let n = v.len() as f64;
            let mean = v.iter().map(|p| p.0).sum::<f64>() / n;
            let errs: Vec<f64> = v.iter().map(|p| p.1).collect();
            (t.value(k), mean, Some(combine(&errs)))
        })
        .collect()
}

/// The standard error of a mean of independent estimates: sqrt(Σ se²)/n.
fn se_of_mean(se: &[f64]) -> f64 {
    se.iter().map(|e| e * e).sum::<f64>().sqrt() / se.len() as f64
}

/// Root mean square: a typical spread over the runs.
fn rms(sd: &[f64]) -> f64 {
    (sd.iter().map(|e| e * e).sum::<f64>() / sd.len() as f64).sqrt()
}

fn has_points(p: &Panel) -> bool {
    p.lines.iter().any(|l| l.in_legend && !l.points.is_empty())
}

fn group_suffix(g: &ManifestGroup) -> String {
    g.name
        .as_ref()
        .map(|n| format!(" — {n}"))
        .unwrap_or_default()
}

/// The `spectrum` figure: trace, fold sharpness and the Ansatz factors
/// through training, one line per setting.
fn spectrum_figure(s: &Sweep, g: &ManifestGroup) -> Option<Figure> {
    let sets = settings(s, g);
    let t = Time {
        by_epoch: sets.iter().flat_map(|x| &x.runs).any(|r| r.minibatch),
    };
    let mut trace = Vec::new();
    let mut folds = Vec::new();
    let mut share = Vec::new();
    let mut cost = Vec::new();
    let mut residual = Vec::new();
    for (i, st) in sets.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let line = |label: String, dashed: bool, in_legend: bool, points| Line {
            label,
            color,
            dashed,
            marker: Marker::nth(i),
            points,
            in_legend,
        };
        trace.push(line(
            st.label.clone(),
            false,
            true,
            mean_with_error(&st.runs, t, "trace", "trace_se", se_of_mean),
        ));
        let fold = mean_with_error(&st.runs, t, "sharpness_fold_mean", "sharpness_fold_sd", rms);
        if !fold.is_empty() {
            let whole: Vec<(f64, f64, Option<f64>)> =
                mean_line(&st.runs, t, &|r| r.get("sharpness"));
            folds.push(line(st.label.clone(), false, true, whole));
            folds.push(line(format!("{}, folds", st.label), true, false, fold));
        }
        share.push(line(
            st.label.clone(),
            false,
            true,
            mean_line(&st.runs, t, &|r| r.get("gn_share")),
        ));
        cost.push(line(
            st.label.clone(),
            false,
            true,
            mean_line(&st.runs, t, &|r| r.get("cost_curvature_max")),
        ));
        cost.push(line(
            format!("{}, mean", st.label),
            true,
            false,
            mean_line(&st.runs, t, &|r| r.get("cost_curvature_mean")),
        ));
        residual.push(line(
            st.label.clone(),
            false,
            true,
            mean_line(&st.runs, t, &|r| r.get("residual_curvature")),
        ));
    }
    let panel = |caption: &str, y: &str, lines: Vec<Line>| Panel {
        caption: caption.into(),
        y_desc: y.into(),
        lines,
        log_y: false,
    };
    let panels: Vec<Panel> = [
        panel(
            "Hessian trace (Hutch++), ± standard error",
            "tr ∇²ℓ_S",
            trace,
        ),
        panel(
            "λ_max of all n examples (solid) and of K folds: mean ± sd over the folds (dashed)",
            "λ_max",
            folds,
        ),
        panel(
            "Gauss–Newton share of sharpness along u: uᵀGu / uᵀHu",
            "uᵀGu / uᵀHu",
            share,
        ),
        panel(
            "cost curvature λ_max(∇²_z c), max (solid) and mean (dashed) over examples",
            "λ_max(∇²_z c)",
            cost,
        ),
        panel(
            "eq. 3's residual along u: uᵀ(H − G)u",
            "uᵀ(H − G)u",
            residual,
        ),
    ]
    .into_iter()
    .filter(has_points)
    .collect();
    if panels.is_empty() {
        return None;
    }
    Some(Figure {
        title: format!(
            "{} ({}){}: spectrum extras through training, mean over seeds",
            s.manifest.name,
            s.manifest.scale,
            group_suffix(g)
        ),
        x: XAxis::Numeric {
            desc: t.desc().into(),
        },
        panels,
        layout: Layout::Column,
        panel_size: (960, 300),
    })
}

/// The `layers` figure: per setting, per-layer λ_max of the Hessian and
/// Gauss–Newton blocks, and the top eigenvector's mass per layer.
fn layers_figure(s: &Sweep, g: &ManifestGroup) -> Option<Figure> {
    let sets = settings(s, g);
    let t = Time {
        by_epoch: sets.iter().flat_map(|x| &x.runs).any(|r| r.minibatch),
    };
    type Get = fn(&Row) -> Option<&ByName>;
    let hess: Get = |r| r.layers.layer_sharpness.as_ref();
    let gn: Get = |r| r.layers.gn_layer_sharpness.as_ref();
    let mass: Get = |r| r.layers.top_eigvec_layer_mass.as_ref();
    // Every block name in θ order (first seen), one colour each.
    let mut names: Vec<String> = Vec::new();
    for st in &sets {
        for r in &st.runs {
            for row in &r.rows {
                for get in [hess, gn, mass] {
                    for (n, _) in get(row).map(|b| b.0.as_slice()).unwrap_or(&[]) {
                        if !names.contains(n) {
                            names.push(n.clone());
                        }
                    }
                }
            }
        }
    }
    if names.is_empty() {
        return None;
    }
    let color_of = |n: &str| {
        let i = names.iter().position(|m| m == n).unwrap_or(0);
        PALETTE[i % PALETTE.len()]
    };
    let dashed_of =
        |n: &str| names.iter().position(|m| m == n).unwrap_or(0) / PALETTE.len() % 2 == 1;
    let block = |runs: &[&RunData], get: Get, n: &str| {
        mean_line(runs, t, &|r| {
            get(r).and_then(|b| b.get(n)).filter(|v| v.is_finite())
        })
    };
    let mut panels = Vec::new();
    let mut shown_sets = 0;
    let mut truncated = false;
    let mut any_blocks = false;
    for st in &sets {
        let has = |get: Get| {
            st.runs
                .iter()
                .flat_map(|r| &r.rows)
                .any(|r| get(r).is_some())
        };
        let (has_h, has_g, has_m) = (has(hess), has(gn), has(mass));
        if !(has_h || has_g || has_m) {
            continue;
        }
        if shown_sets == MAX_SETTINGS {
            truncated = true;
            break;
        }
        shown_sets += 1;
        // The blocks of largest final λ_max (Hessian, else Gauss–Newton, else mass).
        let main = if has_h {
            hess
        } else if has_g {
            gn
        } else {
            mass
        };
        let mut finals: Vec<(String, f64)> = names
            .iter()
            .filter_map(|n| Some((n.clone(), block(&st.runs, main, n).last()?.1)))
            .collect();
        let total = finals.len();
        finals.sort_by(|a, b| b.1.total_cmp(&a.1));
        finals.truncate(MAX_BLOCKS);
        let mut keep: Vec<&String> = names
            .iter()
            .filter(|n| finals.iter().any(|f| &f.0 == *n))
            .collect();
        keep.dedup();
        let of = if total > keep.len() {
            format!(" ({} of {total} blocks, largest final value)", keep.len())
        } else {
            String::new()
        };
        if has_h || has_g {
            any_blocks = true;
            let mut lines = Vec::new();
            for n in &keep {
                for (get, on, dashed) in [(hess, has_h, false), (gn, has_g, true)] {
                    if !on {
                        continue;
                    }
                    lines.push(Line {
                        label: n.to_string(),
                        color: color_of(n),
                        dashed,
                        marker: Marker::None,
                        points: block(&st.runs, get, n),
                        in_legend: !dashed || !has_h,
                    });
                }
            }
            panels.push(Panel {
                caption: format!("λ_max of layer blocks, {}{of}", st.label),
                y_desc: "λ_max(H_ll), λ_max(G_ll)".into(),
                lines,
                log_y: false,
            });
        }
        if has_m {
            let lines = keep
                .iter()
                .map(|n| Line {
                    label: n.to_string(),
                    color: color_of(n),
                    dashed: dashed_of(n),
                    marker: Marker::None,
                    points: block(&st.runs, mass, n),
                    in_legend: true,
                })
                .collect();
            panels.push(Panel {
                caption: format!("top eigenvector's mass per layer ‖u_l‖², {}{of}", st.label),
                y_desc: "‖u_l‖²".into(),
                lines,
                log_y: false,
            });
        }
    }
    if panels.is_empty() {
        return None;
    }
    // What solid and dashed mean, in the legend.
    if any_blocks {
        for (label, dashed) in [
            ("solid: Hessian block H_ll", false),
            ("dashed: Gauss–Newton block G_ll", true),
        ] {
            panels[0].lines.push(Line {
                label: label.into(),
                color: DARK,
                dashed,
                marker: Marker::None,
                points: vec![],
                in_legend: true,
            });
        }
    }
    let more = if truncated {
        format!(" (the first {MAX_SETTINGS} settings)")
    } else {
        String::new()
    };
    Some(Figure {
        title: format!(
            "{} ({}){}: per-layer curvature through training, mean over seeds{more}",
            s.manifest.name,
            s.manifest.scale,
            group_suffix(g)
        ),
        x: XAxis::Numeric {
            desc: t.desc().into(),
        },
        panels,
        layout: Layout::Column,
        panel_size: (960, 300),
    })
}

/// Rows of a run that carry a density (grid and values of one length).
fn density_rows(r: &RunData) -> Vec<(&Row, Vec<f64>, Vec<f64>)> {
    r.rows
        .iter()
        .filter_map(|row| {
            let (g, d) = (row.numbers("density_grid")?, row.numbers("density")?);
            (g.len() == d.len() && g.len() >= 2).then_some((row, g, d))
        })
        .collect()
}

/// Up to `k` indices of `0..n`, spread evenly, first and last included.
fn spread(n: usize, k: usize) -> Vec<usize> {
    if n <= k {
        return (0..n).collect();
    }
    let mut v: Vec<usize> = (0..k)
        .map(|j| ((j * (n - 1)) as f64 / (k - 1).max(1) as f64).round() as usize)
        .collect();
    v.dedup();
    v
}

/// A density panel: one line per (label, grid, density), floored at
/// [`DENSITY_FLOOR`] of the panel's peak for its log axis.
fn density_panel(caption: String, curves: &[(String, &[f64], &[f64])]) -> Option<Panel> {
    let peak = curves
        .iter()
        .flat_map(|c| c.2.iter().copied())
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max);
    if peak <= 0.0 {
        return None;
    }
    let floor = peak * DENSITY_FLOOR;
    let lines = curves
        .iter()
        .enumerate()
        .map(|(i, (label, g, d))| Line {
            label: label.clone(),
            color: PALETTE[i % PALETTE.len()],
            dashed: false,
            marker: Marker::None,
            points: g
                .iter()
                .zip(d.iter())
                .filter(|(x, y)| x.is_finite() && y.is_finite())
                .map(|(&x, &y)| (x, y.max(floor), None))
                .collect(),
            in_legend: !label.is_empty(),
        })
        .collect();
    Some(Panel {
        caption,
        y_desc: "density ρ(t)".into(),
        lines,
        log_y: true,
    })
}

/// The `density` figure: per setting, its first seed's densities at the
/// chosen steps.
fn density_figure(s: &Sweep, g: &ManifestGroup, opts: &SpectrumOptions) -> Option<Figure> {
    let mut panels = Vec::new();
    let mut truncated = false;
    for st in settings(s, g) {
        let Some((run, rows)) = st
            .runs
            .iter()
            .map(|r| (r, density_rows(r)))
            .filter(|(_, d)| !d.is_empty())
            .min_by_key(|(r, _)| r.run.seed)
        else {
            continue;
        };
        if panels.len() == MAX_SETTINGS {
            truncated = true;
            break;
        }
        let picks: Vec<usize> = match &opts.density_at {
            Some(steps) => {
                let mut v: Vec<usize> = steps
                    .iter()
                    .filter_map(|&want| {
                        (0..rows.len()).min_by_key(|&i| rows[i].0.step.abs_diff(want))
                    })
                    .collect();
                v.sort();
                v.dedup();
                v
            }
            None => spread(rows.len(), DENSITY_CURVES),
        };
        if picks.is_empty() {
            continue;
        }
        let curves: Vec<(String, &[f64], &[f64])> = picks
            .iter()
            .map(|&i| {
                let (row, gr, d) = &rows[i];
                (format!("step {}", row.step), &gr[..], &d[..])
            })
            .collect();
        let sigma = rows[picks[picks.len() - 1]].0.get("density_sigma");
        let caption = format!(
            "{}, seed {}: σ = {}, log scale from 1e-7 of the peak",
            st.label,
            run.run.seed,
            sigma
                .map(curvlab::axis::format_value)
                .unwrap_or_else(|| "?".into())
        );
        if let Some(p) = density_panel(caption, &curves) {
            panels.push(p);
        }
    }
    if panels.is_empty() {
        return None;
    }
    let more = if truncated {
        format!(", the first {MAX_SETTINGS} settings")
    } else {
        String::new()
    };
    Some(Figure {
        title: format!(
            "{} ({}){}: Hessian spectral density (SLQ){more}",
            s.manifest.name,
            s.manifest.scale,
            group_suffix(g)
        ),
        x: XAxis::Numeric {
            desc: "eigenvalue t".into(),
        },
        panels,
        layout: Layout::Column,
        panel_size: (960, 300),
    })
}

/// The spectrum figures of group `g` that have data: (kind, figure), kind
/// being the file stem's first part.
pub fn figures(
    s: &Sweep,
    g: &ManifestGroup,
    opts: &SpectrumOptions,
) -> Vec<(&'static str, Figure)> {
    [
        ("spectrum", spectrum_figure(s, g)),
        ("layers", layers_figure(s, g)),
        ("density", density_figure(s, g, opts)),
    ]
    .into_iter()
    .filter_map(|(k, f)| Some((k, f?)))
    .collect()
}

/// Writes `stem.png` and `stem.svg`: the spectral densities `curves`
/// (label, grid, density; an empty label is left out of the legend) on one
/// log-scale panel, as `curvlab measure --density-plot` does.
pub fn write_density_figure(
    stem: &Path,
    title: &str,
    curves: &[(String, &Vec<f64>, &Vec<f64>)],
) -> Result<()> {
    let curves: Vec<(String, &[f64], &[f64])> = curves
        .iter()
        .map(|(l, g, d)| (l.clone(), &g[..], &d[..]))
        .collect();
    let panel = density_panel("log scale from 1e-7 of the peak".into(), &curves)
        .ok_or_else(|| anyhow::anyhow!("the density has no positive value to draw"))?;
    Figure {
        title: title.into(),
        x: XAxis::Numeric {
            desc: "eigenvalue t".into(),
        },
        panels: vec![panel],
        layout: Layout::Column,
        panel_size: (960, 420),
    }
    .write(stem)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bars_of_means() {
        assert!((se_of_mean(&[3.0, 4.0]) - 2.5).abs() < 1e-12);
        assert_eq!(se_of_mean(&[2.0]), 2.0);
        assert!((rms(&[1.0, 7.0]) - 5.0).abs() < 1e-12);
        assert_eq!(spread(10, 3), [0, 5, 9]);
        assert_eq!(spread(2, 3), [0, 1]);
    }

    #[test]
    fn density_panels_floor_their_log_axis() {
        let g = [0.0, 1.0, 2.0];
        let d = [1.0, 0.0, 1e-12];
        let p = density_panel("x".into(), &[("a".into(), &g[..], &d[..])]).unwrap();
        assert!(p.log_y);
        let ys: Vec<f64> = p.lines[0].points.iter().map(|q| q.1).collect();
        assert_eq!(ys, [1.0, DENSITY_FLOOR, DENSITY_FLOOR]);
        assert!(density_panel("x".into(), &[("a".into(), &g[..], &[0.0; 3][..])]).is_none());
    }
}
