//! Axis ticks for every plot: the CLI's run plot and report figures (the
//! `curvlab-lab` crate) and the browser's panels (the `web` crate) all take
//! their ticks and tick labels from here, so they agree.
//!
//! - [`linear`]: about `target` "nice" ticks, 1, 2, 2.5 or 5 × 10^k apart,
//!   with minor ticks halfway between;
//! - [`log`]: decade ticks (every 2nd, 3rd, … decade over many decades),
//!   1-2-5 ticks over less than three decades, linear ticks over less than a
//!   factor of ~2.5;
//! - labels: one style per axis, plain decimals or, when the ticks are below
//!   1e-3 or from 1e5 up, mantissa and exponent (`2.5e5`);
//! - [`looks_logarithmic`]: whether a set of values reads better on a log axis.
//!
//! Pure functions of numbers: ticks are values in data units (not log10),
//! drawing is the callers'.

/// Ticks of one axis, in data units, ascending.
#[derive(Clone, Debug, PartialEq)]
pub struct Ticks {
    /// Labelled ticks (and bold grid lines).
    pub major: Vec<f64>,
    /// Unlabelled ticks (light grid lines).
    pub minor: Vec<f64>,
    /// The label of each major tick.
    pub labels: Vec<String>,
}

/// Tick labels switch to mantissa–exponent form outside this magnitude range.
const PLAIN: std::ops::Range<f64> = 1e-3..1e5;

/// A step m·10^e with m ∈ {1, 2, 2.5, 5}: its multiples k·m·10^e are computed
/// as (k·m)/10^−e, the double nearest the decimal (0.6, not 0.6000000000000001).
#[derive(Clone, Copy, Debug)]
struct Step {
    m: f64,
    e: i32,
}

impl Step {
    fn scale(x: f64, e: i32) -> f64 {
        if e >= 0 {
            x * 10f64.powi(e)
        } else {
            x / 10f64.powi(-e)
        }
    }

    fn value(self) -> f64 {
        Step::scale(self.m, self.e)
    }

    fn nth(self, k: f64) -> f64 {
        Step::scale(k * self.m, self.e)
    }

    /// About `span / target`, rounded up to 1, 2, 2.5 or 5 × 10^k.
    fn nice(span: f64, target: usize) -> Option<Step> {
        let raw = span / target.max(1) as f64;
        if !(raw > 0.0 && raw.is_finite()) {
            return None;
        }
        let mut e = raw.log10().floor() as i32;
        let mant = raw / 10f64.powi(e);
        let m = match [1.0, 2.0, 2.5, 5.0]
            .into_iter()
            .find(|n| mant <= n * (1.0 + 1e-12))
        {
            Some(m) => m,
            None => {
                e += 1;
                1.0
            }
        };
        Some(Step { m, e })
    }

    /// Half of this step, itself a tick step (2.5 → 1.25 is kept as is).
    fn half(self) -> Step {
        if self.m == 1.0 {
            Step {
                m: 5.0,
                e: self.e - 1,
            }
        } else {
            Step {
                m: self.m / 2.0,
                e: self.e,
            }
        }
    }

    /// The multiples of this step in [lo, hi] (at most 200).
    fn multiples(self, lo: f64, hi: f64) -> Vec<f64> {
        let step = self.value();
        let mut out = vec![];
        let mut k = (lo / step - 1e-9).ceil();
        while k * step <= hi + step * 1e-9 && out.len() < 200 {
            out.push(if k == 0.0 { 0.0 } else { self.nth(k) });
            k += 1.0;
        }
        out
    }
}

/// About `span / target`, rounded up to 1, 2, 2.5 or 5 times a power of ten;
/// 1 for an empty or non-finite span.
pub fn nice_step(span: f64, target: usize) -> f64 {
    Step::nice(span, target).map_or(1.0, Step::value)
}

/// About `target` ticks over [lo, hi], a [`nice_step`] apart but never less
/// than `min_step` (1 for an axis of whole numbers, 0 for none), with minor
/// ticks halfway between (when that is not below `min_step`). Labels: every
/// tick with the decimals the step needs, or, when the largest tick is below
/// 1e-3 or from 1e5 up, all with the exponent of the largest (`1.5e5`).
pub fn linear(lo: f64, hi: f64, target: usize, min_step: f64) -> Ticks {
    let Some(mut step) = Step::nice(hi - lo, target) else {
        return Ticks {
            labels: vec![format_sig(lo, 3, false)],
            major: vec![lo],
            minor: vec![],
        };
    };
    if step.value() < min_step {
        step = Step::nice(min_step, 1).unwrap_or(step);
    }
    let major = step.multiples(lo, hi);
    let half = step.half();
    let minor = if half.value() >= min_step {
        half.multiples(lo, hi)
            .into_iter()
            .filter(|v| !major.contains(v))
            .collect()
    } else {
        vec![]
    };
    let max_abs = major.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    Ticks {
        labels: major
            .iter()
            .map(|v| format_multiple(*v, step.value(), max_abs))
            .collect(),
        major,
        minor,
    }
}

