//! Sweeps: a TOML file (or an embedded preset) that expands to a deterministic,
//! ordered list of runs, each with its own directory under the sweep's output
//! directory, so that shards (Slurm array tasks) never contend.
//!
//! A sweep file:
//! ```toml
//! name = "fig1"                 # [A-Za-z0-9_-]
//! description = "…"
//! trials = 5                    # seeds 0, 1, …, 4 (or seeds = [3, 7])
//! [base]                        # a run configuration: any subset of config.json
//! steps = 4000
//! [base.loss]
//! kind = "crossentropy"
//! [axes]                        # dotted path → values; the grid is their product
//! "loss.label_smoothing" = [0.0, 0.1, 0.2]
//! [groups.mixup]                # optional sub-sweeps, each crossed with [axes]
//! config = { augment = { mixup_alpha = 0.0 } }
//! axes = { "augment.mixup_alpha" = [0.2, 0.4] }
//! [scales.tiny]                 # per-scale overrides (`paper` is the file as written)
//! trials = 1
//! config = { steps = 40 }       # merged onto the base
//! axes = { "loss.label_smoothing" = [0.0, 0.2] }   # replaces an axis's values
//! [report]
//! x = "optim.lr"                # the x of the sweep figure (default: first axis)
//! log_x = ["optim.lr"]          # axes drawn on a log scale (default: a heuristic)
//! ```
//!
//! Expansion: groups in file order (one unnamed group when there are none);
//! within a group the product of its axes (the file's `[axes]`, then the
//! group's), first axis slowest; seeds fastest. A run's configuration is
//! base ← group config ← scale config ← `--set` ← axis values ← seed, merged
//! at dotted paths (tables merge key by key; a table whose `kind` changes is
//! replaced), then deserialised as a `RunConfig` and validated. The engine
//! knows no field names: every path set anywhere must name a field of the
//! configuration that results, so a typo is an error, never a silent no-op.
//!
//! A run's directory is its settings, `path=value` joined by commas, then
//! `seed=S` (e.g. `loss.label_smoothing=0.1,seed=2`), under `GROUP/` in a
//! grouped sweep. `sweep.json` (the [`Manifest`]) records every run's index,
//! directory, settings and full configuration.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use curvlab::backend::BackendKind;
use curvlab::experiment::RunConfig;
use serde_json::Value as Json;
use toml::{Table, Value};

use crate::manifest::{Manifest, ManifestAxis, ManifestGroup, ManifestRun, ReportOptions, Setting};
use crate::presets;
use crate::report::ClaimSpec;

/// The scale a sweep runs at unless told otherwise: the file as written.
pub const DEFAULT_SCALE: &str = "paper";

/// Environment variable naming the CIFAR directory when `--data` is absent.
pub const DATA_ENV: &str = "CURVLAB_DATA";

/// Stands in for the data directory in a plan made without one.
const DATA_PLACEHOLDER: &str = "$CURVLAB_DATA";

/// Longest directory name (bytes) before it is shortened with a hash.
const MAX_DIR_NAME: usize = 200;

/// A swept setting: a dotted path into the run configuration and its values.
#[derive(Clone, Debug)]
struct AxisSpec {
    path: String,
    values: Vec<Value>,
}

/// A named sub-sweep.
#[derive(Clone, Debug)]
struct GroupSpec {
    name: String,
    description: String,
    config: Table,
    axes: Vec<AxisSpec>,
}

/// Overrides for one scale.
#[derive(Clone, Debug, Default)]
struct ScaleSpec {
    description: String,
    seeds: Option<Vec<u64>>,
    config: Table,
    axes: Vec<AxisSpec>,
}

/// A parsed sweep file.
#[derive(Clone, Debug)]
pub struct SweepFile {
    pub name: String,
    pub description: String,
    /// "preset fig1" or the file's path: for messages and the manifest.
    pub source: String,
    /// The file's text, copied beside the runs.
    pub text: String,
    seeds: Vec<u64>,
    base: Table,
    axes: Vec<AxisSpec>,
    groups: Vec<GroupSpec>,
    scales: Vec<(String, ScaleSpec)>,
    report: ReportOptions,
    claims: Vec<ClaimSpec>,
}

/// What the command line adds to an expansion.
#[derive(Clone, Debug, Default)]
pub struct ExpandOptions {
    /// `paper` (the file as written) or one of the file's `[scales.*]`.
    pub scale: String,
    /// `--data`: the CIFAR directory of every run that reads CIFAR data.
    pub data: Option<PathBuf>,
    /// `CURVLAB_DATA`, used when neither `--data` nor the file names a directory.
    pub data_env: Option<PathBuf>,
    /// `--set path=value` (and `--backend`), applied before the axes.
    pub sets: Vec<(String, Value)>,
    /// Fail when a run needs a data directory nobody gave; otherwise a
    /// placeholder stands in (for `sweep plan`).
    pub require_data: bool,
}

