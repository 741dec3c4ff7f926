//! Command-line arguments: clap types only. Each flag maps to one field of
//! core's configs (`curvlab::experiment::RunConfig` and friends) or of the
//! lab's options (`curvlab_lab::sweep::Request` and friends); `///` comments
//! are the help.

use std::path::PathBuf;

use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use clap::{Args, Parser, Subcommand, ValueEnum};
use curvlab::experiment::ModelKind;

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
    /// Compute backend [default: cpu].
    #[arg(long, value_enum)]
    pub backend: Option<Backend>,
    /// Seed of weights, data and minibatch order [default: 0].
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
    /// Optimiser steps.
    #[arg(long)]
    pub steps: Option<u64>,
    /// Measure every M steps.
    #[arg(long)]
    pub measure_every: Option<u64>,
    /// Measurement subset size (first N training examples).
    #[arg(long)]
    pub samples: Option<usize>,
    /// Number of top Hessian eigenvalues.
    #[arg(long)]
    pub top_k: Option<usize>,
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
    /// Step schedule: decay factor at each milestone [default: 0.1].
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
    /// Number of top Hessian eigenvalues.
    #[arg(long, default_value_t = 1)]
    pub top_k: usize,
    /// Lanczos relative tolerance.
    #[arg(long, default_value_t = 1e-4)]
    pub tol: f64,
    /// Skip the Gauss–Newton eigenvalue.
    #[arg(long)]
    pub no_gn: bool,
    /// Finite-difference step ε relative to max(‖θ‖, 1).
    #[arg(long)]
    pub eps_rel: Option<f64>,
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

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
}
