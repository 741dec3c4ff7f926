//! The data of a [`RunPlan`]: the synthetic set from its config, the toy
//! set, or a CIFAR binary file the user supplied, parsed by the core and
//! split into a training and a test part.

use std::path::Path;

use curvlab::data::cifar::{self, CifarKind, CifarOptions};
use curvlab::data::{toy, Dataset};

use crate::settings::{DataPlan, RunPlan};

/// A file the user picked or dropped.
pub struct UserFile<'a> {
    pub name: &'a str,
    pub bytes: &'a [u8],
}

/// (train, test) for `plan`. Errors are one line for the page.
pub fn load(plan: &RunPlan, file: Option<&UserFile>) -> Result<(Dataset, Dataset), String> {
    match &plan.data {
        DataPlan::Config => plan.config.data.load().map_err(|e| e.to_string()),
        DataPlan::Toy(cfg) => toy::generate(cfg).map_err(|e| e.to_string()),
        DataPlan::CifarFile {
            train_samples,
            test_samples,
            input_scale,
        } => {
            let file = file.ok_or(
                "this run needs a CIFAR-10 binary file: pick one with “Choose file” or drop it on the page",
            )?;
            cifar_split(file, *train_samples, *test_samples, *input_scale)
        }
    }
}

/// Parses a CIFAR-10 (3073-byte records) or CIFAR-100 (3074-byte records,
/// fine labels) binary file and splits it: the training set is a
/// class-balanced subset of `n_train` examples of the file's first half, the
/// test set one of `n_test` examples of its second half (file order).
pub fn cifar_split(
    file: &UserFile,
    n_train: usize,
    n_test: usize,
    input_scale: f32,
) -> Result<(Dataset, Dataset), String> {
    let len = file.bytes.len();
    let (c10, c100) = (
        CifarKind::Cifar10.record_len(),
        CifarKind::Cifar100 { coarse: false }.record_len(),
    );
    // A whole number of 3074-byte records and not of 3073-byte ones: CIFAR-100.
    let kind = if len > 0 && !len.is_multiple_of(c10) && len.is_multiple_of(c100) {
        CifarKind::Cifar100 { coarse: false }
    } else {
        CifarKind::Cifar10
    };
    let all = cifar::parse_records(
        file.bytes,
        Path::new(file.name),
        &CifarOptions { kind, input_scale },
    )
    .map_err(|e| format!("{e} — is it a CIFAR-10 binary file such as data_batch_1.bin?"))?;
    if all.len() < 2 {
        return Err(format!(
            "{}: {} record(s); need at least 2 (one to train, one to test)",
            file.name,
            all.len()
        ));
    }
    let half = all.len() / 2;
    let first: Vec<usize> = (0..half).collect();
    let second: Vec<usize> = (half..all.len()).collect();
    let balanced = |part: Vec<usize>, n: usize, what: &str| {
        let d = all.subset(&part);
        if n > d.len() {
            return Err(format!(
                "{}: the {what} half of the file has {m} images; ask for at most {m} {what} examples (got {n})",
                file.name,
                m = d.len()
            ));
        }
        d.class_balanced(n).map_err(|e| e.to_string())
    };
    let mut train = balanced(first, n_train, "training")?;
    let mut test = balanced(second, n_test, "test")?;
    train.name = format!("{} (train: {} of the first half)", all.name, train.len());
    test.name = format!("{} (test: {} of the second half)", all.name, test.len());
    Ok((train, test))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cifar10_bytes(n: usize) -> Vec<u8> {
        (0..n)
            .flat_map(|i| {
                let mut rec = vec![(i % 10) as u8];
                rec.extend((0..3072).map(|p| ((p + i) % 256) as u8));
                rec
            })
            .collect()
    }

    #[test]
    fn splits_a_cifar10_file_into_balanced_halves() {
        let bytes = cifar10_bytes(60);
        let f = UserFile {
            name: "data_batch_1.bin",
            bytes: &bytes,
        };
        let (train, test) = cifar_split(&f, 20, 10, 1.0).unwrap();
        assert_eq!((train.len(), test.len()), (20, 10));
        assert_eq!(train.class_counts(), vec![2; 10]);
        assert_eq!(test.class_counts(), vec![1; 10]);
        assert_eq!(train.input_shape, vec![3, 32, 32]);
        // The test set starts at record 30 (label 0): its first pixel is byte (0 + 30) % 256.
        let want = ((30.0 / 255.0 - 0.4914) / 0.2470) as f32;
        assert!((test.x[0] - want).abs() < 1e-6);
    }

    #[test]
    fn bad_files_give_one_clear_line() {
        let junk = b"this is not a CIFAR file".to_vec();
        let e = cifar_split(
            &UserFile {
                name: "notes.txt",
                bytes: &junk,
            },
            10,
            10,
            1.0,
        )
        .unwrap_err();
        assert!(
            e.contains("notes.txt") && e.contains("CIFAR-10 binary"),
            "{e}"
        );
        assert!(!e.contains('\n'));
        let empty = cifar_split(
            &UserFile {
                name: "empty.bin",
                bytes: &[],
            },
            10,
            10,
            1.0,
        )
        .unwrap_err();
        assert!(empty.contains("empty.bin"), "{empty}");
        let mut bad_label = cifar10_bytes(4);
        bad_label[3073] = 200;
        let e = cifar_split(
            &UserFile {
                name: "b.bin",
                bytes: &bad_label,
            },
            1,
            1,
            1.0,
        )
        .unwrap_err();
        assert!(e.contains("b.bin"), "{e}");
        let small = cifar10_bytes(20);
        let e = cifar_split(
            &UserFile {
                name: "s.bin",
                bytes: &small,
            },
            50,
            5,
            1.0,
        )
        .unwrap_err();
        assert!(e.contains("at most 10"), "{e}");
    }
}
