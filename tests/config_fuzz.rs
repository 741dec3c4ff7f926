//! Property tests of the run-configuration parsers (issue 12, "fuzzing on
//! stable Rust"): any text fed to the TOML loader of `curvlab run --config`
//! ([`curvlab_lab::run_config`]) or to the sweep parser gives a
//! configuration or one error line, never a panic; any table of settings
//! (real paths, values of every type, NaN and ±∞ included) that is accepted
//! is valid and reads back from config.json unchanged (what `--resume`
//! relies on).
//!
//! 256 cases per property by default (CI); more on demand:
//! `PROPTEST_CASES=100000 cargo test --release --test config_fuzz`.

use curvlab::experiment::RunConfig;
use curvlab_lab::run_config;
use curvlab_lab::sweep::SweepFile;
use proptest::prelude::*;
use toml::{Table, Value};

/// Every leaf path of the default configuration, plus the fields that are
/// absent by default and a few of other variants' tables.
fn paths() -> Vec<String> {
    fn walk(t: &Table, prefix: &str, out: &mut Vec<String>) {
        for (k, v) in t {
            let p = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            match v {
                Value::Table(sub) => walk(sub, &p, out),
                _ => out.push(p),
            }
        }
    }
    let mut out = Vec::new();
    walk(&run_config::defaults(), "", &mut out);
    out.extend(
        [
            "epochs",
            "measure.top_k",
            "data.dir",
            "data.train_samples",
            "data.test_samples",
            "data.coarse",
            "data.shape",
            "data.noise",
            "data.turns",
            "no_such_field",
            "measure.solver.lanczos.nope",
        ]
        .map(String::from),
    );
    out
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::Integer),
        (-3i64..200).prop_map(Value::Integer),
        any::<f64>().prop_map(Value::Float),
        prop_oneof![
            Just(f64::NAN),
            Just(f64::INFINITY),
            Just(f64::NEG_INFINITY),
            Just(-0.0),
            Just(1e-300),
            Just(1e300),
            Just(0.5),
        ]
        .prop_map(Value::Float),
        any::<bool>().prop_map(Value::Boolean),
        prop_oneof![
            Just("cifar"),
            Just("toy"),
            Just("synthetic"),
            Just("mlp"),
            Just("cnn"),
            Just("vgg11_bn"),
            Just("square"),
            Just("crossentropy"),
            Just("step"),
            Just("cosine"),
            Just("classes"),
            Just("eval"),
            Just("gaussian"),
            Just("wgpu"),
        ]
        .prop_map(|s| Value::String(s.into())),
        ".{0,12}".prop_map(Value::String),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(2, 12, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec(("[a-z_]{1,8}", inner), 0..3)
                .prop_map(|kv| Value::Table(kv.into_iter().collect())),
        ]
    })
}

/// Settings at real (and a few wrong) dotted paths.
fn settings() -> impl Strategy<Value = Table> {
    let paths = paths();
    prop::collection::vec((prop::sample::select(paths), value()), 0..8).prop_map(|kvs| {
        let mut t = Table::new();
        for (path, v) in kvs {
            // A path through a value that is not a table is itself an input error.
            let _ = curvlab_lab::sweep::set_path(&mut t, &path, v);
        }
        t
    })
}

proptest! {
    #![proptest_config(ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Any bytes: a configuration or one error line.
    #[test]
    fn any_text_gives_a_config_or_one_error(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let text = String::from_utf8_lossy(&bytes);
        if let Err(e) = run_config::from_toml_str(&text, "fuzz.toml") {
            prop_assert!(!e.to_string().contains('\n'), "{}", e);
        }
        if let Err(e) = SweepFile::parse(&text, "fuzz.toml") {
            prop_assert!(!e.to_string().contains('\n'), "{}", e);
        }
    }

    /// TOML-shaped text: keys and values that parse, at real paths.
    #[test]
    fn any_settings_are_valid_and_read_back_or_one_error(t in settings()) {
        let text = toml::to_string(&t).unwrap_or_default();
        for cfg in [run_config::from_table(&t), run_config::from_toml_str(&text, "f.toml")] {
            match cfg {
                Ok(cfg) => {
                    prop_assert!(cfg.validate().is_ok());
                    let json = serde_json::to_string(&cfg).unwrap();
                    let back: RunConfig = serde_json::from_str(&json).unwrap();
                    prop_assert_eq!(back, cfg);
                }
                Err(e) => prop_assert!(!e.to_string().contains('\n'), "{}", e),
            }
        }
    }

    /// A sweep of such settings: plans or one error.
    #[test]
    fn any_sweep_gives_a_plan_or_one_error(t in settings(), axis in value()) {
        let mut sweep = Table::new();
        sweep.insert("name".into(), Value::String("fuzz".into()));
        sweep.insert("base".into(), Value::Table(t));
        let mut axes = Table::new();
        axes.insert("optim.lr".into(), Value::Array(vec![axis]));
        sweep.insert("axes".into(), Value::Table(axes));
        let text = toml::to_string(&sweep).unwrap_or_default();
        match SweepFile::parse(&text, "fuzz.toml") {
            Ok(f) => {
                let opts = curvlab_lab::sweep::ExpandOptions {
                    scale: curvlab_lab::sweep::DEFAULT_SCALE.into(),
                    ..Default::default()
                };
                if let Err(e) = f.expand(&opts) {
                    prop_assert!(!e.to_string().contains('\n'), "{}", e);
                }
            }
            Err(e) => prop_assert!(!e.to_string().contains('\n'), "{}", e),
        }
    }
}
