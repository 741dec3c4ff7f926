//! One file per command; each is thin: parsed arguments → library → output.
//! Commands write their results to `out` (stdout) and return any error,
//! a closed pipe included, to `main`.

mod bench;
mod bound;
mod measure;
mod report;
mod run;
mod spectrum;
mod sweep;

use std::io::Write;

use anyhow::Result;
use curvlab::backend::BackendKind;
use curvlab::loss::LossKind;
use curvlab::models::Activation;

use crate::cli::{Act, Backend, BoundCommand, Cli, Command, Loss};

/// Runs the parsed command, writing its results to `out`.
pub fn dispatch(cli: Cli, out: &mut dyn Write) -> Result<()> {
    match cli.command {
        Command::Run(a) => run::run(*a),
        Command::Measure(a) => measure::measure(a, out),
        Command::Bench(a) => bench::bench(a, out),
        Command::Bound {
            which: BoundCommand::Delta(a),
        } => bound::delta(a, out),
        Command::Bound {
            which: BoundCommand::Data(a),
        } => bound::data(a, out),
        Command::Sweep { which } => sweep::sweep(which, out),
        Command::Report(a) => report::report(a, out),
    }?;
    out.flush()?;
    Ok(())
}

impl From<Backend> for BackendKind {
    fn from(b: Backend) -> Self {
        match b {
            Backend::Cpu => BackendKind::Cpu,
            Backend::Wgpu => BackendKind::Wgpu,
        }
    }
}

impl From<Act> for Activation {
    fn from(a: Act) -> Self {
        match a {
            Act::Relu => Activation::Relu,
            Act::Tanh => Activation::Tanh,
            Act::Gelu => Activation::Gelu,
        }
    }
}

impl From<Loss> for LossKind {
    fn from(l: Loss) -> Self {
        match l {
            Loss::Ce => LossKind::CrossEntropy,
            Loss::Square => LossKind::Square,
        }
    }
}
