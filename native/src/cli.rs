//! Command-line arguments: clap types only. Each flag maps to one field of
//! core's configs (`curvlab::experiment::RunConfig` and friends) or of the
//! lab's options (`curvlab_lab::sweep::Request` and friends); `///` comments
//! are the help.

use std::path::PathBuf;

use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use curvlab::experiment::{ModelKind, RunConfig};
use curvlab::sharpness::TopK;

/// curvlab: loss curvature (sharpness) and input–output Jacobian norms of deep
/// networks, measured through training.
#[derive(Parser, Debug)]
#[command(name = "curvlab", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
#[allow(clippy::large_enum_variant)] // parsed once per process
pub enum Command {
    /// Train a model and measure sharpness, Jacobian norms and losses every M steps.
    Run(Box<RunArgs>),
    /// Measure a trained MLP (safetensors, PyTorch layout) on CIFAR-10 data; prints one JSON object.
    Measure(MeasureArgs),
    /// Time the measurement workloads (train step, gradient, HVP, Lanczos, Jacobian norms); prints a table.
    Bench(BenchArgs),
    /// The paper's bound quantities: covering radius δ(N, ε) and the Theorem 5.1 data bound.
    Bound {
        #[command(subcommand)]
        which: BoundCommand,
    },
    /// Sweeps and the paper's presets: plan, run (one run or all), or write a Slurm job-array script.
    Sweep {
        #[command(subcommand)]
        which: SweepCommand,
    },
    /// Figures (PNG + SVG) and rank-correlation tables from the runs of a sweep directory.
    Report(ReportArgs),
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Backend {
    /// burn's flex CPU backend (SIMD + rayon)
    Cpu,
    /// wgpu (Vulkan / Metal / DX12)
    Wgpu,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Loss {
    /// softmax cross-entropy
    Ce,
    /// ½‖z − s_out·t‖²
    Square,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Act {
    Relu,
    Tanh,
    Gelu,
}

/// `--model`: the kinds of core's model registry, with their one-line help.
fn model_kind() -> impl TypedValueParser<Value = ModelKind> {
    PossibleValuesParser::new(
        ModelKind::all().map(|k| PossibleValue::new(k.name()).help(k.about())),
    )
    .try_map(|name| name.parse::<ModelKind>())
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// TOML file with a run configuration (any subset of config.json's fields); flags override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Output directory for config.json, metrics.jsonl, plot.png, model.safetensors [default: runs/run-<unix time>].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Compute backend.
    #[arg(long, value_enum)]
    pub backend: Option<Backend>,
    /// Seed of weights, data and minibatch order.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Data: "synthetic" (embedded δ-good data) or a CIFAR-10/100 directory.
    #[arg(long)]
    pub data: Option<String>,
    /// CIFAR: train on this many examples (class-balanced).
    #[arg(long)]
    pub train_samples: Option<usize>,
    /// CIFAR: evaluate on this many test examples (class-balanced).
    #[arg(long)]
    pub test_samples: Option<usize>,
    /// Input scale s_in (App. C.2).
    #[arg(long)]
    pub input_scale: Option<f32>,
    /// Synthetic data: intrinsic dimension k.
    #[arg(long)]
    pub intrinsic_dim: Option<usize>,
    /// Synthetic data: ambient dimension d.
    #[arg(long)]
    pub ambient_dim: Option<usize>,
    /// Synthetic data: number of classes.
    #[arg(long)]
    pub classes: Option<usize>,
    /// Synthetic data: training examples.
    #[arg(long)]
    pub n_train: Option<usize>,
    /// Synthetic data: test examples.
    #[arg(long)]
    pub n_test: Option<usize>,
    /// Model family.
    #[arg(long, value_parser = model_kind())]
    pub model: Option<ModelKind>,
    /// MLP hidden widths, comma-separated (e.g. 512,512).
    #[arg(long, value_delimiter = ',')]
    pub hidden: Option<Vec<usize>>,
    /// CNN channels per conv block, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub channels: Option<Vec<usize>>,
    /// VGG11 / ResNet18 base width (64 = the paper's network; channels scale as width/64).
    #[arg(long)]
    pub width: Option<usize>,
    /// Nonlinearity.
    #[arg(long, value_enum)]
    pub activation: Option<Act>,
    /// Loss.
    #[arg(long, value_enum)]
    pub loss: Option<Loss>,
    /// Label smoothing α.
    #[arg(long)]
    pub label_smoothing: Option<f64>,
    /// Square loss target scale s_out.
    #[arg(long)]
    pub target_scale: Option<f64>,
    /// Learning rate η.
    #[arg(long)]
    pub lr: Option<f64>,
    /// Minibatch size; 0 = full batch (GD).
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Momentum μ.
    #[arg(long)]
    pub momentum: Option<f64>,
    /// Weight decay λ.
    #[arg(long)]
    pub weight_decay: Option<f64>,
    /// Optimiser steps (replaces a --config file's epochs).
    #[arg(long)]
    pub steps: Option<u64>,
    /// Measure every M steps.
    #[arg(long)]
    pub measure_every: Option<u64>,
    /// Measurement subset size (first N training examples).
    #[arg(long)]
    pub samples: Option<usize>,
    /// Number of top Hessian eigenvalues: a count, or "classes" for one per class (C).
    #[arg(long, value_name = "N|classes")]
    pub top_k: Option<TopK>,
    /// Lanczos relative tolerance.
    #[arg(long)]
    pub tol: Option<f64>,
    /// Skip the Gauss–Newton eigenvalue.
    #[arg(long)]
    pub no_gn: bool,
    /// Skip the Jacobian norms.
    #[arg(long)]
    pub no_jacobian: bool,
    /// Skip the Theorem 5.1 data bound.
    #[arg(long)]
    pub no_bound: bool,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
    /// Continue the run in --out from its checkpoint (with no --config: from its config.json).
    #[arg(long)]
    pub resume: bool,
    /// Train for this many epochs (overrides --steps).
    #[arg(long)]
    pub epochs: Option<u64>,
    /// Write a checkpoint every K steps (and always when the run stops).
    #[arg(long)]
    pub checkpoint_every: Option<u64>,
    /// Learning-rate schedule.
    #[arg(long, value_enum)]
    pub schedule: Option<Schedule>,
    /// Step schedule: milestones as fractions of the run, comma-separated (e.g. 0.5,0.75).
    #[arg(long, value_delimiter = ',')]
    pub milestones: Option<Vec<f64>>,
    /// Step schedule: decay factor at each milestone.
    #[arg(long)]
    pub gamma: Option<f64>,
    /// Linear warm-up over this fraction of the run.
    #[arg(long)]
    pub warmup: Option<f64>,
    /// SAM radius ρ (0 = off).
    #[arg(long)]
    pub sam_rho: Option<f64>,
    /// Random crop with this many pixels of padding (0 = off; the paper uses 4).
    #[arg(long)]
    pub crop: Option<usize>,
    /// Random horizontal flips.
    #[arg(long)]
    pub flip: bool,
    /// Mixup α (0 = off).
    #[arg(long)]
    pub mixup_alpha: Option<f64>,
    /// BatchNorm statistics of the measured Hessian: train (batch statistics per chunk) or eval.
    #[arg(long, value_enum)]
    pub bn_mode: Option<BnModeArg>,
    #[command(flatten)]
    pub spectrum: RunSpectrumArgs,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Schedule {
    Constant,
    Step,
    Cosine,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum BnModeArg {
    Train,
    Eval,
}

#[derive(Args, Debug)]
pub struct MeasureArgs {
    /// MLP weights (safetensors; `layers.{i}.weight` [out, in], `layers.{i}.bias` [out]).
    #[arg(long)]
    pub weights: PathBuf,
    /// CIFAR-10 directory (data_batch_*.bin).
    #[arg(long)]
    pub data: PathBuf,
    /// Use the first N training examples (file order).
    #[arg(long, default_value_t = 1000)]
    pub samples: usize,
    /// Nonlinearity of the MLP.
    #[arg(long, value_enum, default_value = "relu")]
    pub activation: Act,
    /// Compute backend.
    #[arg(long, value_enum, default_value = "cpu")]
    pub backend: Backend,
    /// Label smoothing α of the cross-entropy.
    #[arg(long, default_value_t = 0.0)]
    pub label_smoothing: f64,
    /// Input scale s_in.
    #[arg(long, default_value_t = 1.0)]
    pub input_scale: f32,
    /// Number of top Hessian eigenvalues: a count, or "classes" for one per class (C).
    #[arg(long, value_name = "N|classes", default_value = "1")]
    pub top_k: TopK,
    /// Lanczos relative tolerance.
    #[arg(long, default_value_t = 1e-4)]
    pub tol: f64,
    /// Skip the Gauss–Newton eigenvalue.
    #[arg(long)]
    pub no_gn: bool,
    /// Finite-difference step ε relative to max(‖θ‖, 1).
    #[arg(long)]
    pub eps_rel: Option<f64>,
    #[command(flatten)]
    pub spectrum: MeasureSpectrumArgs,
}

#[derive(Subcommand, Debug)]
pub enum BoundCommand {
    /// Covering radius δ(N, ε) (eq. 6 cube, eq. 7 sphere), times a Lipschitz constant.
    Delta(DeltaArgs),
    /// Minimum inter-class distance of a dataset and the Theorem 5.1 bound B.
    Data(DataBoundArgs),
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Domain {
    Cube,
    Sphere,
}

#[derive(Args, Debug)]
pub struct DeltaArgs {
    /// Latent domain: [0,1]^d (eq. 6) or S^d (eq. 7).
    #[arg(long, value_enum)]
    pub domain: Domain,
    /// Intrinsic dimension d.
    #[arg(long)]
    pub dim: usize,
    /// Number of samples N.
    #[arg(long)]
    pub n: usize,
    /// Failure probability ε.
    #[arg(long)]
    pub eps: f64,
    /// γ of eq. (7) (sphere only).
    #[arg(long, default_value_t = 0.5)]
    pub gamma: f64,
    /// Lipschitz constant of the generator g (δ is multiplied by it).
    #[arg(long, default_value_t = 1.0)]
    pub lip: f64,
    /// Also print Theorem 6.1's right-hand side (without V) for this target Lipschitz constant ‖f*‖_Lip…
    #[arg(long)]
    pub target_lip: Option<f64>,
    /// …and this max_i ‖Jf(x_i)‖₂.
    #[arg(long)]
    pub jac_max: Option<f64>,
}

#[derive(Args, Debug)]
pub struct DataBoundArgs {
    /// CIFAR-10/100 directory, or "synthetic".
    #[arg(long)]
    pub data: String,
    /// Use the first N training examples.
    #[arg(long, default_value_t = 5000)]
    pub samples: usize,
    /// ℓ of Theorem 5.1 (sqrt(max_i c_i / a)); 0 = an interpolating model.
    #[arg(long, default_value_t = 0.0)]
    pub ell: f64,
    /// Label smoothing α of the targets.
    #[arg(long, default_value_t = 0.0)]
    pub label_smoothing: f64,
    /// Loss whose targets define Δ = ‖t_i − t_j‖.
    #[arg(long, value_enum, default_value = "ce")]
    pub loss: Loss,
    /// Square loss target scale.
    #[arg(long, default_value_t = 1.0)]
    pub target_scale: f64,
    /// Input scale s_in.
    #[arg(long, default_value_t = 1.0)]
    pub input_scale: f32,
    /// Compute backend for the pairwise distances.
    #[arg(long, value_enum, default_value = "cpu")]
    pub backend: Backend,
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// CIFAR-10 directory whose first images are the inputs [default: seeded Gaussian CIFAR-shaped inputs].
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Backends to time, comma-separated.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "cpu")]
    pub backends: Vec<Backend>,
    /// Timed repeats per quantity (median reported).
    #[arg(long, default_value_t = 10)]
    pub repeats: usize,
    /// Workloads, comma-separated: mlp, cnn, resnet18_wN, vgg11bn_wN (base width N, e.g. 8, 16), or all.
    #[arg(long, value_delimiter = ',', default_value = "mlp,cnn")]
    pub workloads: Vec<String>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Also write the JSON object to this file.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum SweepCommand {
    /// List the runs of a sweep: index, status (done, diverged, partial, -) and directory.
    Plan(PlanArgs),
    /// Run one run of a sweep (--index, default $SLURM_ARRAY_TASK_ID) or every unfinished one (--all); finished runs are skipped.
    Run(SweepRunArgs),
    /// Write an sbatch script that runs the sweep as a Slurm job array, one run per task.
    Slurm(SlurmArgs),
    /// List the presets, or print one as a sweep file to start from.
    Presets {
        /// Print this preset's sweep file.
        name: Option<String>,
    },
}

/// Which sweep, at which scale, where.
#[derive(Args, Debug, Clone)]
pub struct SweepSpec {
    /// A sweep file (TOML) or a preset: fig1, fig2, fig3, fig4, fig5, appc2.
    pub sweep: String,
    /// paper (the file as written) or a scale the file defines (presets: small, tiny).
    #[arg(long, default_value = curvlab_lab::sweep::DEFAULT_SCALE)]
    pub scale: String,
    /// Sweep directory: sweep.json and one directory per run [default: runs/<name>-<scale>].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// CIFAR-10 directory for sweeps on CIFAR data [default: $CURVLAB_DATA].
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Compute backend of every run (overrides the sweep file).
    #[arg(long, value_enum)]
    pub backend: Option<Backend>,
    /// Override a setting of every run, PATH=TOML value (repeatable), e.g. --set measure.samples=1000.
    #[arg(long = "set", value_name = "PATH=VALUE")]
    pub sets: Vec<String>,
}

#[derive(Args, Debug)]
pub struct PlanArgs {
    #[command(flatten)]
    pub spec: SweepSpec,
    /// Print the manifest (sweep.json: every run's settings and full configuration) instead of the table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct SweepRunArgs {
    #[command(flatten)]
    pub spec: SweepSpec,
    /// The run to do [default: $SLURM_ARRAY_TASK_ID].
    #[arg(long, conflicts_with = "all")]
    pub index: Option<usize>,
    /// Do every unfinished run, one after another.
    #[arg(long)]
    pub all: bool,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct SlurmArgs {
    #[command(flatten)]
    pub spec: SweepSpec,
    /// GPUs per task (sbatch --gpus); 0 = a CPU job. With GPUs the runs use wgpu unless --backend says otherwise.
    #[arg(long, default_value_t = 0)]
    pub gpus: u32,
    /// CPU cores per task (sbatch --cpus-per-task).
    #[arg(long, default_value_t = 4)]
    pub cpus_per_task: u32,
    /// Memory per task (sbatch --mem), e.g. 16G.
    #[arg(long, default_value = "16G")]
    pub mem: String,
    /// Wall-time limit per task (sbatch --time), e.g. 1-00:00:00 or 12:00:00.
    #[arg(long, default_value = "24:00:00")]
    pub time: String,
    /// Partition (sbatch --partition).
    #[arg(long)]
    pub partition: Option<String>,
    /// Account to charge (sbatch --account).
    #[arg(long)]
    pub account: Option<String>,
    /// Run at most K tasks at once (the array's %K throttle).
    #[arg(long)]
    pub max_parallel: Option<usize>,
    /// An extra sbatch option, written as an #SBATCH line (repeatable), e.g. --sbatch=--qos=long.
    #[arg(long = "sbatch", value_name = "OPTION", allow_hyphen_values = true)]
    pub extra: Vec<String>,
    /// Job name [default: curvlab-<name>-<scale>].
    #[arg(long)]
    pub job_name: Option<String>,
    /// Where to write the script [default: <out>/slurm.sbatch].
    #[arg(long)]
    pub script: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// Sweep directory (holding sweep.json and the run directories), or any directory of runs.
    pub dir: PathBuf,
    /// Where to write the figures and tables [default: DIR/report].
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub spectrum: ReportSpectrumArgs,
}

// ---- The spectrum extras (issue 14): flags of `run` and `measure`. ----
// Each maps to a field of core's `MeasureConfig` (`docs/measurements.md`
// "Spectrum extras"); native/src/commands/spectrum.rs applies them.

/// The spectrum extras of one measurement, shared by `run` and `measure`.
#[derive(Args, Debug, Clone, Default)]
#[command(
    next_help_heading = "Spectrum extras (each costs Hessian-vector products; docs/measurements.md)"
)]
pub struct SpectrumArgs {
    /// Hessian trace by Hutch++ with its standard error (trace, trace_se, trace_products).
    #[arg(long)]
    pub trace: bool,
    /// Hutch++: Hessian-vector products per trace estimate (≥ 6) [default: 30].
    #[arg(long, value_name = "M")]
    pub trace_products: Option<usize>,
    /// Spectral density by stochastic Lanczos quadrature (density_grid, density).
    #[arg(long)]
    pub density: bool,
    /// SLQ: probe vectors [default: 4].
    #[arg(long, value_name = "N")]
    pub density_probes: Option<usize>,
    /// SLQ: Lanczos steps per probe (products per probe) [default: 40].
    #[arg(long, value_name = "M")]
    pub density_steps: Option<usize>,
    /// Top eigenvalue of each layer's Hessian and Gauss–Newton diagonal block (layer_sharpness, gn_layer_sharpness).
    #[arg(long)]
    pub per_layer: bool,
    /// The Ansatz's factors: cost curvature, Gauss–Newton share and residual along u, u's mass per layer.
    #[arg(long)]
    pub factors: bool,
    /// λ_max on K disjoint folds of the measurement subset, with mean and sd (sharpness_folds) [K default: 4].
    #[arg(long, value_name = "K", num_args = 0..=1, default_missing_value = "4")]
    pub folds: Option<usize>,
}

/// `measure`'s spectrum flags: those of a measurement, and a figure of the density.
#[derive(Args, Debug, Clone, Default)]
pub struct MeasureSpectrumArgs {
    #[command(flatten)]
    pub extras: SpectrumArgs,
    /// Also write the spectral density as STEM.png and STEM.svg (needs --density).
    #[arg(
        long,
        value_name = "STEM",
        help_heading = "Spectrum extras (each costs Hessian-vector products; docs/measurements.md)"
    )]
    pub density_plot: Option<PathBuf>,
}

/// `report`'s choices about the spectrum extras' figures.
#[derive(Args, Debug, Clone, Default)]
pub struct ReportSpectrumArgs {
    /// Draw the spectral density at these steps (the nearest measured), comma-separated [default: first, middle, last].
    #[arg(long, value_name = "STEPS", value_delimiter = ',')]
    pub density_at: Option<Vec<u64>>,
}

/// `run`'s spectrum flags: those of a measurement, and how often.
#[derive(Args, Debug, Clone, Default)]
pub struct RunSpectrumArgs {
    #[command(flatten)]
    pub extras: SpectrumArgs,
    /// Measure the spectrum extras at every N-th measurement only (the first included) [default: 1].
    #[arg(
        long,
        value_name = "N",
        help_heading = "Spectrum extras (each costs Hessian-vector products; docs/measurements.md)"
    )]
    pub spectrum_every: Option<u64>,
}

