//! `sweep.json`, the manifest of a sweep: the expansion of a sweep file at
//! one scale (every run's index, directory, settings and full configuration),
//! written once into the sweep directory and checked by every later command
//! that uses the directory.

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::report::ClaimSpec;

/// How the report draws the sweep figure.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ReportOptions {
    /// The axis on the x of the sweep figure (default: each group's first axis).
    #[serde(default)]
    pub x: Option<String>,
    /// Axes drawn on a log scale; `None`: decided from the values.
    #[serde(default)]
    pub log_x: Option<Vec<String>>,
}

/// `sweep.json`: the expansion of a sweep at one scale.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub name: String,
    pub description: String,
    pub scale: String,
    pub source: String,
    pub curvlab_version: String,
    pub seeds: Vec<u64>,
    pub groups: Vec<ManifestGroup>,
    pub report: ReportOptions,
    pub runs: Vec<ManifestRun>,
    /// True when some run reads CIFAR data and no directory was given (plan only).
    #[serde(default)]
    pub data_missing: bool,
    /// The claims `curvlab report` checks on the runs (the sweep file's `[[claims]]`).
    #[serde(default)]
    pub claims: Vec<ClaimSpec>,
}

/// One group of a manifest and its axes (the file's `[axes]`, then its own).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ManifestGroup {
    /// `None` in a sweep without groups.
    pub name: Option<String>,
    pub description: String,
    pub axes: Vec<ManifestAxis>,
}

/// An axis as expanded: its values and their labels, in order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ManifestAxis {
    pub path: String,
    pub values: Vec<Json>,
    pub labels: Vec<String>,
    /// Draw on a log scale.
    pub log: bool,
}

/// One run of a manifest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ManifestRun {
    pub index: usize,
    /// Relative to the sweep directory (`GROUP/settings,seed=S`).
    pub dir: String,
    pub group: Option<String>,
    /// The axis values of this run, in axis order.
    pub settings: Vec<Setting>,
    pub seed: u64,
    /// The full run configuration.
    pub config: Json,
}

/// One axis value of a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Setting {
    pub path: String,
    pub value: Json,
    pub label: String,
    /// Position of the value in its axis.
    pub level: usize,
}

impl ManifestRun {
    /// The run's settings, then its seed, as in its directory name.
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = self
            .settings
            .iter()
            .map(|s| format!("{}={}", s.path, s.label))
            .collect();
        parts.push(format!("seed={}", self.seed));
        let text = parts.join(", ");
        match &self.group {
            Some(g) => format!("[{g}] {text}"),
            None => text,
        }
    }
}

impl Manifest {
    /// Reads `DIR/sweep.json`, if there.
    pub fn read(dir: &Path) -> Result<Option<Manifest>> {
        let path = dir.join("sweep.json");
        if !path.exists() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&path).with_context(|| format!("{}", path.display()))?;
        let m = serde_json::from_str(&text)
            .map_err(|e| anyhow!("{}: not a sweep manifest: {e}", path.display()))?;
        Ok(Some(m))
    }

    /// Writes `DIR/sweep.json` (and the sweep file as `DIR/sweep.toml`) unless
    /// they are there; if a manifest is there, it must describe this sweep.
    /// Writes go to a temporary name, then are renamed: concurrent array
    /// tasks write identical files and never a torn one.
    pub fn establish(&self, dir: &Path, sweep_text: &str) -> Result<()> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("{}: cannot create the sweep directory", dir.display()))?;
        match Manifest::read(dir)? {
            Some(old) => {
                self.check_same_sweep(&old, dir)?;
                // Claims are analysis, not runs: a sweep file that states them
                // anew (or a newer curvlab that reads them) updates them.
                if old.claims != self.claims {
                    let updated = Manifest {
                        claims: self.claims.clone(),
                        ..old
                    };
                    curvlab::atomic::write(
                        &dir.join("sweep.json"),
                        (serde_json::to_string_pretty(&updated)? + "\n").as_bytes(),
                    )?;
                }
            }
            None => curvlab::atomic::write(
                &dir.join("sweep.json"),
                (serde_json::to_string_pretty(self)? + "\n").as_bytes(),
            )?,
        }
        let toml_path = dir.join("sweep.toml");
        if !toml_path.exists() {
            curvlab::atomic::write(&toml_path, sweep_text.as_bytes())?;
        }
        Ok(())
    }

    /// Fails when `old` (found in `dir`) is another sweep: other runs, or
    /// runs with other settings. The backend and the data directory may
    /// differ (a sweep can move machines); fields that only one of the two
    /// has (a newer curvlab) are not compared.
    fn check_same_sweep(&self, old: &Manifest, dir: &Path) -> Result<()> {
        let there = format!("{}/sweep.json", dir.display());
        if old.name != self.name || old.scale != self.scale {
            bail!(
                "{there} is sweep '{}' at scale '{}', not '{}' at '{}': choose another --out",
                old.name,
                old.scale,
                self.name,
                self.scale
            );
        }
        if old.runs.len() != self.runs.len() {
            bail!(
                "{there} lists {} runs, this expansion {}: the sweep file changed; choose another --out",
                old.runs.len(),
                self.runs.len()
            );
        }
        for (a, b) in old.runs.iter().zip(&self.runs) {
            let mut ca = a.config.clone();
            let mut cb = b.config.clone();
            for c in [&mut ca, &mut cb] {
                if let Some(o) = c.as_object_mut() {
                    o.remove("backend");
                }
                if let Some(o) = c.get_mut("data").and_then(Json::as_object_mut) {
                    o.remove("dir");
                }
            }
            if a.dir != b.dir || a.seed != b.seed {
                bail!(
                    "{there}: run {} is '{}' there but '{}' now: the sweep file changed; choose another --out",
                    a.index,
                    a.dir,
                    b.dir
                );
            }
            if let Some(p) = first_difference(&ca, &cb, "") {
                bail!(
                    "{there}: run {} ({}) had another '{p}' then: the sweep changed; choose another --out",
                    a.index,
                    a.dir
                );
            }
        }
        Ok(())
    }
}

/// The first path at which two configurations both have a value and differ.
fn first_difference(a: &Json, b: &Json, prefix: &str) -> Option<String> {
    match (a, b) {
        (Json::Object(x), Json::Object(y)) => x.iter().find_map(|(k, va)| {
            let p = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            y.get(k).and_then(|vb| first_difference(va, vb, &p))
        }),
        (Json::Number(x), Json::Number(y)) => {
            let (x, y) = (x.as_f64(), y.as_f64());
            (x != y).then(|| prefix.to_string())
        }
        _ => (a != b).then(|| prefix.to_string()),
    }
}