/// Which sweep, at which scale, where: what the command line names.
#[derive(Clone, Debug, Default)]
pub struct Request {
    /// A sweep file or a preset's name.
    pub sweep: String,
    /// `paper` (the file as written) or a scale the file defines.
    pub scale: String,
    /// The sweep directory [default: `runs/<name>-<scale>`].
    pub out: Option<PathBuf>,
    /// The CIFAR directory of every run that reads CIFAR data [default: `$CURVLAB_DATA`].
    pub data: Option<PathBuf>,
    /// The backend of every run (overrides the sweep file).
    pub backend: Option<BackendKind>,
    /// `path=value` overrides of every run.
    pub sets: Vec<String>,
}

/// A sweep resolved from a [`Request`]: its file, its expansion, its directory.
#[derive(Clone, Debug)]
pub struct Resolved {
    pub file: SweepFile,
    pub manifest: Manifest,
    pub out: PathBuf,
}

/// Loads and expands the sweep `req` names. `require_data`: every run that
/// reads CIFAR data must have an existing directory (checked before any
/// work); otherwise a placeholder stands in (a plan). `backend` is used when
/// the request names none (Slurm GPU jobs).
pub fn resolve(
    req: &Request,
    require_data: bool,
    backend: Option<BackendKind>,
) -> Result<Resolved> {
    let file = load(&req.sweep)?;
    let mut sets = Vec::new();
    if let Some(b) = req.backend.or(backend) {
        let name = serde_json::to_value(b)?
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| anyhow!("backend name"))?;
        sets.push(("backend".to_string(), Value::String(name)));
    }
    for s in &req.sets {
        sets.push(parse_set(s)?);
    }
    if let Some(d) = req.data.as_ref() {
        if !d.is_dir() {
            bail!("--data {}: no such directory", d.display());
        }
    }
    let opts = ExpandOptions {
        scale: req.scale.clone(),
        data: req.data.clone(),
        data_env: data_env(),
        sets,
        require_data,
    };
    let manifest = file.expand(&opts)?;
    if require_data {
        check_data_dirs(&manifest)?;
    }
    let out = req
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("runs/{}-{}", file.name, req.scale)));
    Ok(Resolved {
        file,
        manifest,
        out,
    })
}

