//! `curvlab report DIR`: the figures and tables of a sweep (see `crate::report`).

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use super::sweep::say;
use crate::report;

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// Sweep directory (holding sweep.json and the run directories), or any directory of runs.
    pub dir: PathBuf,
    /// Where to write the figures and tables [default: DIR/report].
    #[arg(long)]
    pub out: Option<PathBuf>,
}

pub fn report(a: ReportArgs) -> Result<()> {
    let sweep = report::load(&a.dir)?;
    let out = a.out.clone().unwrap_or_else(|| a.dir.join("report"));
    let w = report::write(&sweep, &out)?;
    let counts = w
        .counts
        .iter()
        .map(|(k, v)| format!("{v} {k}"))
        .collect::<Vec<_>>()
        .join(", ");
    say!(
        "{} ({} scale): {} runs: {counts}",
        sweep.manifest.name,
        sweep.manifest.scale,
        sweep.runs.len()
    );
    say!("\nRank correlations with the generalisation gap (finished runs, final values):\n");
    say!("{}", w.correlations_md.trim_end());
    say!("\nwrote {} files to {}:", w.files.len(), out.display());
    for f in &w.files {
        say!("  {}", f.file_name().unwrap_or_default().to_string_lossy());
    }
    Ok(())
}
