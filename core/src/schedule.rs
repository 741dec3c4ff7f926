//! Learning-rate schedules (issue 3, "Regimes"): constant, step decay ("large
//! then decayed" is step decay with one milestone), cosine annealing, each with
//! an optional linear warm-up.
//!
//! [`ScheduleConfig::lr_at`] gives the learning rate of the update taken at
//! `step` (0-based) of a run of `total_steps` updates, as a pure function of
//! the step, so a resumed run needs no scheduler state. With T = `total_steps`
//! and base = `base_lr`, the rate is `base · warm(step) · shape(step)`:
//!
//! - **Warm-up** over W = round(`warmup`·T) steps:
//!   warm(s) = (s + 1)/(W + 1) for s < W, and 1 from step W on. The first
//!   update uses base/(W + 1), the last warm-up update base·W/(W + 1), step W
//!   the full base. This is exactly PyTorch's
//!   `LinearLR(start_factor = 1/(W+1), end_factor = 1, total_iters = W)`
//!   stepped once per update; no update is wasted at lr 0.
//! - **constant**: shape(s) = 1.
//! - **step** (PyTorch `MultiStepLR`): milestones m_j = round(f_j·T)
//!   (rounding half away from zero, as do W above and every rounding here);
//!   shape(s) = γ^{#{j : m_j ≤ s}}, i.e. the update taken at step m_j is the
//!   first with the decayed rate. Two fractions that round to the same step
//!   decay twice there (as `MultiStepLR` does with a repeated milestone).
//!   Milestones are absolute steps, counted from step 0, so a milestone inside
//!   the warm-up multiplies the warm-up ramp.
//! - **cosine** (PyTorch `CosineAnnealingLR` started after the warm-up, as in
//!   `SequentialLR([LinearLR, CosineAnnealingLR(T_max = T − W)], [W])`):
//!   warm-up steps ramp to base as above (shape = 1 there); from step W,
//!   lr = floor + (base − floor)·(1 + cos(π·(s − W)/(T − W)))/2 with
//!   floor = base·`final_lr_fraction`; steps s ≥ T give the floor. The last
//!   update (s = T − 1) is thus one step above the floor, as in PyTorch.
//!
//! Fields that a kind does not use (`milestones`/`gamma` outside step decay,
//! `final_lr_fraction` outside cosine) are ignored, but still validated.

use serde::{Deserialize, Serialize};

use crate::config::settings;
use crate::{Error, Result};

/// Which schedule shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ScheduleKind {
    /// The base rate throughout (after warm-up).
    #[default]
    Constant,
    /// Multiply by `gamma` at each milestone (PyTorch `MultiStepLR`).
    Step,
    /// Cosine annealing from the end of warm-up to the last step.
    Cosine,
}

impl std::str::FromStr for ScheduleKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "constant" => Ok(ScheduleKind::Constant),
            "step" => Ok(ScheduleKind::Step),
            "cosine" => Ok(ScheduleKind::Cosine),
            o => Err(Error::Config(format!(
                "unknown schedule '{o}' (expected constant, step or cosine)"
            ))),
        }
    }
}

settings! {
    /// A learning-rate schedule, relative to the base rate and the run's length.
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    pub struct ScheduleConfig {
        /// constant | step | cosine.
        pub kind: ScheduleKind = ScheduleKind::Constant,
        /// Step decay: fractions of the total steps in (0, 1], strictly increasing;
        /// the rate is multiplied by `gamma` from step round(fraction·T) on.
        pub milestones: Vec<f64> = Vec::new(),
        /// Step decay factor in (0, 1] (default 0.1).
        pub gamma: f64 = 0.1,
        /// Fraction of the total steps of linear warm-up, in [0, 1) (default 0).
        pub warmup: f64 = 0.0,
        /// Cosine floor as a fraction of the base rate, in [0, 1] (default 0).
        pub final_lr_fraction: f64 = 0.0,
    }
}

impl ScheduleConfig {
    /// "Large then decayed": the base rate until `fraction` of the run, then
    /// base·`gamma`.
    pub fn large_then_decayed(fraction: f64, gamma: f64) -> Self {
        ScheduleConfig {
            kind: ScheduleKind::Step,
            milestones: vec![fraction],
            gamma,
            ..Default::default()
        }
    }

