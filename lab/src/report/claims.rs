//! The paper's claims, checked on a sweep's runs.
//!
//! A sweep file names its claims (`[[claims]]`); they travel in `sweep.json`
//! and `curvlab report` evaluates each on the finished runs, writing
//! `claims.json` and a section of `report.md`. Two kinds:
//!
//! - **trend**: the sign of Spearman's ρ between a swept setting and a
//!   quantity of each run (its final value, or its peak over training), e.g.
//!   "more label smoothing → smaller peak sharpness" (expected ρ < 0);
//! - **comparison**: |ρ(target, better)| − |ρ(target, worse)| over runs, e.g.
//!   "the gap tracks max‖J‖ better than sharpness" (expected > 0); evaluated
//!   in each group of the sweep and pooled over all runs (each distinct run
//!   configuration once: a baseline that every group repeats counts once).
//!
//! The statistics:
//! - **Stratified ρ.** A trend's runs are split into strata by the levels of
//!   the other swept settings (e.g. Fig. 3's batch sizes for its learning-rate
//!   trend); ρ is computed within each stratum and averaged with weights n_s.
//!   Strata where ρ is undefined (fewer than 3 runs, or a constant side) are
//!   left out. With one stratum this is Spearman's ρ. A comparison has one
//!   stratum (the group, or all runs when pooled).
//! - **Bootstrap interval over runs.** `resamples` times, each stratum's runs
//!   are drawn with replacement (same count) and the statistic recomputed; the
//!   interval is the (α/2, 1 − α/2) percentiles (linear interpolation between
//!   order statistics) of the resamples where it is defined. The draws come
//!   from a fixed seed, so the same runs give the same `claims.json`.
//! - **Verdict.** `holds` when the interval lies strictly on the expected side
//!   of 0, `fails` when it lies strictly on the other side, `inconclusive`
//!   otherwise (it straddles or touches 0, or fewer than half the resamples
//!   give a value, or there is no value). A "not smaller" claim
//!   (`not_decreasing`, with a stated `margin`) is a non-inferiority test:
//!   `holds` when the interval lies above −margin, `fails` when it lies below
//!   0 and reaches past −margin.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value as Json};

use super::stats::spearman;
use super::{Outcome, RunData, Sweep};
use curvlab::rng::Rng;

/// Which value of a quantity a run contributes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum At {
    /// The last finite value measured.
    #[default]
    Final,
    /// The largest finite value over training (sharpening's height).
    Peak,
}

/// The sign a trend is expected to have.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// The quantity grows with the setting: ρ > 0.
    Increasing,
    /// The quantity shrinks as the setting grows: ρ < 0.
    Decreasing,
    /// The quantity does not shrink as the setting grows (non-inferiority):
    /// ρ > −margin.
    #[serde(rename = "not_decreasing")]
    NotDecreasing,
    /// The quantity does not grow with the setting: ρ < margin.
    #[serde(rename = "not_increasing")]
    NotIncreasing,
}

/// A claim as a sweep file writes it (`[[claims]]`, `kind = "trend"` or
/// `"comparison"`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum ClaimSpec {
    /// The sign of ρ(setting, quantity), stratified by the other settings.
    Trend {
        /// The claim in words.
        claim: String,
        /// The swept setting (an axis path, e.g. `loss.label_smoothing`).
        setting: String,
        /// A metrics-row field (`sharpness`, `jac_softmax_max`, `gen_gap`, …).
        quantity: String,
        #[serde(default)]
        at: At,
        expect: Direction,
        /// How far past 0 a `not_*` trend's interval may reach (in ρ) and
        /// still hold; only for `not_decreasing` / `not_increasing`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        margin: Option<f64>,
    },
    /// |ρ(target, better)| − |ρ(target, worse)| > 0, per group and pooled.
    Comparison {
        claim: String,
        /// The quantity to be explained (e.g. `gen_gap`).
        target: String,
        /// The quantity claimed to track it better (e.g. `jac_softmax_max`).
        better: String,
        /// The quantity claimed to track it worse (e.g. `sharpness`).
        worse: String,
        #[serde(default)]
        at: At,
    },
}

