//! The report of a sweep: reads every run of a sweep directory (`sweep.json`,
//! and each run's `config.json`, `metrics.jsonl`, `summary.json`) and writes
//!
//! - the sweep figures (`sweep[-GROUP].{png,svg}`): final sharpness, final
//!   max softmax-Jacobian norm and final generalisation gap against the swept
//!   parameter, one line per value of the other axes, mean ± sd over seeds;
//! - the time-series figures (`timeseries[-GROUP].{png,svg}`, Fig. 1 style):
//!   sharpness with 2/η (full-batch runs), Jacobian norm and KL train loss
//!   against step (epoch for minibatch runs), one line per setting, mean over seeds;
//! - `correlations.{md,csv}`: Spearman's ρ and Kendall's τ_b between the gap
//!   and each of sharpness and Jacobian norm over all finished runs (and per
//!   group), the paper's central empirical claim as a number;
//! - the spectrum extras' figures when runs measured them
//!   (`spectrum`, `layers`, `density[-GROUP].{png,svg}`: [`spectrum`]);
//! - `runs.csv` (every run, its status and final values) and `report.md`.
//!
//! "Final" is the last measured value of a run. Runs that diverged, are
//! unfinished or never started are listed as such and left out of the
//! figures' statistics and the correlations, never silently dropped.

mod claims;
mod figures;
mod spectrum;
mod stats;

pub use claims::{At, Bootstrap, ClaimResult, ClaimSpec, Direction};
pub use spectrum::{write_density_figure, SpectrumOptions};

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde_json::Value as Json;

use crate::manifest::{Manifest, ManifestAxis, ManifestGroup, ManifestRun, ReportOptions, Setting};
use crate::run_dir::RunStatus;
use figures::{Figure, Layout, Line, Marker, Panel, XAxis, DARK, PALETTE};

/// How a run ended, as far as its directory tells.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Finished,
    Diverged,
    /// Started, no `summary.json`.
    Unfinished,
    /// No directory.
    Missing,
    /// A file could not be read.
    Unreadable(String),
}

impl Outcome {
    fn name(&self) -> &'static str {
        match self {
            Outcome::Finished => "finished",
            Outcome::Diverged => "diverged",
            Outcome::Unfinished => "unfinished",
            Outcome::Missing => "not started",
            Outcome::Unreadable(_) => "unreadable",
        }
    }
}

/// The last measured value of each quantity of a run.
#[derive(Clone, Debug, Default)]
pub struct Finals {
    pub step: Option<u64>,
    pub values: BTreeMap<&'static str, f64>,
}

/// The quantities reported per run: key, and the metrics-row field.
const FINAL_FIELDS: &[&str] = &[
    "sharpness",
    "gn_sharpness",
    "jac_softmax_max",
    "jac_softmax_mean",
    "jac_logit_max",
    "gen_gap",
    "acc_gap",
    "train_acc",
    "test_acc",
    "train_loss_kl",
    "test_loss_kl",
    "two_over_lr",
    "trace",
    "sharpness_fold_mean",
    "sharpness_fold_sd",
    "gn_share",
];

/// One line of metrics.jsonl (`curvlab::record::MetricsRow`), read by field
/// name so that rows written by older or newer versions still read.
#[derive(Clone, Debug)]
pub struct Row {
    pub step: u64,
    pub epoch: f64,
    pub diverged: bool,
    fields: serde_json::Map<String, Json>,
    /// The per-layer objects of the spectrum extras, in the file's (θ) order.
    layers: spectrum::LayerFields,
}

impl Row {
    fn parse(line: &str) -> Result<Row> {
        let v: Json = serde_json::from_str(line)?;
        let Json::Object(fields) = v else {
            bail!("not a JSON object");
        };
        let step = fields
            .get("step")
            .and_then(Json::as_u64)
            .ok_or_else(|| anyhow::anyhow!("no step"))?;
        Ok(Row {
            step,
            epoch: fields.get("epoch").and_then(Json::as_f64).unwrap_or(0.0),
            diverged: fields
                .get("diverged")
                .and_then(Json::as_bool)
                .unwrap_or(false),
            fields,
            layers: serde_json::from_str(line)?,
        })
    }

    /// A finite number in field `key`.
    fn get(&self, key: &str) -> Option<f64> {
        self.fields
            .get(key)
            .and_then(Json::as_f64)
            .filter(|v| v.is_finite())
    }

    /// The numbers of an array field (`null` entries as NaN).
    fn numbers(&self, key: &str) -> Option<Vec<f64>> {
        self.fields
            .get(key)?
            .as_array()?
            .iter()
            .map(|v| Some(v.as_f64().unwrap_or(f64::NAN)))
            .collect()
    }
}

fn field(r: &Row, key: &str) -> Option<f64> {
    r.get(key)
}

/// The metrics-row fields a claim may read.
pub const CLAIM_QUANTITIES: &[&str] = &[
    "sharpness",
    "gn_sharpness",
    "jac_softmax_max",
    "jac_softmax_mean",
    "jac_logit_max",
    "jac_logit_mean",
    "gen_gap",
    "acc_gap",
    "train_acc",
    "test_acc",
    "train_loss_kl",
    "test_loss_kl",
    "bound_b",
];

