//! Fuzzing on stable Rust: property tests of the readers of outside bytes —
//! CIFAR binary files, safetensors weights and checkpoints, and sweep files
//! (TOML, expanded into runs). For any input each gives `Ok` or one error,
//! never a panic, and what it accepts is well formed.
//!
//! Inputs are arbitrary bytes, and valid files mutated (bytes overwritten,
//! cut, spliced, numbers swapped for odd ones), which reach far deeper than
//! random bytes. CI runs 256 cases per target; more on demand:
//! `PROPTEST_CASES=100000 cargo test --release --test fuzz`. A failure
//! prints the smallest input found; proptest keeps it in
//! `tests/fuzz.proptest-regressions` so that it is tried first next time.

use std::path::Path;

use curvlab::backend::{self, BackendKind};
use curvlab::data::cifar::{self, CifarKind, CifarOptions, RECORD_CIFAR10, RECORD_CIFAR100};
use curvlab::data::synthetic::SyntheticConfig;
use curvlab::experiment::{DataConfig, Run, RunConfig};
use curvlab::models::{Activation, Architecture, Mlp, Model};
use curvlab::Block;
use curvlab_lab::sweep::{ExpandOptions, SweepFile};
use proptest::prelude::*;
use proptest::test_runner::Config;

/// Cases per target: `PROPTEST_CASES`, else 256 (CI).
fn cases(share: u32) -> Config {
    let n = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256u32);
    Config {
        cases: (n / share).max(1),
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::Direct(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../tests/fuzz.proptest-regressions"
            )),
        )),
        ..Config::default()
    }
}

/// An edit of a valid input.
#[derive(Clone, Debug)]
enum Edit {
    /// Overwrite the byte at (position mod length).
    Set(usize, u8),
    /// Cut the input to (position mod length + 1) bytes.
    Cut(usize),
    /// Insert bytes at (position mod length).
    Insert(usize, Vec<u8>),
    /// Remove up to n bytes at (position mod length).
    Remove(usize, usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        4 => (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Edit::Set(i, b)),
        1 => any::<usize>().prop_map(Edit::Cut),
        2 => (any::<usize>(), prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(i, b)| Edit::Insert(i, b)),
        2 => (any::<usize>(), 1usize..64).prop_map(|(i, n)| Edit::Remove(i, n)),
    ]
}

fn apply(mut bytes: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for e in edits {
        if bytes.is_empty() {
            break;
        }
        let at = |i: usize, len: usize| i % len;
        match e {
            Edit::Set(i, b) => {
                let i = at(*i, bytes.len());
                bytes[i] = *b;
            }
            Edit::Cut(i) => {
                let n = at(*i, bytes.len()) + 1;
                bytes.truncate(n);
            }
            Edit::Insert(i, b) => {
                let i = at(*i, bytes.len());
                bytes.splice(i..i, b.iter().copied());
            }
            Edit::Remove(i, n) => {
                let i = at(*i, bytes.len());
                let end = (i + n).min(bytes.len());
                bytes.drain(i..end);
            }
        }
    }
    bytes
}

/// What a parsed CIFAR file must be.
fn check_dataset(d: &curvlab::data::Dataset, bytes: &[u8], kind: CifarKind) {
    assert_eq!(d.len() * kind.record_len(), bytes.len());
    assert_eq!(d.x.len(), d.len() * 3072);
    assert!(d.y.iter().all(|&y| (y as usize) < kind.classes()));
    assert!(d.x.iter().all(|v| v.is_finite()));
}

/// CIFAR records with labels drawn from `0..256` (mostly in range).
fn cifar_file() -> impl Strategy<Value = Vec<u8>> {
    (
        1usize..4,
        prop::bool::ANY,
        prop::collection::vec(any::<u8>(), 8),
    )
        .prop_map(|(n, hundred, labels)| {
            let record = if hundred {
                RECORD_CIFAR100
            } else {
                RECORD_CIFAR10
            };
            let mut out = vec![0u8; n * record];
            for (i, r) in out.chunks_exact_mut(record).enumerate() {
                r[0] = labels[i] % if hundred { 20 } else { 10 };
                if hundred {
                    r[1] = labels[i + 4] % 100;
                }
                for (j, p) in r[record - 3072..].iter_mut().enumerate() {
                    *p = (i * 31 + j * 7) as u8;
                }
            }
            out
        })
}