impl ClaimSpec {
    /// The metrics-row fields the claim reads.
    pub fn quantities(&self) -> Vec<&str> {
        match self {
            ClaimSpec::Trend { quantity, .. } => vec![quantity],
            ClaimSpec::Comparison {
                target,
                better,
                worse,
                ..
            } => vec![target, better, worse],
        }
    }

    /// A `not_*` trend without a margin in (0, 1), or a margin on another claim.
    pub fn check(&self) -> Result<(), String> {
        if let ClaimSpec::Trend { expect, margin, .. } = self {
            let non_inferiority =
                matches!(expect, Direction::NotDecreasing | Direction::NotIncreasing);
            match (non_inferiority, margin) {
                (true, Some(m)) if *m > 0.0 && *m < 1.0 => {}
                (true, _) => return Err("a not_* trend needs a margin in (0, 1)".into()),
                (false, Some(_)) => {
                    return Err("only not_decreasing / not_increasing take a margin".into())
                }
                (false, None) => {}
            }
        }
        Ok(())
    }

    /// The swept setting a trend reads.
    pub fn setting(&self) -> Option<&str> {
        match self {
            ClaimSpec::Trend { setting, .. } => Some(setting),
            ClaimSpec::Comparison { .. } => None,
        }
    }
}

/// Bootstrap settings (stated in every claim's result).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bootstrap {
    /// Number of resamples.
    pub resamples: usize,
    /// Two-sided level: the interval covers 1 − `alpha`.
    pub alpha: f64,
    /// Seed of the resampling draws.
    pub seed: u64,
}

impl Default for Bootstrap {
    fn default() -> Self {
        Bootstrap {
            resamples: 2000,
            alpha: 0.05,
            seed: 0,
        }
    }
}

/// One run's numbers for a claim: its stratum and the values the statistic
/// reads (trend: setting, quantity; comparison: target, better, worse).
#[derive(Clone, Debug, PartialEq)]
pub struct Obs {
    pub stratum: usize,
    pub values: Vec<f64>,
}

/// A statistic of a set of observations (`None` where undefined).
pub type Statistic = fn(&[&Obs]) -> Option<f64>;

/// Spearman's ρ between value 0 and value 1.
pub fn rho(obs: &[&Obs]) -> Option<f64> {
    let x: Vec<f64> = obs.iter().map(|o| o.values[0]).collect();
    let y: Vec<f64> = obs.iter().map(|o| o.values[1]).collect();
    spearman(&x, &y)
}

/// |ρ(v0, v1)| − |ρ(v0, v2)|: how much better value 1 tracks value 0 than value 2 does.
pub fn rho_advantage(obs: &[&Obs]) -> Option<f64> {
    let col = |k: usize| -> Vec<f64> { obs.iter().map(|o| o.values[k]).collect() };
    let (t, a, b) = (col(0), col(1), col(2));
    Some(spearman(&t, &a)?.abs() - spearman(&t, &b)?.abs())
}

/// The strata present, in increasing order.
fn strata_of(obs: &[&Obs]) -> Vec<usize> {
    let mut s: Vec<usize> = obs.iter().map(|o| o.stratum).collect();
    s.sort_unstable();
    s.dedup();
    s
}

/// Mean over strata of `stat` on each stratum, weighted by its size;
/// `None` when no stratum gives a value.
pub fn stratified(obs: &[&Obs], stat: Statistic) -> Option<f64> {
    let (mut sum, mut weight) = (0.0, 0.0);
    for s in strata_of(obs) {
        let members: Vec<&Obs> = obs.iter().copied().filter(|o| o.stratum == s).collect();
        if let Some(v) = stat(&members) {
            sum += v * members.len() as f64;
            weight += members.len() as f64;
        }
    }
    (weight > 0.0).then(|| sum / weight)
}

