//! `metrics.jsonl`, the one file of a run directory that grows instead of
//! being rewritten: one JSON line per [`MetricsRow`], appended so that no row
//! is lost or torn.
//!
//! - Each row is one `write(2)` of the whole line, newline included (never a
//!   formatted write, which may reach the file in pieces).
//! - A write that fails or is cut short (a full disk, a file-size limit) is
//!   rolled back: the file is cut to the length it had before the row, and
//!   the error returned. The file holds whole rows only.
//! - Opening the log of a run to continue it ([`MetricsLog::resume`]) reads
//!   its rows; trailing bytes after the last newline — a row torn by a crash
//!   or power loss — are cut off, and said so ([`Resumed::torn`]).
//! - [`MetricsLog::sync`] flushes the rows to disk; a run calls it before it
//!   writes a checkpoint, so a checkpoint never refers to rows a crash lost.
//!
//! Cutting a file shortens it in place: it needs no free space, so a full
//! disk can always be repaired.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use curvlab::record::MetricsRow;

/// What an append-only log needs from its file: writes, and cutting it back.
pub trait Sink: Write {
    /// Shortens the file to `len` bytes.
    fn truncate(&mut self, len: u64) -> std::io::Result<()>;
}

impl Sink for File {
    fn truncate(&mut self, len: u64) -> std::io::Result<()> {
        self.set_len(len)
    }
}

/// An open metrics.jsonl, appended one whole row at a time.
pub struct MetricsLog<S: Sink = File> {
    sink: S,
    path: PathBuf,
    /// The file's length: the end of its last whole row.
    len: u64,
}

/// A log opened to continue a run.
pub struct Resumed {
    pub log: MetricsLog,
    /// The rows kept.
    pub rows: Vec<MetricsRow>,
    /// A torn last line that was cut off: its length in bytes, and a
    /// message saying so.
    pub torn: Option<(u64, String)>,
}

impl MetricsLog {
    /// Creates `path` empty (replacing a file there).
    pub fn create(path: &Path) -> Result<MetricsLog> {
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(path)
            .with_context(|| format!("{}", path.display()))?;
        Ok(MetricsLog::new(file, path, 0))
    }

    /// Opens `path` to continue a run whose checkpoint follows `keep` rows:
    /// cuts a torn last line, checks that at least `keep` whole rows are
    /// there and that they read, and drops the rows after them (they are
    /// produced again).
    pub fn resume(path: &Path, keep: usize) -> Result<Resumed> {
        let text = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(anyhow::Error::new(e).context(format!("{}", path.display()))),
        };
        let whole = text.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let torn = (whole < text.len()).then(|| {
            let n = (text.len() - whole) as u64;
            (
                n,
                format!(
                    "{}: cut a torn last line ({n} bytes after the last whole row, left by a crash or a full disk)",
                    path.display()
                ),
            )
        });
        // The end of each whole, non-blank line, and the line.
        let mut lines = Vec::new();
        let mut start = 0;
        for (i, &b) in text[..whole].iter().enumerate() {
            if b == b'\n' {
                let line = &text[start..i];
                if !line.iter().all(u8::is_ascii_whitespace) {
                    lines.push((i + 1, line));
                }
                start = i + 1;
            }
        }
        if lines.len() < keep {
            bail!(
                "{}: {} rows, but the checkpoint follows {keep}; start the run afresh",
                path.display(),
                lines.len()
            );
        }
        let mut rows = Vec::with_capacity(keep);
        for (n, (_, line)) in lines.iter().take(keep).enumerate() {
            let row = std::str::from_utf8(line)
                .map_err(anyhow::Error::new)
                .and_then(|l| Ok(serde_json::from_str::<MetricsRow>(l)?))
                .with_context(|| format!("{}: line {}", path.display(), n + 1))?;
            rows.push(row);
        }
        let end = if keep == 0 { 0 } else { lines[keep - 1].0 } as u64;
        let file = OpenOptions::new()
            .append(true)
            .open(path)
            .or_else(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    File::create(path)
                } else {
                    Err(e)
                }
            })
            .with_context(|| format!("{}", path.display()))?;
        if end < text.len() as u64 {
            file.set_len(end)
                .with_context(|| format!("{}: cannot cut back to {keep} rows", path.display()))?;
        }
        Ok(Resumed {
            log: MetricsLog::new(file, path, end),
            rows,
            torn,
        })
    }

    /// Flushes the rows written so far to disk.
    pub fn sync(&self) -> Result<()> {
        self.sink
            .sync_data()
            .with_context(|| format!("{}", self.path.display()))
    }
}

impl<S: Sink> MetricsLog<S> {
    /// A log over `sink`, whose whole rows end at byte `len`.
    pub fn new(sink: S, path: &Path, len: u64) -> MetricsLog<S> {
        MetricsLog {
            sink,
            path: path.to_path_buf(),
            len,
        }
    }

    /// Appends `row` as one line in one write; on failure the file is cut
    /// back to its last whole row and the error names the file.
    pub fn append(&mut self, row: &MetricsRow) -> Result<()> {
        let mut line = row.to_json_line();
        line.push('\n');
        self.append_line(line.as_bytes())
    }