/// 2/η is drawn beside sharpness that reaches this fraction of it.
const EOS_NEAR: f64 = 0.25;

/// The quantities correlated with the generalisation gap, and their names.
const CORRELATED: &[(&str, &str)] = &[
    ("sharpness", "sharpness λ_max (Hessian)"),
    ("jac_softmax_max", "max ‖J‖₂, softmax Jacobian"),
    ("jac_softmax_mean", "mean ‖J‖₂, softmax Jacobian"),
    ("jac_logit_max", "max ‖J‖₂, logit Jacobian"),
    ("gn_sharpness", "λ_max (Gauss–Newton)"),
    ("trace", "Hessian trace (Hutch++)"),
    ("sharpness_fold_mean", "λ_max, mean over folds"),
];

/// One run of the sweep and what its directory holds.
#[derive(Clone, Debug)]
pub struct RunData {
    pub run: ManifestRun,
    pub outcome: Outcome,
    pub rows: Vec<Row>,
    /// Minibatch training (the time series then use epochs).
    pub minibatch: bool,
    pub finals: Finals,
}

/// A loaded sweep directory.
pub struct Sweep {
    pub dir: PathBuf,
    pub manifest: Manifest,
    /// No sweep.json: runs found by their config.json, axes inferred.
    pub inferred: bool,
    pub runs: Vec<RunData>,
}

/// What `write` produced.
pub struct Written {
    pub files: Vec<PathBuf>,
    /// The claims' results (also in `claims.json`).
    pub claims: Vec<ClaimResult>,
    pub correlations_md: String,
    pub counts: BTreeMap<&'static str, usize>,
}

/// Reads a sweep directory.
pub fn load(dir: &Path) -> Result<Sweep> {
    if !dir.is_dir() {
        bail!("{}: no such directory", dir.display());
    }
    let (manifest, inferred) = match Manifest::read(dir)? {
        Some(m) => (m, false),
        None => (infer_manifest(dir)?, true),
    };
    let runs = manifest
        .runs
        .iter()
        .map(|r| load_run(dir, r))
        .collect::<Vec<_>>();
    Ok(Sweep {
        dir: dir.to_path_buf(),
        manifest,
        inferred,
        runs,
    })
}

fn load_run(dir: &Path, run: &ManifestRun) -> RunData {
    let rd = dir.join(&run.dir);
    let mut data = RunData {
        run: run.clone(),
        outcome: Outcome::Missing,
        rows: vec![],
        minibatch: false,
        finals: Finals::default(),
    };
    if !rd.is_dir() {
        return data;
    }
    let config = std::fs::read_to_string(rd.join("config.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<Json>(&t).ok())
        .unwrap_or_else(|| run.config.clone());
    data.minibatch = config["optim"]["batch_size"].as_u64().unwrap_or(0) > 0;
    let metrics = rd.join("metrics.jsonl");
    if metrics.is_file() {
        match read_rows(&metrics) {
            Ok(rows) => data.rows = rows,
            Err(e) => {
                data.outcome = Outcome::Unreadable(format!("{e:#}"));
                return data;
            }
        }
    }
    let diverged_row = data.rows.iter().any(|r| r.diverged);
    data.outcome = match RunStatus::of(&rd) {
        RunStatus::Done if !diverged_row => Outcome::Finished,
        RunStatus::Done | RunStatus::Diverged => Outcome::Diverged,
        RunStatus::Partial | RunStatus::Pending => Outcome::Unfinished,
    };
    data.finals = finals(&data.rows);
    data
}

/// The rows of a metrics.jsonl; a torn last line (a killed run) is ignored.
fn read_rows(path: &Path) -> Result<Vec<Row>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let mut rows = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        match Row::parse(l) {
            Ok(r) => rows.push(r),
            Err(_) if i + 1 == lines.len() && !text.ends_with('\n') => {}
            Err(e) => bail!("{}: line {}: {e}", path.display(), i + 1),
        }
    }
    Ok(rows)
}

fn finals(rows: &[Row]) -> Finals {
    let mut f = Finals {
        step: rows.last().map(|r| r.step),
        ..Default::default()
    };
    for key in FINAL_FIELDS {
        if let Some(v) = rows.iter().rev().find_map(|r| field(r, key)) {
            f.values.insert(key, v);
        }
    }
    f
}

