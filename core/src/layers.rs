//! Per-layer curvature (`docs/measurements.md` "Per-layer curvature"): for
//! each parameter block l — one declared layer's tensors, weight and bias
//! together, named by the layer's PyTorch module name (the safetensors keys
//! are `{name}.weight`, `{name}.bias`) — the top eigenvalue of the Hessian's
//! diagonal block H_ll and of the Gauss–Newton block G_ll, and the share
//! ‖u_l‖² of a unit vector u in each block.
//!
//! A block A_ll acts on R^{P_l}: v is padded with zeros outside the block,
//! multiplied by the whole operator, and the product restricted to the block
//! ([`restrict`]); Lanczos runs on that operator with a basis of P_l-vectors.
//!
//! G_ll = (1/N) Σ_i J_{i,l}ᵀ H_i J_{i,l} with J_{i,l} = ∂f(x_i)/∂θ_l, so it has
//! the same nonzero spectrum as the l-th summand (1/N) Σ_i H_i^{1/2} J_{i,l}
//! J_{i,l}ᵀ H_i^{1/2} of the paper's eq. 4 (AᵀA and AAᵀ share nonzero
//! eigenvalues): `gn_layer_sharpness` is eq. 4 term by term.
//!
//! # Shapes
//! θ is flat in PyTorch's `parameters()` order; each block is a contiguous
//! range of it ([`blocks`]).

use std::ops::Range;

use burn::tensor::{Device, Tensor};
use web_time::Instant;

use crate::hvp::{GaussNewtonOperator, HessianOperator};
use crate::lanczos::LanczosConfig;
use crate::loss::LossConfig;
use crate::models::{Architecture, Model};
use crate::objective::Sample;
use crate::sharpness::{estimate, Sharpness, SharpnessConfig, GN_SEED};
use crate::Result;

/// One parameter block: a declared layer and its range of flat θ.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamBlock {
    /// The layer's PyTorch module name (`layers.0`, `layer1.0.conv1`, `bn1`).
    pub name: String,
    /// Its entries of flat θ.
    pub range: Range<usize>,
}

/// The parameter blocks of `arch`, one per declared layer, in θ order; they
/// partition θ.
pub fn blocks(arch: &Architecture) -> Vec<ParamBlock> {
    let layout = arch.layout();
    let mut offsets = Vec::with_capacity(layout.params.len() + 1);
    offsets.push(0);
    for s in &layout.params {
        offsets.push(offsets.last().copied().unwrap_or(0) + s.len());
    }
    layout
        .layers
        .iter()
        .map(|l| ParamBlock {
            name: l.name.clone(),
            range: offsets[l.params.start]..offsets[l.params.end],
        })
        .collect()
}

/// ‖u_l‖² / ‖u‖² for each block (sums to 1), name → value in θ order.
pub fn block_mass(u: &[f64], blocks: &[ParamBlock]) -> Vec<(String, f64)> {
    let total: f64 = u.iter().map(|x| x * x).sum();
    blocks
        .iter()
        .map(|b| {
            let m: f64 = u[b.range.clone()].iter().map(|x| x * x).sum();
            (b.name.clone(), m / total)
        })
        .collect()
}

/// The diagonal block A_ll of an operator on flat `[p]` device vectors, as an
/// operator on `[P_l]` vectors: v ↦ (A [0; v; 0])_l.
pub fn restrict<'a>(
    op: &'a mut dyn FnMut(&Tensor<1>) -> Tensor<1>,
    range: Range<usize>,
    p: usize,
) -> impl FnMut(&Tensor<1>) -> Tensor<1> + 'a {
    move |v: &Tensor<1>| {
        let device = v.device();
        let mut parts = Vec::with_capacity(3);
        if range.start > 0 {
            parts.push(Tensor::<1>::zeros([range.start], &device));
        }
        parts.push(v.clone());
        if range.end < p {
            parts.push(Tensor::<1>::zeros([p - range.end], &device));
        }
        op(&Tensor::cat(parts, 0)).slice(range.clone())
    }
}