/// Each `curvlab run` flag (its argument id) and the setting it sets (its
/// dotted path in config.json). The help's "[default: …]" is read from
/// [`RunConfig::default`] at that path, never written by hand; `--resume`
/// and validation errors name flags through it.
pub const FLAG_PATHS: &[(&str, &str)] = &[
    ("backend", "backend"),
    ("seed", "seed"),
    ("data", "data.kind"),
    ("data", "data.dir"),
    ("train_samples", "data.train_samples"),
    ("test_samples", "data.test_samples"),
    ("input_scale", "data.input_scale"),
    ("intrinsic_dim", "data.intrinsic_dim"),
    ("ambient_dim", "data.ambient_dim"),
    ("classes", "data.classes"),
    ("n_train", "data.n_train"),
    ("n_test", "data.n_test"),
    ("model", "model.kind"),
    ("hidden", "model.hidden"),
    ("channels", "model.channels"),
    ("width", "model.width"),
    ("activation", "model.activation"),
    ("loss", "loss.kind"),
    ("label_smoothing", "loss.label_smoothing"),
    ("target_scale", "loss.target_scale"),
    ("lr", "optim.lr"),
    ("batch_size", "optim.batch_size"),
    ("momentum", "optim.momentum"),
    ("weight_decay", "optim.weight_decay"),
    ("steps", "steps"),
    ("measure_every", "measure_every"),
    ("samples", "measure.samples"),
    ("top_k", "measure.top_k"),
    ("tol", "measure.solver.lanczos.tol"),
    ("no_gn", "measure.gauss_newton"),
    ("no_jacobian", "measure.jacobian"),
    ("no_bound", "measure.bound"),
    ("epochs", "epochs"),
    ("checkpoint_every", "checkpoint_every"),
    ("schedule", "optim.schedule.kind"),
    ("milestones", "optim.schedule.milestones"),
    ("gamma", "optim.schedule.gamma"),
    ("warmup", "optim.schedule.warmup"),
    ("sam_rho", "optim.sam_rho"),
    ("crop", "augment.crop"),
    ("flip", "augment.flip"),
    ("mixup_alpha", "augment.mixup_alpha"),
    ("bn_mode", "measure.solver.bn_mode"),
    ("trace", "measure.trace"),
    ("trace_products", "measure.hutchpp.products"),
    ("density", "measure.density"),
    ("density_probes", "measure.slq.probes"),
    ("density_steps", "measure.slq.steps"),
    ("per_layer", "measure.per_layer"),
    ("factors", "measure.factors"),
    ("folds", "measure.folds"),
    ("folds", "measure.fold_count"),
    ("spectrum_every", "measure.spectrum_every"),
];

