//! The memory a run needs, estimated before anything is allocated, and what
//! the machine has: a run that cannot fit says so in one line, with the
//! estimate and what to lower, instead of growing until the allocator aborts.
//!
//! # The estimate
//! In f32 values of 4 bytes, with P parameters, inputs of d values, C
//! classes, N training and N_test test examples, S = min(`measure.samples`,
//! N) measured examples, A values per example in a forward pass
//! ([`crate::models::Net::activations`]) and R = min(`measure.chunk`, batch)
//! rows per pass (the batch is `optim.batch_size`, or N for full-batch GD):
//!
//! - data: (d + C)·(2N + 2N_test + S): the sets on the host and on the
//!   device, and the measurement subset;
//! - parameters: P·(2 + m + 2s + 6): θ and its gradient, the momentum
//!   buffer (m = 1 with momentum), SAM's perturbed copy and its gradient
//!   (s = 1 with SAM), and the six vectors of a Hessian-vector product (v,
//!   Hv, θ ± εv and the two gradients);
//! - solver: the largest basis one measurement holds: Lanczos's
//!   (`max_steps` + 1 + k)·P (the basis and the warm-start vectors), Hutch++'s
//!   `products`·P, stochastic Lanczos quadrature's (`steps` + 1)·P capped by
//!   `max_basis_mib`;
//! - activations: 3·R·A (the forward pass's outputs kept for the backward
//!   pass, and their gradients), plus the Jacobian norms' tiled input of at
//!   most 2²⁴ values.
//!
//! It is an estimate of the peak, not a bound: it names the terms that grow
//! with the settings, so that a size that cannot fit is refused before it is
//! tried. Only the CPU backend's memory is the machine's; with wgpu the data
//! term is checked against it (the device's memory is not known here).

use crate::backend::BackendKind;
use crate::experiment::RunConfig;
use crate::models::Architecture;
use crate::{Error, Result};

/// The environment variable that overrides the memory a run may use: a
/// size (`512M`, `16G`, or bytes), or `off` to skip the check.
pub const LIMIT_ENV: &str = "CURVLAB_MEMORY_LIMIT";

/// Largest tiled input of the Jacobian norms (values), as in [`crate::jacobian`].
const JACOBIAN_TILE: f64 = (1u64 << 24) as f64;

/// One term of an [`Estimate`].
#[derive(Clone, Debug, PartialEq)]
pub struct Part {
    /// What it is ("Lanczos basis (101 vectors of P)").
    pub what: String,
    /// Bytes.
    pub bytes: f64,
    /// The settings that shrink it.
    pub lower: &'static str,
}

/// The memory a run needs at its peak, by term (see the module docs).
#[derive(Clone, Debug, PartialEq)]
pub struct Estimate {
    pub parts: Vec<Part>,
    /// The backend whose memory it is.
    pub backend: BackendKind,
}

impl Estimate {
    /// All terms, in bytes.
    pub fn total(&self) -> f64 {
        self.parts.iter().map(|p| p.bytes).sum()
    }

    /// What must fit in the machine's memory: everything on the CPU
    /// backend; the data on the host with wgpu.
    pub fn host(&self) -> f64 {
        match self.backend {
            BackendKind::Cpu => self.total(),
            BackendKind::Wgpu => self.parts.first().map_or(0.0, |p| p.bytes),
        }
    }

    /// The largest term.
    pub fn largest(&self) -> &Part {
        self.parts
            .iter()
            .max_by(|a, b| a.bytes.total_cmp(&b.bytes))
            .expect("an estimate has terms")
    }

    /// One line: the total and its terms.
    pub fn describe(&self) -> String {
        let parts: Vec<String> = self
            .parts
            .iter()
            .map(|p| format!("{} {}", p.what, size(p.bytes)))
            .collect();
        format!("about {} ({})", size(self.total()), parts.join(", "))
    }
}

