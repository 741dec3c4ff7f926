//! `curvlab bench`: times the measurement workloads ([`curvlab_lab::bench`])
//! and prints a table, or one JSON object with `--json`.

use std::io::Write;

use anyhow::Result;
use curvlab::backend::BackendKind;
use curvlab_lab::bench::{BenchOptions, BenchWorkload};
use serde_json::Value;

use crate::cli::BenchArgs;

pub fn bench(args: BenchArgs, out: &mut dyn Write) -> Result<()> {
    let opts = BenchOptions {
        data: args.data.clone(),
        backends: args
            .backends
            .iter()
            .map(|b| BackendKind::from(*b))
            .collect(),
        repeats: args.repeats,
        workloads: BenchWorkload::parse_list(&args.workloads)?,
    };
    let obj = curvlab_lab::bench::bench(&opts, &mut |m| eprintln!("{m}"))?;
    if let Some(path) = &args.out {
        let text = serde_json::to_string_pretty(&obj)? + "\n";
        curvlab::atomic::write(path, text.as_bytes())?;
    }
    if args.json {
        writeln!(out, "{obj}")?;
    } else {
        print_table(&obj, out)?;
    }
    Ok(())
}

fn print_table(obj: &Value, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(out, "| quantity | value |")?;
    writeln!(out, "|---|---:|")?;
    if let Value::Object(m) = obj {
        for (k, v) in m {
            let s = match v {
                Value::Number(n) => {
                    let f = n.as_f64().unwrap_or(f64::NAN);
                    if f.fract() == 0.0 && f.abs() < 1e9 {
                        format!("{f:.0}")
                    } else {
                        format!("{f:.3}")
                    }
                }
                other => other.to_string(),
            };
            writeln!(out, "| {k} | {s} |")?;
        }
    }
    Ok(())
}