/// Without sweep.json: the directories (depth ≤ 2) holding a config.json are
/// the runs; configuration fields that differ between them are the axes.
fn infer_manifest(dir: &Path) -> Result<Manifest> {
    let mut found: Vec<(String, Json)> = Vec::new();
    let mut visit = |rel: &str, path: &Path| {
        let cfg = path.join("config.json");
        if let Some(v) = std::fs::read_to_string(&cfg)
            .ok()
            .and_then(|t| serde_json::from_str::<Json>(&t).ok())
        {
            found.push((rel.to_string(), v));
            true
        } else {
            false
        }
    };
    let subdirs = |p: &Path| -> Vec<(String, PathBuf)> {
        let mut v: Vec<(String, PathBuf)> = std::fs::read_dir(p)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().is_dir())
            .map(|e| (e.file_name().to_string_lossy().to_string(), e.path()))
            .collect();
        v.sort();
        v
    };
    for (name, path) in subdirs(dir) {
        if name == "report" || name == "logs" {
            continue;
        }
        if !visit(&name, &path) {
            for (sub, sp) in subdirs(&path) {
                visit(&format!("{name}/{sub}"), &sp);
            }
        }
    }
    if found.is_empty() {
        bail!(
            "{}: no sweep.json and no run directories (holding config.json) in it",
            dir.display()
        );
    }
    let ignored = ["seed", "curvlab_version", "git_revision"];
    let leaves: Vec<BTreeMap<String, Json>> = found
        .iter()
        .map(|(_, c)| {
            let mut m = BTreeMap::new();
            flatten(c, "", &mut m);
            m.retain(|k, _| !ignored.contains(&k.as_str()));
            m
        })
        .collect();
    let mut paths: Vec<String> = leaves.iter().flat_map(|m| m.keys().cloned()).collect();
    paths.sort();
    paths.dedup();
    let mut axes = Vec::new();
    for p in paths {
        let mut values: Vec<Json> = Vec::new();
        for m in &leaves {
            let v = m.get(&p).cloned().unwrap_or(Json::Null);
            if !values.contains(&v) {
                values.push(v);
            }
        }
        if values.len() > 1 {
            if values.iter().all(Json::is_number) {
                values.sort_by(|a, b| {
                    a.as_f64()
                        .unwrap_or(0.0)
                        .total_cmp(&b.as_f64().unwrap_or(0.0))
                });
            }
            axes.push(ManifestAxis {
                log: looks_logarithmic(&values),
                labels: values.iter().map(json_label).collect(),
                path: p,
                values,
            });
        }
    }
    let mut seeds: Vec<u64> = found
        .iter()
        .filter_map(|(_, c)| c["seed"].as_u64())
        .collect();
    seeds.sort();
    seeds.dedup();
    let runs = found
        .iter()
        .zip(&leaves)
        .enumerate()
        .map(|(index, ((rel, cfg), m))| ManifestRun {
            index,
            dir: rel.clone(),
            group: None,
            settings: axes
                .iter()
                .map(|a| {
                    let v = m.get(&a.path).cloned().unwrap_or(Json::Null);
                    let level = a.values.iter().position(|x| *x == v).unwrap_or(0);
                    Setting {
                        path: a.path.clone(),
                        label: a.labels[level].clone(),
                        value: v,
                        level,
                    }
                })
                .collect(),
            seed: cfg["seed"].as_u64().unwrap_or(0),
            config: cfg.clone(),
        })
        .collect();
    Ok(Manifest {
        name: dir
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_else(|| "runs".into()),
        description: String::new(),
        scale: "-".into(),
        source: format!("{} (no sweep.json; axes inferred)", dir.display()),
        curvlab_version: env!("CARGO_PKG_VERSION").into(),
        seeds,
        groups: vec![ManifestGroup {
            name: None,
            description: String::new(),
            axes,
        }],
        report: ReportOptions::default(),
        runs,
        data_missing: false,
        claims: Vec::new(),
    })
}

fn flatten(v: &Json, prefix: &str, out: &mut BTreeMap<String, Json>) {
    match v {
        Json::Object(o) => {
            for (k, x) in o {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(x, &p, out);
            }
        }
        _ => {
            out.insert(prefix.to_string(), v.clone());
        }
    }
}

fn json_label(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        Json::Number(n) => n
            .as_f64()
            .map(crate::sweep::fmt_number)
            .unwrap_or_else(|| n.to_string()),
        Json::Null => "none".into(),
        other => other.to_string(),
    }
}

/// [`curvlab::axis::looks_logarithmic`] of values that are all numbers.
fn looks_logarithmic(values: &[Json]) -> bool {
    values
        .iter()
        .map(Json::as_f64)
        .collect::<Option<Vec<f64>>>()
        .is_some_and(|v| curvlab::axis::looks_logarithmic(&v))
}

/// A readable name for an axis path (the paper's symbols where known).
fn axis_name(path: &str) -> String {
    let last = path.rsplit('.').next().unwrap_or(path);
    let name = match last {
        "label_smoothing" => "label smoothing α",
        "lr" => "learning rate η",
        "batch_size" => "batch size B",
        "weight_decay" => "weight decay λ",
        "momentum" => "momentum μ",
        "input_scale" => "input scale s_in",
        "target_scale" => "target scale s_out",
        "mixup_alpha" => "mixup α",
        "sam_rho" => "SAM ρ",
        "width" => "width",
        "augment" => "augmentation",
        _ => return path.to_string(),
    };
    format!("{name} ({path})")
}

/// The short form of a setting for legends: last path segment = label.
fn short(s: &Setting) -> String {
    let last = s.path.rsplit('.').next().unwrap_or(&s.path);
    format!("{last}={}", s.label)
}

