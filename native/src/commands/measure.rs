//! `curvlab measure`: one JSON object of the measurements in docs/measurements.md for given MLP
//! weights on the first N training examples of a CIFAR-10 directory.

use std::io::Write;

use anyhow::Result;
use curvlab::backend;
use curvlab::data::cifar::{self, CifarOptions};
use curvlab::lanczos::LanczosConfig;
use curvlab::loss::LossConfig;
use curvlab::measure::{MeasureConfig, Measurer};
use curvlab::record::MetricsRow;
use curvlab::sharpness::SharpnessConfig;
use curvlab::Block;
use serde_json::json;

use crate::cli::MeasureArgs;

pub fn measure(a: MeasureArgs, out: &mut dyn Write) -> Result<()> {
    let device = backend::device(a.backend.into())?;
    let model = curvlab::weights::load(&a.weights, Some(a.activation.into()), &device)?;
    let opts = CifarOptions {
        input_scale: a.input_scale,
        ..Default::default()
    };
    let train = cifar::load_train(&a.data, &opts)?;
    if model.arch.input_len() != train.input_len() || model.arch.classes() != train.classes {
        anyhow::bail!(
            "{}: the model takes {} inputs and gives {} classes, but the data has {} inputs and {} classes",
            a.weights.display(),
            model.arch.input_len(),
            model.arch.classes(),
            train.input_len(),
            train.classes
        );
    }
    if a.samples == 0 {
        anyhow::bail!("--samples must be ≥ 1");
    }
    let loss = LossConfig {
        label_smoothing: a.label_smoothing,
        ..Default::default()
    };
    let mut solver = SharpnessConfig {
        lanczos: LanczosConfig {
            k: a.top_k.max(1),
            tol: a.tol,
            ..Default::default()
        },
        ..Default::default()
    };
    if let Some(e) = a.eps_rel {
        if !(e > 0.0 && e < 1.0) {
            anyhow::bail!("--eps-rel must be in (0, 1), got {e}");
        }
        solver.hvp.eps_rel = e;
    }
    let cfg = MeasureConfig {
        samples: a.samples,
        solver,
        gauss_newton: !a.no_gn,
        warm_start: false,
        ..Default::default()
    };
    let t0 = std::time::Instant::now();
    let mut m = Measurer::new(&train, None, &loss, &cfg, &device).block()?;
    let mut row = MetricsRow::default();
    m.measure(&model, &mut row).block()?;
    let obj = json!({
        "loss": row.train_loss,
        "loss_kl": row.train_loss_kl,
        "accuracy": row.train_acc,
        "sharpness": row.sharpness,
        "sharpness_residual": row.sharpness_residual,
        "eigenvalues": row.eigenvalues,
        "residuals": row.residuals,
        "hvps": row.hvps,
        "gn_sharpness": row.gn_sharpness,
        "gn_residual": row.gn_residual,
        "jac_softmax_max": row.jac_softmax_max,
        "jac_softmax_mean": row.jac_softmax_mean,
        "jac_softmax_q50": row.jac_softmax_q50,
        "jac_softmax_q90": row.jac_softmax_q90,
        "jac_softmax_q99": row.jac_softmax_q99,
        "jac_softmax_argmax": row.jac_softmax_argmax,
        "jac_logit_max": row.jac_logit_max,
        "jac_logit_mean": row.jac_logit_mean,
        "jac_logit_q50": row.jac_logit_q50,
        "jac_logit_q90": row.jac_logit_q90,
        "jac_logit_q99": row.jac_logit_q99,
        "jac_logit_argmax": row.jac_logit_argmax,
        "bound_b": row.bound_b,
        "bound_ell": row.bound_ell,
        "n": row.n,
        "bn_mode": row.bn_mode,
        "diverged": row.diverged,
        "backend": backend::BackendKind::from(a.backend).to_string(),
        "wall_s": t0.elapsed().as_secs_f64(),
    });
    writeln!(out, "{obj}")?;
    Ok(())
}