fn read_cifar(bytes: &[u8]) {
    let p = Path::new("fuzz.bin");
    match cifar::kind_of_bytes(p, bytes) {
        Ok(kind) => {
            assert!(!bytes.is_empty());
            if let Ok(d) = cifar::parse_records(
                bytes,
                p,
                &CifarOptions {
                    kind,
                    input_scale: 1.0,
                },
            ) {
                check_dataset(&d, bytes, kind);
            }
        }
        Err(e) => assert!(!e.to_string().contains('\n'), "{e}"),
    }
    for kind in [
        CifarKind::Cifar10,
        CifarKind::Cifar100 { coarse: true },
        CifarKind::Cifar100 { coarse: false },
    ] {
        let opts = CifarOptions {
            kind,
            input_scale: 1.0,
        };
        match cifar::parse_records(bytes, p, &opts) {
            Ok(d) => check_dataset(&d, bytes, kind),
            Err(e) => assert!(!e.to_string().contains('\n'), "{e}"),
        }
    }
}

proptest! {
    #![proptest_config(cases(1))]

    #[test]
    fn cifar_reader_takes_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..8000)) {
        read_cifar(&bytes);
    }

    #[test]
    fn cifar_reader_takes_edited_files(
        file in cifar_file(),
        edits in prop::collection::vec(edit(), 0..6),
    ) {
        read_cifar(&apply(file, &edits));
    }
}

fn device() -> burn::tensor::Device {
    backend::device(BackendKind::Cpu).unwrap()
}

/// The safetensors bytes of a small MLP.
fn weights_file() -> Vec<u8> {
    let arch = Architecture::Mlp(Mlp {
        input_dim: 6,
        hidden: vec![4],
        classes: 3,
        activation: Activation::Relu,
    });
    curvlab::weights::to_bytes(&Model::init(&arch, 1, &device()).unwrap()).unwrap()
}

/// Loads weights from `bytes`: a model whose tensors match its architecture,
/// or one error on one line.
fn read_weights(bytes: &[u8]) {
    match curvlab::weights::load_bytes(bytes, Path::new("fuzz.safetensors"), None, &device()) {
        Ok(m) => assert_eq!(m.to_host().len(), m.arch.param_specs().len()),
        Err(e) => assert!(!e.to_string().contains('\n'), "{e}"),
    }
}

/// A safetensors header (JSON) with odd dtypes, shapes, offsets and
/// metadata, over `data` bytes.
fn crafted_header() -> impl Strategy<Value = Vec<u8>> {
    let dtype = prop::sample::select(vec!["F32", "F64", "F16", "BF16", "I64", "U8", "BOOL", "X"]);
    let name = prop::sample::select(vec![
        "layers.0.weight",
        "layers.0.bias",
        "layers.1.weight",
        "layers.1.bias",
        "features.0.weight",
        "fc.weight",
        "__metadata__",
    ]);
    let tensor = (
        name,
        dtype,
        prop::collection::vec(0usize..9, 0..4),
        0usize..300,
        0usize..300,
    );
    let arch = prop::sample::select(vec![
        None,
        Some(r#"{"kind":"mlp","input_dim":6,"hidden":[4],"classes":3,"activation":"relu"}"#),
        Some(r#"{"kind":"mlp","input_dim":6,"hidden":[],"classes":0,"activation":"relu"}"#),
        Some(r#"{"kind":"cnn"}"#),
        Some("not json"),
    ]);
    (
        prop::collection::vec(tensor, 0..5),
        arch,
        prop::collection::vec(any::<u8>(), 0..300),
    )
        .prop_map(|(tensors, arch, data)| {
            let mut h = serde_json::Map::new();
            for (name, dtype, shape, a, b) in tensors {
                h.insert(
                    name.to_string(),
                    serde_json::json!({"dtype": dtype, "shape": shape, "data_offsets": [a, b]}),
                );
            }
            if let Some(a) = arch {
                h.insert(
                    "__metadata__".into(),
                    serde_json::json!({ "curvlab_architecture": a }),
                );
            }
            let h = serde_json::to_vec(&h).unwrap();
            let mut out = (h.len() as u64).to_le_bytes().to_vec();
            out.extend(h);
            out.extend(data);
            out
        })
}

proptest! {
    #![proptest_config(cases(1))]

    #[test]
    fn safetensors_reader_takes_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        read_weights(&bytes);
    }

    #[test]
    fn safetensors_reader_takes_edited_files(edits in prop::collection::vec(edit(), 1..6)) {
        read_weights(&apply(weights_file(), &edits));
    }

    #[test]
    fn safetensors_reader_takes_crafted_headers(bytes in crafted_header()) {
        read_weights(&bytes);
    }
}

/// A run of a few steps on a small synthetic set, and its checkpoint.
fn tiny_run() -> (RunConfig, Vec<u8>) {
    let mut cfg = RunConfig {
        data: DataConfig::Synthetic(SyntheticConfig {
            n_train: 32,
            n_test: 16,
            ..Default::default()
        }),
        steps: 2,
        measure_every: 1,
        ..Default::default()
    };
    cfg.model.hidden = vec![4];
    cfg.measure.samples = 16;
    cfg.measure.jacobian = false;
    cfg.measure.gauss_newton = false;
    let mut run = Run::new(&cfg, &device()).block().unwrap();
    while let Some(ev) = run.next().block().unwrap() {
        if matches!(ev, curvlab::experiment::Event::Row(_)) {
            break;
        }
    }
    let bytes = run.checkpoint().block().unwrap();
    (cfg, bytes)
}

proptest! {
    // Each case sets a run up: fewer cases.
    #![proptest_config(cases(8))]

    #[test]
    fn checkpoint_reader_takes_edited_files(edits in prop::collection::vec(edit(), 1..6)) {
        let (cfg, bytes) = tiny_run();
        let bytes = apply(bytes, &edits);
        if let Err(e) = Run::resume(&cfg, &device(), &bytes).block() {
            assert!(!e.to_string().contains('\n'), "{e}");
        }
    }
}

/// Odd TOML values put in place of a number or a string of a valid file.
fn odd_value() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "nan",
        "inf",
        "-inf",
        "-1",
        "0",
        "1e400",
        "9223372036854775807",
        "-9223372036854775808",
        "18446744073709551615",
        "\"\"",
        "\"x\"",
        "[]",
        "[[]]",
        "{}",
        "true",
        "1979-05-27",
        "[1, \"a\"]",
        "{ kind = \"x\" }",
    ])
    .prop_map(str::to_string)
}

