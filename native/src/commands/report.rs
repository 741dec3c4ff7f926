//! `curvlab report DIR`: the figures and tables of a sweep ([`curvlab_lab::report`]).

use std::io::Write;

use anyhow::Result;
use curvlab_lab::report;

use crate::cli::ReportArgs;

pub fn report(a: ReportArgs, out: &mut dyn Write) -> Result<()> {
    let sweep = report::load(&a.dir)?;
    let dir = a.out.clone().unwrap_or_else(|| a.dir.join("report"));
    let opts = report::SpectrumOptions {
        density_at: a.spectrum.density_at.clone(),
    };
    let w = report::write_with(&sweep, &dir, &opts)?;
    let counts = w
        .counts
        .iter()
        .map(|(k, v)| format!("{v} {k}"))
        .collect::<Vec<_>>()
        .join(", ");
    writeln!(
        out,
        "{} ({} scale): {} runs: {counts}",
        sweep.manifest.name,
        sweep.manifest.scale,
        sweep.runs.len()
    )?;
    writeln!(
        out,
        "\nRank correlations with the generalisation gap (finished runs, final values):\n"
    )?;
    writeln!(out, "{}", w.correlations_md.trim_end())?;
    writeln!(out, "\nwrote {} files to {}:", w.files.len(), dir.display())?;
    for f in &w.files {
        writeln!(
            out,
            "  {}",
            f.file_name().unwrap_or_default().to_string_lossy()
        )?;
    }
    Ok(())
}
