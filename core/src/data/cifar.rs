//! CIFAR-10 and CIFAR-100 in their official binary formats.
//!
//! * CIFAR-10 (`cifar-10-binary.tar.gz`): 3073-byte records, one label byte
//!   (0..9), then 1024 red, 1024 green and 1024 blue bytes, each plane a 32×32
//!   image in row-major order. A directory holds `data_batch_1.bin` …
//!   `data_batch_5.bin` (any non-empty subset, read in numeric order) and
//!   `test_batch.bin`.
//! * CIFAR-100 (`cifar-100-binary.tar.gz`): 3074-byte records, a coarse label
//!   byte (0..19), a fine label byte (0..99), then the same 3072 pixel bytes. A
//!   directory holds `train.bin` and `test.bin`. A `train.bin`/`test.bin` pair
//!   in the CIFAR-10 layout is accepted too.
//!
//! Pixels are normalised as in docs/measurements.md "Data and inputs":
//! x = s_in · (u/255 − m_c)/σ_c with the per-channel [`MEAN`] m and [`STD`] σ,
//! stored in file order (c, h, w), so an example is `[3, 32, 32]`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::Dataset;
use crate::{Error, Result};

/// Per-channel mean m_c (R, G, B) of the CIFAR-10 training set, on the u/255 scale.
pub const MEAN: [f32; 3] = [0.4914, 0.4822, 0.4465];

/// Per-channel standard deviation σ_c (R, G, B), on the u/255 scale.
pub const STD: [f32; 3] = [0.2470, 0.2435, 0.2616];

/// Number of pixel bytes in one record: 3 channels × 32 × 32.
pub const PIXELS: usize = 3 * 32 * 32;

/// Size in bytes of a CIFAR-10 record (1 label byte + pixels).
pub const RECORD_CIFAR10: usize = 1 + PIXELS;

/// Size in bytes of a CIFAR-100 record (coarse and fine label bytes + pixels).
pub const RECORD_CIFAR100: usize = 2 + PIXELS;

/// Which CIFAR layout and which labels to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CifarKind {
    /// CIFAR-10: 3073-byte records, 10 classes.
    Cifar10,
    /// CIFAR-100: 3074-byte records; the 20 coarse labels when `coarse`,
    /// otherwise the 100 fine labels.
    Cifar100 {
        /// Use the coarse (superclass) label instead of the fine one.
        coarse: bool,
    },
}

impl CifarKind {
    /// Bytes per record: 3073 for CIFAR-10, 3074 for CIFAR-100.
    pub fn record_len(self) -> usize {
        match self {
            CifarKind::Cifar10 => RECORD_CIFAR10,
            CifarKind::Cifar100 { .. } => RECORD_CIFAR100,
        }
    }

    /// Number of classes C of the labels read: 10, 100 (fine) or 20 (coarse).
    pub fn classes(self) -> usize {
        match self {
            CifarKind::Cifar10 => 10,
            CifarKind::Cifar100 { coarse: false } => 100,
            CifarKind::Cifar100 { coarse: true } => 20,
        }
    }

    /// Short name used in dataset names: `cifar10`, `cifar100` or `cifar100-coarse`.
    pub fn short_name(self) -> &'static str {
        match self {
            CifarKind::Cifar10 => "cifar10",
            CifarKind::Cifar100 { coarse: false } => "cifar100",
            CifarKind::Cifar100 { coarse: true } => "cifar100-coarse",
        }
    }
}

/// How to read CIFAR files.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct CifarOptions {
    /// Layout and labels.
    pub kind: CifarKind,
    /// Input scale s_in multiplying the normalised pixels (default 1, App. C.2).
    pub input_scale: f32,
}

impl Default for CifarOptions {
    /// CIFAR-10 with input scale 1.
    fn default() -> Self {
        CifarOptions {
            kind: CifarKind::Cifar10,
            input_scale: 1.0,
        }
    }
}

/// Names of the CIFAR-10 training batches, in the order they are read.
const TRAIN_BATCHES: [&str; 5] = [
    "data_batch_1.bin",
    "data_batch_2.bin",
    "data_batch_3.bin",
    "data_batch_4.bin",
    "data_batch_5.bin",
];

