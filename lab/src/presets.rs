//! The presets: the paper's experiments as sweep files (`lab/presets/*.toml`),
//! embedded in the library with `include_str!`.

/// The presets: one per experiment of the paper, (name, sweep file text).
pub const PRESETS: &[(&str, &str)] = &[
    ("fig1", include_str!("../presets/fig1.toml")),
    ("fig2", include_str!("../presets/fig2.toml")),
    ("fig3", include_str!("../presets/fig3.toml")),
    ("fig4", include_str!("../presets/fig4.toml")),
    ("fig5", include_str!("../presets/fig5.toml")),
    ("appc2", include_str!("../presets/appc2.toml")),
];

/// The text of the preset `name`.
pub fn get(name: &str) -> Option<&'static str> {
    PRESETS.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

/// The names of the presets, for messages.
pub fn names() -> String {
    PRESETS
        .iter()
        .map(|(n, _)| *n)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sweep::SweepFile;

    #[test]
    fn presets_parse() {
        for (name, text) in PRESETS {
            let f = SweepFile::parse(text, name).unwrap();
            assert_eq!(&f.name, name);
            for s in ["paper", "small", "tiny"] {
                assert!(f.scales().iter().any(|(n, _)| n == s), "{name}: no {s}");
            }
        }
        assert_eq!(get("fig1"), Some(PRESETS[0].1));
        assert_eq!(get("fig9"), None);
        assert_eq!(names(), "fig1, fig2, fig3, fig4, fig5, appc2");
    }
}
