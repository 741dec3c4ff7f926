//! The data of a [`RunPlan`]: the synthetic set from its config, the toy
//! set, or CIFAR binary files the user supplied, parsed by the core.
//!
//! CIFAR files: with a test file among them (`test_batch.bin`, or `test.bin`
//! for CIFAR-100), the others (in name order) are the training set and the
//! subsets are taken as the CLI takes them from a directory of the same files
//! (class-balanced, file order), so the browser and `curvlab run --data DIR`
//! train on the same examples. A single training file is split in two: the
//! training set comes from its first half, the test set from its second.

use std::path::Path;

use curvlab::data::cifar::{self, CifarOptions};
use curvlab::data::{toy, Dataset};

use crate::settings::{DataPlan, RunPlan};

/// A file the user picked or dropped.
pub struct UserFile<'a> {
    pub name: &'a str,
    pub bytes: &'a [u8],
}

/// (train, test) for `plan`. Errors are one line for the page.
pub fn load(plan: &RunPlan, files: &[UserFile]) -> Result<(Dataset, Dataset), String> {
    match &plan.data {
        DataPlan::Config => plan.config.data.load().map_err(|e| e.to_string()),
        DataPlan::Toy(cfg) => toy::generate(cfg).map_err(|e| e.to_string()),
        DataPlan::CifarFile {
            train_samples,
            test_samples,
            input_scale,
        } => cifar_sets(files, *train_samples, *test_samples, *input_scale),
    }
}

/// Whether a file name is a CIFAR test file.
fn is_test_file(name: &str) -> bool {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    base == "test_batch.bin" || base == "test.bin"
}

/// Parses one CIFAR-10 (3073-byte records) or CIFAR-100 (3074-byte records,
/// fine labels) file, told apart by its size (and, for a size that fits
/// both, by its labels) as the CLI tells `train.bin` ([`cifar::kind_of_bytes`]).
fn parse(file: &UserFile, input_scale: f32) -> Result<Dataset, String> {
    let path = Path::new(file.name);
    cifar::kind_of_bytes(path, file.bytes)
        .and_then(|kind| {
            cifar::parse_records(file.bytes, path, &CifarOptions { kind, input_scale })
        })
        .map_err(|e| format!("{e} — is it a CIFAR-10 binary file such as data_batch_1.bin?"))
}

/// Concatenates datasets of one kind (the first one's name and shape).
fn concat(parts: Vec<Dataset>) -> Result<Dataset, String> {
    let mut it = parts.into_iter();
    let mut all = it.next().expect("at least one part");
    for d in it {
        if d.classes != all.classes {
            return Err(format!(
                "{} has {} classes but {} has {}: mixed CIFAR-10 and CIFAR-100 files",
                d.name, d.classes, all.name, all.classes
            ));
        }
        all.x.extend(d.x);
        all.y.extend(d.y);
    }
    Ok(all)
}

/// A class-balanced subset of `n` examples of `d` (file order), or a clear error.
fn balanced(d: &Dataset, n: usize, what: &str, whence: &str) -> Result<Dataset, String> {
    if n > d.len() {
        return Err(format!(
            "{whence} has {m} images; ask for at most {m} {what} examples (got {n})",
            m = d.len()
        ));
    }
    d.class_balanced(n).map_err(|e| e.to_string())
}