    /// Checks the values; each error is one line naming the field.
    pub fn validate(&self) -> Result<()> {
        for (i, &m) in self.milestones.iter().enumerate() {
            if !(m > 0.0 && m <= 1.0) {
                return Err(Error::Config(format!(
                    "schedule milestones must be fractions of the run in (0, 1], got {m} at index {i}"
                )));
            }
            if i > 0 && m <= self.milestones[i - 1] {
                return Err(Error::Config(format!(
                    "schedule milestones must be strictly increasing, got {} then {m} at index {i}",
                    self.milestones[i - 1]
                )));
            }
        }
        if self.kind == ScheduleKind::Step && self.milestones.is_empty() {
            return Err(Error::Config(
                "step schedule needs at least one milestone (use kind = \"constant\" for none)"
                    .into(),
            ));
        }
        if !(self.gamma > 0.0 && self.gamma <= 1.0) {
            return Err(Error::Config(format!(
                "schedule gamma must be in (0, 1], got {}",
                self.gamma
            )));
        }
        if !(self.warmup >= 0.0 && self.warmup < 1.0) {
            return Err(Error::Config(format!(
                "schedule warmup must be a fraction in [0, 1), got {}",
                self.warmup
            )));
        }
        if !(self.final_lr_fraction >= 0.0 && self.final_lr_fraction <= 1.0) {
            return Err(Error::Config(format!(
                "schedule final_lr_fraction must be in [0, 1], got {}",
                self.final_lr_fraction
            )));
        }
        Ok(())
    }

    /// Number of warm-up steps W = round(`warmup`·`total_steps`).
    pub fn warmup_steps(&self, total_steps: u64) -> u64 {
        (self.warmup * total_steps as f64).round() as u64
    }

    /// Step-decay milestones as steps, round(fraction·`total_steps`).
    pub fn milestone_steps(&self, total_steps: u64) -> Vec<u64> {
        self.milestones
            .iter()
            .map(|&f| (f * total_steps as f64).round() as u64)
            .collect()
    }

    /// The learning rate for the update taken at `step` (0-based) of a run of
    /// `total_steps` updates (see the module documentation for the formulas).
    /// Steps at or beyond `total_steps` continue the schedule (cosine stays at
    /// its floor). Assumes a validated config.
    pub fn lr_at(&self, base_lr: f64, step: u64, total_steps: u64) -> f64 {
        let w = self.warmup_steps(total_steps);
        let warm = if step < w {
            (step + 1) as f64 / (w + 1) as f64
        } else {
            1.0
        };
        let shape = match self.kind {
            ScheduleKind::Constant => base_lr,
            ScheduleKind::Step => {
                let k = self
                    .milestone_steps(total_steps)
                    .iter()
                    .filter(|&&m| m <= step)
                    .count();
                base_lr * self.gamma.powi(k as i32)
            }
            ScheduleKind::Cosine => {
                let floor = base_lr * self.final_lr_fraction;
                if step < w {
                    base_lr
                } else if step >= total_steps {
                    floor
                } else {
                    // w ≤ step < total_steps, so total_steps − w ≥ 1.
                    let progress = (step - w) as f64 / (total_steps - w) as f64;
                    floor
                        + (base_lr - floor) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
                }
            }
        };
        warm * shape
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * b.abs().max(1.0)
    }

    fn lrs(cfg: &ScheduleConfig, base: f64, total: u64) -> Vec<f64> {
        (0..total).map(|s| cfg.lr_at(base, s, total)).collect()
    }