/// `bytes` as "1.5 GiB" / "12.0 MiB".
pub fn size(bytes: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{v:.0} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// The estimate for `cfg` on data of `n_train` training and `n_test` test
/// examples of `d` values and the model `arch` (see the module docs).
pub fn estimate(cfg: &RunConfig, arch: &Architecture, n_train: usize, n_test: usize) -> Estimate {
    const F32: f64 = 4.0;
    let p = arch.num_params_f64();
    let d = arch.input_len() as f64;
    let c = arch.classes() as f64;
    let (n, n_test) = (n_train as f64, n_test as f64);
    let m = &cfg.measure;
    let s = (m.samples as f64).min(n);
    let data = F32 * (d + c) * (2.0 * n + 2.0 * n_test + s);

    let o = &cfg.optim;
    let copies = 2.0
        + f64::from(u8::from(o.momentum > 0.0))
        + 2.0 * f64::from(u8::from(o.sam_rho > 0.0))
        + 6.0;
    let params = F32 * p * copies;

    let l = &m.solver.lanczos;
    let k = m.top_k.map_or(l.k, |t| t.resolve(arch.classes())) as f64;
    let mut solver: f64 = 0.0;
    let mut solver_what = String::from("no solver");
    let uses_lanczos = m.sharpness || m.gauss_newton || m.folds || m.per_layer || m.factors;
    if uses_lanczos {
        solver = (l.max_steps as f64 + 1.0 + k) * p;
        solver_what = format!(
            "Lanczos basis ({} vectors of P)",
            l.max_steps + 1 + k as usize
        );
    }
    if m.trace && m.hutchpp.products as f64 * p > solver {
        solver = m.hutchpp.products as f64 * p;
        solver_what = format!("Hutch++ sketch ({} vectors of P)", m.hutchpp.products);
    }
    let slq =
        ((m.slq.steps as f64 + 1.0) * p).min(m.slq.max_basis_mib as f64 * 1024.0 * 1024.0 / F32);
    if m.density && slq > solver {
        solver = slq;
        solver_what = "SLQ basis".into();
    }

    let batch = if o.batch_size == 0 {
        n
    } else {
        o.batch_size as f64
    };
    let rows = (m.chunk as f64).min(batch.max(1.0));
    let activations = F32 * (3.0 * rows * arch.activations() + JACOBIAN_TILE);

    Estimate {
        parts: vec![
            Part {
                what: format!("data (N = {n_train}, d = {})", arch.input_len()),
                bytes: data,
                lower: "the number of examples (data.n_train, data.train_samples) or measure.samples",
            },
            Part {
                what: format!("parameters (P = {p:.3e}) and optimiser state"),
                bytes: params,
                lower: "the model's size (model.hidden, model.channels, model.width)",
            },
            Part {
                what: solver_what,
                bytes: F32 * solver,
                lower: "the model's size (model.hidden, model.channels, model.width) or measure.solver.lanczos.max_steps (measure.hutchpp.products, measure.slq.max_basis_mib)",
            },
            Part {
                what: format!("activations ({rows} rows per pass)"),
                bytes: activations,
                lower: "measure.chunk (or optim.batch_size), or the model's size (model.hidden, model.channels, model.width)",
            },
        ],
        backend: cfg.backend,
    }
}

/// Bytes a run may use: [`LIMIT_ENV`] when set (`None` for `off`), else
/// what the machine has available (Linux: `MemAvailable`, within the
/// cgroup's limit); `None` when unknown.
pub fn available() -> Result<Option<f64>> {
    match std::env::var(LIMIT_ENV) {
        Ok(v) => parse_limit(&v),
        Err(_) => Ok(system_available()),
    }
}

/// Parses a [`LIMIT_ENV`] value.
pub fn parse_limit(v: &str) -> Result<Option<f64>> {
    let t = v.trim();
    if t.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    let (num, unit) = match t.char_indices().find(|(_, ch)| ch.is_ascii_alphabetic()) {
        Some((i, _)) => (&t[..i], &t[i..]),
        None => (t, ""),
    };
    let scale = match unit
        .to_ascii_uppercase()
        .trim_end_matches("IB")
        .trim_end_matches('B')
    {
        "" => 1.0,
        "K" => 1024.0,
        "M" => 1024.0 * 1024.0,
        "G" => 1024.0 * 1024.0 * 1024.0,
        "T" => 1024.0f64.powi(4),
        _ => f64::NAN,
    };
    match num.trim().parse::<f64>() {
        Ok(x) if x.is_finite() && x > 0.0 && scale.is_finite() => Ok(Some(x * scale)),
        _ => Err(Error::Config(format!(
            "{LIMIT_ENV}={v}: expected a size such as 512M, 16G or a number of bytes, or off"
        ))),
    }
}

#[cfg(target_os = "linux")]
fn system_available() -> Option<f64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib: f64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    let mut bytes = kib * 1024.0;
    // A cgroup (v2) limit below the machine's memory (a container, a Slurm job).
    let read = |f: &str| -> Option<f64> {
        std::fs::read_to_string(format!("/sys/fs/cgroup/{f}"))
            .ok()?
            .trim()
            .parse()
            .ok()
    };
    if let (Some(max), Some(current)) = (read("memory.max"), read("memory.current")) {
        bytes = bytes.min((max - current).max(0.0));
    }
    Some(bytes)
}

