//! Error bars from the data (`docs/measurements.md` "Fold sharpness"): the
//! measurement subset split into K disjoint folds S_1..S_K, and λ_max of the
//! Hessian of each fold's loss ℓ_{S_k} (the mean over S_k), with their mean
//! and standard deviation. The spread says how much the sharpness of an
//! N/K-example sample varies; the solver's own error bar (the residual) is
//! much smaller.
//!
//! # Fold assignment
//! Stratified round-robin: the subset's examples are listed class by class
//! (class 0's in subset order, then class 1's, …) and dealt to the folds in
//! turn, position j going to fold j mod K. Each fold then holds ⌊n_c/K⌋ or
//! ⌈n_c/K⌉ examples of every class c and the fold sizes differ by at most
//! one. Within a fold the examples keep subset order (BatchNorm's train-mode
//! chunks are consecutive examples of the fold).

use burn::tensor::Device;
use web_time::Instant;

use crate::data::Dataset;
use crate::hvp::HessianOperator;
use crate::loss::LossConfig;
use crate::models::Model;
use crate::objective::Sample;
use crate::sharpness::{estimate, SharpnessConfig};
use crate::trace::mean_sd;
use crate::{Error, Result};

/// The folds' example indices (into `labels`), each ascending; see the
/// module docs. `k` ≥ 1.
pub fn assign(labels: &[u32], k: usize) -> Vec<Vec<usize>> {
    let k = k.max(1);
    let mut order: Vec<usize> = (0..labels.len()).collect();
    order.sort_by_key(|&i| (labels[i], i));
    let mut folds = vec![Vec::new(); k];
    for (j, i) in order.into_iter().enumerate() {
        folds[j % k].push(i);
    }
    folds.iter_mut().for_each(|f| f.sort_unstable());
    folds
}

/// The folds of a measurement subset on the device.
pub struct Folds {
    /// Example indices of each fold (into the subset).
    pub indices: Vec<Vec<usize>>,
    /// Each fold as a sample, in chunks of at most `chunk` examples.
    pub samples: Vec<Sample>,
}

impl Folds {
    /// Splits `subset` into `k` ≥ 2 folds (at least one example each) and
    /// uploads them.
    pub fn new(
        subset: &Dataset,
        loss: &LossConfig,
        k: usize,
        chunk: usize,
        device: &Device,
    ) -> Result<Folds> {
        if k < 2 || k > subset.len() {
            return Err(Error::Config(format!(
                "measure.fold_count must be in 2..={} (the measurement subset's size), got {k}",
                subset.len()
            )));
        }
        let indices = assign(&subset.y, k);
        let samples = indices
            .iter()
            .map(|ix| Sample::new(&subset.subset(ix), loss, chunk, device))
            .collect::<Result<Vec<_>>>()?;
        Ok(Folds { indices, samples })
    }
}

/// λ_max on each fold, with mean and standard deviation.
#[derive(Clone, Debug, PartialEq)]
pub struct FoldSharpness {
    /// λ_max(∇²ℓ_{S_k}) for k = 1..K.
    pub values: Vec<f64>,
    /// The Lanczos residual of each.
    pub residuals: Vec<f64>,
    /// Mean of the values.
    pub mean: f64,
    /// Their sample standard deviation (denominator K − 1).
    pub sd: f64,
    /// Hessian-vector products spent, all folds.
    pub products: usize,
    /// Seconds spent.
    pub wall_s: f64,
}

/// λ_max of every fold's loss by Lanczos (`solver`, k = 1), each started from
/// `warm` when usable (e.g. the whole subset's top eigenvector) and otherwise
/// from the solver's random start.
pub async fn fold_sharpness(
    model: &Model,
    folds: &Folds,
    loss: &LossConfig,
    solver: &SharpnessConfig,
    warm: Option<&[f64]>,
) -> Result<FoldSharpness> {
    let t0 = Instant::now();
    let p = model.arch.num_params();
    let mut cfg = solver.lanczos.clone();
    cfg.k = 1;
    let (mut values, mut residuals, mut products) = (Vec::new(), Vec::new(), 0);
    for sample in &folds.samples {
        let mut op = HessianOperator::new(model, solver.bn_mode, sample, loss, &solver.hvp).await?;
        let eps = op.eps;
        let s = estimate(
            |v| op.apply_flat(v),
            eps,
            p,
            &cfg,
            warm,
            solver.seed,
            &model.device(),
            Instant::now(),
        )
        .await?;
        values.push(s.top());
        residuals.push(s.residuals[0]);
        products += s.products;
    }
    let (mean, sd) = mean_sd(&values);
    Ok(FoldSharpness {
        values,
        residuals,
        mean,
        sd,
        products,
        wall_s: t0.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stratified_round_robin_is_a_balanced_partition() {
        // 3 classes with 7, 5 and 2 examples, interleaved
        let labels: Vec<u32> = [0, 1, 0, 2, 0, 1, 0, 0, 1, 2, 1, 0, 1, 0].to_vec();
        let folds = assign(&labels, 4);
        let mut all: Vec<usize> = folds.iter().flatten().copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..labels.len()).collect::<Vec<_>>(), "a partition");
        let sizes: Vec<usize> = folds.iter().map(Vec::len).collect();
        assert!(
            sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1,
            "{sizes:?}"
        );
        for c in 0..3u32 {
            let n_c = labels.iter().filter(|&&y| y == c).count();
            for f in &folds {
                let in_f = f.iter().filter(|&&i| labels[i] == c).count();
                assert!(
                    in_f == n_c / 4 || in_f == n_c.div_ceil(4),
                    "class {c}: {in_f} of {n_c}"
                );
            }
        }
        assert!(folds.iter().all(|f| f.windows(2).all(|w| w[0] < w[1])));
        // class 0 = indices 0,2,4,6,7,11,13 → folds 0,1,2,3,0,1,2; class 1 (1,5,8,10,12)
        // continues at fold 3 → 3,0,1,2,3; class 2 (3,9) → 0,1
        assert_eq!(folds[0], [0, 3, 5, 7]);
        assert_eq!(folds[3], [1, 6, 12]);
    }

    #[test]
    fn fold_count_is_checked() {
        let data = Dataset {
            x: vec![0.0; 3],
            y: vec![0, 1, 0],
            input_shape: vec![1],
            classes: 2,
            name: "tiny".into(),
        };
        let dev = Device::flex();
        for k in [1usize, 4] {
            let e = Folds::new(&data, &LossConfig::default(), k, 8, &dev)
                .err()
                .unwrap()
                .to_string();
            assert!(e.contains("measure.fold_count must be in 2..=3"), "{e}");
        }
        let f = Folds::new(&data, &LossConfig::default(), 3, 8, &dev).unwrap();
        assert_eq!(f.indices, [vec![0], vec![2], vec![1]]);
        assert_eq!(f.samples[2].chunks[0].y, [1]);
    }
}