/// Ticks of a log axis over [lo, hi] (data units, 0 < lo < hi): powers of ten
/// (every ⌈decades/6⌉-th one when there are more than six, with 2…9 × 10^k
/// minor ticks over at most six); over fewer than three decades 1, 2, 5 × 10^k
/// (3, 4, 6…9 × 10^k minor); over less than a factor of ~2.5, [`linear`]
/// ticks. Labels: three significant digits, all in exponent form when any
/// tick is below 1e-3 or from 1e5 up.
pub fn log(lo: f64, hi: f64) -> Ticks {
    let (l, h) = (lo.log10(), hi.log10());
    if !(l.is_finite() && h.is_finite() && h > l) {
        return linear(lo, hi, 5, 0.0);
    }
    let in_range = |v: f64| v.log10() >= l - 1e-9 && v.log10() <= h + 1e-9;
    let (d0, d1) = (l.floor() as i32, h.ceil() as i32);
    let mantissa_ticks = |ms: &[f64]| -> Vec<f64> {
        (d0..=d1)
            .flat_map(|d| ms.iter().map(move |m| Step::scale(*m, d)))
            .filter(|v| in_range(*v))
            .collect()
    };
    let labelled = |major: Vec<f64>, minor: Vec<f64>| {
        let sci = major.iter().any(|v| !PLAIN.contains(v));
        Ticks {
            labels: major.iter().map(|v| format_sig(*v, 3, sci)).collect(),
            major,
            minor,
        }
    };
    let decades: Vec<i32> = ((l - 1e-9).ceil() as i32..=(h + 1e-9).floor() as i32).collect();
    if decades.len() >= 3 {
        let stride = decades.len().div_ceil(6) as i32;
        let major = decades
            .iter()
            .filter(|d| d.rem_euclid(stride) == 0)
            .map(|&d| Step::scale(1.0, d))
            .collect();
        let minor = if decades.len() <= 6 {
            mantissa_ticks(&[2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0])
        } else {
            vec![]
        };
        return labelled(major, minor);
    }
    let major = mantissa_ticks(&[1.0, 2.0, 5.0]);
    if major.len() >= 2 {
        return labelled(major, mantissa_ticks(&[3.0, 4.0, 6.0, 7.0, 8.0, 9.0]));
    }
    let mut t = linear(lo, hi, 5, 0.0);
    t.minor.clear();
    t
}

/// Digits after the decimal point needed to write multiples of `step`.
fn decimals_for(step: f64) -> usize {
    let mut s = step.abs();
    let mut d = 0;
    while d < 12 && (s - s.round()).abs() > 1e-6 * s.max(1.0) {
        s *= 10.0;
        d += 1;
    }
    d
}

/// The label of tick `v`, a multiple of `step`, on an axis whose largest
/// tick magnitude is `max_abs`: the decimals `step` needs (`0.25`, `200`), or,
/// when `max_abs` is below 1e-3 or from 1e5 up, the exponent of `max_abs`
/// with the mantissa decimals the step needs there (`2.5e5`, `5.0e5`).
pub fn format_multiple(v: f64, step: f64, max_abs: f64) -> String {
    if v.abs() < step * 1e-6 {
        return "0".to_string();
    }
    if max_abs > 0.0 && !PLAIN.contains(&max_abs) {
        let e = (max_abs.log10() + 1e-9).floor() as i32;
        let scale = 10f64.powi(e);
        format!("{:.*}e{}", decimals_for(step / scale), v / scale, e)
    } else {
        format!("{:.*}", decimals_for(step), v)
    }
}

/// `v` to `sig` significant digits, trailing zeros dropped; in exponent form
/// (`2e-3`, `1.5e5`) when `sci`, or when |v| is below 1e-3 or from 1e5 up.
/// Zero is `0`; NaN and ±∞ are written as Rust writes them.
pub fn format_sig(v: f64, sig: usize, sci: bool) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    let sig = sig.max(1) as i32;
    let mut e = (v.abs().log10() + 1e-9).floor() as i32;
    if !sci && PLAIN.contains(&v.abs()) {
        let d = (sig - 1 - e).max(0) as usize;
        return trim_zeros(format!("{v:.d$}"));
    }
    let mut m = trim_zeros(format!("{:.*}", (sig - 1) as usize, v / 10f64.powi(e)));
    if m.trim_start_matches('-').starts_with("10") {
        e += 1;
        m = trim_zeros(format!("{:.*}", (sig - 1) as usize, v / 10f64.powi(e)));
    }
    format!("{m}e{e}")
}

