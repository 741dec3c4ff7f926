//! # curvlab-web — the in-browser explainer
//!
//! The same core as the `curvlab` CLI, compiled to WebAssembly: a page
//! (`app`) holds the controls and plots, a Web Worker (`worker`) trains and
//! measures on WebGPU or, without an adapter, on burn's CPU backend. Every
//! number comes from `curvlab`; this crate only wires it to a browser.
//!
//! | module | what |
//! |---|---|
//! | [`settings`] | every control, its URL key and parser; controls → run configs |
//! | [`presets`] | the paper's experiments at browser scale, each a link |
//! | [`protocol`] | messages between page and worker |
//! | [`data`] | a run's data: synthetic, toy, or a CIFAR file from disk |
//! | [`plot`] | the four plots as SVG element trees, with hover read-outs |
//! | [`svg`] | SVG element trees: written as text, or patched into the page in place |
//! | [`slice`] | the mechanism panel: the loss along the top eigenvector and one GD step |
//! | [`spectrum`] | the spectrum panels: the Hessian's density and trace, per-layer λ_max |
//! | [`regions`] | decision regions and the largest-Jacobian examples (2-D data, images) |
//! | [`bound`] | what the page says about the Theorem 5.1 bound (and why it is 0) |
//! | [`help`] | a tooltip for every control |
//! | [`export`] | metrics as JSON and CSV |
//! | `app`, `worker` (wasm32 only) | the page's DOM glue; the training loop in the worker |
//! | `adapter` (wasm32 only) | the browser's WebGPU adapter (page and worker) |
//!
//! The pure modules build and test natively (`cargo test -p curvlab-web`).

pub mod bound;
pub mod data;
pub mod export;
pub mod help;
pub mod plot;
pub mod presets;
pub mod protocol;
pub mod regions;
pub mod settings;
pub mod slice;
pub mod spectrum;
pub mod svg;

#[cfg(target_arch = "wasm32")]
pub mod adapter;
#[cfg(target_arch = "wasm32")]
pub mod app;
#[cfg(target_arch = "wasm32")]
mod dom;
#[cfg(target_arch = "wasm32")]
pub mod worker;
