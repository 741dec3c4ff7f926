//! Settings structs whose every default is written once, on its field,
//! beside its doc line (as burn's `#[config(default = …)]`), and the range
//! checks every setting goes through.
//!
//! [`settings!`] declares a struct as
//!
//! ```ignore
//! settings! {
//!     /// Optimiser settings.
//!     #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
//!     pub struct OptimConfig {
//!         /// Base learning rate η.
//!         pub lr: f64 = 0.06,
//!     }
//! }
//! ```
//!
//! and gives it `Default` from those values, `#[serde(default,
//! deny_unknown_fields)]` (a table may name any subset of its fields, the
//! rest take their defaults, and a misspelt field is an error), and a
//! "Default: …" line in each field's documentation. Everything that shows a
//! default (the CLI's help, the TOML loader, the web page's controls) reads
//! it from `Default::default()` of these structs, never from a copy.
//!
//! The checks ([`positive`], [`fraction`], [`at_least`], …) return one
//! [`Error::Config`] line naming the setting by its path in `config.json`
//! (`measure.solver.lanczos.tol must be in (0, 1), got NaN`); NaN and ±∞ fail
//! every check on a float.

use crate::{Error, Result};

/// Declares a settings struct with a default on every field (see the module
/// documentation). The struct's own attributes (its doc, its derives, which
/// must include serde's) come first; the macro adds
/// `#[serde(default, deny_unknown_fields)]` and `impl Default`.
macro_rules! settings {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $(
                $(#[$fmeta:meta])*
                $fvis:vis $field:ident : $ty:ty = $default:expr
            ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[serde(default, deny_unknown_fields)]
        $vis struct $name {
            $(
                $(#[$fmeta])*
                #[doc = ""]
                #[doc = concat!("Default: `", stringify!($default), "`.")]
                $fvis $field: $ty,
            )+
        }

        impl Default for $name {
            fn default() -> Self {
                $name {
                    $($field: $default,)+
                }
            }
        }
    };
}
pub(crate) use settings;

fn bad(path: &str, what: &str, got: impl std::fmt::Display) -> Error {
    Error::Config(format!("{path} must be {what}, got {got}"))
}

/// x is finite and > 0.
pub fn positive(path: &str, x: f64) -> Result<()> {
    if x.is_finite() && x > 0.0 {
        Ok(())
    } else {
        Err(bad(path, "finite and positive", x))
    }
}

/// x is finite and ≥ 0.
pub fn non_negative(path: &str, x: f64) -> Result<()> {
    if x.is_finite() && x >= 0.0 {
        Ok(())
    } else {
        Err(bad(path, "finite and ≥ 0", x))
    }
}

/// x ∈ (0, 1): a relative tolerance or step.
pub fn fraction(path: &str, x: f64) -> Result<()> {
    if x > 0.0 && x < 1.0 {
        Ok(())
    } else {
        Err(bad(path, "in (0, 1)", x))
    }
}

/// x ∈ [0, 1).
pub fn unit_interval(path: &str, x: f64) -> Result<()> {
    if (0.0..1.0).contains(&x) {
        Ok(())
    } else {
        Err(bad(path, "in [0, 1)", x))
    }
}

/// n ≥ `min`.
pub fn at_least<T: PartialOrd + std::fmt::Display>(path: &str, n: T, min: T) -> Result<()> {
    if n >= min {
        Ok(())
    } else {
        Err(bad(path, &format!("≥ {min}"), n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::{Deserialize, Serialize};

    settings! {
        /// A test struct.
        #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
        pub struct Demo {
            /// A rate.
            pub rate: f64 = 0.25,
            /// Widths.
            pub widths: Vec<usize> = vec![3, 4],
        }
    }

    #[test]
    fn defaults_fill_missing_fields_and_typos_are_errors() {
        assert_eq!(
            Demo::default(),
            Demo {
                rate: 0.25,
                widths: vec![3, 4]
            }
        );
        let d: Demo = serde_json::from_str(r#"{"rate": 0.5}"#).unwrap();
        assert_eq!((d.rate, d.widths), (0.5, vec![3, 4]));
        let e = serde_json::from_str::<Demo>(r#"{"rtae": 0.5}"#).unwrap_err();
        assert!(e.to_string().contains("unknown field `rtae`"), "{e}");
    }

    #[test]
    fn checks_refuse_nan_infinity_and_out_of_range() {
        for x in [f64::NAN, f64::INFINITY, -1.0, 0.0] {
            assert!(positive("a", x).is_err(), "{x}");
        }
        assert!(positive("a", 1e-9).is_ok());
        for x in [f64::NAN, f64::NEG_INFINITY, -1e-9] {
            assert!(non_negative("a", x).is_err(), "{x}");
        }
        assert!(non_negative("a", 0.0).is_ok());
        for x in [f64::NAN, 0.0, 1.0, -0.5] {
            assert!(fraction("a", x).is_err(), "{x}");
        }
        assert!(unit_interval("a", 0.0).is_ok() && unit_interval("a", 1.0).is_err());
        let e = fraction("measure.solver.lanczos.tol", f64::NAN).unwrap_err();
        assert_eq!(
            e.to_string(),
            "config error: measure.solver.lanczos.tol must be in (0, 1), got NaN"
        );
        assert!(at_least("n", 0usize, 1).is_err() && at_least("n", 1usize, 1).is_ok());
    }
}