/// A value for people (hover texts, legends, "2/η = 33.3"): three
/// significant digits ([`format_sig`] without forced exponent form).
pub fn format_value(v: f64) -> String {
    format_sig(v, 3, false)
}

fn trim_zeros(s: String) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// Whether values read better on a log axis: all finite and ≥ 0, with at
/// least three positive ones spanning a factor of 20 or more (a learning rate
/// 1e-4, 1e-3, 5e-3 yes; a label smoothing 0, 0.1, 0.2 no). A zero may be
/// among them (drawn apart by the caller).
pub fn looks_logarithmic(values: &[f64]) -> bool {
    if values.iter().any(|v| !v.is_finite() || *v < 0.0) {
        return false;
    }
    let pos: Vec<f64> = values.iter().copied().filter(|v| *v > 0.0).collect();
    let (lo, hi) = pos
        .iter()
        .fold((f64::INFINITY, 0.0f64), |(l, h), v| (l.min(*v), h.max(*v)));
    pos.len() >= 3 && hi / lo >= 20.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_steps() {
        // span / target, rounded up to 1, 2, 2.5, 5 × 10^k.
        assert_eq!(nice_step(2000.0, 5), 500.0); // 400 → 500
        assert_eq!(nice_step(1000.0, 5), 200.0); // 200 → 200
        assert_eq!(nice_step(1200.0, 5), 250.0); // 240 → 250
        assert_eq!(nice_step(1.0, 5), 0.2);
        assert_eq!(nice_step(0.9, 1), 1.0); // 0.9 → 1
        assert_eq!(nice_step(6.0, 1), 10.0); // 6 → 10
        assert_eq!(nice_step(0.0, 5), 1.0);
        assert_eq!(nice_step(f64::NAN, 5), 1.0);
    }

    #[test]
    fn linear_ticks() {
        let t = linear(0.0, 2000.0, 5, 0.0);
        assert_eq!(t.major, [0.0, 500.0, 1000.0, 1500.0, 2000.0]);
        assert_eq!(t.minor, [250.0, 750.0, 1250.0, 1750.0]);
        assert_eq!(t.labels, ["0", "500", "1000", "1500", "2000"]);
        // Multiples are the doubles nearest the decimals: 0.6, not 0.6000000000000001.
        let t = linear(0.0, 1.0, 5, 0.0);
        assert_eq!(t.major, [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]);
        assert_eq!(t.labels, ["0", "0.2", "0.4", "0.6", "0.8", "1.0"]);
        // A step of 2.5 needs one more decimal: 0.25 apart → two decimals everywhere.
        let t = linear(0.0, 1.2, 5, 0.0);
        assert_eq!(t.major, [0.0, 0.25, 0.5, 0.75, 1.0]);
        assert_eq!(t.labels, ["0", "0.25", "0.50", "0.75", "1.00"]);
        // Steps of whole numbers: a span of 3 over 8 ticks would be 0.5 apart.
        let t = linear(0.0, 3.0, 8, 1.0);
        assert_eq!(t.major, [0.0, 1.0, 2.0, 3.0]);
        assert!(t.minor.is_empty());
        // Negative ranges and a range not starting on a tick.
        let t = linear(-0.5, 10.0, 5, 0.0);
        assert_eq!(t.major, [0.0, 2.5, 5.0, 7.5, 10.0]);
        // Large ticks share the exponent of the largest.
        let t = linear(0.0, 4e5, 4, 0.0);
        assert_eq!(t.labels, ["0", "1e5", "2e5", "3e5", "4e5"]);
        let t = linear(0.0, 5e-4, 5, 0.0);
        assert_eq!(t.labels, ["0", "1e-4", "2e-4", "3e-4", "4e-4", "5e-4"]);
        // An empty range: one tick at it.
        assert_eq!(linear(3.0, 3.0, 5, 0.0).major, [3.0]);
    }

    #[test]
    fn log_ticks() {
        // Four decades: the powers of ten, 2…9 × 10^k between.
        let t = log(1e-3, 10.0);
        assert_eq!(t.major, [1e-3, 1e-2, 1e-1, 1.0, 10.0]);
        assert_eq!(t.labels, ["0.001", "0.01", "0.1", "1", "10"]);
        assert_eq!(t.minor.len(), 4 * 8);
        assert!(t.minor.contains(&0.002) && t.minor.contains(&9.0));
        // Thirteen powers of ten: every ⌈13/6⌉ = 3rd, no minor ticks; one
        // label below 1e-3, so all in exponent form.
        let t = log(1e-6, 1e6);
        assert_eq!(t.major, [1e-6, 1e-3, 1.0, 1e3, 1e6]);
        assert_eq!(t.labels, ["1e-6", "1e-3", "1e0", "1e3", "1e6"]);
        assert!(t.minor.is_empty());
        // Fewer than three decades: 1-2-5.
        let t = log(0.1, 1.0);
        assert_eq!(t.major, [0.1, 0.2, 0.5, 1.0]);
        assert_eq!(t.labels, ["0.1", "0.2", "0.5", "1"]);
        let t = log(0.063, 3.16);
        assert_eq!(t.major, [0.1, 0.2, 0.5, 1.0, 2.0]);
        assert_eq!(
            t.minor,
            [0.07, 0.08, 0.09, 0.3, 0.4, 0.6, 0.7, 0.8, 0.9, 3.0]
        );
        // Less than a factor of 2.5: linear ticks in value space.
        let t = log(2.24, 2.34);
        assert_eq!(t.major, [2.24, 2.26, 2.28, 2.3, 2.32, 2.34]);
        assert_eq!(t.labels[3], "2.30");
        assert!(t.minor.is_empty());
    }

    #[test]
    fn labels() {
        assert_eq!(format_multiple(0.15, 0.05, 0.3), "0.15");
        assert_eq!(format_multiple(0.1, 0.05, 0.3), "0.10");
        assert_eq!(format_multiple(200.0, 50.0, 400.0), "200");
        assert_eq!(format_multiple(0.0, 0.05, 0.3), "0");
        assert_eq!(format_multiple(1e-17, 0.05, 0.3), "0");
        assert_eq!(format_multiple(2e5, 1e5, 4e5), "2e5");
        assert_eq!(format_multiple(2.5e5, 2.5e5, 1e6), "0.25e6");
        assert_eq!(format_multiple(-3.0, 1.0, 3.0), "-3");

        assert_eq!(format_sig(0.002, 3, false), "0.002");
        assert_eq!(format_sig(0.002, 3, true), "2e-3");
        assert_eq!(format_sig(50.0, 3, false), "50");
        assert_eq!(format_sig(1e-4, 3, false), "1e-4");
        assert_eq!(format_sig(5e-6, 3, false), "5e-6");
        assert_eq!(format_sig(2e5, 3, false), "2e5");
        assert_eq!(format_sig(1.0, 3, true), "1e0");
        assert_eq!(format_sig(9.9996e6, 3, false), "1e7");
        assert_eq!(format_sig(-0.0123456, 3, false), "-0.0123");
        assert_eq!(format_sig(f64::NAN, 3, false), "NaN");

        assert_eq!(format_value(33.333333), "33.3");
        assert_eq!(format_value(2000.0), "2000");
        assert_eq!(format_value(12345.6), "12346");
        assert_eq!(format_value(0.06), "0.06");
        assert_eq!(format_value(0.123456), "0.123");
        assert_eq!(format_value(1.5e-5), "1.5e-5");
        assert_eq!(format_value(0.0), "0");
    }

    #[test]
    fn logarithmic_values() {
        assert!(looks_logarithmic(&[0.0, 1e-4, 1e-3, 5e-3]));
        assert!(looks_logarithmic(&[32.0, 128.0, 1024.0]));
        // A factor of 20 is enough, of 19 not.
        assert!(looks_logarithmic(&[1.0, 2.0, 20.0]));
        assert!(!looks_logarithmic(&[1.0, 2.0, 19.0]));
        // Two positive values are not a scale.
        assert!(!looks_logarithmic(&[0.0, 1e-4, 1.0]));
        assert!(!looks_logarithmic(&[0.0, 0.1, 0.2]));
        assert!(!looks_logarithmic(&[-1.0, 1e-3, 1e-2, 1.0]));
        // Not finite: not a log axis (∞ would make any range look logarithmic).
        assert!(!looks_logarithmic(&[1e-3, 1e-2, f64::INFINITY]));
        assert!(!looks_logarithmic(&[1e-3, 1e-2, 1.0, f64::NAN]));
        assert!(!looks_logarithmic(&[]));
    }
}