    fn assert_all_close(got: &[f64], want: &[f64]) {
        assert_eq!(got.len(), want.len());
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!(close(*g, *w), "step {i}: got {g}, want {w}");
        }
    }

    #[test]
    fn constant_is_base() {
        let cfg = ScheduleConfig::default();
        cfg.validate().unwrap();
        assert_all_close(&lrs(&cfg, 0.08, 5), &[0.08; 5]);
        assert_eq!(cfg.lr_at(0.08, 1000, 5), 0.08);
    }

    #[test]
    fn constant_with_warmup() {
        // T = 10, warmup 0.3 → W = 3: factors 1/4, 2/4, 3/4, then 1.
        let cfg = ScheduleConfig {
            warmup: 0.3,
            ..Default::default()
        };
        cfg.validate().unwrap();
        assert_eq!(cfg.warmup_steps(10), 3);
        let want = [0.25, 0.5, 0.75, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0];
        assert_all_close(&lrs(&cfg, 1.0, 10), &want);
        // Base 0.4: first step 0.1.
        assert!(close(cfg.lr_at(0.4, 0, 10), 0.1));
    }

    #[test]
    fn step_decay_boundaries() {
        // T = 10, milestones 0.5, 0.75 → steps 5 and round(7.5) = 8; γ = 0.1.
        let cfg = ScheduleConfig {
            kind: ScheduleKind::Step,
            milestones: vec![0.5, 0.75],
            gamma: 0.1,
            ..Default::default()
        };
        cfg.validate().unwrap();
        assert_eq!(cfg.milestone_steps(10), vec![5, 8]);
        let want = [1.0, 1.0, 1.0, 1.0, 1.0, 0.1, 0.1, 0.1, 0.01, 0.01];
        assert_all_close(&lrs(&cfg, 1.0, 10), &want);
        // Step 4 is the last at the base rate, step 5 the first decayed.
        assert!(close(cfg.lr_at(2.0, 4, 10), 2.0));
        assert!(close(cfg.lr_at(2.0, 5, 10), 0.2));
    }

    #[test]
    fn large_then_decayed_is_one_milestone() {
        let cfg = ScheduleConfig::large_then_decayed(0.5, 0.1);
        cfg.validate().unwrap();
        assert_eq!(cfg.kind, ScheduleKind::Step);
        let got = lrs(&cfg, 0.5, 4);
        assert_all_close(&got, &[0.5, 0.5, 0.05, 0.05]);
        // A milestone at 1.0 never decays within the run.
        let at_end = ScheduleConfig::large_then_decayed(1.0, 0.1);
        assert_all_close(&lrs(&at_end, 0.5, 4), &[0.5; 4]);
        assert!(close(at_end.lr_at(0.5, 4, 4), 0.05));
    }

    #[test]
    fn step_decay_with_warmup_multiplies() {
        // T = 10, W = round(0.2·10) = 2, milestone 0.3 → step 3, γ = 0.5.
        let cfg = ScheduleConfig {
            kind: ScheduleKind::Step,
            milestones: vec![0.3],
            gamma: 0.5,
            warmup: 0.2,
            ..Default::default()
        };
        cfg.validate().unwrap();
        let want = [1.0 / 3.0, 2.0 / 3.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5];
        assert_all_close(&lrs(&cfg, 1.0, 10), &want);
    }

    #[test]
    fn cosine_without_warmup() {
        // T = 4, floor 0: lr = (1 + cos(π s/4))/2.
        let cfg = ScheduleConfig {
            kind: ScheduleKind::Cosine,
            ..Default::default()
        };
        cfg.validate().unwrap();
        let h = 0.5 * std::f64::consts::FRAC_1_SQRT_2;
        let want = [1.0, 0.5 + h, 0.5, 0.5 - h];
        assert_all_close(&lrs(&cfg, 1.0, 4), &want);
        // At and after the end: the floor.
        assert_eq!(cfg.lr_at(1.0, 4, 4), 0.0);
        assert_eq!(cfg.lr_at(1.0, 99, 4), 0.0);
    }

    #[test]
    fn cosine_with_warmup_and_floor() {
        // T = 6, warmup 1/3 → W = 2: 1/3, 2/3 of base; then cosine over T − W = 4
        // steps from base 0.9 to floor 0.1·0.9 = 0.09:
        // lr = 0.09 + 0.81·(1 + cos(π k/4))/2, k = s − 2.
        let cfg = ScheduleConfig {
            kind: ScheduleKind::Cosine,
            warmup: 1.0 / 3.0,
            final_lr_fraction: 0.1,
            ..Default::default()
        };
        cfg.validate().unwrap();
        assert_eq!(cfg.warmup_steps(6), 2);
        let h = 0.5 * std::f64::consts::FRAC_1_SQRT_2;
        let want = [
            0.3,
            0.6,
            0.9,
            0.09 + 0.81 * (0.5 + h),
            0.09 + 0.81 * 0.5,
            0.09 + 0.81 * (0.5 - h),
        ];
        assert_all_close(&lrs(&cfg, 0.9, 6), &want);
        assert!(close(cfg.lr_at(0.9, 6, 6), 0.09));
        assert!(close(cfg.lr_at(0.9, 7, 6), 0.09));
    }

    #[test]
    fn cosine_degenerate_lengths() {
        // Warm-up rounding up to the whole run: all warm-up, then the floor.
        let cfg = ScheduleConfig {
            kind: ScheduleKind::Cosine,
            warmup: 0.9,
            final_lr_fraction: 0.2,
            ..Default::default()
        };
        assert_eq!(cfg.warmup_steps(1), 1);
        assert!(close(cfg.lr_at(1.0, 0, 1), 0.5));
        assert!(close(cfg.lr_at(1.0, 1, 1), 0.2));
        // An empty run is finite everywhere.
        assert!(cfg.lr_at(1.0, 0, 0).is_finite());
        // A single step without warm-up uses the base rate.
        let plain = ScheduleConfig {
            kind: ScheduleKind::Cosine,
            ..Default::default()
        };
        assert_eq!(plain.lr_at(0.3, 0, 1), 0.3);
    }

    #[test]
    fn validate_errors() {
        let step = |milestones: Vec<f64>| ScheduleConfig {
            kind: ScheduleKind::Step,
            milestones,
            ..Default::default()
        };
        let msg = |c: ScheduleConfig| c.validate().unwrap_err().to_string();
        assert!(msg(step(vec![0.0])).contains("(0, 1]"));
        assert!(msg(step(vec![1.5])).contains("(0, 1]"));
        assert!(msg(step(vec![f64::NAN])).contains("(0, 1]"));
        assert!(msg(step(vec![0.5, 0.3])).contains("strictly increasing"));
        assert!(msg(step(vec![0.5, 0.5])).contains("strictly increasing"));
        assert!(msg(step(vec![])).contains("at least one milestone"));
        for gamma in [0.0, -0.1, 1.5, f64::NAN] {
            let c = ScheduleConfig {
                gamma,
                ..step(vec![0.5])
            };
            assert!(msg(c).contains("gamma"), "gamma {gamma}");
        }
        for warmup in [-0.1, 1.0, f64::INFINITY, f64::NAN] {
            let c = ScheduleConfig {
                warmup,
                ..Default::default()
            };
            assert!(msg(c).contains("warmup"), "warmup {warmup}");
        }
        for f in [-0.1, 1.1, f64::NAN] {
            let c = ScheduleConfig {
                final_lr_fraction: f,
                ..Default::default()
            };
            assert!(msg(c).contains("final_lr_fraction"), "floor {f}");
        }
        // Every message is one line and says it is a config error.
        let m = msg(step(vec![0.5, 0.3]));
        assert!(m.starts_with("config error:") && !m.contains('\n'), "{m}");
        step(vec![0.25, 1.0]).validate().unwrap();
        ScheduleConfig {
            gamma: 1.0,
            warmup: 0.0,
            final_lr_fraction: 1.0,
            ..step(vec![0.5])
        }
        .validate()
        .unwrap();
    }

    #[test]
    fn serde_defaults_and_unknown_fields() {
        let c: ScheduleConfig = serde_json::from_str(r#"{"kind":"cosine","warmup":0.05}"#).unwrap();
        assert_eq!(c.kind, ScheduleKind::Cosine);
        assert_eq!(c.warmup, 0.05);
        assert_eq!(c.gamma, 0.1);
        assert_eq!(c.final_lr_fraction, 0.0);
        let d: ScheduleConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(d, ScheduleConfig::default());
        assert!(
            serde_json::from_str::<ScheduleConfig>(r#"{"kind":"cosine","warmpu":0.1}"#).is_err()
        );
        assert!(serde_json::from_str::<ScheduleConfig>(r#"{"kind":"Cosine"}"#).is_err());
        let s = ScheduleConfig::large_then_decayed(0.5, 0.1);
        let back: ScheduleConfig =
            serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
        assert_eq!("step".parse::<ScheduleKind>().unwrap(), ScheduleKind::Step);
        assert!("linear".parse::<ScheduleKind>().is_err());
    }
}
