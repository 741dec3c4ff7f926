//! `curvlab measure`: one JSON object of the measurements in docs/measurements.md for given MLP
//! weights on the first N training examples of a CIFAR-10 directory, with
//! the spectrum extras asked for (under the metrics rows' keys) and,
//! optionally, a figure of the spectral density.

use std::io::Write;

use anyhow::Result;
use curvlab::backend;
use curvlab::config;
use curvlab::data::cifar::{self, CifarOptions};
use curvlab::hvp::HvpConfig;
use curvlab::lanczos::LanczosConfig;
use curvlab::loss::{LossConfig, LossKind};
use curvlab::measure::{MeasureConfig, Measurer};
use curvlab::record::MetricsRow;
use curvlab::sharpness::SharpnessConfig;
use curvlab::Block;
use curvlab_lab::report;
use serde_json::json;

use crate::cli::MeasureArgs;
use crate::commands::spectrum;

pub fn measure(a: MeasureArgs, out: &mut dyn Write) -> Result<()> {
    // The settings first, by the checks a run's settings go through, so a
    // bad value fails before anything is read.
    let loss = LossConfig {
        kind: LossKind::CrossEntropy,
        label_smoothing: a.label_smoothing,
        ..Default::default()
    };
    let mut cfg = MeasureConfig {
        samples: a.samples,
        solver: SharpnessConfig {
            lanczos: LanczosConfig {
                k: 1,
                tol: a.tol,
                ..Default::default()
            },
            hvp: HvpConfig {
                eps_rel: a.eps_rel.unwrap_or(HvpConfig::default().eps_rel),
            },
            ..Default::default()
        },
        gauss_newton: !a.no_gn,
        warm_start: false,
        top_k: Some(a.top_k),
        ..Default::default()
    };
    spectrum::apply(&a.spectrum.extras, &mut cfg)?;
    if a.spectrum.density_plot.is_some() && !cfg.density {
        anyhow::bail!("--density-plot draws the spectral density: add --density");
    }
    let flags = [
        ("measure.samples", "--samples"),
        ("top_k", "--top-k"),
        ("measure.solver.lanczos.tol", "--tol"),
        ("measure.solver.hvp.eps_rel", "--eps-rel"),
        ("label smoothing", "--label-smoothing"),
        ("input_scale", "--input-scale"),
    ];
    let named = |e: curvlab::Error| {
        let msg = e.to_string();
        match flags.iter().find(|(path, _)| msg.contains(path)) {
            Some((_, flag)) => anyhow::anyhow!("{msg} ({flag})"),
            None => anyhow::anyhow!("{msg}"),
        }
    };
    loss.validate().map_err(named)?;
    cfg.validate().map_err(named)?;
    config::positive("input_scale", f64::from(a.input_scale)).map_err(named)?;

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
    let t0 = std::time::Instant::now();
    let mut m = Measurer::new(&train, None, &loss, &cfg, &device).block()?;
    let mut row = MetricsRow::default();
    m.measure(&model, &mut row).block()?;
    let mut obj = json!({
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
    if let Some(o) = obj.as_object_mut() {
        o.extend(spectrum::row_extras(&row)?);
    }
    if let (Some(stem), Some(grid), Some(density)) =
        (&a.spectrum.density_plot, &row.density_grid, &row.density)
    {
        let title = format!(
            "{}: Hessian spectral density on {} examples (SLQ, σ = {})",
            a.weights.display(),
            row.n,
            curvlab::axis::format_value(row.density_sigma.unwrap_or(f64::NAN))
        );
        report::write_density_figure(stem, &title, &[(String::new(), grid, density)])?;
    }
    writeln!(out, "{obj}")?;
    Ok(())
}
