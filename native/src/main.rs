//! `curvlab`: the command-line shell over curvlab's libraries (`curvlab`, the
//! core, and `curvlab_lab`). Parses arguments, runs one command, and on
//! failure prints one line `curvlab: <error>` and exits non-zero. A closed
//! stdout (`curvlab sweep plan … | head`) ends the program quietly with
//! status 0, as ripgrep does: every command writes through `io::Write` and
//! returns the error, handled here once.

mod cli;
mod commands;
mod progress;
mod signals;

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
    let args = cli::parse();
    let result = std::panic::catch_unwind(|| {
        let mut stdout = std::io::stdout().lock();
        commands::dispatch(args, &mut stdout)
    });
    match result {
        Ok(Ok(())) => {}
        Ok(Err(err)) if broken_pipe(&err) => {}
        Ok(Err(err)) => {
            eprintln!("curvlab: {err:#}");
            std::process::exit(1);
        }
        Err(_) => std::process::exit(101),
    }
}

/// True when the error, or any error in its chain, is a write to a closed pipe.
fn broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
