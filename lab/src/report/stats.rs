//! Summary statistics of a sweep: mean ± sd over seeds, and the rank
//! correlations (Spearman's ρ, Kendall's τ_b) between the generalisation gap
//! and a curvature or Jacobian quantity.

/// Mean and sample standard deviation (n − 1 denominator; 0 for one value).
pub fn mean_sd(xs: &[f64]) -> Option<(f64, f64)> {
    if xs.is_empty() {
        return None;
    }
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let sd = if xs.len() > 1 {
        (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
    } else {
        0.0
    };
    Some((mean, sd))
}

/// Ranks 1..n, ties given the average of the ranks they span.
pub fn ranks(xs: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..xs.len()).collect();
    order.sort_by(|&a, &b| xs[a].total_cmp(&xs[b]));
    let mut r = vec![0.0; xs.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && xs[order[j + 1]] == xs[order[i]] {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        for &k in &order[i..=j] {
            r[k] = avg;
        }
        i = j + 1;
    }
    r
}

/// Pearson's correlation; `None` when either side is constant or n < 2.
pub fn pearson(x: &[f64], y: &[f64]) -> Option<f64> {
    let n = x.len();
    if n < 2 || n != y.len() {
        return None;
    }
    let (mx, my) = (
        x.iter().sum::<f64>() / n as f64,
        y.iter().sum::<f64>() / n as f64,
    );
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx).powi(2);
        syy += (b - my).powi(2);
    }
    (sxx > 0.0 && syy > 0.0).then(|| sxy / (sxx * syy).sqrt())
}

/// Spearman's ρ: Pearson's correlation of the (tie-averaged) ranks; with no
/// ties, 1 − 6Σd²/(n(n² − 1)). Needs n ≥ 3.
pub fn spearman(x: &[f64], y: &[f64]) -> Option<f64> {
    if x.len() < 3 {
        return None;
    }
    pearson(&ranks(x), &ranks(y))
}

/// Kendall's τ_b = (n_c − n_d)/√((n₀ − n₁)(n₀ − n₂)), with n₀ = n(n − 1)/2
/// and n₁, n₂ the pairs tied in x, in y. Needs n ≥ 3.
pub fn kendall_tau_b(x: &[f64], y: &[f64]) -> Option<f64> {
    let n = x.len();
    if n < 3 || n != y.len() {
        return None;
    }
    let (mut conc, mut disc, mut tx, mut ty) = (0i64, 0i64, 0i64, 0i64);
    for i in 0..n {
        for j in i + 1..n {
            let dx = (x[i] - x[j]).signum() * (x[i] != x[j]) as i32 as f64;
            let dy = (y[i] - y[j]).signum() * (y[i] != y[j]) as i32 as f64;
            if dx == 0.0 {
                tx += 1;
            }
            if dy == 0.0 {
                ty += 1;
            }
            if dx * dy > 0.0 {
                conc += 1;
            } else if dx * dy < 0.0 {
                disc += 1;
            }
        }
    }
    let n0 = (n * (n - 1) / 2) as i64;
    let denom = (((n0 - tx) * (n0 - ty)) as f64).sqrt();
    (denom > 0.0).then(|| (conc - disc) as f64 / denom)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed() {
        // x = 1..5, y = [1, 3, 2, 5, 4]: d = [0, 1, −1, 1, −1], Σd² = 4,
        // ρ = 1 − 6·4/(5·24) = 0.8. Pairs: 10, discordant (2,3), (4,5): τ = (8 − 2)/10 = 0.6.
        let x = [1.0, 2.0, 3.0, 4.0, 5.0];
        let y = [1.0, 3.0, 2.0, 5.0, 4.0];
        assert!((spearman(&x, &y).unwrap() - 0.8).abs() < 1e-12);
        assert!((kendall_tau_b(&x, &y).unwrap() - 0.6).abs() < 1e-12);
        // Reversed: −1 for both.
        let r: Vec<f64> = x.iter().rev().copied().collect();
        assert!((spearman(&x, &r).unwrap() + 1.0).abs() < 1e-12);
        assert!((kendall_tau_b(&x, &r).unwrap() + 1.0).abs() < 1e-12);
        // Ties: ranks of [10, 20, 20, 30] are [1, 2.5, 2.5, 4].
        assert_eq!(ranks(&[10.0, 20.0, 20.0, 30.0]), vec![1.0, 2.5, 2.5, 4.0]);
        // scipy.stats.kendalltau([1,2,2,3],[1,2,3,3]) = 0.8 (τ_b): n0 = 6,
        // tx = 1, ty = 1, conc = 4, disc = 0 → 4/√(5·5) = 0.8.
        let t = kendall_tau_b(&[1.0, 2.0, 2.0, 3.0], &[1.0, 2.0, 3.0, 3.0]).unwrap();
        assert!((t - 0.8).abs() < 1e-12);
        // scipy.stats.spearmanr([1,2,2,3],[1,2,3,3]) = 5/6: Pearson of the
        // ranks [1,2.5,2.5,4] and [1,2,3.5,3.5], Σdxdy = 3.75, Σdx² = Σdy² = 4.5.
        let s = spearman(&[1.0, 2.0, 2.0, 3.0], &[1.0, 2.0, 3.0, 3.0]).unwrap();
        assert!((s - 5.0 / 6.0).abs() < 1e-12);
        assert_eq!(spearman(&[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0]), None);
        assert_eq!(spearman(&[1.0, 2.0], &[1.0, 2.0]), None);
    }

    #[test]
    fn mean_and_sd() {
        let (m, s) = mean_sd(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]).unwrap();
        assert_eq!(m, 5.0);
        assert!((s - (32.0f64 / 7.0).sqrt()).abs() < 1e-12);
        assert_eq!(mean_sd(&[3.0]), Some((3.0, 0.0)));
        assert_eq!(mean_sd(&[]), None);
    }
}
