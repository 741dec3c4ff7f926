//! What a path is, checked before it is read, so that an error says what is
//! wrong with it: missing ("file not found"), or there but the wrong kind of
//! thing ("is a directory, not a regular file", "is a FIFO, not a regular
//! file"). Reading a FIFO would block until something writes to it, so a
//! reader checks first.

use std::fs::{FileType, Metadata};
use std::path::Path;

use crate::{Error, Result};

/// "a regular file", "a directory", "a FIFO", … for messages.
pub fn kind_name(t: FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "a FIFO";
        }
        if t.is_socket() {
            return "a socket";
        }
        if t.is_block_device() || t.is_char_device() {
            return "a device";
        }
    }
    if t.is_dir() {
        "a directory"
    } else if t.is_file() {
        "a regular file"
    } else if t.is_symlink() {
        "a broken symbolic link"
    } else {
        "not a file or directory"
    }
}

/// The metadata of `path` (following links), or `None` when nothing is there.
fn metadata(path: &Path) -> Result<Option<Metadata>> {
    match std::fs::metadata(path) {
        Ok(m) => Ok(Some(m)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::Io {
            path: path.to_path_buf(),
            cause: e,
        }),
    }
}

fn wrong(path: &Path, m: &Metadata, expected: &'static str, what: &str) -> Error {
    Error::WrongKind {
        path: path.to_path_buf(),
        found: kind_name(m.file_type()),
        expected,
        what: what.to_string(),
    }
}

/// `Ok(true)` for a regular file, `Ok(false)` when nothing is at `path`, an
/// error naming what is there otherwise (`what` says what it should hold).
pub fn is_regular_file(path: &Path, what: &str) -> Result<bool> {
    match metadata(path)? {
        None => Ok(false),
        Some(m) if m.is_file() => Ok(true),
        Some(m) => Err(wrong(path, &m, "a regular file", what)),
    }
}

/// Fails unless `path` is a regular file: "file not found" when nothing is
/// there, "is a directory, not a regular file" and the like otherwise.
pub fn regular_file(path: &Path, what: &str) -> Result<()> {
    if is_regular_file(path, what)? {
        Ok(())
    } else {
        Err(Error::MissingFile {
            path: path.to_path_buf(),
            what: what.to_string(),
        })
    }
}

/// Fails unless `path` is a directory: "file not found" when nothing is
/// there, "is a regular file, not a directory" and the like otherwise.
pub fn directory(path: &Path, what: &str) -> Result<()> {
    match metadata(path)? {
        None => Err(Error::MissingFile {
            path: path.to_path_buf(),
            what: what.to_string(),
        }),
        Some(m) if m.is_dir() => Ok(()),
        Some(m) => Err(wrong(path, &m, "a directory", what)),
    }
}

/// The bytes of the regular file `path` (checked first: see [`regular_file`]).
pub fn read(path: &Path, what: &str) -> Result<Vec<u8>> {
    regular_file(path, what)?;
    std::fs::read(path).map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("curvlab-paths-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn each_kind_of_path_is_named() {
        let d = scratch("kinds");
        let file = d.join("train.bin");
        std::fs::write(&file, b"x").unwrap();
        let missing = d.join("nothing");
        // Missing: "file not found".
        let e = regular_file(&missing, "weights").unwrap_err().to_string();
        assert!(e.contains("file not found"), "{e}");
        let e = directory(&missing, "data").unwrap_err().to_string();
        assert!(e.contains("file not found"), "{e}");
        // There, but the wrong kind: said so, never "file not found".
        let e = directory(&file, "CIFAR data directory")
            .unwrap_err()
            .to_string();
        assert!(
            e.ends_with("train.bin: is a regular file, not a directory (CIFAR data directory)"),
            "{e}"
        );
        let e = regular_file(&d, "weights").unwrap_err().to_string();
        assert!(e.contains("is a directory, not a regular file"), "{e}");
        assert!(regular_file(&file, "x").is_ok() && directory(&d, "x").is_ok());
        assert!(!is_regular_file(&missing, "x").unwrap());
        #[cfg(unix)]
        {
            let fifo = d.join("fifo");
            let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
            // SAFETY: a valid NUL-terminated path.
            assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
            // Read would block on a FIFO; the check refuses it first.
            let e = read(&fifo, "CIFAR training data").unwrap_err().to_string();
            assert!(e.contains("is a FIFO, not a regular file"), "{e}");
            assert!(!e.contains("not found"), "{e}");
        }
        std::fs::remove_dir_all(&d).unwrap();
    }
}
