//! # curvlab — loss curvature and input–output Jacobians of deep networks
//!
//! Measures what the paper "On progressive sharpening, flat minima and
//! generalisation" reasons about, through training:
//!
//! | paper concept | module |
//! |---|---|
//! | data, input normalisation, δ-good synthetic data (Thm 4.2) | [`data`] |
//! | models f(x; θ) (MLP, CNN, VGG11 ± BatchNorm, ResNet18), PyTorch-layout weights | [`models`], [`weights`] |
//! | losses c(z, t), label smoothing, KL form (Fig. 1) | [`loss`] |
//! | the data loss ℓ_S(θ) over a sample, its gradient | [`objective`] |
//! | Hessian- and Gauss–Newton-vector products (eq. 3) | [`hvp`] |
//! | Lanczos eigen-solver (pure linear algebra) | [`lanczos`] |
//! | sharpness λ_max(∇²ℓ_S), Gauss–Newton top eigenvalue, top-k (k = C on request) | [`sharpness`] |
//! | random probe vectors (Rademacher, Gaussian) | [`probe`] |
//! | Hessian trace by Hutch++, with a standard error | [`trace`] |
//! | spectral density by stochastic Lanczos quadrature | [`density`] |
//! | per-layer curvature: λ_max of diagonal Hessian / Gauss–Newton blocks (eq. 4 term by term) | [`layers`] |
//! | Ansatz 3.1's factors: cost curvature, Gauss–Newton share along u, u's mass per layer | [`factors`] |
//! | λ_max on disjoint folds of the measurement subset (error bars from the data) | [`folds`] |
//! | exact per-sample Jacobian spectral norms ‖J_i‖₂ | [`jacobian`] |
//! | Theorem 5.1 data bound, covering radius δ(N, ε) (eqs. 6, 7) | [`bound`] |
//! | training (GD, SGD, momentum, weight decay, SAM, BatchNorm statistics) | [`train`] |
//! | learning-rate schedules (constant, step, cosine, warm-up) | [`schedule`] |
//! | random crop + flip, mixup (Beta draws) on host batches | [`augment`] |
//! | one measurement of everything on a model | [`measure`] |
//! | the loss along the top eigenvector and the GD step on it (why GD stops at 2/η) | [`slice`] |
//! | decision regions of a model of 2-D inputs | [`regions`] |
//! | the browser explainer's mechanism panel: slice, regions, largest-Jacobian examples | [`mechanism`] |
//! | a whole run: config, training loop, measurements every M steps | [`experiment`] |
//! | settings declared with their defaults, range checks | [`config`] |
//! | the memory a run needs, before it allocates | [`memory`] |
//! | checkpoints of a run (exact resume) | [`checkpoint`] |
//! | results rows (`metrics.jsonl`) | [`record`] |
//! | atomic file writes (temporary, fsync, rename) | [`atomic`] |
//! | what a path is, checked before reading (missing, a directory, a FIFO) | [`paths`] |
//! | plot axes: nice ticks, log ticks, tick labels | [`axis`] |
//!
//! Every number is computed here; the CLI and the browser app are thin shells.

pub mod atomic;
pub mod augment;
pub mod axis;
pub mod backend;
pub mod bound;
pub mod checkpoint;
pub mod config;
pub mod data;
pub mod density;
pub mod error;
pub mod experiment;
pub mod factors;
pub mod folds;
pub mod hvp;
pub mod jacobian;
pub mod kernels;
pub mod lanczos;
pub mod layers;
pub mod linalg;
pub mod loss;
pub mod measure;
pub mod mechanism;
pub mod memory;
pub mod models;
pub mod objective;
pub mod paths;
pub mod probe;
pub mod record;
pub mod regions;
pub mod rng;
pub mod schedule;
pub mod sharpness;
pub mod slice;
pub mod trace;
pub mod train;
pub mod weights;

pub use error::{Error, Result};

/// Measurement and training functions are `async`: on the web every GPU read
/// must yield to the browser's event loop. Native callers run them to
/// completion on the calling thread with [`block_on`] (or `.block()`).
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    futures_lite::future::block_on(f)
}

/// `.block()` on any future: [`block_on`] as a method, for native call sites.
pub trait Block: std::future::Future + Sized {
    /// Runs the future to completion on this thread (never on wasm with WebGPU).
    fn block(self) -> Self::Output {
        block_on(self)
    }
}

impl<F: std::future::Future> Block for F {}
