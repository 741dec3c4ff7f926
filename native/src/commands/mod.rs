//! One file per command; each is thin: parse → core → print/write.

mod bench;
mod bound;
mod measure;
pub mod report;
mod run;
pub mod sweep;

use anyhow::Result;
use curvlab::backend::BackendKind;
use curvlab::loss::LossKind;
use curvlab::models::Activation;

use crate::cli::{Act, Backend, BoundCommand, Cli, Command, Loss};

/// Runs the parsed command.
pub fn dispatch(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Run(a) => run::run(*a),
        Command::Measure(a) => measure::measure(a),
        Command::Bench(a) => bench::bench(a),
        Command::Bound {
            which: BoundCommand::Delta(a),
        } => bound::delta(a),
        Command::Bound {
            which: BoundCommand::Data(a),
        } => bound::data(a),
        Command::Sweep { which } => sweep::sweep(which),
        Command::Report(a) => report::report(a),
    }
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