/// What a CIFAR directory must contain, for error messages.
const EXPECTED_LAYOUT: &str =
    "expected data_batch_1.bin…data_batch_5.bin and test_batch.bin (CIFAR-10), or train.bin and test.bin (CIFAR-100)";

/// The files of a CIFAR directory.
enum Layout {
    /// CIFAR-10 batches: the training batches present, and `test_batch.bin`.
    Batches { train: Vec<PathBuf>, test: PathBuf },
    /// `train.bin` and `test.bin`.
    TrainTest { train: PathBuf, test: PathBuf },
}

/// Which files of `dir` hold the data; errors if the directory or a required
/// file is missing.
fn layout(dir: &Path) -> Result<Layout> {
    if !dir.is_dir() {
        return Err(Error::MissingFile {
            path: dir.to_path_buf(),
            what: format!("CIFAR data directory: {EXPECTED_LAYOUT}"),
        });
    }
    let train: Vec<PathBuf> = TRAIN_BATCHES
        .iter()
        .map(|f| dir.join(f))
        .filter(|p| p.is_file())
        .collect();
    if !train.is_empty() {
        let test = dir.join("test_batch.bin");
        if !test.is_file() {
            return Err(Error::MissingFile {
                path: test,
                what:
                    "CIFAR-10 test batch: expected test_batch.bin beside the data_batch_*.bin files"
                        .into(),
            });
        }
        return Ok(Layout::Batches { train, test });
    }
    let train = dir.join("train.bin");
    if train.is_file() {
        let test = dir.join("test.bin");
        if !test.is_file() {
            return Err(Error::MissingFile {
                path: test,
                what: "CIFAR test set: expected test.bin beside train.bin".into(),
            });
        }
        return Ok(Layout::TrainTest { train, test });
    }
    Err(Error::MissingFile {
        path: dir.join("data_batch_1.bin"),
        what: format!("CIFAR training data: {EXPECTED_LAYOUT}"),
    })
}

/// The CIFAR layout of the files in `dir`: CIFAR-10 if a `data_batch_*.bin`
/// file exists, otherwise [`kind_of_file`] of `train.bin`.
pub fn detect_kind(dir: &Path) -> Result<CifarKind> {
    match layout(dir)? {
        Layout::Batches { .. } => Ok(CifarKind::Cifar10),
        Layout::TrainTest { train, .. } => {
            let len = std::fs::metadata(&train)
                .map_err(|e| Error::io(&train, e))?
                .len();
            kind_of_file(&train, len)
        }
    }
}

/// The CIFAR layout of a file of `len` bytes (`path` names it in errors; a
/// file the browser read has only a name): CIFAR-10 if `len` is a multiple
/// of 3073 bytes, otherwise CIFAR-100 (fine labels) if it is a multiple of
/// 3074 bytes; an error if the file is empty or neither fits.
pub fn kind_of_file(path: &Path, len: u64) -> Result<CifarKind> {
    if len == 0 {
        return Err(empty_file(path, CifarKind::Cifar10));
    }
    if len.is_multiple_of(RECORD_CIFAR10 as u64) {
        Ok(CifarKind::Cifar10)
    } else if len.is_multiple_of(RECORD_CIFAR100 as u64) {
        Ok(CifarKind::Cifar100 { coarse: false })
    } else {
        // Neither layout fits; report against the CIFAR-100 record,
        // the one official train.bin uses.
        let record = RECORD_CIFAR100;
        Err(Error::RecordSize {
            path: path.to_path_buf(),
            len,
            record,
            offset: len / record as u64 * record as u64,
        })
    }
}

