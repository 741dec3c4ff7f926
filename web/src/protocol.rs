//! The messages between the page and the training worker (serde, sent as
//! JSON strings; a CIFAR file's bytes travel beside a [`ToWorker::Load`] as
//! an `ArrayBuffer`).

use curvlab::experiment::RunConfig;
use curvlab::mechanism::Mechanism;
use curvlab::record::MetricsRow;
use curvlab::regions::Bounds;
use serde::{Deserialize, Serialize};

use crate::settings::{BackendPref, RunPlan, Speed};

/// Page → worker.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ToWorker {
    /// Choose and start the compute backend (once per worker).
    Init { prefer: BackendPref },
    /// Replace the runs with these (paused unless `play`). A CIFAR file's
    /// bytes come with the message when a plan needs them.
    Load { plans: Vec<RunPlan>, play: bool },
    /// Train until paused or finished.
    Play,
    /// Stop after the unit of work in progress.
    Pause,
    /// One optimiser step of every run (and the measurement due after it).
    Step,
    /// Rebuild the runs from the same plans (same seed, same initial weights).
    Reset,
    /// Destroy the WebGPU device, as a driver reset or a GPU removal would
    /// (for tests of the fallback; the page then moves training to the CPU).
    LoseDevice,
}

/// Which backend the worker runs on and why.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BackendInfo {
    /// True on WebGPU, false on the CPU (WebAssembly) backend.
    pub webgpu: bool,
    /// The adapter's vendor/architecture/description as the browser reports it.
    pub adapter: Option<String>,
    /// The browser says the adapter is a software fallback (or it is a known
    /// software rasteriser: SwiftShader, llvmpipe, lavapipe, WARP).
    pub software: bool,
    /// Why WebGPU is not used, when it is not.
    pub fallback_reason: Option<String>,
}

impl BackendInfo {
    /// One line for the page: "WebGPU — google swiftshader (software adapter)".
    pub fn describe(&self) -> String {
        if self.webgpu {
            let mut s = "WebGPU".to_string();
            if let Some(a) = &self.adapter {
                s.push_str(" — ");
                s.push_str(a);
            }
            if self.software {
                s.push_str(" (software adapter: slow; the CPU backend is faster here)");
            }
            s
        } else {
            let mut s = "CPU (burn flex on WebAssembly)".to_string();
            if let Some(r) = &self.fallback_reason {
                s.push_str(" — ");
                s.push_str(r);
            }
            s
        }
    }

    /// The backend's speed class (decides the default problem size).
    pub fn speed(&self) -> Speed {
        match (self.webgpu, self.software) {
            (true, false) => Speed::Gpu,
            (true, true) => Speed::Software,
            (false, _) => Speed::Cpu,
        }
    }
}

/// Set-up facts about one run, sent once it is built.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    pub label: String,
    /// The configuration the core runs (with the backend filled in).
    pub config: RunConfig,
    /// The training set's name.
    pub data_name: String,
    pub params: usize,
    /// Optimiser steps the run will take.
    pub steps: u64,
    pub train: usize,
    pub test: usize,
    pub measure_n: usize,
    /// What the data looks like, for the mechanism panel.
    pub view: DataView,
}

/// The training data as the mechanism panel draws it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum DataView {
    /// 2-D inputs: the measurement subset's points `[x, y]` and labels, and
    /// the plane the decision regions cover.
    Plane {
        points: Vec<[f32; 2]>,
        labels: Vec<u32>,
        classes: usize,
        bounds: Bounds,
    },
    /// 3×32×32 images (CIFAR): shown as the examples of largest Jacobian norm.
    Images { classes: usize },
    /// Neither (the synthetic δ-good set: k-dimensional latents in d dimensions).
    Other,
}

/// An image of the training set as RGB bytes (`[32, 32, 3]`, row-major).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Thumb {
    /// Index in the measurement subset.
    pub index: usize,
    pub rgb: Vec<u8>,
}

