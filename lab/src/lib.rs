//! # curvlab-lab — the experiment machinery over curvlab's core
//!
//! Everything the `curvlab` command line does besides parsing and printing,
//! as a library that other programs and tests can use:
//!
//! | concept | module |
//! |---|---|
//! | a run directory: config.json, metrics.jsonl, plot, checkpoints, resume, summary | [`run_dir`] |
//! | one writer per run directory: the advisory lock `run.lock` | [`lock`] |
//! | metrics.jsonl: whole rows appended in one write, torn tails cut | [`metrics_log`] |
//! | the run figure (loss, sharpness with 2/η, Jacobian norms against step) | [`plot`] |
//! | a run configuration from TOML: laid over the defaults, typos refused, validated | [`run_config`] |
//! | sweep files: parsing, expansion into runs, `--set` overrides | [`sweep`] |
//! | `sweep.json`, the manifest of an expanded sweep | [`manifest`] |
//! | the paper's experiments as embedded sweep files | [`presets`] |
//! | sbatch scripts that run a sweep as a Slurm job array | [`slurm`] |
//! | reports: loading runs, statistics, figures, tables | [`report`] |
//! | font, colours and axes shared by the figures | [`chart`] |
//! | the timing benchmark behind `curvlab bench` | [`bench`] |
//!
//! Every number is computed in `curvlab` (the core); this crate runs it,
//! writes its results (every rewritten file atomically, [`curvlab::atomic`])
//! and reads them back. Nothing here prints: progress goes to a
//! [`run_dir::Observer`] or a callback, results are returned.

pub mod bench;
pub mod chart;
pub mod lock;
pub mod manifest;
pub mod metrics_log;
pub mod plot;
pub mod presets;
pub mod report;
pub mod run_config;
pub mod run_dir;
pub mod slurm;
pub mod sweep;