/// An evaluated statistic: its value on all runs and its bootstrap interval.
#[derive(Clone, Debug, PartialEq)]
pub struct Estimate {
    pub value: Option<f64>,
    pub interval: Option<[f64; 2]>,
    /// Resamples in which the statistic was defined.
    pub defined: usize,
}

/// The statistic on all observations and its percentile bootstrap interval,
/// resampling runs within strata (`interval` is `None` when fewer than half
/// the resamples give a value, or there is no value).
pub fn estimate(obs: &[Obs], stat: Statistic, boot: &Bootstrap) -> Estimate {
    let all: Vec<&Obs> = obs.iter().collect();
    let value = stratified(&all, stat);
    let by_stratum: Vec<Vec<&Obs>> = strata_of(&all)
        .iter()
        .map(|s| all.iter().copied().filter(|o| o.stratum == *s).collect())
        .collect();
    let mut rng = Rng::derived(boot.seed, "claims-bootstrap");
    let mut draws = Vec::with_capacity(boot.resamples);
    for _ in 0..boot.resamples {
        let sample: Vec<&Obs> = by_stratum
            .iter()
            .flat_map(|members| {
                (0..members.len())
                    .map(|_| members[rng.below(members.len())])
                    .collect::<Vec<_>>()
            })
            .collect();
        if let Some(v) = stratified(&sample, stat) {
            draws.push(v);
        }
    }
    let defined = draws.len();
    if value.is_none() || defined == 0 || defined * 2 < boot.resamples {
        return Estimate {
            value,
            interval: None,
            defined,
        };
    }
    draws.sort_by(f64::total_cmp);
    let q = |p: f64| -> f64 {
        let h = p * (draws.len() - 1) as f64;
        let (i, f) = (h.floor() as usize, h - h.floor());
        let j = (i + 1).min(draws.len() - 1);
        draws[i] + f * (draws[j] - draws[i])
    };
    Estimate {
        value,
        interval: Some([q(boot.alpha / 2.0), q(1.0 - boot.alpha / 2.0)]),
        defined,
    }
}

/// The verdict of an interval for a statistic expected to be positive
/// (`sign` = +1) or negative (−1).
pub fn verdict(interval: Option<[f64; 2]>, sign: f64) -> &'static str {
    match interval {
        Some([lo, hi]) if sign * lo > 0.0 && sign * hi > 0.0 => "holds",
        Some([lo, hi]) if sign * lo < 0.0 && sign * hi < 0.0 => "fails",
        _ => "inconclusive",
    }
}

/// The verdict of a non-inferiority claim "not below 0" (`sign` = +1; −1
/// for "not above 0") with a margin: `holds` when the whole interval lies
/// above −margin (any decrease is smaller than the margin), `fails` when the
/// whole interval lies below 0 and reaches past −margin, `inconclusive`
/// otherwise.
pub fn verdict_not(interval: Option<[f64; 2]>, sign: f64, margin: f64) -> &'static str {
    let Some([lo, hi]) = interval else {
        return "inconclusive";
    };
    // Flip so that the claim reads "not below 0".
    let (lo, hi) = if sign > 0.0 { (lo, hi) } else { (-hi, -lo) };
    if lo > -margin {
        "holds"
    } else if hi < 0.0 {
        "fails"
    } else {
        "inconclusive"
    }
}

/// A run's value of `key`: its last or its largest finite value.
fn value_of(r: &RunData, key: &str, at: At) -> Option<f64> {
    let mut values = r.rows.iter().filter_map(|row| row.get(key));
    match at {
        At::Final => values.next_back(),
        At::Peak => values.reduce(f64::max),
    }
}

fn describe(key: &str, at: At) -> String {
    match at {
        At::Final => format!("final {key}"),
        At::Peak => format!("peak {key}"),
    }
}

/// A claim's result: one object of `claims.json`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ClaimResult {
    pub preset: String,
    pub claim: String,
    /// Where it was evaluated: "all runs", "group NAME" or "pooled".
    pub scope: String,
    pub statistic: String,
    pub value: Option<f64>,
    pub interval: Option<[f64; 2]>,
    pub verdict: &'static str,
    pub n_runs: usize,
    /// Strata the runs fall into (a trend's other settings).
    pub strata: usize,
    pub bootstrap: Json,
}