/// Read the training and test sets from a CIFAR directory: `(train, test)`.
///
/// The training set is the concatenation of the `data_batch_*.bin` files
/// present (in numeric order), or `train.bin`; the test set is
/// `test_batch.bin` or `test.bin`. The batch layout is CIFAR-10 only.
/// Names are `<kind>:<dir>` and `<kind>:<dir>:test`.
pub fn load_dir(dir: &Path, opts: &CifarOptions) -> Result<(Dataset, Dataset)> {
    let (train_files, test_file) = match layout(dir)? {
        Layout::Batches { train, test } => {
            if opts.kind != CifarKind::Cifar10 {
                return Err(Error::Config(format!(
                    "{}: data_batch_*.bin files are CIFAR-10; CIFAR-100 is read from train.bin and test.bin",
                    dir.display()
                )));
            }
            (train, test)
        }
        Layout::TrainTest { train, test } => (vec![train], test),
    };
    let mut train = load_file(&train_files[0], opts)?;
    for path in &train_files[1..] {
        let more = load_file(path, opts)?;
        train.x.extend_from_slice(&more.x);
        train.y.extend_from_slice(&more.y);
    }
    let mut test = load_file(&test_file, opts)?;
    train.name = format!("{}:{}", opts.kind.short_name(), dir.display());
    test.name = format!("{}:{}:test", opts.kind.short_name(), dir.display());
    Ok((train, test))
}

/// Read one CIFAR binary file (named `<kind>:<path>`).
pub fn load_file(path: &Path, opts: &CifarOptions) -> Result<Dataset> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    parse_records(&bytes, path, opts)
}

/// The error for an empty file.
fn empty_file(path: &Path, kind: CifarKind) -> Error {
    Error::Io {
        path: path.to_path_buf(),
        source: std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "empty file: expected one or more {}-byte {} records",
                kind.record_len(),
                kind.short_name()
            ),
        ),
    }
}

/// The normalised value of byte `u` in channel `c` for every `u`:
/// `table[c][u] = s_in · (u/255 − m_c)/σ_c`, computed in f64.
fn normalisation_table(input_scale: f32) -> [[f32; 256]; 3] {
    let mut table = [[0.0f32; 256]; 3];
    for (c, row) in table.iter_mut().enumerate() {
        let (m, s) = (MEAN[c] as f64, STD[c] as f64);
        for (u, v) in row.iter_mut().enumerate() {
            *v = (input_scale as f64 * ((u as f64 / 255.0 - m) / s)) as f32;
        }
    }
    table
}

/// Parse CIFAR records held in memory (a whole file's bytes, e.g. a file
/// dropped into the browser). `path` only names the source in errors and in
/// the dataset name (`<kind>:<path>`).
///
/// Errors: an empty buffer; a length that is not a whole number of records
/// ([`Error::RecordSize`], with the offset of the partial last record); a
/// label byte out of range ([`Error::LabelOutOfRange`], with the record index
/// and the label's byte offset; for CIFAR-100 both labels are checked); a
/// non-finite input scale ([`Error::Config`]).
pub fn parse_records(bytes: &[u8], path: &Path, opts: &CifarOptions) -> Result<Dataset> {
    if !opts.input_scale.is_finite() {
        return Err(Error::Config(format!(
            "input_scale must be finite, got {}",
            opts.input_scale
        )));
    }
    let kind = opts.kind;
    let record = kind.record_len();
    let len = bytes.len() as u64;
    if bytes.is_empty() {
        return Err(empty_file(path, kind));
    }
    if !bytes.len().is_multiple_of(record) {
        let offset = (bytes.len() / record * record) as u64;
        return Err(Error::RecordSize {
            path: path.to_path_buf(),
            len,
            record,
            offset,
        });
    }
    let n = bytes.len() / record;
    let table = normalisation_table(opts.input_scale);
    let mut x = Vec::with_capacity(n * PIXELS);
    let mut y = Vec::with_capacity(n);
    let label_error = |i: usize, at: usize, label: u8, classes: usize| Error::LabelOutOfRange {
        path: path.to_path_buf(),
        record: i,
        offset: (i * record + at) as u64,
        label: label as u32,
        classes,
    };
    for (i, rec) in bytes.chunks_exact(record).enumerate() {
        // `rec` has `record` ≥ 3073 bytes, so the label indices are in bounds.
        let label = match kind {
            CifarKind::Cifar10 => {
                let l = rec[0];
                if l >= 10 {
                    return Err(label_error(i, 0, l, 10));
                }
                l
            }
            CifarKind::Cifar100 { coarse } => {
                let (c, f) = (rec[0], rec[1]);
                if c >= 20 {
                    return Err(label_error(i, 0, c, 20));
                }
                if f >= 100 {
                    return Err(label_error(i, 1, f, 100));
                }
                if coarse {
                    c
                } else {
                    f
                }
            }
        };
        let pixels = &rec[record - PIXELS..];
        y.push(label as u32);
        for (plane, row) in pixels.chunks_exact(PIXELS / 3).zip(table.iter()) {
            x.extend(plane.iter().map(|&u| row[u as usize]));
        }
    }
    Ok(Dataset {
        x,
        y,
        input_shape: vec![3, 32, 32],
        classes: kind.classes(),
        name: format!("{}:{}", kind.short_name(), path.display()),
    })
}

