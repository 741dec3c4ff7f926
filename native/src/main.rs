//! `curvlab`: the command-line shell over curvlab's core. Parses arguments,
//! runs one command, and on failure prints one line `curvlab: <error>` and
//! exits non-zero.

mod cli;
mod commands;
mod plot;
mod report;
mod signals;
mod sweep;

use clap::Parser;

fn main() {
    // A bug must still end in one line, never a trace.
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        let at = info
            .location()
            .map(|l| format!(" (at {}:{})", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!("curvlab: internal error: {msg}{at}");
    }));
    let args = cli::Cli::parse();
    let result = std::panic::catch_unwind(|| commands::dispatch(args));
    match result {
        Ok(Ok(())) => {}
        Ok(Err(err)) => {
            eprintln!("curvlab: {err:#}");
            std::process::exit(1);
        }
        Err(_) => std::process::exit(101),
    }
}
