//! What the page says about the Theorem 5.1 data bound B, honestly: B is a
//! lower bound on max_i ‖J_i‖ only once every training example is fitted
//! within half the distance between targets (ℓ < Δ/2); before that it is 0
//! and says nothing. So the page shows B where it is positive, and otherwise
//! ℓ against Δ/2 — how far the fit still is from forcing the Jacobian up.
//!
//! ℓ = √(2·max_i c_i) (from the per-example losses), Δ = ‖t_i − t_j‖ for
//! examples of different classes (√2·(1 − α)·s_out), and
//! B = (Δ − 2ℓ) / min_{y_i≠y_j} ‖x_i − x_j‖ when positive.

use curvlab::record::MetricsRow;

use curvlab::axis::format_value;

/// The bound's state at one row.
#[derive(Clone, Debug, PartialEq)]
pub struct BoundNote {
    /// ℓ at this row.
    pub ell: f64,
    /// Δ/2.
    pub half_gap: f64,
    /// B (0 while ℓ ≥ Δ/2).
    pub b: f64,
    /// max_i ‖J_i‖ of the Jacobian the bound is about, when measured.
    pub jmax: Option<f64>,
}

impl BoundNote {
    /// From a row and Δ (the loss's target gap); `None` when the row has no bound.
    pub fn of(row: &MetricsRow, gap: f64, jmax: Option<f64>) -> Option<BoundNote> {
        Some(BoundNote {
            ell: row.bound_ell?,
            half_gap: gap / 2.0,
            b: row.bound_b?,
            jmax,
        })
    }

    /// True when the bound says something (B > 0).
    pub fn active(&self) -> bool {
        self.b > 0.0
    }

    /// ℓ / (Δ/2): below 1 the bound is active.
    pub fn fit_ratio(&self) -> f64 {
        self.ell / self.half_gap
    }

    /// One or two sentences for the page.
    pub fn sentence(&self) -> String {
        if self.active() {
            let j = self
                .jmax
                .map(|j| format!(" (measured: {})", format_value(j)))
                .unwrap_or_default();
            format!(
                "Theorem 5.1: every example is fitted within Δ/2 (ℓ = {} < Δ/2 = {}), so the data force max‖J‖ ≥ B = {}{j}.",
                format_value(self.ell),
                format_value(self.half_gap),
                format_value(self.b)
            )
        } else {
            format!(
                "Theorem 5.1's bound B is 0 so far: it needs every example fitted within Δ/2, and the worst-fitted one is not yet (ℓ = {} > Δ/2 = {}).",
                format_value(self.ell),
                format_value(self.half_gap)
            )
        }
    }

    /// The legend's short form.
    pub fn short(&self) -> String {
        if self.active() {
            format!("bound B {}", format_value(self.b))
        } else {
            format!(
                "bound: ℓ {} > Δ/2 {}",
                format_value(self.ell),
                format_value(self.half_gap)
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_bound_says_why_and_active_bound_says_what() {
        let gap = std::f64::consts::SQRT_2;
        let row = MetricsRow {
            bound_ell: Some(1.2),
            bound_b: Some(0.0),
            ..Default::default()
        };
        let n = BoundNote::of(&row, gap, Some(0.9)).unwrap();
        assert!(!n.active());
        assert!(n.fit_ratio() > 1.0);
        let s = n.sentence();
        assert!(
            s.contains("B is 0") && s.contains("ℓ = 1.2 > Δ/2 = 0.707"),
            "{s}"
        );
        assert_eq!(n.short(), "bound: ℓ 1.2 > Δ/2 0.707");
        let row = MetricsRow {
            bound_ell: Some(0.3),
            bound_b: Some(0.25),
            ..Default::default()
        };
        let n = BoundNote::of(&row, gap, Some(0.9)).unwrap();
        assert!(n.active());
        assert!(
            n.sentence().contains("B = 0.25 (measured: 0.9)"),
            "{}",
            n.sentence()
        );
        assert_eq!(n.short(), "bound B 0.25");
        assert!(BoundNote::of(&MetricsRow::default(), gap, None).is_none());
    }
}