    fn append_line(&mut self, line: &[u8]) -> Result<()> {
        let written = loop {
            match self.sink.write(line) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                other => break other,
            }
        };
        let err = match written {
            Ok(n) if n == line.len() => {
                self.len += n as u64;
                return Ok(());
            }
            Ok(n) => std::io::Error::new(
                std::io::ErrorKind::StorageFull,
                format!(
                    "only {n} of the row's {} bytes could be written (is the disk full?)",
                    line.len()
                ),
            ),
            Err(e) => e,
        };
        let cut = match self.sink.truncate(self.len) {
            Ok(()) => String::new(),
            Err(e) => format!(
                "; cutting the partial row failed too ({e}): it is cut when the run resumes"
            ),
        };
        bail!("{}: cannot append a row: {err}{cut}", self.path.display())
    }

    /// The length of the file's whole rows, in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True when no row has been written.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("curvlab-mlog-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn row(step: u64) -> MetricsRow {
        MetricsRow {
            step,
            sharpness: Some(step as f64 / 2.0),
            ..Default::default()
        }
    }

    /// A disk with `room` bytes left: writes take what fits and then fail,
    /// as write(2) does on a full disk.
    struct FullDisk {
        bytes: Vec<u8>,
        room: usize,
        writes: usize,
    }

    impl Write for FullDisk {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.writes += 1;
            let free = self.room - self.bytes.len();
            if free == 0 {
                return Err(std::io::Error::from(std::io::ErrorKind::StorageFull));
            }
            let n = buf.len().min(free);
            self.bytes.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Sink for FullDisk {
        fn truncate(&mut self, len: u64) -> std::io::Result<()> {
            self.bytes.truncate(len as usize);
            Ok(())
        }
    }

    #[test]
    fn a_row_is_one_write_and_a_short_write_is_rolled_back() {
        let one = row(1).to_json_line().len() + 1;
        let disk = FullDisk {
            bytes: Vec::new(),
            room: one + one / 2,
            writes: 0,
        };
        let mut log = MetricsLog::new(disk, Path::new("m/metrics.jsonl"), 0);
        log.append(&row(1)).unwrap();
        assert_eq!(log.sink.writes, 1, "one write per row");
        // The second row fits only in half: the half is cut back.
        let e = log.append(&row(2)).unwrap_err().to_string();
        assert!(
            e.starts_with("m/metrics.jsonl: cannot append a row: only "),
            "{e}"
        );
        assert!(!e.contains('\n'), "{e}");
        assert_eq!(log.sink.bytes.len(), one);
        assert_eq!(log.len(), one as u64);
        // Now the disk is full: the write fails outright, nothing is left.
        let e = log.append(&row(3)).unwrap_err().to_string();
        assert!(e.contains("cannot append a row"), "{e}");
        let text = String::from_utf8(log.sink.bytes.clone()).unwrap();
        assert_eq!(text, format!("{}\n", row(1).to_json_line()));
    }

    #[test]
    fn resume_cuts_a_torn_line_and_the_rows_after_the_checkpoint() {
        let d = scratch("resume");
        let p = d.join("metrics.jsonl");
        let mut log = MetricsLog::create(&p).unwrap();
        for s in 1..=3 {
            log.append(&row(s)).unwrap();
        }
        drop(log);
        let whole = std::fs::read(&p).unwrap();
        let mut torn = whole.clone();
        torn.extend_from_slice(&row(4).to_json_line().as_bytes()[..17]);
        std::fs::write(&p, &torn).unwrap();
        // Keep all three: the torn tail goes, and is reported.
        let r = MetricsLog::resume(&p, 3).unwrap();
        assert_eq!(r.rows, vec![row(1), row(2), row(3)]);
        let (n, msg) = r.torn.clone().unwrap();
        assert_eq!(n, 17);
        assert!(msg.contains("metrics.jsonl: cut a torn last line"), "{msg}");
        assert_eq!(std::fs::read(&p).unwrap(), whole);
        // Appending continues after the last whole row.
        let mut log = r.log;
        log.append(&row(4)).unwrap();
        drop(log);
        // Keep two: the third is dropped (produced again), nothing is torn.
        let r = MetricsLog::resume(&p, 2).unwrap();
        assert!(r.torn.is_none());
        assert_eq!(r.rows.len(), 2);
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(text.lines().count(), 2);
        assert!(text.ends_with('\n'));
        drop(r);
        // Fewer rows than the checkpoint follows, or an unreadable whole
        // row, is an error naming the file (and the line).
        let e = MetricsLog::resume(&p, 5).err().unwrap().to_string();
        assert!(e.contains("2 rows, but the checkpoint follows 5"), "{e}");
        std::fs::write(&p, "{\"step\": 1}\nnot json\n").unwrap();
        let e = format!("{:#}", MetricsLog::resume(&p, 1).err().unwrap());
        assert!(e.contains("metrics.jsonl: line 1"), "{e}");
        // A missing file with nothing to keep starts empty.
        std::fs::remove_file(&p).unwrap();
        let r = MetricsLog::resume(&p, 0).unwrap();
        assert!(r.rows.is_empty() && r.log.is_empty() && p.is_file());
        std::fs::remove_dir_all(&d).unwrap();
    }
}