/// Read only the training set of a CIFAR directory (no test file needed):
/// the `data_batch_*.bin` files present, in numeric order, or `train.bin`.
pub fn load_train(dir: &Path, opts: &CifarOptions) -> Result<Dataset> {
    if !dir.is_dir() {
        return Err(Error::MissingFile {
            path: dir.to_path_buf(),
            what: format!("CIFAR data directory: {EXPECTED_LAYOUT}"),
        });
    }
    let batches: Vec<PathBuf> = TRAIN_BATCHES
        .iter()
        .map(|f| dir.join(f))
        .filter(|p| p.is_file())
        .collect();
    let files = if batches.is_empty() {
        let train = dir.join("train.bin");
        if !train.is_file() {
            return Err(Error::MissingFile {
                path: dir.join("data_batch_1.bin"),
                what: format!("CIFAR training data: {EXPECTED_LAYOUT}"),
            });
        }
        vec![train]
    } else {
        batches
    };
    let mut train = load_file(&files[0], opts)?;
    for path in &files[1..] {
        let more = load_file(path, opts)?;
        train.x.extend_from_slice(&more.x);
        train.y.extend_from_slice(&more.y);
    }
    train.name = format!("{}:{}", opts.kind.short_name(), dir.display());
    Ok(train)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DATA_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data/cifar10-5k");

    /// The real data directory, or `None` (with a note) when it is absent.
    fn real_data() -> Option<PathBuf> {
        let dir = PathBuf::from(DATA_DIR);
        if dir.join("data_batch_1.bin").is_file() {
            Some(dir)
        } else {
            eprintln!("note: {DATA_DIR} is absent; skipping the real-data CIFAR test");
            None
        }
    }

    /// A fresh, empty temporary directory unique to this test.
    fn temp_dir(tag: &str) -> PathBuf {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("curvlab-cifar-{}-{tag}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// `n` synthetic records: labels from `labels(i)`, pixel j of record i = (i + j) mod 256.
    fn records(n: usize, labels: impl Fn(usize) -> Vec<u8>) -> Vec<u8> {
        let mut out = Vec::new();
        for i in 0..n {
            out.extend(labels(i));
            out.extend((0..PIXELS).map(|j| ((i + j) % 256) as u8));
        }
        out
    }

    fn expected(u: u8, c: usize, scale: f64) -> f64 {
        scale * (u as f64 / 255.0 - MEAN[c] as f64) / STD[c] as f64
    }

    #[test]
    fn real_cifar10_subset() {
        let Some(dir) = real_data() else { return };
        assert_eq!(detect_kind(&dir).unwrap(), CifarKind::Cifar10);
        let (train, test) = load_dir(&dir, &CifarOptions::default()).unwrap();
        assert_eq!(train.len(), 5000);
        assert_eq!(test.len(), 1000);
        assert_eq!(train.input_shape, vec![3, 32, 32]);
        assert_eq!(train.x.len(), 5000 * PIXELS);
        assert_eq!(train.classes, 10);
        assert_eq!(&train.y[..10], &[6, 9, 9, 4, 1, 1, 2, 7, 8, 3]);
        assert_eq!(train.class_counts(), vec![500; 10]);
        assert_eq!(test.class_counts(), vec![100; 10]);
        assert!(train.name.starts_with("cifar10:"), "{}", train.name);
        assert!(test.name.ends_with(":test"), "{}", test.name);

        // Hand computation from the raw bytes: example 7, channel c, row 13, column 21.
        let raw = std::fs::read(dir.join("data_batch_1.bin")).unwrap();
        let (i, h, w) = (7, 13, 21);
        for c in 0..3 {
            let u = raw[i * RECORD_CIFAR10 + 1 + c * 1024 + h * 32 + w];
            let got = train.input(i)[c * 1024 + h * 32 + w] as f64;
            assert!(
                (got - expected(u, c, 1.0)).abs() < 1e-6,
                "c={c}: {got} vs byte {u}"
            );
        }
        let test_raw = std::fs::read(dir.join("test_batch.bin")).unwrap();
        assert_eq!(test.y[0] as u8, test_raw[0]);

        // The input scale multiplies every value.
        let scaled = load_file(
            &dir.join("test_batch.bin"),
            &CifarOptions {
                input_scale: 2.5,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(scaled.y, test.y);
        for (a, b) in scaled.x.iter().zip(&test.x).step_by(97) {
            assert!(
                (a - 2.5 * b).abs() <= 1e-5 * (1.0 + b.abs()),
                "{a} vs 2.5·{b}"
            );
        }
    }

    #[test]
    fn pixel_order_and_normalisation() {
        let bytes = records(3, |i| vec![i as u8]);
        let d = parse_records(
            &bytes,
            Path::new("mem"),
            &CifarOptions {
                input_scale: 0.5,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(d.y, vec![0, 1, 2]);
        assert_eq!(d.name, "cifar10:mem");
        for i in 0..3 {
            for j in [0, 1, 1023, 1024, 2047, 2048, 3071] {
                let u = ((i + j) % 256) as u8;
                let want = expected(u, j / 1024, 0.5);
                assert!((d.input(i)[j] as f64 - want).abs() < 1e-6);
            }
        }
    }

    #[test]
    fn truncated_file() {
        let dir = temp_dir("truncated");
        let mut bytes = records(4, |_| vec![3]);
        bytes.truncate(3 * RECORD_CIFAR10 + 100);
        std::fs::write(dir.join("data_batch_1.bin"), &bytes).unwrap();
        std::fs::write(dir.join("test_batch.bin"), records(2, |_| vec![1])).unwrap();
        match load_dir(&dir, &CifarOptions::default()) {
            Err(Error::RecordSize {
                path,
                len,
                record,
                offset,
            }) => {
                assert!(path.ends_with("data_batch_1.bin"));
                assert_eq!(len, bytes.len() as u64);
                assert_eq!(record, RECORD_CIFAR10);
                assert_eq!(offset, 3 * RECORD_CIFAR10 as u64);
            }
            other => panic!("expected RecordSize, got {other:?}"),
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn wrong_record_size() {
        // CIFAR-100 records read as CIFAR-10, and the reverse.
        let c100 = records(5, |_| vec![1, 2]);
        let err = parse_records(&c100, Path::new("x.bin"), &CifarOptions::default()).unwrap_err();
        assert!(
            matches!(
                err,
                Error::RecordSize {
                    record: RECORD_CIFAR10,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("3073-byte record"), "{err}");
        let c10 = records(5, |_| vec![1]);
        let opts = CifarOptions {
            kind: CifarKind::Cifar100 { coarse: false },
            input_scale: 1.0,
        };
        let err = parse_records(&c10, Path::new("x.bin"), &opts).unwrap_err();
        assert!(
            matches!(
                err,
                Error::RecordSize {
                    record: RECORD_CIFAR100,
                    offset: 12296,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn empty_and_short_inputs_do_not_panic() {
        let err = parse_records(&[], Path::new("empty.bin"), &CifarOptions::default()).unwrap_err();
        assert!(err.to_string().contains("empty file"), "{err}");
        for len in [1, 2, 100, RECORD_CIFAR10 - 1, RECORD_CIFAR100 + 1] {
            let bytes = vec![0u8; len];
            assert!(
                parse_records(&bytes, Path::new("short.bin"), &CifarOptions::default()).is_err()
            );
            let opts = CifarOptions {
                kind: CifarKind::Cifar100 { coarse: true },
                input_scale: 1.0,
            };
            assert!(parse_records(&bytes, Path::new("short.bin"), &opts).is_err());
        }
        let opts = CifarOptions {
            input_scale: f32::NAN,
            ..Default::default()
        };
        assert!(matches!(
            parse_records(&records(1, |_| vec![0]), Path::new("m"), &opts),
            Err(Error::Config(_))
        ));
    }

    #[test]
    fn missing_files() {
        let dir = temp_dir("missing");
        std::fs::write(dir.join("data_batch_1.bin"), records(2, |_| vec![0])).unwrap();
        let err = load_dir(&dir, &CifarOptions::default()).unwrap_err();
        match &err {
            Error::MissingFile { path, .. } => assert!(path.ends_with("test_batch.bin")),
            other => panic!("expected MissingFile, got {other:?}"),
        }
        assert!(err.to_string().contains("test_batch.bin"), "{err}");

        let empty = temp_dir("nothing");
        let err = load_dir(&empty, &CifarOptions::default()).unwrap_err();
        assert!(matches!(err, Error::MissingFile { .. }), "{err}");
        assert!(
            err.to_string()
                .contains("data_batch_1.bin…data_batch_5.bin"),
            "{err}"
        );
        assert!(detect_kind(&empty).is_err());

        let gone = dir.join("does-not-exist");
        assert!(matches!(
            load_dir(&gone, &CifarOptions::default()),
            Err(Error::MissingFile { .. })
        ));
        assert!(matches!(
            load_file(&gone, &CifarOptions::default()),
            Err(Error::MissingFile { .. })
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::remove_dir_all(&empty);
    }

    #[test]
    fn batches_subset_concatenated_in_order() {
        let dir = temp_dir("batches");
        std::fs::write(dir.join("data_batch_3.bin"), records(2, |_| vec![3])).unwrap();
        std::fs::write(dir.join("data_batch_1.bin"), records(3, |_| vec![1])).unwrap();
        std::fs::write(dir.join("test_batch.bin"), records(1, |_| vec![9])).unwrap();
        let (train, test) = load_dir(&dir, &CifarOptions::default()).unwrap();
        assert_eq!(train.y, vec![1, 1, 1, 3, 3]);
        assert_eq!(train.x.len(), 5 * PIXELS);
        assert_eq!(test.y, vec![9]);
        let opts = CifarOptions {
            kind: CifarKind::Cifar100 { coarse: false },
            input_scale: 1.0,
        };
        assert!(matches!(load_dir(&dir, &opts), Err(Error::Config(_))));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn label_out_of_range() {
        let dir = temp_dir("label");
        let bytes = records(4, |i| vec![if i == 2 { 10 } else { 0 }]);
        let path = dir.join("test_batch.bin");
        std::fs::write(&path, &bytes).unwrap();
        match load_file(&path, &CifarOptions::default()) {
            Err(Error::LabelOutOfRange {
                path: p,
                record,
                offset,
                label,
                classes,
            }) => {
                assert_eq!(p, path);
                assert_eq!(record, 2);
                assert_eq!(offset, 2 * RECORD_CIFAR10 as u64);
                assert_eq!(label, 10);
                assert_eq!(classes, 10);
            }
            other => panic!("expected LabelOutOfRange, got {other:?}"),
        }
        // CIFAR-100: a fine label of 100 in record 1 sits at byte 3074 + 1.
        let bytes = records(3, |i| vec![5, if i == 1 { 100 } else { 99 }]);
        let opts = CifarOptions {
            kind: CifarKind::Cifar100 { coarse: true },
            input_scale: 1.0,
        };
        match parse_records(&bytes, Path::new("m"), &opts) {
            Err(Error::LabelOutOfRange {
                record: 1,
                offset: 3075,
                label: 100,
                classes: 100,
                ..
            }) => {}
            other => panic!("expected LabelOutOfRange, got {other:?}"),
        }
        let bytes = records(2, |_| vec![20, 0]);
        match parse_records(&bytes, Path::new("m"), &opts) {
            Err(Error::LabelOutOfRange {
                record: 0,
                offset: 0,
                label: 20,
                classes: 20,
                ..
            }) => {}
            other => panic!("expected LabelOutOfRange, got {other:?}"),
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn cifar100_layout() {
        let dir = temp_dir("c100");
        let labels = |i: usize| vec![(i % 20) as u8, (i * 7 % 100) as u8];
        std::fs::write(dir.join("train.bin"), records(30, labels)).unwrap();
        std::fs::write(dir.join("test.bin"), records(4, labels)).unwrap();
        let kind = detect_kind(&dir).unwrap();
        assert_eq!(kind, CifarKind::Cifar100 { coarse: false });

        let (train, test) = load_dir(
            &dir,
            &CifarOptions {
                kind,
                input_scale: 1.0,
            },
        )
        .unwrap();
        assert_eq!(train.classes, 100);
        assert_eq!(train.len(), 30);
        assert_eq!(test.len(), 4);
        assert_eq!(
            train.y,
            (0..30).map(|i| (i * 7 % 100) as u32).collect::<Vec<_>>()
        );
        assert!(train.name.starts_with("cifar100:"), "{}", train.name);
        // Pixels start after the two label bytes.
        assert!((train.input(1)[0] as f64 - expected(1, 0, 1.0)).abs() < 1e-6);

        let coarse = CifarOptions {
            kind: CifarKind::Cifar100 { coarse: true },
            input_scale: 1.0,
        };
        let (train_c, _) = load_dir(&dir, &coarse).unwrap();
        assert_eq!(train_c.classes, 20);
        assert_eq!(
            train_c.y,
            (0..30).map(|i| (i % 20) as u32).collect::<Vec<_>>()
        );
        assert_eq!(train_c.x, train.x);

        // train.bin/test.bin in the CIFAR-10 layout.
        let dir10 = temp_dir("c10tt");
        std::fs::write(
            dir10.join("train.bin"),
            records(6, |i| vec![(i % 10) as u8]),
        )
        .unwrap();
        std::fs::write(dir10.join("test.bin"), records(2, |_| vec![4])).unwrap();
        assert_eq!(detect_kind(&dir10).unwrap(), CifarKind::Cifar10);
        let (t10, _) = load_dir(&dir10, &CifarOptions::default()).unwrap();
        assert_eq!(t10.y, vec![0, 1, 2, 3, 4, 5]);
        std::fs::remove_file(dir10.join("test.bin")).unwrap();
        let err = load_dir(&dir10, &CifarOptions::default()).unwrap_err();
        assert!(
            matches!(&err, Error::MissingFile { path, .. } if path.ends_with("test.bin")),
            "{err}"
        );
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::remove_dir_all(&dir10);
    }

    /// The size rule the CLI (a directory) and the browser (file bytes) share.
    #[test]
    fn kind_of_file_by_length() {
        let p = Path::new("f.bin");
        let n10 = 7 * RECORD_CIFAR10 as u64;
        let n100 = 7 * RECORD_CIFAR100 as u64;
        assert_eq!(kind_of_file(p, n10).unwrap(), CifarKind::Cifar10);
        assert_eq!(
            kind_of_file(p, n100).unwrap(),
            CifarKind::Cifar100 { coarse: false }
        );
        // A multiple of both record sizes reads as CIFAR-10.
        let both = RECORD_CIFAR10 as u64 * RECORD_CIFAR100 as u64;
        assert_eq!(kind_of_file(p, both).unwrap(), CifarKind::Cifar10);
        let e = kind_of_file(p, 0).unwrap_err().to_string();
        assert!(e.contains("f.bin") && e.contains("empty file"), "{e}");
        match kind_of_file(p, n100 + 5) {
            Err(Error::RecordSize { record, offset, .. }) => {
                assert_eq!((record, offset), (RECORD_CIFAR100, n100));
            }
            other => panic!("expected RecordSize, got {other:?}"),
        }
    }
}