/// Evaluates every claim of the sweep's manifest on its finished runs.
pub fn evaluate(s: &Sweep, boot: &Bootstrap) -> Vec<ClaimResult> {
    let finished: Vec<&RunData> = s
        .runs
        .iter()
        .filter(|r| r.outcome == Outcome::Finished)
        .collect();
    let boot_json = json!({
        "resamples": boot.resamples,
        "level": 1.0 - boot.alpha,
        "seed": boot.seed,
        "unit": "runs, resampled within strata",
        "interval": "percentile",
    });
    let mut out = Vec::new();
    for spec in &s.manifest.claims {
        match spec {
            ClaimSpec::Trend {
                claim,
                setting,
                quantity,
                at,
                expect,
                margin,
            } => {
                // Runs that sweep `setting`; a stratum per group and levels of
                // the other settings.
                let mut keys: Vec<(Option<String>, Vec<usize>)> = Vec::new();
                let mut others: Vec<String> = Vec::new();
                let mut obs = Vec::new();
                for r in &finished {
                    let Some(x) = r.run.settings.iter().find(|x| &x.path == setting) else {
                        continue;
                    };
                    let Some(xv) = x.value.as_f64() else { continue };
                    let Some(y) = value_of(r, quantity, *at) else {
                        continue;
                    };
                    let mut levels = Vec::new();
                    for o in r.run.settings.iter().filter(|o| &o.path != setting) {
                        levels.push(o.level);
                        if !others.contains(&o.path) {
                            others.push(o.path.clone());
                        }
                    }
                    let key = (r.run.group.clone(), levels);
                    let stratum = keys.iter().position(|k| *k == key).unwrap_or_else(|| {
                        keys.push(key);
                        keys.len() - 1
                    });
                    obs.push(Obs {
                        stratum,
                        values: vec![xv, y],
                    });
                }
                let e = estimate(&obs, rho, boot);
                let sign = match expect {
                    Direction::Increasing | Direction::NotDecreasing => 1.0,
                    Direction::Decreasing | Direction::NotIncreasing => -1.0,
                };
                let expected = match (expect, margin) {
                    (Direction::Increasing, _) => "> 0".to_string(),
                    (Direction::Decreasing, _) => "< 0".to_string(),
                    (Direction::NotDecreasing, Some(m)) => format!("> −{m} (not decreasing)"),
                    (Direction::NotIncreasing, Some(m)) => format!("< {m} (not increasing)"),
                    (_, None) => "?".to_string(),
                };
                let verdict = match margin {
                    Some(m) => verdict_not(e.interval, sign, *m),
                    None => verdict(e.interval, sign),
                };
                let mut statistic = format!(
                    "Spearman ρ({setting}, {}); expected {expected}",
                    describe(quantity, *at),
                );
                if keys.len() > 1 {
                    statistic += &format!(
                        "; stratified by {} ({} strata, weighted by runs)",
                        if others.is_empty() {
                            "group".to_string()
                        } else {
                            others.join(", ")
                        },
                        keys.len()
                    );
                }
                out.push(ClaimResult {
                    preset: s.manifest.name.clone(),
                    claim: claim.clone(),
                    scope: "all runs".into(),
                    statistic,
                    value: e.value,
                    interval: e.interval,
                    verdict,
                    n_runs: obs.len(),
                    strata: keys.len(),
                    bootstrap: boot_json.clone(),
                });
            }
            ClaimSpec::Comparison {
                claim,
                target,
                better,
                worse,
                at,
            } => {
                let obs_of = |runs: &[&RunData]| -> Vec<Obs> {
                    runs.iter()
                        .filter_map(|r| {
                            Some(Obs {
                                stratum: 0,
                                values: vec![
                                    value_of(r, target, *at)?,
                                    value_of(r, better, *at)?,
                                    value_of(r, worse, *at)?,
                                ],
                            })
                        })
                        .collect()
                };
                // (scope, a note for the statistic, its runs)
                let mut scopes: Vec<(String, &str, Vec<&RunData>)> = Vec::new();
                if s.manifest.groups.len() > 1 {
                    for g in &s.manifest.groups {
                        let runs: Vec<&RunData> = finished
                            .iter()
                            .copied()
                            .filter(|r| r.run.group == g.name)
                            .collect();
                        let name = g.name.clone().unwrap_or_default();
                        scopes.push((format!("group {name}"), "", runs));
                    }
                    // Pooled: each distinct run configuration once. Groups that
                    // each contain the shared baseline (Fig. 5's "every
                    // regulariser off") repeat the same deterministic run; counting
                    // it once per group would weight it by the number of groups.
                    let mut distinct: Vec<&RunData> = Vec::new();
                    for r in &finished {
                        if !distinct.iter().any(|d| d.run.config == r.run.config) {
                            distinct.push(r);
                        }
                    }
                    let once = "; each distinct run configuration once";
                    scopes.push(("pooled".into(), once, distinct));
                } else {
                    scopes.push(("all runs".into(), "", finished.clone()));
                }
                for (scope, note, runs) in scopes {
                    let obs = obs_of(&runs);
                    let e = estimate(&obs, rho_advantage, boot);
                    out.push(ClaimResult {
                        preset: s.manifest.name.clone(),
                        claim: claim.clone(),
                        scope,
                        statistic: format!(
                            "|ρ({t}, {b})| − |ρ({t}, {w})| (Spearman); expected > 0{d}",
                            t = describe(target, *at),
                            b = describe(better, *at),
                            w = describe(worse, *at),
                            d = note
                        ),
                        value: e.value,
                        interval: e.interval,
                        verdict: verdict(e.interval, 1.0),
                        n_runs: obs.len(),
                        strata: 1,
                        bootstrap: boot_json.clone(),
                    });
                }
            }
        }
    }
    out
}

