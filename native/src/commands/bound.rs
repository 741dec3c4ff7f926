//! `curvlab bound delta|data`: covering radius δ(N, ε) and the Theorem 5.1 data bound.

use std::io::Write;
use std::path::Path;

use anyhow::Result;
use curvlab::backend;
use curvlab::bound::{
    data_bound, delta_cube, delta_sphere, min_interclass_distance, theorem61_rhs,
};
use curvlab::data::cifar::{self, CifarOptions};
use curvlab::data::synthetic::{self, SyntheticConfig};
use curvlab::loss::LossConfig;
use curvlab::Block;
use serde_json::json;

use crate::cli::{DataBoundArgs, DeltaArgs, Domain};

pub fn delta(a: DeltaArgs, w: &mut dyn Write) -> Result<()> {
    if !(a.lip.is_finite() && a.lip > 0.0) {
        anyhow::bail!("--lip must be positive, got {}", a.lip);
    }
    let base = match a.domain {
        Domain::Cube => delta_cube(a.dim, a.n, a.eps)?,
        Domain::Sphere => delta_sphere(a.dim, a.n, a.eps, a.gamma)?,
    };
    let delta = base * a.lip;
    let mut out = json!({
        "domain": format!("{:?}", a.domain).to_lowercase(),
        "dim": a.dim, "n": a.n, "eps": a.eps, "lip": a.lip,
        "delta_latent": base,
        "delta": delta,
    });
    if matches!(a.domain, Domain::Sphere) {
        out["gamma"] = a.gamma.into();
    }
    match (a.target_lip, a.jac_max) {
        (Some(f), Some(j)) => out["theorem61_rhs_without_v"] = theorem61_rhs(delta, f, j).into(),
        (None, None) => {}
        _ => anyhow::bail!("--target-lip and --jac-max go together"),
    }
    writeln!(w, "{out}")?;
    Ok(())
}

pub fn data(a: DataBoundArgs, w: &mut dyn Write) -> Result<()> {
    let device = backend::device(a.backend.into())?;
    let train = if a.data == "synthetic" {
        synthetic::generate(&SyntheticConfig {
            input_scale: a.input_scale,
            ..Default::default()
        })?
        .train
    } else {
        cifar::load_train(
            Path::new(&a.data),
            &CifarOptions {
                input_scale: a.input_scale,
                ..Default::default()
            },
        )?
    };
    let subset = train.first(a.samples.max(1));
    let loss = LossConfig {
        kind: a.loss.into(),
        label_smoothing: a.label_smoothing,
        target_scale: a.target_scale,
    };
    loss.validate()?;
    if a.ell.is_nan() || a.ell < 0.0 {
        anyhow::bail!("--ell must be ≥ 0");
    }
    let ic = min_interclass_distance(&subset, &device).block()?;
    let gap = loss.target_gap();
    writeln!(
        w,
        "{}",
        json!({
            "n": subset.len(),
            "min_interclass_distance": ic.distance,
            "pair": [ic.i, ic.j],
            "target_gap": gap,
            "ell": a.ell,
            "bound_b": data_bound(gap, a.ell, ic.distance),
            "note": "computable part of Theorem 5.1 (without the local-variation term V)",
        })
    )?;
    Ok(())
}