/// x positions of an axis's values: the value (linear), log10 of it (log;
/// a zero sits one spacing left of the smallest positive value and is
/// labelled 0), or the index (values that are not numbers).
fn positions(axis: &ManifestAxis) -> (Vec<f64>, bool) {
    let nums: Option<Vec<f64>> = axis.values.iter().map(Json::as_f64).collect();
    let Some(nums) = nums else {
        return ((0..axis.values.len()).map(|i| i as f64).collect(), false);
    };
    if !axis.log || nums.iter().any(|v| *v < 0.0) || nums.iter().all(|v| *v == 0.0) {
        return (nums, false);
    }
    let mut logs: Vec<f64> = nums
        .iter()
        .filter(|v| **v > 0.0)
        .map(|v| v.log10())
        .collect();
    logs.sort_by(f64::total_cmp);
    let spacing = if logs.len() >= 2 {
        ((logs[logs.len() - 1] - logs[0]) / (logs.len() - 1) as f64).max(0.3)
    } else {
        1.0
    };
    let zero_at = logs[0] - spacing;
    (
        nums.iter()
            .map(|v| if *v > 0.0 { v.log10() } else { zero_at })
            .collect(),
        true,
    )
}

/// Runs of `group` (all runs when the sweep has no groups).
fn runs_of<'a>(s: &'a Sweep, g: &ManifestGroup) -> Vec<&'a RunData> {
    s.runs.iter().filter(|r| r.run.group == g.name).collect()
}

fn file_stem(kind: &str, g: &ManifestGroup) -> String {
    match &g.name {
        Some(n) => format!("{kind}-{n}"),
        None => kind.to_string(),
    }
}

fn scope_name(g: &ManifestGroup) -> String {
    g.name.clone().unwrap_or_else(|| "all".into())
}

fn spread(values: &[f64]) -> f64 {
    let pos: Vec<f64> = values.iter().copied().filter(|v| *v > 0.0).collect();
    if pos.len() < values.len() || pos.is_empty() {
        return 1.0;
    }
    let (lo, hi) = pos
        .iter()
        .fold((f64::INFINITY, 0.0f64), |(l, h), v| (l.min(*v), h.max(*v)));
    hi / lo
}

/// The x axis a group's figure takes by default: its first axis, except in a
/// sweep of several groups, where it is the group's first own axis (one that
/// not every group has: e.g. Fig. 5's regulariser, not the learning rate every
/// group is crossed with, which becomes the figure's lines).
fn own_axis(groups: &[ManifestGroup], g: &ManifestGroup) -> usize {
    if groups.len() < 2 {
        return 0;
    }
    g.axes
        .iter()
        .position(|a| {
            !groups
                .iter()
                .all(|h| h.axes.iter().any(|b| b.path == a.path))
        })
        .unwrap_or(0)
}