/// `--flag-name` of an argument id.
pub fn flag_name(id: &str) -> String {
    format!("--{}", id.replace('_', "-"))
}

/// The value at a dotted path, as a help text shows it (lists joined by
/// commas; absent, empty, `null`, boolean and table values are not shown).
fn shown(v: &serde_json::Value, path: &str) -> Option<String> {
    use serde_json::Value;
    let v = path.split('.').try_fold(v, |v, k| v.get(k))?;
    match v {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        Value::Array(a) if !a.is_empty() => {
            let parts: Option<Vec<String>> = a
                .iter()
                .map(|x| x.as_number().map(|n| n.to_string()))
                .collect();
            parts.map(|p| p.join(","))
        }
        _ => None,
    }
}

/// The command line's definition: clap's derive, with each `run` flag's
/// default appended to its help from [`RunConfig::default`].
pub fn command() -> clap::Command {
    let defaults = serde_json::to_value(RunConfig::default()).expect("a RunConfig serialises");
    Cli::command().mut_subcommand("run", |mut run| {
        let mut seen = Vec::new();
        for (id, path) in FLAG_PATHS {
            if seen.contains(id) {
                continue;
            }
            seen.push(*id);
            if let Some(v) = shown(&defaults, path) {
                run = run.mut_arg(*id, |arg| {
                    let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
                    arg.help(format!("{help} [default: {v}]"))
                });
            }
        }
        run
    })
}