#[cfg(not(target_os = "linux"))]
fn system_available() -> Option<f64> {
    None
}

/// Everything about `cfg` that can be checked before anything is allocated:
/// [`RunConfig::validate`], the data's shape (for CIFAR from the files'
/// sizes), the model for that shape, and the memory estimate against
/// [`available`]. Returns the estimate; an error of one line when the run
/// cannot fit, naming the estimate and what to lower.
pub fn check(cfg: &RunConfig) -> Result<Estimate> {
    cfg.validate()?;
    let shape = cfg.data.shape()?;
    let arch = cfg.model.architecture(&shape.empty())?;
    let est = estimate(cfg, &arch, shape.n_train, shape.n_test);
    if let Some(limit) = available()? {
        if est.host() > limit {
            let what = match cfg.backend {
                BackendKind::Cpu => "the run needs",
                BackendKind::Wgpu => "the run's data needs",
            };
            return Err(Error::Config(format!(
                "{what} {}, more than the {} available; lower {} ({LIMIT_ENV} sets the limit, `off` skips this check)",
                est.describe(),
                size(limit),
                est.largest().lower
            )));
        }
    }
    Ok(est)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::synthetic::SyntheticConfig;
    use crate::experiment::DataConfig;

    #[test]
    fn the_default_run_is_small_and_its_terms_add_up() {
        let cfg = RunConfig::default();
        let shape = cfg.data.shape().unwrap();
        let arch = cfg.model.architecture(&shape.empty()).unwrap();
        let e = estimate(&cfg, &arch, shape.n_train, shape.n_test);
        // P = 32·256 + 256 + 256·256 + 256 + 256·4 + 4
        let p = 75_268.0;
        assert_eq!(arch.num_params_f64(), p);
        assert_eq!(e.parts[1].bytes, 4.0 * p * 8.0);
        assert_eq!(e.parts[2].bytes, 4.0 * p * 102.0);
        assert_eq!(e.parts[0].bytes, 4.0 * 36.0 * (2000.0 + 2000.0 + 1000.0));
        assert_eq!(
            e.parts[3].bytes,
            4.0 * (3.0 * 1000.0 * (2.0 * 512.0 + 4.0) + JACOBIAN_TILE)
        );
        assert!(e.total() < 200e6, "{}", e.describe());
    }

    #[test]
    fn a_huge_width_is_refused_in_one_line_naming_the_model_size() {
        let mut cfg = RunConfig::default();
        cfg.model.hidden = vec![1_000_000_000];
        let shape = cfg.data.shape().unwrap();
        let arch = cfg.model.architecture(&shape.empty()).unwrap();
        let e = estimate(&cfg, &arch, shape.n_train, shape.n_test);
        assert!(e.total() > 1e12, "{}", e.describe());
        // A 10⁹-wide layer: its activations at 1000 rows per pass outweigh
        // even the Lanczos basis; either way the model's size is to lower.
        assert!(
            e.largest().what.contains("activations"),
            "{:?}",
            e.largest()
        );
        assert!(
            e.largest().lower.contains("model.hidden"),
            "{:?}",
            e.largest()
        );
        assert!(!e.describe().contains('\n'));
    }

    #[test]
    fn limits_parse() {
        assert_eq!(parse_limit("off").unwrap(), None);
        assert_eq!(parse_limit("512M").unwrap(), Some(512.0 * 1048576.0));
        assert_eq!(parse_limit("16GiB").unwrap(), Some(16.0 * 1073741824.0));
        assert_eq!(parse_limit("1000").unwrap(), Some(1000.0));
        for bad in ["", "-1G", "12Q", "nanG", "G"] {
            assert!(parse_limit(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn data_sizes_count() {
        let cfg = RunConfig {
            data: DataConfig::Synthetic(SyntheticConfig {
                n_train: 10_000_000,
                ambient_dim: 1000,
                ..Default::default()
            }),
            ..Default::default()
        };
        let shape = cfg.data.shape().unwrap();
        let arch = cfg.model.architecture(&shape.empty()).unwrap();
        let e = estimate(&cfg, &arch, shape.n_train, shape.n_test);
        assert!(e.largest().what.starts_with("data"), "{}", e.describe());
    }
}
