//! A run configuration from TOML: the text of a `curvlab run --config` file,
//! or the table a sweep merged for one of its runs.
//!
//! The table is laid over the defaults ([`RunConfig::default`], each declared
//! on its field): tables merge key by key ([`crate::sweep::merge`]; a table
//! whose `kind` changes is replaced whole), so a partial table — `[loss]`
//! with only `label_smoothing`, `[measure.solver.lanczos]` with only `tol` —
//! keeps the run's defaults for every field it does not name. The result is
//! deserialised with every table's unknown fields refused (an error names
//! the field by its dotted path) and checked by [`RunConfig::validate`], the
//! one check of a run's settings. Any input gives a configuration or one
//! error, never a panic (tests/config.rs feeds it arbitrary text).

use anyhow::{anyhow, Result};
use curvlab::experiment::RunConfig;
use toml::{Table, Value};

/// The defaults as a TOML table (fields that are absent by default, such as
/// `epochs`, are left out).
pub fn defaults() -> Table {
    match Value::try_from(RunConfig::default()) {
        Ok(Value::Table(t)) => t,
        other => unreachable!("a RunConfig serialises to a table, got {other:?}"),
    }
}

/// The configuration `table` describes, laid over the defaults and
/// validated; errors name the setting by its path.
pub fn from_table(table: &Table) -> Result<RunConfig> {
    let mut t = defaults();
    crate::sweep::merge(&mut t, table);
    let cfg: RunConfig = serde_path_to_error::deserialize(Value::Table(t)).map_err(|e| {
        let msg = one_line(e.inner().message());
        let mut path = e.path().to_string();
        // Inside a tagged table (`data`) the path stops at the table; the
        // message still names the unknown field.
        if let Some(field) = msg
            .strip_prefix("unknown field `")
            .and_then(|m| m.split('`').next())
        {
            if !path.ends_with(field) {
                path = if path == "." {
                    field.to_string()
                } else {
                    format!("{path}.{field}")
                };
            }
        }
        match path.as_str() {
            "." => anyhow!("{msg}"),
            path => anyhow!("{path}: {msg}"),
        }
    })?;
    cfg.validate()?;
    Ok(cfg)
}

/// The configuration of a TOML file's text (`source` names it in errors,
/// with the line of a syntax error).
pub fn from_toml_str(text: &str, source: &str) -> Result<RunConfig> {
    let table: Table = toml::from_str(text).map_err(|e| {
        let line = e
            .span()
            .map(|s| text[..s.start.min(text.len())].lines().count().max(1));
        let msg = one_line(e.message());
        match line {
            Some(l) => anyhow!("{source}: line {l}: {msg}"),
            None => anyhow!("{source}: {msg}"),
        }
    })?;
    from_table(&table).map_err(|e| anyhow!("{source}: {e}"))
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use curvlab::loss::LossKind;

    #[test]
    fn nothing_is_the_defaults() {
        assert_eq!(from_toml_str("", "x").unwrap(), RunConfig::default());
    }

    /// A partial table keeps the run's defaults for the fields it leaves out
    /// (issue 12, defect 10: `[measure.solver.lanczos]` with only `tol`).
    #[test]
    fn partial_tables_keep_the_run_defaults() {
        let cfg = from_toml_str(
            "[measure.solver.lanczos]\ntol = 1e-5\n[loss]\nlabel_smoothing = 0.1\n",
            "x",
        )
        .unwrap();
        let d = RunConfig::default();
        assert_eq!(cfg.measure.solver.lanczos.tol, 1e-5);
        assert_eq!(cfg.measure.solver.lanczos.k, d.measure.solver.lanczos.k);
        assert_eq!(cfg.loss.label_smoothing, 0.1);
        assert_eq!(cfg.loss.kind, d.loss.kind);
        // A changed kind replaces the table: the new kind's own defaults.
        let ce = from_toml_str("[loss]\nkind = \"crossentropy\"\n", "x").unwrap();
        assert_eq!(ce.loss.kind, LossKind::CrossEntropy);
        let cifar = from_toml_str("[data]\nkind = \"cifar\"\ndir = \"d\"\n", "x").unwrap();
        assert!(cifar.data.shape().is_err(), "d does not exist");
    }

    /// Misspelt fields in any table are errors naming their path (issue 12,
    /// defect 3).
    #[test]
    fn typos_in_every_table_are_errors() {
        for (text, path) in [
            ("stepz = 3", "stepz"),
            ("[loss]\nlabel_smothing = 0.3", "loss.label_smothing"),
            ("[data]\nn_trian = 3", "data.n_trian"),
            ("[measure.solver]\nseeed = 1", "measure.solver.seeed"),
            ("[measure.solver.hvp]\neps = 0.1", "measure.solver.hvp.eps"),
            (
                "[measure.solver.lanczos]\nkk = 2",
                "measure.solver.lanczos.kk",
            ),
        ] {
            let e = from_toml_str(text, "f.toml").unwrap_err().to_string();
            assert!(e.contains(path) && e.starts_with("f.toml: "), "{text}: {e}");
            assert!(!e.contains('\n'), "{e}");
        }
        let e = from_toml_str("steps = ", "f.toml").unwrap_err().to_string();
        assert!(e.starts_with("f.toml: line 1: "), "{e}");
    }
}