/// The claims as a `report.md` section (a table and how to read it).
pub fn markdown(results: &[ClaimResult], boot: &Bootstrap) -> String {
    let mut md = format!(
        "Each claim's statistic over the finished runs, with a {:.0} % percentile bootstrap \
         interval ({} resamples of the runs, drawn within strata, seed {}). `holds`: the \
         interval lies on the claimed side of 0; `fails`: on the other side; `inconclusive`: \
         it reaches 0 (or the statistic is undefined: fewer than 3 runs in every stratum, or \
         a constant column).\n\n",
        100.0 * (1.0 - boot.alpha),
        boot.resamples,
        boot.seed
    );
    md += "| claim | scope | statistic | value | interval | verdict | runs |\n\
           |---|---|---|---:|---|---|---:|\n";
    for c in results {
        let value = c
            .value
            .map(|v| format!("{v:+.3}"))
            .unwrap_or_else(|| "—".into());
        let interval = c
            .interval
            .map(|[lo, hi]| format!("[{lo:+.3}, {hi:+.3}]"))
            .unwrap_or_else(|| "—".into());
        // A statistic such as |ρ(a, b)| − |ρ(a, c)| has pipes of its own.
        let cell = |t: &str| t.replace('|', "\\|");
        md += &format!(
            "| {} | {} | {} | {} | {} | **{}** | {} |\n",
            cell(&c.claim),
            cell(&c.scope),
            cell(&c.statistic),
            value,
            interval,
            c.verdict,
            c.n_runs
        );
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(stratum: usize, values: &[f64]) -> Obs {
        Obs {
            stratum,
            values: values.to_vec(),
        }
    }

    #[test]
    fn stratified_rho_by_hand() {
        // Stratum 0: x = 1..4, y = [1, 2, 4, 3]: d = [0, 0, 1, −1], Σd² = 2,
        // ρ = 1 − 6·2/(4·15) = 0.8. Stratum 1: x = 1..3, y reversed: ρ = −1.
        // Weighted by size: (4·0.8 + 3·(−1))/7 = 0.2/7.
        let o = [
            obs(0, &[1.0, 1.0]),
            obs(0, &[2.0, 2.0]),
            obs(0, &[3.0, 4.0]),
            obs(0, &[4.0, 3.0]),
            obs(1, &[1.0, 3.0]),
            obs(1, &[2.0, 2.0]),
            obs(1, &[3.0, 1.0]),
        ];
        let all: Vec<&Obs> = o.iter().collect();
        let v = stratified(&all, rho).unwrap();
        assert!((v - 0.2 / 7.0).abs() < 1e-12, "{v}");
        // A stratum of two runs has no ρ and is left out.
        let o2 = [
            obs(0, &[1.0, 1.0]),
            obs(0, &[2.0, 2.0]),
            obs(1, &[1.0, 5.0]),
        ];
        let all2: Vec<&Obs> = o2.iter().collect();
        assert_eq!(stratified(&all2, rho), None);
    }

    #[test]
    fn advantage_by_hand() {
        // target = 1..5; better = target (ρ = 1); worse = [2, 1, 4, 3, 5]:
        // d = [1, −1, 1, −1, 0], Σd² = 4, ρ = 1 − 24/120 = 0.8. Advantage 0.2.
        // With worse reversed (ρ = −1) the absolute values tie: advantage 0.
        let o: Vec<Obs> = [2.0, 1.0, 4.0, 3.0, 5.0]
            .iter()
            .enumerate()
            .map(|(i, w)| obs(0, &[i as f64, i as f64, *w]))
            .collect();
        let all: Vec<&Obs> = o.iter().collect();
        assert!((rho_advantage(&all).unwrap() - 0.2).abs() < 1e-12);
        let rev: Vec<Obs> = (0..5)
            .map(|i| obs(0, &[i as f64, i as f64, -(i as f64)]))
            .collect();
        let all: Vec<&Obs> = rev.iter().collect();
        assert!(rho_advantage(&all).unwrap().abs() < 1e-12);
    }

    #[test]
    fn bootstrap_interval_and_verdicts() {
        // A perfectly monotone stratum: every resample with ≥ 3 distinct runs
        // gives ρ = 1, and resamples with fewer distinct runs have tied x and
        // still ρ = 1 where defined; so the interval is [1, 1] and the claim
        // "increasing" holds, "decreasing" fails.
        let o: Vec<Obs> = (0..8)
            .map(|i| obs(0, &[i as f64, (i * i) as f64]))
            .collect();
        let b = Bootstrap::default();
        let e = estimate(&o, rho, &b);
        assert_eq!(e.value, Some(1.0));
        let [lo, hi] = e.interval.unwrap();
        assert!((lo - 1.0).abs() < 1e-12 && (hi - 1.0).abs() < 1e-12);
        assert_eq!(verdict(e.interval, 1.0), "holds");
        assert_eq!(verdict(e.interval, -1.0), "fails");
        // Same seed, same interval; another seed may differ but not here.
        assert_eq!(estimate(&o, rho, &b), e);
        // Non-inferiority with margin 0.3: above −0.3 holds (even when
        // straddling 0), below 0 and past −0.3 fails, else inconclusive.
        assert_eq!(verdict_not(Some([-0.2, 0.4]), 1.0, 0.3), "holds");
        assert_eq!(verdict_not(Some([-0.5, 0.4]), 1.0, 0.3), "inconclusive");
        assert_eq!(verdict_not(Some([-0.9, -0.1]), 1.0, 0.3), "fails");
        assert_eq!(verdict_not(Some([-0.4, 0.2]), -1.0, 0.3), "holds");
        assert_eq!(verdict_not(Some([0.1, 0.9]), -1.0, 0.3), "fails");
        assert_eq!(verdict_not(None, 1.0, 0.3), "inconclusive");
        // Straddling zero, or no interval: inconclusive.
        assert_eq!(verdict(Some([-0.1, 0.5]), 1.0), "inconclusive");
        assert_eq!(verdict(Some([0.0, 0.5]), 1.0), "inconclusive");
        assert_eq!(verdict(None, 1.0), "inconclusive");
        // Too few runs: no value, no interval.
        let few = [obs(0, &[1.0, 2.0]), obs(0, &[2.0, 1.0])];
        let e = estimate(&few, rho, &b);
        assert_eq!((e.value, e.interval), (None, None));
    }

    #[test]
    fn bootstrap_percentiles_follow_the_resamples() {
        // Noisy data: the interval contains the value and has positive width;
        // the percentiles are those of the defined resamples (checked by
        // recomputing them with the same draws).
        let ys = [0.3, 0.1, 0.5, 0.2, 0.9, 0.4, 1.0, 0.8, 0.6, 0.7];
        let o: Vec<Obs> = ys
            .iter()
            .enumerate()
            .map(|(i, y)| obs(0, &[i as f64, *y]))
            .collect();
        let b = Bootstrap {
            resamples: 500,
            alpha: 0.1,
            seed: 7,
        };
        let e = estimate(&o, rho, &b);
        let v = e.value.unwrap();
        let [lo, hi] = e.interval.unwrap();
        assert!(lo < v && v < hi && hi <= 1.0 && lo >= -1.0, "{lo} {v} {hi}");
        let mut rng = Rng::derived(7, "claims-bootstrap");
        let mut draws: Vec<f64> = (0..500)
            .filter_map(|_| {
                let s: Vec<&Obs> = (0..o.len()).map(|_| &o[rng.below(o.len())]).collect();
                stratified(&s, rho)
            })
            .collect();
        draws.sort_by(f64::total_cmp);
        assert_eq!(e.defined, draws.len());
        let h = 0.05 * (draws.len() - 1) as f64;
        let i = h.floor() as usize;
        let expect_lo = draws[i] + (h - h.floor()) * (draws[i + 1] - draws[i]);
        assert!((lo - expect_lo).abs() < 1e-15);
    }

    #[test]
    fn specs_parse_from_toml_and_refuse_typos() {
        #[derive(Deserialize)]
        struct F {
            claims: Vec<ClaimSpec>,
        }
        let f: F = toml::from_str(
            r#"
            [[claims]]
            kind = "trend"
            claim = "more smoothing, less sharpening"
            setting = "loss.label_smoothing"
            quantity = "sharpness"
            at = "peak"
            expect = "decreasing"
            [[claims]]
            kind = "comparison"
            claim = "gap tracks J"
            target = "gen_gap"
            better = "jac_softmax_max"
            worse = "sharpness"
            "#,
        )
        .unwrap();
        assert_eq!(f.claims.len(), 2);
        assert_eq!(f.claims[0].setting(), Some("loss.label_smoothing"));
        assert!(matches!(f.claims[0], ClaimSpec::Trend { at: At::Peak, .. }));
        assert!(matches!(
            f.claims[1],
            ClaimSpec::Comparison { at: At::Final, .. }
        ));
        let nd: F = toml::from_str(
            "[[claims]]\nkind = \"trend\"\nclaim = \"x\"\nsetting = \"a\"\nquantity = \"b\"\nexpect = \"not_decreasing\"\nmargin = 0.3",
        )
        .unwrap();
        assert_eq!(nd.claims[0].check(), Ok(()));
        let no_margin: F = toml::from_str(
            "[[claims]]\nkind = \"trend\"\nclaim = \"x\"\nsetting = \"a\"\nquantity = \"b\"\nexpect = \"not_decreasing\"",
        )
        .unwrap();
        assert!(no_margin.claims[0].check().is_err());
        for bad in [
            "[[claims]]\nkind = \"trend\"\nclaim = \"x\"\nsetting = \"a\"\nquantity = \"b\"\nexpect = \"up\"",
            "[[claims]]\nkind = \"trend\"\nclaim = \"x\"\nsetting = \"a\"\nquantity = \"b\"\nexpect = \"increasing\"\nextra = 1",
            "[[claims]]\nkind = \"slope\"\nclaim = \"x\"",
        ] {
            assert!(toml::from_str::<F>(bad).is_err(), "{bad}");
        }
    }
}
