//! One writer per run directory: an advisory lock on `DIR/run.lock`, held
//! for the life of a run ([`RunLock`]).
//!
//! The lock is the operating system's (`flock(2)` on Linux, through
//! [`std::fs::File::try_lock`]): it is released when the holder exits, also
//! when it is killed, so a stale lock never blocks a resume. A second
//! process that asks for a held lock is told at once who holds it ([`Busy`]:
//! the holder writes `pid <PID> on <host>` into the file); a sweep worker
//! then skips that run, so that workers on one sweep directory (Slurm array
//! tasks, hand-started `sweep run --all` processes, or both) share the runs
//! instead of repeating them.
//!
//! The file stays after the run (removing it would let a late opener lock a
//! deleted file while a newcomer locks a new one). On a file system without
//! locks the run goes ahead unlocked and [`RunLock::unsupported`] says why.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// Name of the lock file inside a run directory.
pub const LOCK_FILE: &str = "run.lock";

/// The lock of a run directory, held until dropped.
#[derive(Debug)]
pub struct RunLock {
    dir: PathBuf,
    /// The open lock file; its lock goes with it.
    _file: File,
    created: bool,
    unsupported: Option<String>,
}

/// Another process holds the run directory's lock.
#[derive(Clone, Debug)]
pub struct Busy {
    /// The run directory.
    pub dir: PathBuf,
    /// What the holder wrote: `pid <PID> on <host>` (empty while it has not
    /// written it yet).
    pub holder: String,
}

impl std::fmt::Display for Busy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let who = if self.holder.is_empty() {
            "another curvlab process".to_string()
        } else {
            format!("another curvlab process ({})", self.holder)
        };
        write!(
            f,
            "{}: {who} is writing this run directory; wait for it to finish, or stop it first",
            self.dir.display()
        )
    }
}

impl std::error::Error for Busy {}

impl RunLock {
    /// Creates `dir` if needed and locks it, or fails at once: with [`Busy`]
    /// (downcast the error) when another process holds the lock, otherwise
    /// with an I/O error naming the path.
    pub fn acquire(dir: &Path) -> Result<RunLock> {
        let created = !dir.exists();
        std::fs::create_dir_all(dir)
            .with_context(|| format!("{}: cannot create output directory", dir.display()))?;
        let path = dir.join(LOCK_FILE);
        // A lock file replaced between open and lock (the directory removed
        // by a run that failed to start) is locked afresh.
        for _ in 0..8 {
            let mut file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .with_context(|| format!("{}", path.display()))?;
            let unsupported = match file.try_lock() {
                Ok(()) => None,
                Err(std::fs::TryLockError::WouldBlock) => {
                    let mut holder = String::new();
                    let _ = file.read_to_string(&mut holder);
                    return Err(Busy {
                        dir: dir.to_path_buf(),
                        holder: holder.trim().to_string(),
                    }
                    .into());
                }
                Err(std::fs::TryLockError::Error(e)) if no_locks(&e) => Some(format!(
                    "{}: the file system does not support locks ({e}); nothing stops a second process from writing this run at the same time",
                    path.display()
                )),
                Err(std::fs::TryLockError::Error(e)) => {
                    return Err(anyhow::Error::new(e).context(format!("{}", path.display())))
                }
            };
            if !same_file(&file, &path) {
                continue;
            }
            // Who holds it, for the Busy message of others; a failure to say
            // so (a full disk) does not stop the run.
            let _ = file
                .set_len(0)
                .and_then(|()| file.write_all(holder_line().as_bytes()));
            return Ok(RunLock {
                dir: dir.to_path_buf(),
                _file: file,
                created,
                unsupported,
            });
        }
        anyhow::bail!(
            "{}: the lock file keeps being replaced; is another program removing this directory?",
            path.display()
        )
    }

    /// The locked run directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// True when [`RunLock::acquire`] made the directory.
    pub fn created(&self) -> bool {
        self.created
    }

    /// Why the directory is not really locked (a file system without
    /// locks), if so.
    pub fn unsupported(&self) -> Option<&str> {
        self.unsupported.as_deref()
    }
}

/// Errors that mean "this file system has no locks", not "it failed".
fn no_locks(e: &std::io::Error) -> bool {
    // ENOLCK: NFS without a lock manager.
    e.kind() == std::io::ErrorKind::Unsupported || e.raw_os_error() == Some(libc::ENOLCK)
}

/// True when the open `file` is still the one at `path`.
fn same_file(file: &File, path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match (file.metadata(), std::fs::metadata(path)) {
            (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
            _ => false,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (file, path);
        true
    }
}

/// `pid <PID> on <host>\n`: who holds the lock.
fn holder_line() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty());
    match host {
        Some(h) => format!("pid {} on {h}\n", std::process::id()),
        None => format!("pid {}\n", std::process::id()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("curvlab-lock-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn a_second_lock_is_refused_naming_the_holder_and_granted_after_release() {
        let d = scratch("two");
        let first = RunLock::acquire(&d).unwrap();
        assert!(first.created() && first.unsupported().is_none());
        // flock(2) locks belong to open files, so a second open in this
        // process conflicts just as another process would.
        let e = RunLock::acquire(&d).unwrap_err();
        let busy = e.downcast_ref::<Busy>().expect("Busy");
        assert_eq!(busy.dir, d);
        let pid = format!("pid {}", std::process::id());
        assert!(busy.holder.starts_with(&pid), "{}", busy.holder);
        let line = e.to_string();
        assert!(line.contains(&pid) && !line.contains('\n'), "{line}");
        drop(first);
        let again = RunLock::acquire(&d).unwrap();
        assert!(!again.created());
        drop(again);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_lock_file_removed_before_locking_is_locked_afresh() {
        let d = scratch("gone");
        let held = RunLock::acquire(&d).unwrap();
        // The holder's directory goes (a run that failed to start removes
        // its new directory); a newcomer must lock the new file, not the
        // orphaned one.
        std::fs::remove_dir_all(&d).unwrap();
        let fresh = RunLock::acquire(&d).unwrap();
        assert!(fresh.created());
        assert!(d.join(LOCK_FILE).is_file());
        drop((held, fresh));
        std::fs::remove_dir_all(&d).unwrap();
    }
}