/// Parses the process's arguments with [`command`] (exits with clap's
/// message on bad arguments, as `Cli::parse` does).
pub fn parse() -> Cli {
    let matches = command().get_matches();
    Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_args(args: &[&str]) -> Result<Box<RunArgs>, clap::Error> {
        let argv = ["curvlab", "run"].iter().chain(args);
        match Cli::try_parse_from(argv)?.command {
            Command::Run(a) => Ok(a),
            other => panic!("parsed {other:?}"),
        }
    }

    /// `--model` takes exactly the registry's names, spelled as before.
    #[test]
    fn model_values_come_from_the_registry() {
        Cli::command().debug_assert();
        for k in ModelKind::all() {
            assert_eq!(run_args(&["--model", k.name()]).unwrap().model, Some(k));
        }
        assert_eq!(
            run_args(&["--model", "vgg11_bn"]).unwrap().model,
            Some(ModelKind::VGG11_BN)
        );
        let e = run_args(&["--model", "vgg16"]).unwrap_err().to_string();
        assert!(
            e.contains("possible values: mlp, cnn, vgg11, vgg11_bn, resnet18"),
            "{e}"
        );
    }

    /// Every `run` flag but the run's own switches names the setting it
    /// sets, and every named setting exists in the configuration (the
    /// default one, or its CIFAR data table).
    #[test]
    fn every_run_flag_names_a_setting() {
        command().debug_assert();
        let cmd = command();
        let run = cmd.find_subcommand("run").unwrap();
        for arg in run.get_arguments() {
            let id = arg.get_id().as_str();
            if ["config", "out", "quiet", "resume", "help"].contains(&id) {
                continue;
            }
            assert!(
                FLAG_PATHS.iter().any(|(f, _)| *f == id),
                "--{id} is missing from FLAG_PATHS"
            );
        }
        let mut with_cifar = serde_json::to_value(RunConfig::default()).unwrap();
        let cifar =
            serde_json::json!({"kind": "cifar", "dir": "d", "train_samples": 1, "test_samples": 1});
        let cifar: curvlab::experiment::DataConfig = serde_json::from_value(cifar).unwrap();
        let defaults = serde_json::to_value(RunConfig::default()).unwrap();
        with_cifar["data"] = serde_json::to_value(cifar).unwrap();
        with_cifar["epochs"] = 1.into();
        for (flag, path) in FLAG_PATHS {
            let found =
                |v: &serde_json::Value| path.split('.').try_fold(v, |v, k| v.get(k)).is_some();
            assert!(
                found(&defaults) || found(&with_cifar),
                "--{flag}: no setting {path}"
            );
        }
    }

    /// The help's defaults are the configuration's.
    #[test]
    fn run_help_reads_the_declared_defaults() {
        let cmd = command();
        let run = cmd.find_subcommand("run").unwrap();
        let help = |id: &str| {
            run.get_arguments()
                .find(|a| a.get_id() == id)
                .and_then(|a| a.get_help())
                .map(ToString::to_string)
                .unwrap()
        };
        let d = RunConfig::default();
        assert_eq!(
            help("lr"),
            format!("Learning rate η [default: {}]", d.optim.lr)
        );
        assert!(
            help("hidden").ends_with("[default: 256,256]"),
            "{}",
            help("hidden")
        );
        assert!(help("gamma").ends_with(&format!("[default: {}]", d.optim.schedule.gamma)));
        assert!(!help("milestones").contains("[default"), "no default list");
        assert!(!help("flip").contains("[default"));
    }
}
