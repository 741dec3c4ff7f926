//! Property tests of the web page's URL state (issue 12, "fuzzing on stable
//! Rust"): any query string gives settings plus a list of one-line problems,
//! never a panic; the settings' runs are planned (and checked by the core's
//! one validation) or refused with one message; and a query read without
//! problems reads back unchanged from the URL the page writes for it.
//!
//! 256 cases per property by default (CI); more on demand:
//! `PROPTEST_CASES=100000 cargo test --release -p curvlab-web --test url_state`.

#![cfg(not(target_arch = "wasm32"))]

use curvlab_web::settings::{encode, PageState, Settings, FIELDS};
use proptest::prelude::*;

/// A value for a control: numbers of every kind, words the menus know,
/// lists, and anything else.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|x| x.to_string()),
        (0u32..300).prop_map(|x| x.to_string()),
        any::<f64>().prop_map(|x| x.to_string()),
        prop_oneof![
            Just("nan"),
            Just("inf"),
            Just("-inf"),
            Just("1e308"),
            Just("0"),
            Just("0.5"),
            Just("cnn"),
            Just("mlp"),
            Just("toy"),
            Just("cifar"),
            Just("rings"),
            Just("ce"),
            Just("ls"),
            Just("lr"),
            Just("0,0.1,0.2"),
            Just("4,8,16,32,64"),
            Just(""),
        ]
        .prop_map(String::from),
        ".{0,16}",
    ]
}

/// A query of control keys (and a few others) with such values, each value
/// percent-encoded or not.
fn query() -> impl Strategy<Value = String> {
    let mut keys: Vec<&'static str> = FIELDS.iter().map(|f| f.key).collect();
    keys.extend(["preset", "embed", "show", "autoplay", "story", "bogus"]);
    prop::collection::vec((prop::sample::select(keys), value(), any::<bool>()), 0..12).prop_map(
        |kvs| {
            kvs.into_iter()
                .map(|(k, v, enc)| format!("{k}={}", if enc { encode(&v) } else { v }))
                .collect::<Vec<_>>()
                .join("&")
        },
    )
}

fn check(q: &str) -> Result<(), TestCaseError> {
    for base in [Settings::default(), Settings::small(), Settings::tiny()] {
        let st = PageState::from_query(q, &base);
        for e in &st.errors {
            prop_assert!(!e.contains('\n'), "{}", e);
        }
        if let Err(e) = st.settings.plans() {
            prop_assert!(!e.contains('\n'), "{}", e);
        }
        if st.errors.is_empty() {
            let again = PageState::from_query(&st.to_query(), &base);
            prop_assert!(again.errors.is_empty(), "{:?}", again.errors);
            prop_assert_eq!(&again.settings, &st.settings);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Any text as a query.
    #[test]
    fn any_text_is_read_without_panic(q in ".{0,200}") {
        check(&q)?;
    }

    /// Queries of real keys with values of every kind.
    #[test]
    fn any_query_of_controls_is_read_or_reported(q in query()) {
        check(&q)?;
    }
}