/// A preset, with some of its values replaced by odd ones and some lines
/// edited, cut or repeated.
fn edited_sweep() -> impl Strategy<Value = String> {
    let names: Vec<&str> = curvlab_lab::presets::PRESETS.iter().map(|p| p.0).collect();
    (
        prop::sample::select(names),
        prop::collection::vec((any::<usize>(), odd_value()), 0..4),
        prop::collection::vec(edit(), 0..3),
    )
        .prop_map(|(name, swaps, edits)| {
            let text = curvlab_lab::presets::get(name).unwrap();
            let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
            for (i, v) in swaps {
                let n = lines.len();
                let l = &mut lines[i % n];
                if let Some(eq) = l.find(" = ") {
                    l.truncate(eq + 3);
                    l.push_str(&v);
                }
            }
            let text = lines.join("\n");
            String::from_utf8_lossy(&apply(text.into_bytes(), &edits)).into_owned()
        })
}

/// Parses and expands a sweep: `Ok`, or one error; an expansion's runs are
/// valid configurations.
fn read_sweep(text: &str) {
    match SweepFile::parse(text, "fuzz.toml") {
        Ok(f) => {
            for (scale, _) in f.scales() {
                let opts = ExpandOptions {
                    scale,
                    ..Default::default()
                };
                match f.expand(&opts) {
                    Ok(m) => {
                        for r in &m.runs {
                            let cfg: RunConfig = serde_json::from_value(r.config.clone()).unwrap();
                            cfg.validate().unwrap();
                        }
                    }
                    Err(e) => assert!(!format!("{e:#}").contains('\n'), "{e:#}"),
                }
            }
        }
        Err(e) => assert!(!format!("{e:#}").contains('\n'), "{e:#}"),
    }
}

proptest! {
    #![proptest_config(cases(1))]

    #[test]
    fn sweep_parser_takes_any_text(text in "\\PC{0,300}") {
        read_sweep(&text);
    }

    #[test]
    fn sweep_parser_takes_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        read_sweep(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn sweep_parser_takes_edited_presets(text in edited_sweep()) {
        read_sweep(&text);
    }

    #[test]
    fn sweep_parser_takes_odd_counts(
        trials in prop::sample::select(vec!["1", "0", "-3", "1000000000000", "9223372036854775807", "2.5"]),
        values in 0usize..4,
        axes in 0usize..4,
    ) {
        // Grids and seed lists that are empty, negative or astronomically
        // large are refused in one line before anything is allocated.
        let list = format!("[{}]", (0..values).map(|i| format!("0.0{}", i + 1)).collect::<Vec<_>>().join(", "));
        let paths = ["optim.lr", "optim.momentum", "loss.label_smoothing", "optim.weight_decay"];
        let axes: String = paths[..axes].iter().map(|p| format!("\"{p}\" = {list}\n")).collect();
        let text = format!("name = \"odd\"\ntrials = {trials}\n[base]\nsteps = 3\n[axes]\n{axes}");
        read_sweep(&text);
    }
}
