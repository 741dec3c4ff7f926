//! The spectrum extras' flags (`--trace`, `--density`, `--per-layer`,
//! `--factors`, `--folds K`, `--spectrum-every N` and their counts) applied
//! to core's [`MeasureConfig`] after the TOML file, and the extras' keys of a
//! metrics row for `curvlab measure`'s JSON object. A count given for an
//! extra that is off, or `--spectrum-every` with no extra on, is an error
//! (one line): it would otherwise be silently ignored.

use anyhow::{bail, Result};
use curvlab::measure::MeasureConfig;
use curvlab::record::MetricsRow;
use serde_json::{Map, Value};

use crate::cli::{RunSpectrumArgs, SpectrumArgs};

/// Switches on the extras the flags name and sets their counts; checks that
/// every count given belongs to an extra that is on (here or in the file).
pub fn apply(a: &SpectrumArgs, m: &mut MeasureConfig) -> Result<()> {
    m.trace |= a.trace;
    m.density |= a.density;
    m.per_layer |= a.per_layer;
    m.factors |= a.factors;
    if let Some(k) = a.folds {
        m.folds = true;
        m.fold_count = k;
    }
    if let Some(p) = a.trace_products {
        if !m.trace {
            bail!("--trace-products sets the trace estimate's cost: add --trace");
        }
        m.hutchpp.products = p;
    }
    for (flag, value) in [
        ("--density-probes", a.density_probes),
        ("--density-steps", a.density_steps),
    ] {
        if value.is_some() && !m.density {
            bail!("{flag} sets the spectral density's cost: add --density");
        }
    }
    if let Some(n) = a.density_probes {
        m.slq.probes = n;
    }
    if let Some(s) = a.density_steps {
        m.slq.steps = s;
    }
    Ok(())
}

/// [`apply`], then `--spectrum-every`, which needs an extra to apply to.
pub fn apply_run(a: &RunSpectrumArgs, m: &mut MeasureConfig) -> Result<()> {
    apply(&a.extras, m)?;
    if let Some(n) = a.spectrum_every {
        if !m.any_extra() {
            bail!(
                "--spectrum-every {n} applies to the spectrum extras, and none is on \
                 (add --trace, --density, --per-layer, --factors or --folds)"
            );
        }
        m.spectrum_every = n;
    }
    Ok(())
}

/// The spectrum extras `row` carries, under the metrics rows' keys
/// ([`MetricsRow::SPECTRUM_KEYS`]), for `curvlab measure`'s JSON object.
pub fn row_extras(row: &MetricsRow) -> Result<Map<String, Value>> {
    let Value::Object(all) = serde_json::to_value(row)? else {
        bail!("a metrics row is not a JSON object");
    };
    Ok(all
        .into_iter()
        .filter(|(k, _)| MetricsRow::SPECTRUM_KEYS.contains(&k.as_str()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use curvlab::record::ByName;

    #[test]
    fn flags_switch_extras_on_and_counts_need_their_extra() {
        let mut m = MeasureConfig::default();
        let a = SpectrumArgs {
            trace: true,
            trace_products: Some(60),
            density: true,
            density_probes: Some(2),
            density_steps: Some(12),
            folds: Some(3),
            ..Default::default()
        };
        apply(&a, &mut m).unwrap();
        assert!(m.trace && m.density && m.folds && !m.per_layer && !m.factors);
        assert_eq!(
            (m.hutchpp.products, m.slq.probes, m.slq.steps, m.fold_count),
            (60, 2, 12, 3)
        );
        // A count for an extra the file switched on is fine.
        let mut on = MeasureConfig {
            density: true,
            ..Default::default()
        };
        let steps = SpectrumArgs {
            density_steps: Some(9),
            ..Default::default()
        };
        apply(&steps, &mut on).unwrap();
        assert_eq!(on.slq.steps, 9);
        let e = apply(&steps, &mut MeasureConfig::default()).unwrap_err();
        assert!(e.to_string().contains("add --density"), "{e}");
        let e = apply(
            &SpectrumArgs {
                trace_products: Some(30),
                ..Default::default()
            },
            &mut MeasureConfig::default(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("add --trace"), "{e}");
        let every = RunSpectrumArgs {
            spectrum_every: Some(5),
            ..Default::default()
        };
        let e = apply_run(&every, &mut MeasureConfig::default()).unwrap_err();
        assert!(e.to_string().contains("none is on"), "{e}");
        let mut m = MeasureConfig {
            per_layer: true,
            ..Default::default()
        };
        apply_run(&every, &mut m).unwrap();
        assert_eq!(m.spectrum_every, 5);
    }

    #[test]
    fn extras_keep_the_rows_keys() {
        let row = MetricsRow {
            sharpness: Some(3.0),
            trace: Some(10.0),
            trace_se: Some(0.5),
            layer_sharpness: Some(ByName(vec![("layers.0".into(), 2.0)])),
            ..Default::default()
        };
        let e = row_extras(&row).unwrap();
        let mut keys: Vec<&str> = e.keys().map(String::as_str).collect();
        keys.sort();
        assert_eq!(keys, ["layer_sharpness", "trace", "trace_se"]);
        assert_eq!(e["layer_sharpness"]["layers.0"], 2.0);
        assert!(row_extras(&MetricsRow::default()).unwrap().is_empty());
    }
}