/// The top eigenvalue of each diagonal block of `op` by Lanczos
/// (`cfg` with k = 1), block l started from `start`'s entries in the block
/// when they are usable (a full-length vector, e.g. the top eigenvector of
/// the whole operator) and otherwise from a random vector drawn from `seed`
/// and l. Returns each block's estimate (its `vectors` hold the block's
/// unit eigenvector, of length P_l).
pub async fn block_top_eigenvalues(
    op: &mut dyn FnMut(&Tensor<1>) -> Tensor<1>,
    eps: f64,
    blocks: &[ParamBlock],
    cfg: &LanczosConfig,
    start: Option<&[f64]>,
    seed: u64,
    device: &Device,
) -> Result<Vec<Sharpness>> {
    let p = blocks.last().map_or(0, |b| b.range.end);
    let cfg = LanczosConfig {
        k: 1,
        ..cfg.clone()
    };
    let mut out = Vec::with_capacity(blocks.len());
    for (l, b) in blocks.iter().enumerate() {
        let t0 = Instant::now();
        let warm = start.filter(|s| s.len() == p).map(|s| &s[b.range.clone()]);
        let block_seed = seed.wrapping_add((l as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let s = estimate(
            restrict(op, b.range.clone(), p),
            eps,
            b.range.len(),
            &cfg,
            warm,
            block_seed,
            device,
            t0,
        )
        .await?;
        out.push(s);
    }
    Ok(out)
}

/// λ_max(H_ll) for every block of `model` (see the module docs).
pub async fn layer_sharpness(
    model: &Model,
    sample: &Sample,
    loss: &LossConfig,
    solver: &SharpnessConfig,
    start: Option<&[f64]>,
) -> Result<Vec<(String, Sharpness)>> {
    let mut op = HessianOperator::new(model, solver.bn_mode, sample, loss, &solver.hvp).await?;
    let eps = op.eps;
    let bs = blocks(&model.arch);
    let mut apply = |v: &Tensor<1>| op.apply_flat(v);
    let r = block_top_eigenvalues(
        &mut apply,
        eps,
        &bs,
        &solver.lanczos,
        start,
        solver.seed,
        &model.device(),
    )
    .await?;
    Ok(bs.into_iter().map(|b| b.name).zip(r).collect())
}

/// λ_max(G_ll) for every block of `model` (see the module docs).
pub async fn gn_layer_sharpness(
    model: &Model,
    sample: &Sample,
    loss: &LossConfig,
    solver: &SharpnessConfig,
    start: Option<&[f64]>,
) -> Result<Vec<(String, Sharpness)>> {
    let mut op = GaussNewtonOperator::new(model, solver.bn_mode, sample, loss, &solver.hvp).await?;
    let eps = op.eps;
    let bs = blocks(&model.arch);
    let mut apply = |v: &Tensor<1>| op.apply_flat(v);
    let r = block_top_eigenvalues(
        &mut apply,
        eps,
        &bs,
        &solver.lanczos,
        start,
        solver.seed ^ GN_SEED,
        &model.device(),
    )
    .await?;
    Ok(bs.into_iter().map(|b| b.name).zip(r).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linalg::symmetric_eigenvalues;
    use crate::models::{Activation, Mlp, Resnet18};
    use crate::rng::Rng;
    use crate::Block;
    use burn::tensor::TensorData;

    #[test]
    fn blocks_partition_theta_by_layer_name() {
        let mlp = Architecture::Mlp(Mlp {
            input_dim: 4,
            hidden: vec![3],
            classes: 2,
            activation: Activation::Relu,
        });
        let b = blocks(&mlp);
        assert_eq!(
            b,
            [
                ParamBlock {
                    name: "layers.0".into(),
                    range: 0..15
                },
                ParamBlock {
                    name: "layers.1".into(),
                    range: 15..23
                }
            ]
        );
        let resnet = Architecture::Resnet18(Resnet18 {
            in_channels: 3,
            height: 8,
            width: 8,
            classes: 4,
            base: 2,
        });
        let b = blocks(&resnet);
        assert_eq!(b[0].name, "conv1");
        assert_eq!(b[1].name, "bn1");
        assert_eq!(b.last().unwrap().name, "fc");
        assert!(b.windows(2).all(|w| w[0].range.end == w[1].range.start));
        assert_eq!(b.last().unwrap().range.end, resnet.num_params());
        let names: Vec<String> = resnet.param_specs().into_iter().map(|s| s.name).collect();
        for blk in &b {
            assert!(
                names.contains(&format!("{}.weight", blk.name)),
                "{}",
                blk.name
            );
        }
        let mass = block_mass(
            &[3.0, 0.0, 4.0],
            &[
                ParamBlock {
                    name: "a".into(),
                    range: 0..1,
                },
                ParamBlock {
                    name: "b".into(),
                    range: 1..3,
                },
            ],
        );
        assert_eq!(
            mass,
            [
                ("a".to_string(), 9.0 / 25.0),
                ("b".to_string(), 16.0 / 25.0)
            ]
        );
    }

    /// Each block's Lanczos value equals the dense top eigenvalue of that
    /// diagonal block of a random symmetric matrix, also for the first and
    /// the last block (no zero padding on one side).
    #[test]
    fn block_eigenvalues_match_dense_diagonal_blocks() {
        let n = 30;
        let mut rng = Rng::new(3);
        let mut a = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..=i {
                let x = rng.normal();
                a[i * n + j] = x;
                a[j * n + i] = x;
            }
        }
        let dev = Device::flex();
        let at = Tensor::<2>::from_data(
            TensorData::new(a.iter().map(|&x| x as f32).collect::<Vec<_>>(), [n, n]),
            &dev,
        );
        let bs = vec![
            ParamBlock {
                name: "first".into(),
                range: 0..7,
            },
            ParamBlock {
                name: "middle".into(),
                range: 7..19,
            },
            ParamBlock {
                name: "last".into(),
                range: 19..30,
            },
        ];
        let mut op = |v: &Tensor<1>| at.clone().matmul(v.clone().reshape([n, 1])).reshape([n]);
        let cfg = LanczosConfig {
            k: 1,
            tol: 1e-7,
            max_steps: 30,
            min_steps: 2,
        };
        let r = block_top_eigenvalues(&mut op, 0.0, &bs, &cfg, None, 1, &dev)
            .block()
            .unwrap();
        for (b, s) in bs.iter().zip(&r) {
            let m = b.range.len();
            let block: Vec<f64> = b
                .range
                .clone()
                .flat_map(|i| b.range.clone().map(move |j| (i, j)))
                .map(|(i, j)| a[i * n + j])
                .collect();
            let exact = symmetric_eigenvalues(&block, m)[0];
            assert!(
                (s.top() - exact).abs() < 1e-5 * exact.abs(),
                "{}: {} vs {exact}",
                b.name,
                s.top()
            );
            assert_eq!(s.vectors[0].len(), m);
        }
    }
}