/// The training and test sets of CIFAR `files` (see the module docs).
pub fn cifar_sets(
    files: &[UserFile],
    n_train: usize,
    n_test: usize,
    input_scale: f32,
) -> Result<(Dataset, Dataset), String> {
    if files.is_empty() {
        return Err("this run needs a CIFAR-10 binary file: pick one with “Choose files” or drop it on the page".into());
    }
    let mut train_files: Vec<&UserFile> = files.iter().filter(|f| !is_test_file(f.name)).collect();
    train_files.sort_by(|a, b| a.name.cmp(b.name));
    let test_file = files.iter().find(|f| is_test_file(f.name));
    if train_files.is_empty() {
        return Err(format!(
            "{} is a test file; add a training file such as data_batch_1.bin",
            test_file.map(|f| f.name).unwrap_or("the file")
        ));
    }
    let parts = train_files
        .iter()
        .map(|f| parse(f, input_scale))
        .collect::<Result<Vec<_>, _>>()?;
    let all = concat(parts)?;
    let (mut train, mut test) = match test_file {
        Some(tf) => {
            let test_all = parse(tf, input_scale)?;
            if test_all.classes != all.classes {
                return Err(format!(
                    "{} does not match the training files' classes",
                    tf.name
                ));
            }
            (
                balanced(&all, n_train, "training", &all.name)?,
                balanced(&test_all, n_test, "test", &test_all.name)?,
            )
        }
        None => {
            if all.len() < 2 {
                return Err(format!(
                    "{}: {} record(s); need at least 2 (one to train, one to test)",
                    all.name,
                    all.len()
                ));
            }
            let half = all.len() / 2;
            let first = all.subset(&(0..half).collect::<Vec<_>>());
            let second = all.subset(&(half..all.len()).collect::<Vec<_>>());
            let whence = |which| format!("the {which} half of {}", all.name);
            (
                balanced(&first, n_train, "training", &whence("first"))?,
                balanced(&second, n_test, "test", &whence("second"))?,
            )
        }
    };
    train.name = format!("{} (train: {})", all.name, train.len());
    test.name = format!("{} (test: {})", test.name, test.len());
    Ok((train, test))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cifar10_bytes(n: usize, first_label: usize) -> Vec<u8> {
        (0..n)
            .flat_map(|i| {
                let mut rec = vec![((i + first_label) % 10) as u8];
                rec.extend((0..3072).map(|p| ((p + i) % 256) as u8));
                rec
            })
            .collect()
    }

    fn file<'a>(name: &'a str, bytes: &'a [u8]) -> UserFile<'a> {
        UserFile { name, bytes }
    }

    #[test]
    fn splits_one_file_into_balanced_halves() {
        let bytes = cifar10_bytes(60, 0);
        let (train, test) = cifar_sets(&[file("data_batch_1.bin", &bytes)], 20, 10, 1.0).unwrap();
        assert_eq!((train.len(), test.len()), (20, 10));
        assert_eq!(train.class_counts(), vec![2; 10]);
        assert_eq!(test.class_counts(), vec![1; 10]);
        assert_eq!(train.input_shape, vec![3, 32, 32]);
        // The test set starts at record 30 (label 0): its first pixel is byte (0 + 30) % 256.
        let want = ((30.0 / 255.0 - 0.4914) / 0.2470) as f32;
        assert!((test.x[0] - want).abs() < 1e-6);
    }

    #[test]
    fn a_test_file_is_the_test_set_as_for_the_cli() {
        let train_bytes = cifar10_bytes(40, 0);
        let test_bytes = cifar10_bytes(20, 5);
        let files = [
            file("test_batch.bin", &test_bytes),
            file("data_batch_1.bin", &train_bytes),
        ];
        let (train, test) = cifar_sets(&files, 30, 10, 1.0).unwrap();
        assert_eq!((train.len(), test.len()), (30, 10));
        // Test record 0 has label 5 and its pixels start at byte 0.
        assert_eq!(test.y[0], 5);
        let want = ((0.0 / 255.0 - 0.4914) / 0.2470) as f32;
        assert!((test.x[0] - want).abs() < 1e-6);
        // Train is the class-balanced subset of the training file, as DataConfig::Cifar takes it.
        let all = parse(&files[1], 1.0).unwrap();
        assert_eq!(train.x, all.class_balanced(30).unwrap().x);
        let only_test = cifar_sets(&files[..1], 5, 5, 1.0).unwrap_err();
        assert!(only_test.contains("training file"), "{only_test}");
    }

    /// A file of 3074-byte records is CIFAR-100 (fine labels), told by the
    /// core's size rule as for `train.bin` on the command line.
    #[test]
    fn a_cifar100_file_is_told_by_its_size() {
        let bytes: Vec<u8> = (0..4)
            .flat_map(|i| {
                let mut rec = vec![(i % 20) as u8, (i * 30 % 100) as u8];
                rec.extend(std::iter::repeat_n(7u8, 3072));
                rec
            })
            .collect();
        let d = parse(&file("train.bin", &bytes), 1.0).unwrap();
        assert_eq!(d.classes, 100);
        assert_eq!(d.y, vec![0, 30, 60, 90]);
    }

    #[test]
    fn bad_files_give_one_clear_line() {
        let junk = b"this is not a CIFAR file".to_vec();
        let e = cifar_sets(&[file("notes.txt", &junk)], 10, 10, 1.0).unwrap_err();
        assert!(
            e.contains("notes.txt") && e.contains("CIFAR-10 binary"),
            "{e}"
        );
        assert!(!e.contains('\n'));
        let empty = cifar_sets(&[file("empty.bin", &[])], 10, 10, 1.0).unwrap_err();
        assert!(empty.contains("empty.bin"), "{empty}");
        let mut bad_label = cifar10_bytes(4, 0);
        bad_label[3073] = 200;
        let e = cifar_sets(&[file("b.bin", &bad_label)], 1, 1, 1.0).unwrap_err();
        assert!(e.contains("b.bin"), "{e}");
        let small = cifar10_bytes(20, 0);
        let e = cifar_sets(&[file("s.bin", &small)], 50, 5, 1.0).unwrap_err();
        assert!(e.contains("at most 10"), "{e}");
        assert!(cifar_sets(&[], 1, 1, 1.0)
            .unwrap_err()
            .contains("needs a CIFAR-10"));
    }
}