/// `$CURVLAB_DATA`, when set and not empty.
pub fn data_env() -> Option<PathBuf> {
    std::env::var_os(DATA_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// Every CIFAR directory the runs name exists (one line, before any work).
fn check_data_dirs(m: &Manifest) -> Result<()> {
    let mut seen = BTreeSet::new();
    for r in &m.runs {
        if r.config["data"]["kind"] == "cifar" {
            if let Some(d) = r.config["data"]["dir"].as_str() {
                if seen.insert(d.to_string()) && !Path::new(d).is_dir() {
                    bail!("data directory {d} does not exist (pass --data DIR or set {DATA_ENV})");
                }
            }
        }
    }
    Ok(())
}

/// Reads a sweep file, or the preset of that name.
pub fn load(arg: &str) -> Result<SweepFile> {
    let path = Path::new(arg);
    if path.is_file() {
        let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
        let source = std::path::absolute(path)
            .unwrap_or_else(|_| path.to_path_buf())
            .display()
            .to_string();
        return SweepFile::parse(&text, &source);
    }
    if let Some(text) = presets::get(arg) {
        return SweepFile::parse(text, &format!("preset {arg}"));
    }
    if arg.contains('/') || arg.ends_with(".toml") || path.exists() {
        bail!("{arg}: no such sweep file");
    }
    bail!(
        "'{arg}' is neither a sweep file nor a preset (presets: {})",
        presets::names()
    )
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "a string",
        Value::Integer(_) => "an integer",
        Value::Float(_) => "a number",
        Value::Boolean(_) => "a boolean",
        Value::Datetime(_) => "a date",
        Value::Array(_) => "a list",
        Value::Table(_) => "a table",
    }
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Removes `key` from `t`: a string.
fn take_string(t: &mut Table, key: &str, ctx: &str) -> Result<Option<String>> {
    match t.remove(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(v) => bail!("{ctx}: '{key}' must be a string, not {}", type_name(&v)),
    }
}

/// Removes `key` from `t`: a table.
fn take_table(t: &mut Table, key: &str, ctx: &str) -> Result<Option<Table>> {
    match t.remove(key) {
        None => Ok(None),
        Some(Value::Table(s)) => Ok(Some(s)),
        Some(v) => bail!("{ctx}: '{key}' must be a table, not {}", type_name(&v)),
    }
}

/// Removes `trials` / `seeds` from `t`: the seeds they name.
fn take_seeds(t: &mut Table, ctx: &str) -> Result<Option<Vec<u64>>> {
    let trials = t.remove("trials");
    let seeds = t.remove("seeds");
    match (trials, seeds) {
        (Some(_), Some(_)) => bail!("{ctx}: give 'trials' or 'seeds', not both"),
        (Some(Value::Integer(n)), None) if n >= 1 => Ok(Some((0..n as u64).collect())),
        (Some(v), None) => bail!(
            "{ctx}: 'trials' must be a positive integer, got {}",
            toml_inline(&v)
        ),
        (None, Some(Value::Array(a))) if !a.is_empty() => {
            let mut out = Vec::new();
            for v in &a {
                match v {
                    Value::Integer(s) if *s >= 0 => out.push(*s as u64),
                    _ => bail!(
                        "{ctx}: 'seeds' must be non-negative integers, got {}",
                        toml_inline(v)
                    ),
                }
            }
            let distinct: BTreeSet<u64> = out.iter().copied().collect();
            if distinct.len() != out.len() {
                bail!("{ctx}: 'seeds' repeats a seed");
            }
            Ok(Some(out))
        }
        (None, Some(v)) => bail!(
            "{ctx}: 'seeds' must be a non-empty list of integers, got {}",
            toml_inline(&v)
        ),
        (None, None) => Ok(None),
    }
}

/// Fails on keys left in `t` after parsing.
fn no_more_keys(t: &Table, ctx: &str, expected: &str) -> Result<()> {
    if let Some(k) = t.keys().next() {
        bail!("{ctx}: unknown key '{k}' (expected {expected})");
    }
    Ok(())
}

/// A dotted path: non-empty segments of letters, digits and `_`.
fn check_path(path: &str, ctx: &str) -> Result<()> {
    let ok = !path.is_empty()
        && path
            .split('.')
            .all(|s| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
    if !ok {
        bail!("{ctx}: '{path}' is not a dotted path like loss.label_smoothing");
    }
    if path == "seed" {
        bail!("{ctx}: seeds are swept with 'trials' or 'seeds', not as an axis");
    }
    Ok(())
}

/// Axes from a table, in file order: `"a.b" = [..]` or nested `a.b = [..]`.
fn parse_axes(t: &Table, prefix: &str, ctx: &str, out: &mut Vec<AxisSpec>) -> Result<()> {
    for (k, v) in t {
        let path = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            Value::Array(values) => {
                check_path(&path, ctx)?;
                if values.is_empty() {
                    bail!("{ctx}: axis '{path}' has no values");
                }
                if out.iter().any(|a| a.path == path) {
                    bail!("{ctx}: axis '{path}' is given twice");
                }
                out.push(AxisSpec {
                    path,
                    values: values.clone(),
                });
            }
            Value::Table(sub) => parse_axes(sub, &path, ctx, out)?,
            other => bail!(
                "{ctx}: axis '{path}' must be a list of values, not {} (write \"{path}\" = [..])",
                type_name(other)
            ),
        }
    }
    Ok(())
}

impl SweepFile {
    /// Parses a sweep file's text; `source` names it in errors.
    pub fn parse(text: &str, source: &str) -> Result<SweepFile> {
        let mut t: Table = toml::from_str(text).map_err(|e| {
            anyhow!(
                "{source}: {}",
                e.to_string().lines().next().unwrap_or("invalid TOML")
            )
        })?;
        let ctx = source;
        let name = take_string(&mut t, "name", ctx)?
            .ok_or_else(|| anyhow!("{source}: the sweep needs a 'name'"))?;
        if !valid_name(&name) {
            bail!("{source}: name '{name}' must be letters, digits, '_' or '-'");
        }
        let description = take_string(&mut t, "description", ctx)?.unwrap_or_default();
        let seeds = take_seeds(&mut t, ctx)?;
        let base = take_table(&mut t, "base", ctx)?.unwrap_or_default();
        if base.contains_key("seed") && seeds.is_some() {
            bail!("{source}: base.seed and trials/seeds both set the seed; keep one");
        }
        let seeds = seeds.unwrap_or_else(|| {
            vec![match base.get("seed") {
                Some(Value::Integer(s)) if *s >= 0 => *s as u64,
                _ => 0,
            }]
        });
        let mut axes = Vec::new();
        if let Some(a) = take_table(&mut t, "axes", ctx)? {
            parse_axes(&a, "", &format!("{source}: [axes]"), &mut axes)?;
        }
        let mut groups = Vec::new();
        for (gname, g) in take_table(&mut t, "groups", ctx)?.unwrap_or_default() {
            let gctx = format!("{source}: [groups.{gname}]");
            if !valid_name(&gname) {
                bail!("{gctx}: a group name must be letters, digits, '_' or '-'");
            }
            let Value::Table(mut g) = g else {
                bail!("{gctx}: must be a table");
            };
            let description = take_string(&mut g, "description", &gctx)?.unwrap_or_default();
            let config = take_table(&mut g, "config", &gctx)?.unwrap_or_default();
            let mut gaxes = Vec::new();
            if let Some(a) = take_table(&mut g, "axes", &gctx)? {
                parse_axes(&a, "", &gctx, &mut gaxes)?;
            }
            no_more_keys(&g, &gctx, "description, config, axes")?;
            if let Some(a) = gaxes.iter().find(|a| axes.iter().any(|b| b.path == a.path)) {
                bail!("{gctx}: axis '{}' is also in [axes]", a.path);
            }
            groups.push(GroupSpec {
                name: gname,
                description,
                config,
                axes: gaxes,
            });
        }
        let mut scales = Vec::new();
        for (sname, s) in take_table(&mut t, "scales", ctx)?.unwrap_or_default() {
            let sctx = format!("{source}: [scales.{sname}]");
            if !valid_name(&sname) {
                bail!("{sctx}: a scale name must be letters, digits, '_' or '-'");
            }
            let Value::Table(mut s) = s else {
                bail!("{sctx}: must be a table");
            };
            let description = take_string(&mut s, "description", &sctx)?.unwrap_or_default();
            let seeds = take_seeds(&mut s, &sctx)?;
            let config = take_table(&mut s, "config", &sctx)?.unwrap_or_default();
            let mut saxes = Vec::new();
            if let Some(a) = take_table(&mut s, "axes", &sctx)? {
                parse_axes(&a, "", &sctx, &mut saxes)?;
            }
            no_more_keys(&s, &sctx, "description, trials, seeds, config, axes")?;
            for a in &saxes {
                let known = axes.iter().chain(groups.iter().flat_map(|g| g.axes.iter()));
                if !known.clone().any(|b| b.path == a.path) {
                    bail!(
                        "{sctx}: replaces axis '{}', which the sweep does not have",
                        a.path
                    );
                }
            }
            scales.push((
                sname,
                ScaleSpec {
                    description,
                    seeds,
                    config,
                    axes: saxes,
                },
            ));
        }
        let mut report = ReportOptions::default();
        if let Some(mut r) = take_table(&mut t, "report", ctx)? {
            let rctx = format!("{source}: [report]");
            report.x = take_string(&mut r, "x", &rctx)?;
            if let Some(v) = r.remove("log_x") {
                let Value::Array(a) = &v else {
                    bail!("{rctx}: 'log_x' must be a list of axis paths");
                };
                let mut paths = Vec::new();
                for p in a {
                    let Value::String(p) = p else {
                        bail!("{rctx}: 'log_x' must be a list of axis paths");
                    };
                    paths.push(p.clone());
                }
                report.log_x = Some(paths);
            }
            no_more_keys(&r, &rctx, "x, log_x")?;
            let all: Vec<&str> = axes
                .iter()
                .chain(groups.iter().flat_map(|g| g.axes.iter()))
                .map(|a| a.path.as_str())
                .collect();
            for p in report.x.iter().chain(report.log_x.iter().flatten()) {
                if !all.contains(&p.as_str()) {
                    bail!("{rctx}: '{p}' is not an axis of the sweep");
                }
            }
        }
        let claims = match t.remove("claims") {
            None => Vec::new(),
            Some(v) => parse_claims(v, source, &axes, &groups)?,
        };
        no_more_keys(
            &t,
            source,
            "name, description, trials, seeds, base, axes, groups, scales, report, claims",
        )?;
        Ok(SweepFile {
            name,
            description,
            source: source.to_string(),
            text: text.to_string(),
            seeds,
            base,
            axes,
            groups,
            scales,
            report,
            claims,
        })
    }

    /// The scales the file defines, `paper` first, with their descriptions.
    pub fn scales(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if !self.scales.iter().any(|(n, _)| n == DEFAULT_SCALE) {
            out.push((DEFAULT_SCALE.to_string(), "the file as written".to_string()));
        }
        out.extend(
            self.scales
                .iter()
                .map(|(n, s)| (n.clone(), s.description.clone())),
        );
        out
    }

    /// Expands the sweep at `opts.scale` into its ordered list of runs.
    pub fn expand(&self, opts: &ExpandOptions) -> Result<Manifest> {
        let src = &self.source;
        let scale = match self.scales.iter().find(|(n, _)| *n == opts.scale) {
            Some((_, s)) => s.clone(),
            None if opts.scale == DEFAULT_SCALE => ScaleSpec::default(),
            None => bail!(
                "{src}: no scale '{}' (scales: {})",
                opts.scale,
                self.scales()
                    .iter()
                    .map(|s| s.0.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let seeds = scale.seeds.clone().unwrap_or_else(|| self.seeds.clone());
        let replace = |a: &AxisSpec| -> AxisSpec {
            scale
                .axes
                .iter()
                .find(|r| r.path == a.path)
                .cloned()
                .unwrap_or_else(|| a.clone())
        };
        let all_axes: Vec<&AxisSpec> = self
            .axes
            .iter()
            .chain(self.groups.iter().flat_map(|g| g.axes.iter()))
            .collect();
        for (p, _) in &opts.sets {
            check_path(p, "--set")?;
            if let Some(a) = all_axes.iter().find(|a| overlaps(&a.path, p)) {
                bail!("--set {p}: the sweep varies '{}' (an axis)", a.path);
            }
        }
        let unnamed = [GroupSpec {
            name: String::new(),
            description: String::new(),
            config: Table::new(),
            axes: vec![],
        }];
        let groups: &[GroupSpec] = if self.groups.is_empty() {
            &unnamed
        } else {
            &self.groups
        };

        let mut manifest_groups = Vec::new();
        let mut runs: Vec<ManifestRun> = Vec::new();
        let mut data_missing = false;
        let mut reads_cifar = false;
        for g in groups {
            let group = (!self.groups.is_empty()).then(|| g.name.clone());
            let axes: Vec<AxisSpec> = self.axes.iter().chain(&g.axes).map(replace).collect();
            manifest_groups.push(ManifestGroup {
                name: group.clone(),
                description: g.description.clone(),
                axes: axes
                    .iter()
                    .map(|a| ManifestAxis {
                        path: a.path.clone(),
                        values: a.values.iter().map(to_json).collect(),
                        labels: a.values.iter().map(label).collect(),
                        log: match &self.report.log_x {
                            Some(l) => l.contains(&a.path),
                            None => looks_logarithmic(&a.values),
                        },
                    })
                    .collect(),
            });
            for levels in grid(&axes) {
                for &seed in &seeds {
                    let index = runs.len();
                    let mut fragments: Vec<String> = axes
                        .iter()
                        .zip(&levels)
                        .map(|(a, &l)| dir_fragment(&a.path, &a.values[l]))
                        .collect();
                    fragments.push(format!("seed={seed}"));
                    let mut dir = dir_name(&fragments.join(","));
                    if let Some(g) = &group {
                        dir = format!("{g}/{dir}");
                    }
                    let what = format!("{src}: run {index} ({dir})");

                    let mut t = self.base.clone();
                    merge(&mut t, &g.config);
                    merge(&mut t, &scale.config);
                    for (p, v) in &opts.sets {
                        set_path(&mut t, p, v.clone()).with_context(|| what.clone())?;
                    }
                    for (a, &l) in axes.iter().zip(&levels) {
                        set_path(&mut t, &a.path, a.values[l].clone())
                            .with_context(|| what.clone())?;
                    }
                    t.insert("seed".into(), Value::Integer(seed as i64));
                    match fill_data_dir(&mut t, opts) {
                        Ok(DataDir::NotCifar) => {}
                        Ok(DataDir::Given) => reads_cifar = true,
                        Ok(DataDir::Missing) => {
                            reads_cifar = true;
                            data_missing = true;
                        }
                        Err(e) => return Err(e.context(format!("{src} ({} scale)", opts.scale))),
                    }
                    let cfg: RunConfig =
                        Value::Table(t.clone())
                            .try_into()
                            .map_err(|e: toml::de::Error| {
                                anyhow!("{what}: {}", one_line(&e.to_string()))
                            })?;
                    cfg.validate().map_err(|e| anyhow!("{what}: {e}"))?;
                    let config = serde_json::to_value(&cfg)?;
                    check_known(&t, &config, "").map_err(|e| anyhow!("{what}: {e}"))?;
                    runs.push(ManifestRun {
                        index,
                        dir,
                        group: group.clone(),
                        settings: axes
                            .iter()
                            .zip(&levels)
                            .map(|(a, &l)| Setting {
                                path: a.path.clone(),
                                value: to_json(&a.values[l]),
                                label: label(&a.values[l]),
                                level: l,
                            })
                            .collect(),
                        seed,
                        config,
                    });
                }
            }
        }
        if opts.data.is_some() && !reads_cifar {
            bail!(
                "--data: sweep '{}' does not read CIFAR data (its runs say where their data comes from)",
                self.name
            );
        }
        let mut seen = std::collections::HashMap::new();
        for r in &runs {
            if let Some(i) = seen.insert(r.dir.as_str(), r.index) {
                bail!(
                    "{src}: runs {i} and {} would share the directory '{}' (two values of an axis print alike)",
                    r.index,
                    r.dir
                );
            }
        }
        // A scale changes the numbers the paper-scale description states; say which apply.
        let description = if scale.description.is_empty() {
            self.description.clone()
        } else {
            format!(
                "{} ({} scale: {})",
                self.description, opts.scale, scale.description
            )
        };
        Ok(Manifest {
            name: self.name.clone(),
            description,
            scale: opts.scale.clone(),
            source: self.source.clone(),
            curvlab_version: env!("CARGO_PKG_VERSION").to_string(),
            seeds,
            groups: manifest_groups,
            report: self.report.clone(),
            runs,
            data_missing,
            claims: self.claims.clone(),
        })
    }
}

/// The `[[claims]]` of a sweep file; a trend's setting must be an axis.
fn parse_claims(
    v: Value,
    source: &str,
    axes: &[AxisSpec],
    groups: &[GroupSpec],
) -> Result<Vec<ClaimSpec>> {
    let Value::Array(items) = v else {
        bail!("{source}: 'claims' must be an array of tables ([[claims]])");
    };
    let mut out = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        let ctx = format!("{source}: claim {}", i + 1);
        let spec: ClaimSpec = item
            .try_into()
            .map_err(|e: toml::de::Error| anyhow!("{ctx}: {}", one_line(&e.to_string())))?;
        spec.check().map_err(|e| anyhow!("{ctx}: {e}"))?;
        if let Some(setting) = spec.setting() {
            let known = axes.iter().chain(groups.iter().flat_map(|g| g.axes.iter()));
            if !known.clone().any(|a| a.path == setting) {
                bail!("{ctx}: setting '{setting}' is not an axis of the sweep");
            }
        }
        for q in spec.quantities() {
            if !crate::report::CLAIM_QUANTITIES.contains(&q) {
                bail!(
                    "{ctx}: unknown quantity '{q}' (one of {})",
                    crate::report::CLAIM_QUANTITIES.join(", ")
                );
            }
        }
        out.push(spec);
    }
    Ok(out)
}

/// True when one path is the other or lies inside it.
fn overlaps(a: &str, b: &str) -> bool {
    a == b || a.starts_with(&format!("{b}.")) || b.starts_with(&format!("{a}."))
}

/// Every combination of the axes' value indices, first axis slowest; one
/// empty combination when there are no axes.
fn grid(axes: &[AxisSpec]) -> Vec<Vec<usize>> {
    let mut out = vec![vec![]];
    for a in axes {
        out = out
            .into_iter()
            .flat_map(|prefix| {
                (0..a.values.len()).map(move |i| {
                    let mut p = prefix.clone();
                    p.push(i);
                    p
                })
            })
            .collect();
    }
    out
}

/// Merges `src` onto `dst` key by key; a table whose `kind` changes (or that
/// meets a non-table) is replaced whole.
pub fn merge(dst: &mut Table, src: &Table) {
    for (k, v) in src {
        match (dst.get_mut(k), v) {
            (Some(Value::Table(d)), Value::Table(s))
                if d.get("kind") == s.get("kind") || s.get("kind").is_none() =>
            {
                merge(d, s)
            }
            _ => {
                dst.insert(k.clone(), v.clone());
            }
        }
    }
}

/// Sets the value at a dotted path, making the tables on the way.
pub fn set_path(root: &mut Table, path: &str, value: Value) -> Result<()> {
    let segs: Vec<&str> = path.split('.').collect();
    let (last, parents) = segs.split_last().expect("split yields one item");
    let mut t = root;
    for (i, s) in parents.iter().enumerate() {
        let entry = t
            .entry(s.to_string())
            .or_insert_with(|| Value::Table(Table::new()));
        t = match entry {
            Value::Table(sub) => sub,
            other => bail!(
                "cannot set '{path}': '{}' is {}, not a table",
                segs[..=i].join("."),
                type_name(other)
            ),
        };
    }
    let mut one = Table::new();
    one.insert(last.to_string(), value);
    merge(t, &one);
    Ok(())
}

/// Every leaf path of `input` names a field of `config` (its deserialised and
/// re-serialised form): catches misspelt settings that a lenient struct
/// would ignore.
fn check_known(input: &Table, config: &Json, prefix: &str) -> Result<()> {
    for (k, v) in input {
        let path = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match config.get(k) {
            None => bail!("unknown setting '{path}' (not a field of the run configuration)"),
            Some(c) => {
                if let (Value::Table(sub), Json::Object(_)) = (v, c) {
                    check_known(sub, c, &path)?;
                }
            }
        }
    }
    Ok(())
}

enum DataDir {
    NotCifar,
    Given,
    Missing,
}

/// For CIFAR data: `--data`, else the file's `data.dir`, else `CURVLAB_DATA`;
/// made absolute so that jobs started elsewhere find it.
fn fill_data_dir(t: &mut Table, opts: &ExpandOptions) -> Result<DataDir> {
    let Some(Value::Table(data)) = t.get_mut("data") else {
        return Ok(DataDir::NotCifar);
    };
    if data.get("kind").and_then(Value::as_str) != Some("cifar") {
        return Ok(DataDir::NotCifar);
    }
    let dir = match (&opts.data, data.get("dir"), &opts.data_env) {
        (Some(d), _, _) => d.clone(),
        (None, Some(Value::String(d)), _) => PathBuf::from(d),
        (None, Some(v), _) => bail!("data.dir must be a string, not {}", type_name(v)),
        (None, None, Some(d)) => d.clone(),
        (None, None, None) => {
            if opts.require_data {
                bail!("the runs read CIFAR-10: pass --data DIR or set {DATA_ENV}");
            }
            data.insert("dir".into(), Value::String(DATA_PLACEHOLDER.into()));
            return Ok(DataDir::Missing);
        }
    };
    let dir = std::path::absolute(&dir).unwrap_or(dir);
    data.insert("dir".into(), Value::String(dir.display().to_string()));
    Ok(DataDir::Given)
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A TOML value as JSON.
fn to_json(v: &Value) -> Json {
    serde_json::to_value(v).unwrap_or(Json::Null)
}

/// A value as TOML source text on one line, for messages.
fn toml_inline(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(toml_inline).collect::<Vec<_>>().join(", ")
        ),
        Value::Table(t) => format!(
            "{{{}}}",
            t.iter()
                .map(|(k, v)| format!("{k} = {}", toml_inline(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => label(other),
    }
}

/// Shortest readable form of a number: 0.1, 2, 5e-4.
pub fn fmt_number(f: f64) -> String {
    if f != 0.0 && f.is_finite() && (f.abs() < 1e-3 || f.abs() >= 1e6) {
        format!("{f:e}")
    } else {
        format!("{f}")
    }
}

/// A value as it appears in directory names and legends.
fn label(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Integer(i) => i.to_string(),
        Value::Float(f) => fmt_number(*f),
        Value::Boolean(b) => b.to_string(),
        Value::Datetime(d) => d.to_string(),
        Value::Array(a) => a.iter().map(label).collect::<Vec<_>>().join("+"),
        Value::Table(t) => t
            .iter()
            .map(|(k, v)| format!("{k}={}", label(v)))
            .collect::<Vec<_>>()
            .join(" "),
    }
}

/// `path=value`, a table value spelt out leaf by leaf.
fn dir_fragment(path: &str, v: &Value) -> String {
    match v {
        Value::Table(t) if !t.is_empty() => t
            .iter()
            .map(|(k, v)| dir_fragment(&format!("{path}.{k}"), v))
            .collect::<Vec<_>>()
            .join(","),
        _ => format!("{path}={}", label(v)),
    }
}

/// A safe directory name: characters other than letters, digits and
/// `. _ = , + -` become `_`; an over-long name is cut and given a hash.
fn dir_name(raw: &str) -> String {
    let clean: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._=,+-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if clean.len() <= MAX_DIR_NAME {
        return clean;
    }
    // FNV-1a of the full name keeps shortened names distinct.
    let hash = raw.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    });
    format!("{}~{:016x}", &clean[..MAX_DIR_NAME - 17], hash)
}

/// An axis is drawn on a log scale when its values are numbers that
/// [`curvlab::axis::looks_logarithmic`] says read better so.
fn looks_logarithmic(values: &[Value]) -> bool {
    let nums: Option<Vec<f64>> = values
        .iter()
        .map(|v| match v {
            Value::Integer(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            _ => None,
        })
        .collect();
    nums.is_some_and(|n| curvlab::axis::looks_logarithmic(&n))
}

/// Parses `--set path=value`: the value is TOML (`0.1`, `true`, `[1, 2]`,
/// `"text"`), or else taken as a plain string.
pub fn parse_set(arg: &str) -> Result<(String, Value)> {
    let (path, raw) = arg
        .split_once('=')
        .ok_or_else(|| anyhow!("--set {arg}: expected path=value, e.g. optim.lr=0.1"))?;
    let path = path.trim().to_string();
    check_path(&path, &format!("--set {arg}"))?;
    let raw = raw.trim();
    let value = match toml::from_str::<Table>(&format!("v = {raw}")) {
        Ok(mut t) => t.remove("v").expect("parsed key"),
        Err(_) => Value::String(raw.to_string()),
    };
    Ok((path, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SWEEP: &str = r#"
name = "t"
trials = 2
[base]
steps = 10
measure_every = 5
[base.model]
hidden = [8]
[axes]
"loss.label_smoothing" = [0.0, 0.1]
optim.lr = [0.05, 1e-4]
[scales.tiny]
seeds = [7]
config = { steps = 4 }
axes = { "optim.lr" = [0.2] }
"#;

    fn opts(scale: &str) -> ExpandOptions {
        ExpandOptions {
            scale: scale.into(),
            ..Default::default()
        }
    }

    #[test]
    fn expands_in_order_with_readable_dirs() {
        let f = SweepFile::parse(SWEEP, "test").unwrap();
        let m = f.expand(&opts("paper")).unwrap();
        let dirs: Vec<&str> = m.runs.iter().map(|r| r.dir.as_str()).collect();
        assert_eq!(
            dirs,
            [
                "loss.label_smoothing=0,optim.lr=0.05,seed=0",
                "loss.label_smoothing=0,optim.lr=0.05,seed=1",
                "loss.label_smoothing=0,optim.lr=1e-4,seed=0",
                "loss.label_smoothing=0,optim.lr=1e-4,seed=1",
                "loss.label_smoothing=0.1,optim.lr=0.05,seed=0",
                "loss.label_smoothing=0.1,optim.lr=0.05,seed=1",
                "loss.label_smoothing=0.1,optim.lr=1e-4,seed=0",
                "loss.label_smoothing=0.1,optim.lr=1e-4,seed=1",
            ]
        );
        let r = &m.runs[6];
        assert_eq!(r.config["loss"]["label_smoothing"], 0.1);
        assert_eq!(r.config["optim"]["lr"], 1e-4);
        assert_eq!(r.config["seed"], 0);
        assert_eq!(r.config["steps"], 10);
        assert_eq!(r.config["model"]["hidden"], serde_json::json!([8]));
        assert_eq!(r.settings[1].level, 1);
        // Deterministic: the same input gives the same manifest.
        assert_eq!(m, f.expand(&opts("paper")).unwrap());
    }

    #[test]
    fn scales_override_config_seeds_and_axes() {
        let f = SweepFile::parse(SWEEP, "test").unwrap();
        let m = f.expand(&opts("tiny")).unwrap();
        assert_eq!(m.runs.len(), 2);
        assert_eq!(
            m.runs[1].dir,
            "loss.label_smoothing=0.1,optim.lr=0.2,seed=7"
        );
        assert_eq!(m.runs[1].config["steps"], 4);
        assert_eq!(m.runs[1].config["measure_every"], 5);
        let e = f.expand(&opts("huge")).unwrap_err().to_string();
        assert!(e.contains("no scale 'huge' (scales: paper, tiny)"), "{e}");
    }

    #[test]
    fn typos_are_errors() {
        let bad = SWEEP.replace("\"loss.label_smoothing\"", "\"loss.label_smothing\"");
        let f = SweepFile::parse(&bad, "test").unwrap();
        let e = f.expand(&opts("paper")).unwrap_err().to_string();
        assert!(e.contains("loss.label_smothing"), "{e}");
        let bad = SWEEP.replace("trials = 2", "trials = 2\nbogus = 1");
        let e = SweepFile::parse(&bad, "test").unwrap_err().to_string();
        assert!(e.contains("unknown key 'bogus'"), "{e}");
        let bad = SWEEP.replace("optim.lr = [0.05, 1e-4]", "optim.lr = 0.05");
        let e = SweepFile::parse(&bad, "test").unwrap_err().to_string();
        assert!(e.contains("must be a list of values"), "{e}");
    }

    #[test]
    fn table_values_and_groups() {
        let text = r#"
name = "g"
[base]
steps = 2
[groups.a]
axes = { "optim.lr" = [0.1, 0.2] }
[groups.b]
config = { optim = { momentum = 0.9 } }
axes = { optim = [{ lr = 0.3, weight_decay = 0.01 }] }
"#;
        let f = SweepFile::parse(text, "test").unwrap();
        let m = f.expand(&opts("paper")).unwrap();
        let dirs: Vec<&str> = m.runs.iter().map(|r| r.dir.as_str()).collect();
        assert_eq!(
            dirs,
            [
                "a/optim.lr=0.1,seed=0",
                "a/optim.lr=0.2,seed=0",
                "b/optim.lr=0.3,optim.weight_decay=0.01,seed=0"
            ]
        );
        assert_eq!(m.runs[2].config["optim"]["momentum"], 0.9);
        assert_eq!(m.runs[2].config["optim"]["weight_decay"], 0.01);
        assert_eq!(m.runs[2].settings[0].label, "lr=0.3 weight_decay=0.01");
        assert_eq!(m.groups.len(), 2);
    }

    #[test]
    fn set_path_and_merge() {
        let mut t: Table = toml::from_str("[data]\nkind = \"cifar\"\ndir = \"x\"").unwrap();
        set_path(&mut t, "data.train_samples", Value::Integer(5)).unwrap();
        assert_eq!(t["data"]["dir"].as_str(), Some("x"));
        // A table whose kind changes replaces the old one.
        let repl: Table = toml::from_str("[data]\nkind = \"synthetic\"").unwrap();
        merge(&mut t, &repl);
        assert!(t["data"].get("dir").is_none());
        let e = set_path(&mut t, "data.kind.x", Value::Integer(1)).unwrap_err();
        assert!(e.to_string().contains("'data.kind' is a string"), "{e}");
    }

    #[test]
    fn data_dir_comes_from_flag_file_or_env() {
        let text = "name = \"c\"\n[base.data]\nkind = \"cifar\"\n";
        let f = SweepFile::parse(text, "test").unwrap();
        let mut o = opts("paper");
        o.require_data = true;
        let e = f.expand(&o).unwrap_err();
        assert!(format!("{e:#}").contains("pass --data DIR or set CURVLAB_DATA"));
        o.data_env = Some("/env".into());
        assert_eq!(f.expand(&o).unwrap().runs[0].config["data"]["dir"], "/env");
        o.data = Some("/flag".into());
        assert_eq!(f.expand(&o).unwrap().runs[0].config["data"]["dir"], "/flag");
        o.require_data = false;
        o.data = None;
        o.data_env = None;
        let m = f.expand(&o).unwrap();
        assert!(m.data_missing);
    }

    #[test]
    fn labels_and_names() {
        assert_eq!(fmt_number(5e-4), "5e-4");
        assert_eq!(fmt_number(0.08), "0.08");
        assert_eq!(fmt_number(128.0), "128");
        assert_eq!(dir_name("a b/c"), "a_b_c");
        let long = "x".repeat(300);
        assert_eq!(dir_name(&long).len(), MAX_DIR_NAME);
        assert!(looks_logarithmic(&[
            Value::Float(0.0),
            Value::Float(1e-4),
            Value::Float(1e-3),
            Value::Float(5e-3)
        ]));
        assert!(!looks_logarithmic(&[
            Value::Float(0.0),
            Value::Float(0.1),
            Value::Float(0.2)
        ]));
        assert_eq!(parse_set("optim.lr=0.1").unwrap().1, Value::Float(0.1));
        assert_eq!(
            parse_set("data.dir=/a/b").unwrap().1,
            Value::String("/a/b".into())
        );
    }
}
