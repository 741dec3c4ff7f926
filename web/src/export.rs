//! Metrics export: JSON (each run's configuration and rows, as the CLI's
//! `config.json` + `metrics.jsonl`) and CSV (one line per row of every run).

use curvlab::record::MetricsRow;
use serde::Serialize;
use serde_json::Value;

use crate::protocol::{BackendInfo, RunInfo};

/// One run's record in the JSON export.
#[derive(Serialize)]
pub struct RunExport<'a> {
    #[serde(flatten)]
    pub info: &'a RunInfo,
    pub rows: &'a [MetricsRow],
}

/// The JSON export: the page's URL query, the backend and every run.
#[derive(Serialize)]
pub struct Export<'a> {
    /// This crate's version.
    pub curvlab_web: &'static str,
    /// The URL query that reproduces the runs.
    pub query: &'a str,
    pub backend: Option<&'a BackendInfo>,
    pub runs: Vec<RunExport<'a>>,
}

impl Export<'_> {
    /// Pretty-printed JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("the export serialises")
    }
}

/// CSV of every row of every run: columns `run`, `label`, then the
/// [`MetricsRow`] fields (`step` first, then alphabetical); vectors
/// (eigenvalues, residuals) are `;`-separated, missing values empty.
pub fn to_csv(runs: &[(&str, &[MetricsRow])]) -> String {
    let columns: Vec<String> = match serde_json::to_value(MetricsRow::default()) {
        Ok(Value::Object(m)) => {
            let mut keys: Vec<String> = m.keys().filter(|k| *k != "step").cloned().collect();
            keys.sort();
            std::iter::once("step".to_string()).chain(keys).collect()
        }
        _ => unreachable!("MetricsRow serialises to an object"),
    };
    let mut out = String::from("run,label");
    for c in &columns {
        out.push(',');
        out.push_str(c);
    }
    out.push('\n');
    for (i, (label, rows)) in runs.iter().enumerate() {
        for row in *rows {
            let v = serde_json::to_value(row).expect("MetricsRow serialises");
            out.push_str(&i.to_string());
            out.push(',');
            out.push_str(&csv_field(label));
            for c in &columns {
                out.push(',');
                out.push_str(&csv_field(&cell(&v[c.as_str()])));
            }
            out.push('\n');
        }
    }
    out
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().map(cell).collect::<Vec<_>>().join(";"),
        other => other.to_string(),
    }
}

/// Quotes a CSV field when it holds a comma, quote or line break (RFC 4180).
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_has_one_line_per_row_and_quotes_labels() {
        let rows = [
            MetricsRow {
                step: 0,
                sharpness: Some(9.5),
                eigenvalues: vec![9.5, 3.0],
                ..Default::default()
            },
            MetricsRow {
                step: 50,
                ..Default::default()
            },
        ];
        let csv = to_csv(&[("α = 0", &rows[..]), ("a, \"b\"", &rows[..1])]);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 4);
        let header: Vec<&str> = lines[0].split(',').collect();
        assert_eq!(&header[..3], &["run", "label", "step"]);
        let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
        let first: Vec<&str> = lines[1].split(',').collect();
        assert_eq!(first[col("sharpness")], "9.5");
        assert_eq!(first[col("eigenvalues")], "9.5;3.0");
        assert_eq!(first[col("test_acc")], "");
        assert!(
            lines[3].starts_with("1,\"a, \"\"b\"\"\",0,"),
            "{}",
            lines[3]
        );
    }
}