/// One thing that happened to run `run`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Update {
    /// The latest optimiser step and its (minibatch) loss; steps in between
    /// are folded into the batch's last one. `steps_per_s`: optimiser steps
    /// per second of training work (measurements excluded) over the last
    /// second or so; 0 until known.
    Step {
        run: usize,
        step: u64,
        loss: f64,
        #[serde(default)]
        steps_per_s: f64,
    },
    /// A measurement row.
    Row { run: usize, row: Box<MetricsRow> },
    /// The mechanism panel's content after a measurement row: the loss along
    /// the top eigenvector, decision regions (2-D data), the examples of
    /// largest Jacobian norm (with their images for image data).
    Mechanism {
        run: usize,
        mechanism: Box<Mechanism>,
        thumbs: Vec<Thumb>,
    },
    /// The run has nothing more to do.
    Finished { run: usize },
    /// The run failed; the others go on.
    Failed { run: usize, message: String },
}

/// Worker → page.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum FromWorker {
    /// The worker listens now. Messages posted before it are lost (its wasm
    /// loads asynchronously), so the page sends nothing until this arrives.
    Ready,
    /// The backend is ready (answer to [`ToWorker::Init`]).
    Backend(BackendInfo),
    /// The runs of a [`ToWorker::Load`]/[`ToWorker::Reset`] are built.
    Loaded { generation: u64, runs: Vec<RunInfo> },
    /// A batch of updates for the runs of `generation`.
    Progress {
        generation: u64,
        updates: Vec<Update>,
    },
    /// Playing or not; finished when every run is.
    Status { playing: bool, finished: bool },
    /// The worker has started a slow unit of work (a measurement, or a first
    /// step that compiles GPU kernels); the page shows it until the next
    /// progress arrives.
    Working { generation: u64, what: String },
    /// A problem the page shows in one line (bad file, bad settings, a
    /// backend failure). `fatal`: the worker cannot go on.
    Error { message: String, fatal: bool },
}

impl Update {
    /// The run this update is about.
    pub fn run(&self) -> usize {
        match self {
            Update::Step { run, .. }
            | Update::Row { run, .. }
            | Update::Mechanism { run, .. }
            | Update::Finished { run }
            | Update::Failed { run, .. } => *run,
        }
    }
}

/// Appends `u` to a batch. A step replaces the same run's previous entry when
/// that entry is a step too (the page shows only the latest step between
/// rows), so a batch stays small however many steps it covers.
pub fn push_update(batch: &mut Vec<Update>, u: Update) {
    if let Update::Step { run, .. } = u {
        if let Some(last) = batch.iter_mut().rev().find(|v| v.run() == run) {
            if matches!(last, Update::Step { .. }) {
                *last = u;
                return;
            }
        }
    }
    batch.push(u);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_fold_between_rows() {
        let step = |run, step| Update::Step {
            run,
            step,
            loss: 1.0,
            steps_per_s: 0.0,
        };
        let mut b = Vec::new();
        for u in [
            step(0, 1),
            step(1, 1),
            step(0, 2),
            Update::Row {
                run: 0,
                row: Box::default(),
            },
            step(0, 3),
            step(1, 2),
            step(0, 4),
            Update::Finished { run: 1 },
        ] {
            push_update(&mut b, u);
        }
        assert_eq!(
            b,
            vec![
                step(0, 2),
                step(1, 2),
                Update::Row {
                    run: 0,
                    row: Box::default()
                },
                step(0, 4),
                Update::Finished { run: 1 },
            ]
        );
    }

    #[test]
    fn messages_survive_json() {
        let m = FromWorker::Progress {
            generation: 3,
            updates: vec![Update::Row {
                run: 1,
                row: Box::new(MetricsRow {
                    step: 50,
                    sharpness: Some(12.5),
                    ..Default::default()
                }),
            }],
        };
        let back: FromWorker = serde_json::from_str(&serde_json::to_string(&m).unwrap()).unwrap();
        assert_eq!(back, m);
        let info = BackendInfo {
            webgpu: true,
            adapter: Some("google swiftshader".into()),
            software: true,
            fallback_reason: None,
        };
        assert_eq!(
            info.describe(),
            "WebGPU — google swiftshader (software adapter: slow; the CPU backend is faster here)"
        );
        assert_eq!(info.speed(), Speed::Software);
    }
}