/// Final values against the x axis, one line per combination of the others.
fn sweep_figure(s: &Sweep, g: &ManifestGroup) -> Option<Figure> {
    if g.axes.is_empty() {
        return None;
    }
    let runs = runs_of(s, g);
    let xi = s
        .manifest
        .report
        .x
        .as_ref()
        .and_then(|x| g.axes.iter().position(|a| &a.path == x))
        .unwrap_or_else(|| own_axis(&s.manifest.groups, g));
    let xaxis = &g.axes[xi];
    let (pos, log) = positions(xaxis);
    let ticks: Vec<(f64, String)> = pos.iter().copied().zip(xaxis.labels.clone()).collect();
    let others: Vec<usize> = (0..g.axes.len()).filter(|&i| i != xi).collect();
    // Series: the combinations of the other axes' levels, in grid order.
    let mut series: Vec<Vec<usize>> = vec![vec![]];
    for &i in &others {
        series = series
            .into_iter()
            .flat_map(|p| {
                (0..g.axes[i].values.len()).map(move |l| {
                    let mut q = p.clone();
                    q.push(l);
                    q
                })
            })
            .collect();
    }
    let finished: Vec<&&RunData> = runs
        .iter()
        .filter(|r| r.outcome == Outcome::Finished)
        .collect();
    let level = |r: &RunData, axis: usize| r.run.settings.get(axis).map(|s| s.level);
    let all_full_batch = runs.iter().all(|r| !r.minibatch);
    let panel_keys = [
        ("sharpness", "final sharpness", "λ_max"),
        (
            "jac_softmax_max",
            "final Jacobian norm",
            "max ‖\u{200A}J\u{200A}‖₂ (softmax)",
        ),
        ("gen_gap", "final generalisation gap", "|ℓ_train − ℓ_test|"),
    ];
    let mut panels = Vec::new();
    for (key, caption, ydesc) in panel_keys {
        let mut lines = Vec::new();
        for (si, combo) in series.iter().enumerate() {
            let mut pts = Vec::new();
            for (li, &x) in pos.iter().enumerate() {
                let vals: Vec<f64> = finished
                    .iter()
                    .filter(|r| {
                        level(r, xi) == Some(li)
                            && others
                                .iter()
                                .zip(combo)
                                .all(|(&a, &l)| level(r, a) == Some(l))
                    })
                    .filter_map(|r| r.finals.values.get(key).copied())
                    .collect();
                if let Some((m, sd)) = stats::mean_sd(&vals) {
                    pts.push((x, m, (vals.len() > 1).then_some(sd)));
                }
            }
            let label = if others.is_empty() {
                format!("mean ± sd over {} seeds", s.manifest.seeds.len())
            } else {
                others
                    .iter()
                    .zip(combo)
                    .map(|(&a, &l)| {
                        let ax = &g.axes[a];
                        let last = ax.path.rsplit('.').next().unwrap_or(&ax.path);
                        format!("{last}={}", ax.labels[l])
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            lines.push(Line {
                label,
                color: PALETTE[si % PALETTE.len()],
                dashed: (si / PALETTE.len()) % 2 == 1,
                marker: Marker::nth(si),
                points: pts,
                in_legend: true,
            });
        }
        if key == "sharpness" && all_full_batch {
            // 2/η at each x (the final rate of the runs there).
            let mut pts = Vec::new();
            for (li, &x) in pos.iter().enumerate() {
                let v: Vec<f64> = finished
                    .iter()
                    .filter(|r| level(r, xi) == Some(li))
                    .filter_map(|r| r.finals.values.get("two_over_lr").copied())
                    .collect();
                if let Some((m, _)) = stats::mean_sd(&v) {
                    pts.push((x, m, None));
                }
            }
            // Only where sharpness comes near it (≥ 1/4 of 2/η somewhere):
            // far above the data it would only flatten the curves.
            let near = lines.iter().any(|l| {
                l.points
                    .iter()
                    .any(|q| pts.iter().any(|r| r.0 == q.0 && q.1 >= EOS_NEAR * r.1))
            });
            if near {
                lines.push(Line {
                    label: "2/η".into(),
                    color: DARK,
                    dashed: true,
                    marker: Marker::None,
                    points: pts,
                    in_legend: true,
                });
            }
        }
        let values: Vec<f64> = lines
            .iter()
            .flat_map(|l| l.points.iter().map(|p| p.1))
            .collect();
        panels.push(Panel {
            caption: caption.into(),
            y_desc: ydesc.into(),
            log_y: spread(&values) > 30.0,
            lines,
        });
    }
    let group = g
        .name
        .as_ref()
        .map(|n| format!(" — {n}"))
        .unwrap_or_default();
    let n_done = finished.len();
    Some(Figure {
        title: format!(
            "{} ({}){group}: final values, mean ± sd over seeds ({n_done} of {} runs finished)",
            s.manifest.name,
            s.manifest.scale,
            runs.len()
        ),
        x: XAxis::Ticks {
            desc: format!(
                "{}{}",
                axis_name(&xaxis.path),
                if log { ", log scale" } else { "" }
            ),
            ticks,
        },
        panels,
        layout: Layout::Row,
        panel_size: (520, 440),
    })
}

/// Sharpness (with 2/η), Jacobian norm and KL train loss through training,
/// one line per setting (mean over its seeds).
fn timeseries_figure(s: &Sweep, g: &ManifestGroup) -> Option<Figure> {
    let runs: Vec<&RunData> = runs_of(s, g)
        .into_iter()
        .filter(|r| matches!(r.outcome, Outcome::Finished | Outcome::Diverged))
        .filter(|r| !r.rows.is_empty())
        .collect();
    if runs.is_empty() {
        return None;
    }
    let by_epoch = runs.iter().any(|r| r.minibatch);
    let xkey = |r: &Row| -> i64 {
        if by_epoch {
            (r.epoch * 1e6).round() as i64
        } else {
            r.step as i64
        }
    };
    let xval = |k: i64| if by_epoch { k as f64 / 1e6 } else { k as f64 };
    // Settings: distinct level vectors, in run order (grid order).
    let mut settings: Vec<Vec<usize>> = Vec::new();
    for r in &runs {
        let lv: Vec<usize> = r.run.settings.iter().map(|s| s.level).collect();
        if !settings.contains(&lv) {
            settings.push(lv);
        }
    }
    let panel_keys = [
        ("sharpness", "sharpness", "λ_max", false),
        (
            "jac_softmax_max",
            "Jacobian norm",
            "max ‖\u{200A}J\u{200A}‖₂ (softmax)",
            false,
        ),
        ("train_loss_kl", "train loss (KL form)", "ℓ_S − H(t)", true),
    ];
    let mut panels = Vec::new();
    for (key, caption, ydesc, log) in panel_keys {
        let mut lines = Vec::new();
        for (si, lv) in settings.iter().enumerate() {
            let members: Vec<&&RunData> = runs
                .iter()
                .filter(|r| {
                    r.run
                        .settings
                        .iter()
                        .map(|s| s.level)
                        .eq(lv.iter().copied())
                })
                .collect();
            let mean_at = |f: &dyn Fn(&Row) -> Option<f64>| -> Vec<(f64, f64, Option<f64>)> {
                let mut acc: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
                for r in &members {
                    for row in &r.rows {
                        if let Some(v) = f(row).filter(|v| v.is_finite()) {
                            acc.entry(xkey(row)).or_default().push(v);
                        }
                    }
                }
                acc.into_iter()
                    .filter_map(|(k, v)| stats::mean_sd(&v).map(|(m, _)| (xval(k), m, None)))
                    .collect()
            };
            let label = members[0]
                .run
                .settings
                .iter()
                .map(short)
                .collect::<Vec<_>>()
                .join(", ");
            let label = if label.is_empty() {
                "all runs".to_string()
            } else {
                label
            };
            let color = PALETTE[si % PALETTE.len()];
            lines.push(Line {
                label: label.clone(),
                color,
                dashed: (si / PALETTE.len()) % 2 == 1,
                marker: Marker::None,
                points: mean_at(&|r| field(r, key)),
                in_legend: true,
            });
            let sharp = lines.last().map(|l| l.points.clone()).unwrap_or_default();
            let two_over_lr = mean_at(&|r| r.get("two_over_lr"));
            let lowest = two_over_lr
                .iter()
                .map(|p| p.1)
                .fold(f64::INFINITY, f64::min);
            let near = sharp.iter().any(|p| p.1 >= EOS_NEAR * lowest);
            if key == "sharpness" && near && members.iter().all(|r| !r.minibatch) {
                lines.push(Line {
                    label: format!("2/η, {label}"),
                    color,
                    dashed: true,
                    marker: Marker::None,
                    points: two_over_lr,
                    in_legend: false,
                });
            }
        }
        panels.push(Panel {
            caption: caption.into(),
            y_desc: ydesc.into(),
            lines,
            log_y: log,
        });
    }
    let group = g
        .name
        .as_ref()
        .map(|n| format!(" — {n}"))
        .unwrap_or_default();
    Some(Figure {
        title: format!(
            "{} ({}){group}: through training, mean over seeds (dashed: 2/η, where sharpness nears it)",
            s.manifest.name, s.manifest.scale
        ),
        x: XAxis::Numeric {
            desc: if by_epoch { "epoch" } else { "step" }.into(),
        },
        panels,
        layout: Layout::Column,
        panel_size: (960, 330),
    })
}

/// One row of the correlation table.
struct Correlation {
    scope: String,
    key: &'static str,
    name: &'static str,
    n: usize,
    spearman: Option<f64>,
    kendall: Option<f64>,
}

fn correlations(s: &Sweep) -> Vec<Correlation> {
    let mut scopes: Vec<(String, Vec<&RunData>)> = vec![(
        "all runs".into(),
        s.runs
            .iter()
            .filter(|r| r.outcome == Outcome::Finished)
            .collect(),
    )];
    if s.manifest.groups.len() > 1 {
        for g in &s.manifest.groups {
            scopes.push((
                format!("group {}", scope_name(g)),
                runs_of(s, g)
                    .into_iter()
                    .filter(|r| r.outcome == Outcome::Finished)
                    .collect(),
            ));
        }
    }
    let mut out = Vec::new();
    for (scope, runs) in &scopes {
        for &(key, name) in CORRELATED {
            let pairs: Vec<(f64, f64)> = runs
                .iter()
                .filter_map(|r| {
                    Some((*r.finals.values.get("gen_gap")?, *r.finals.values.get(key)?))
                })
                .collect();
            let (gap, q): (Vec<f64>, Vec<f64>) = pairs.into_iter().unzip();
            if q.is_empty() && key != "sharpness" && key != "jac_softmax_max" {
                continue;
            }
            out.push(Correlation {
                scope: scope.clone(),
                key,
                name,
                n: gap.len(),
                spearman: stats::spearman(&gap, &q),
                kendall: stats::kendall_tau_b(&gap, &q),
            });
        }
    }
    out
}

fn fmt_opt(v: Option<f64>, digits: usize) -> String {
    v.map(|x| format!("{x:.digits$}"))
        .unwrap_or_else(|| "—".into())
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Writes the report of `s` into `out`.
pub fn write(s: &Sweep, out: &Path) -> Result<Written> {
    write_with(s, out, &SpectrumOptions::default())
}

/// [`write`], with choices about the spectrum extras' figures.
pub fn write_with(s: &Sweep, out: &Path, spectrum_opts: &SpectrumOptions) -> Result<Written> {
    std::fs::create_dir_all(out)
        .with_context(|| format!("{}: cannot create the report directory", out.display()))?;
    let mut files = Vec::new();
    let mut figure_names = Vec::new();
    for g in &s.manifest.groups {
        let base = [
            ("sweep", sweep_figure(s, g)),
            ("timeseries", timeseries_figure(s, g)),
        ];
        let extras = spectrum::figures(s, g, spectrum_opts)
            .into_iter()
            .map(|(k, f)| (k, Some(f)));
        for (kind, fig) in base.into_iter().chain(extras) {
            let Some(fig) = fig else { continue };
            let stem = out.join(file_stem(kind, g));
            fig.write(&stem)
                .with_context(|| format!("{}.png/.svg", stem.display()))?;
            files.push(stem.with_extension("png"));
            files.push(stem.with_extension("svg"));
            figure_names.push((kind, g.name.clone(), file_stem(kind, g)));
        }
    }

    // Correlations.
    let corr = correlations(s);
    let mut md = String::from(
        "| scope | quantity | n | Spearman ρ | Kendall τ_b |\n|---|---|---:|---:|---:|\n",
    );
    let mut csv = String::from("scope,quantity,n,spearman,kendall_tau_b\n");
    for c in &corr {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} |",
            c.scope,
            c.name,
            c.n,
            fmt_opt(c.spearman, 3),
            fmt_opt(c.kendall, 3)
        );
        let _ = writeln!(
            csv,
            "{},{},{},{},{}",
            csv_field(&c.scope),
            c.key,
            c.n,
            c.spearman.map(|v| v.to_string()).unwrap_or_default(),
            c.kendall.map(|v| v.to_string()).unwrap_or_default()
        );
    }
    let corr_note = "Rank correlations over finished runs between the generalisation gap \
        |train loss − test loss| and each quantity, all at the last measurement of each run \
        (— : fewer than 3 runs, or a constant column).\n";
    for (name, text) in [
        ("correlations.md", format!("{corr_note}\n{md}")),
        ("correlations.csv", csv),
    ] {
        let p = out.join(name);
        curvlab::atomic::write(&p, text.as_bytes())?;
        files.push(p);
    }

    // The paper's claims, checked.
    let boot = Bootstrap::default();
    let claim_results = claims::evaluate(s, &boot);
    if !s.manifest.claims.is_empty() {
        let p = out.join("claims.json");
        curvlab::atomic::write(
            &p,
            (serde_json::to_string_pretty(&claim_results)? + "\n").as_bytes(),
        )?;
        files.push(p);
    }

    // Every run, its status and final values.
    let axis_paths: Vec<String> = {
        let mut v: Vec<String> = Vec::new();
        for g in &s.manifest.groups {
            for a in &g.axes {
                if !v.contains(&a.path) {
                    v.push(a.path.clone());
                }
            }
        }
        v
    };
    let mut runs_csv = String::from("index,dir,group");
    for p in &axis_paths {
        runs_csv += &format!(",{}", csv_field(p));
    }
    runs_csv += ",seed,status,final_step";
    for f in FINAL_FIELDS {
        runs_csv += &format!(",{f}");
    }
    runs_csv.push('\n');
    for r in &s.runs {
        let mut line = format!(
            "{},{},{}",
            r.run.index,
            csv_field(&r.run.dir),
            csv_field(r.run.group.as_deref().unwrap_or(""))
        );
        for p in &axis_paths {
            let v = r
                .run
                .settings
                .iter()
                .find(|s| &s.path == p)
                .map(|s| s.label.clone())
                .unwrap_or_default();
            line += &format!(",{}", csv_field(&v));
        }
        line += &format!(
            ",{},{},{}",
            r.run.seed,
            r.outcome.name(),
            r.finals.step.map(|s| s.to_string()).unwrap_or_default()
        );
        for f in FINAL_FIELDS {
            line += &format!(
                ",{}",
                r.finals
                    .values
                    .get(f)
                    .map(|v| v.to_string())
                    .unwrap_or_default()
            );
        }
        runs_csv += &line;
        runs_csv.push('\n');
    }
    let p = out.join("runs.csv");
    curvlab::atomic::write(&p, runs_csv.as_bytes())?;
    files.push(p);

    // report.md
    let mut counts: BTreeMap<&'static str, usize> = BTreeMap::new();
    for r in &s.runs {
        *counts.entry(r.outcome.name()).or_default() += 1;
    }
    let m = &s.manifest;
    let mut rep = format!("# {} ({} scale)\n\n", m.name, m.scale);
    if !m.description.is_empty() {
        let _ = writeln!(rep, "{}\n", m.description);
    }
    let _ = writeln!(
        rep,
        "Sweep directory `{}` ({}); {} runs: {}.\n",
        s.dir.display(),
        m.source,
        s.runs.len(),
        counts
            .iter()
            .map(|(k, v)| format!("{v} {k}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if s.inferred {
        rep += "No sweep.json: the runs are the directories holding a config.json, and the \
                axes the configuration fields that differ between them.\n\n";
    }
    if !claim_results.is_empty() {
        rep += "## The paper's claims\n\n";
        rep += &claims::markdown(&claim_results, &boot);
        rep.push('\n');
    }
    rep += "## Rank correlations with the generalisation gap\n\n";
    rep += corr_note;
    rep.push('\n');
    rep += &md;
    rep += "\n## Figures\n\n";
    for (kind, group, stem) in &figure_names {
        let what = match *kind {
            "sweep" => "Final values against the swept parameter (mean ± sd over seeds)",
            "spectrum" => {
                "Spectrum extras through training (mean over seeds): the Hessian trace ± its \
                 standard error, fold sharpness ± the spread over folds, the Ansatz factors"
            }
            "layers" => {
                "Per-layer curvature through training (mean over seeds): λ_max of each \
                 layer's Hessian and Gauss–Newton block, the top eigenvector's mass per layer"
            }
            "density" => {
                "Hessian spectral density (SLQ) at chosen steps, first seed of each setting"
            }
            _ => "Through training (mean over seeds)",
        };
        let g = group
            .as_ref()
            .map(|g| format!(", group {g}"))
            .unwrap_or_default();
        let _ = writeln!(
            rep,
            "{what}{g} ([SVG]({stem}.svg)):\n\n![{stem}]({stem}.png)\n"
        );
    }
    rep += "## Final values (finished runs, mean ± sd over seeds)\n\n";
    for g in &m.groups {
        if let Some(n) = &g.name {
            let _ = writeln!(rep, "### {n}\n");
        }
        rep += "| setting | n | sharpness | max ‖J‖₂ | gap | test acc |\n|---|---:|---:|---:|---:|---:|\n";
        let mut settings: Vec<(String, Vec<usize>)> = Vec::new();
        for r in runs_of(s, g) {
            let lv: Vec<usize> = r.run.settings.iter().map(|x| x.level).collect();
            if !settings.iter().any(|x| x.1 == lv) {
                let name = r
                    .run
                    .settings
                    .iter()
                    .map(short)
                    .collect::<Vec<_>>()
                    .join(", ");
                settings.push((if name.is_empty() { "all".into() } else { name }, lv));
            }
        }
        for (name, lv) in settings {
            let members: Vec<&RunData> = runs_of(s, g)
                .into_iter()
                .filter(|r| r.outcome == Outcome::Finished)
                .filter(|r| {
                    r.run
                        .settings
                        .iter()
                        .map(|x| x.level)
                        .eq(lv.iter().copied())
                })
                .collect();
            let cell = |key: &str| {
                let v: Vec<f64> = members
                    .iter()
                    .filter_map(|r| r.finals.values.get(key).copied())
                    .collect();
                match stats::mean_sd(&v) {
                    Some((mean, sd)) if v.len() > 1 => format!("{mean:.4} ± {sd:.4}"),
                    Some((mean, _)) => format!("{mean:.4}"),
                    None => "—".into(),
                }
            };
            let _ = writeln!(
                rep,
                "| {name} | {} | {} | {} | {} | {} |",
                members.len(),
                cell("sharpness"),
                cell("jac_softmax_max"),
                cell("gen_gap"),
                cell("test_acc")
            );
        }
        rep.push('\n');
    }
    let left_out: Vec<&RunData> = s
        .runs
        .iter()
        .filter(|r| r.outcome != Outcome::Finished)
        .collect();
    rep += "## Runs not in the statistics\n\n";
    if left_out.is_empty() {
        rep += "None: every run finished.\n";
    }
    for r in left_out {
        let detail = match &r.outcome {
            Outcome::Diverged => format!(
                "diverged (last row at step {})",
                r.finals.step.map(|s| s.to_string()).unwrap_or("?".into())
            ),
            Outcome::Unfinished => format!(
                "unfinished ({} rows, last at step {})",
                r.rows.len(),
                r.finals.step.map(|s| s.to_string()).unwrap_or("-".into())
            ),
            Outcome::Missing => "not started (no directory)".into(),
            Outcome::Unreadable(e) => format!("unreadable: {e}"),
            Outcome::Finished => unreachable!(),
        };
        let _ = writeln!(rep, "- run {} `{}`: {detail}", r.run.index, r.run.dir);
    }
    let p = out.join("report.md");
    curvlab::atomic::write(&p, rep.as_bytes())?;
    files.push(p);
    Ok(Written {
        files,
        claims: claim_results,
        correlations_md: md,
        counts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(axes: &[&str]) -> ManifestGroup {
        ManifestGroup {
            name: Some(axes.join("+")),
            description: String::new(),
            axes: axes
                .iter()
                .map(|p| ManifestAxis {
                    path: p.to_string(),
                    values: vec![],
                    labels: vec![],
                    log: false,
                })
                .collect(),
        }
    }

    /// A grouped sweep's figure is drawn against each group's own axis, the
    /// axes every group shares becoming its lines; an ungrouped one against
    /// its first axis.
    #[test]
    fn default_x_is_the_groups_own_axis() {
        let groups = vec![
            group(&["optim.lr", "loss.label_smoothing"]),
            group(&["optim.lr", "augment"]),
            group(&["optim.lr", "optim.batch_size", "optim.sam_rho"]),
        ];
        assert_eq!(own_axis(&groups, &groups[0]), 1);
        assert_eq!(own_axis(&groups, &groups[1]), 1);
        assert_eq!(own_axis(&groups, &groups[2]), 1);
        let one = vec![group(&["optim.lr", "optim.batch_size"])];
        assert_eq!(own_axis(&one, &one[0]), 0);
        // Groups that share every axis: the first.
        let same = vec![group(&["optim.lr"]), group(&["optim.lr"])];
        assert_eq!(own_axis(&same, &same[0]), 0);
    }
}
