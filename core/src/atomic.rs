//! Atomic file writes, for every file curvlab rewrites (configurations,
//! summaries, checkpoints, weights, plots, manifests, reports): a reader, or
//! a run killed at any instant, sees the old file or the new one, never a torn
//! one.
//!
//! The bytes go to a temporary file in the target's directory, which is
//! flushed to disk (fsync), renamed over the target, and then the directory
//! is flushed so that the rename itself survives a crash. Temporaries are
//! hidden and unmistakable — `.NAME.tmp-<pid>-<random>` (plus NAME's
//! extension, for writers that choose a format by it) — so that one left by a
//! crash is never taken for a result ([`is_temporary`]); a failed write
//! removes its temporary.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// Marks a temporary's name, after the hidden target name.
const TMP_MARK: &str = ".tmp-";

/// Writes `bytes` to `path` atomically (see the module docs).
pub fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    write_with(path, false, |tmp| {
        let mut f = File::create(tmp).map_err(|e| Error::io(tmp, e))?;
        f.write_all(bytes).map_err(|e| Error::io(tmp, e))
    })
}

/// Lets `fill` create and write a temporary file, then makes it `path`
/// atomically: for writers that take a path (an image encoder). With
/// `keep_extension` the temporary ends in `path`'s extension, for writers
/// that choose the format by it.
pub fn write_with<E: From<Error>>(
    path: &Path,
    keep_extension: bool,
    fill: impl FnOnce(&Path) -> std::result::Result<(), E>,
) -> std::result::Result<(), E> {
    let tmp = temporary(path, keep_extension);
    let done = fill(&tmp)
        .and_then(|()| sync_file(&tmp).map_err(E::from))
        .and_then(|()| std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e).into()));
    if done.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    done?;
    sync_dir(path).map_err(E::from)
}

/// True for the name of a temporary that [`write`] or [`write_with`] makes.
pub fn is_temporary(name: &std::ffi::OsStr) -> bool {
    let name = name.to_string_lossy();
    name.starts_with('.') && name.contains(TMP_MARK)
}

/// `.NAME.tmp-<pid>-<random>[.ext]` beside `path`: distinct between threads,
/// processes and machines sharing a file system (Slurm array tasks).
fn temporary(path: &Path, keep_extension: bool) -> PathBuf {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNT: AtomicU64 = AtomicU64::new(0);
    // RandomState is seeded from the operating system's randomness.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNT.fetch_add(1, Ordering::Relaxed));
    #[cfg(not(target_family = "wasm"))]
    let pid = std::process::id();
    #[cfg(target_family = "wasm")]
    let pid = 0u32;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let mut tmp = format!(".{name}{TMP_MARK}{pid}-{:016x}", h.finish());
    if keep_extension {
        if let Some(ext) = path.extension() {
            tmp = format!("{tmp}.{}", ext.to_string_lossy());
        }
    }
    path.with_file_name(tmp)
}

fn sync_file(path: &Path) -> Result<()> {
    File::options()
        .write(true)
        .open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io(path, e))
}

/// Flushes the directory holding `path` (its entry for `path`). Only where
/// directories can be opened as files (Unix).
fn sync_dir(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let synced = File::open(dir).and_then(|d| d.sync_all());
        match synced {
            // Some file systems cannot flush a directory; the rename stands.
            Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => {}
            Err(e) => return Err(Error::io(dir, e)),
            Ok(()) => {}
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("curvlab-atomic-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn writes_and_replaces_leaving_no_temporary() {
        let d = scratch("replace");
        let p = d.join("summary.json");
        write(&p, b"old").unwrap();
        write(&p, b"new").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"new");
        assert_eq!(entries(&d), ["summary.json"]);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_failed_write_keeps_the_old_file_and_removes_its_temporary() {
        let d = scratch("fail");
        let p = d.join("plot.png");
        write(&p, b"old").unwrap();
        let mut seen = None;
        let r: Result<()> = write_with(&p, true, |tmp| {
            seen = Some(tmp.to_path_buf());
            std::fs::write(tmp, b"half").unwrap();
            Err(Error::Config("the encoder failed".into()))
        });
        assert!(r.is_err());
        assert_eq!(std::fs::read(&p).unwrap(), b"old");
        assert_eq!(entries(&d), ["plot.png"]);
        // The temporary was hidden, marked, beside the target, with its extension.
        let tmp = seen.unwrap();
        assert_eq!(tmp.parent(), Some(d.as_path()));
        let name = tmp.file_name().unwrap();
        assert!(is_temporary(name), "{name:?}");
        assert!(name.to_string_lossy().starts_with(".plot.png.tmp-"));
        assert_eq!(tmp.extension().unwrap(), "png");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn temporaries_are_distinct_and_recognised() {
        let p = Path::new("/x/config.json");
        let (a, b) = (temporary(p, false), temporary(p, false));
        assert_ne!(a, b);
        assert!(is_temporary(a.file_name().unwrap()));
        for name in ["config.json", "metrics.jsonl", ".hidden", "a.tmp-1"] {
            assert!(!is_temporary(std::ffi::OsStr::new(name)), "{name}");
        }
        // A missing directory is an error naming the path, not a panic.
        let e = write(Path::new("/nonexistent-curvlab-dir/x.json"), b"x").unwrap_err();
        assert!(e.to_string().contains("nonexistent-curvlab-dir"), "{e}");
    }
}
